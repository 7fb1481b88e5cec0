"""The web chat channel: a WebSocket endpoint and an embeddable widget."""

from channels.webchat.channel import WebChatChannel

__all__ = ["WebChatChannel"]
