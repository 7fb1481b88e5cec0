from channels.telegram.bridge import TelegramBridge
from channels.telegram.channel import TelegramChannel

__all__ = ["TelegramBridge", "TelegramChannel"]
