from channels.qq.channel import QQChannel

__all__ = ["QQChannel"]
