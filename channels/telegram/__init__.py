"""A Telegram bot for customers, and the agents' bridge in a supergroup.

The channel is built from its settings (`settings.py`); importing the package imports
nothing else, so that bot/config.py can read the settings first."""
