"""The official QQ bot platform (QQ机器人), by webhook.

The channel is built from its settings (`settings.py`); importing the package imports
nothing else, so that bot/config.py can read the settings first."""
