"""QQ through a OneBot v11 client (NapCat, Lagrange...): HTTP POST or reverse WebSocket.

The channel is built from its settings (`settings.py`); importing the package imports
nothing else, so that bot/config.py can read the settings first."""
