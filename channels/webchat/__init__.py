"""The web chat channel: a WebSocket endpoint and an embeddable widget.

The channel is built from its settings (`settings.py`); importing the package imports
nothing else, so that bot/config.py can read the settings first."""
