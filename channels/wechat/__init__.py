from channels.wechat.channel import WeChatChannel

__all__ = ["WeChatChannel"]
