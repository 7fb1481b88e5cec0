"""The web chat's settings: `channels.webchat` in config.yaml."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from bot.settings import ChannelSettings, Seconds

if TYPE_CHECKING:
    from bot.channel import Channel, ChannelServices


class WebChatConfig(ChannelSettings):
    """The web chat: the widget, its WebSocket, and the demo page; docs/webchat-protocol.md."""

    enabled: bool = True
    max_frame_bytes: Annotated[int, Field(ge=256)] = 16384
    max_text_chars: Annotated[int, Field(ge=1)] = 2000
    rate_limit_messages: Annotated[int, Field(ge=1)] = 10
    rate_limit_seconds: Seconds = 10.0
    rate_limit_strikes_before_close: Annotated[int, Field(ge=1)] = 5
    allowed_origins: list[str] = Field(default_factory=list)  # empty: any origin may embed

    def build(self, kefu: ChannelServices) -> Channel:
        from channels.webchat.channel import WebChatChannel

        return WebChatChannel(self, kefu.store, kefu.submit, kefu.fanout)
