from channels.onebot.channel import OneBotChannel

__all__ = ["OneBotChannel"]
