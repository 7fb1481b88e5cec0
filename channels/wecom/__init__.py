from channels.wecom.channel import WeComChannel

__all__ = ["WeComChannel"]
