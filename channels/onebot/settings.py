"""A OneBot v11 client's settings: `channels.onebot` in config.yaml."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field, model_validator

from bot.settings import ChannelSettings, Seconds

if TYPE_CHECKING:
    from bot.channel import Channel, ChannelServices


class OneBotConfig(ChannelSettings):
    """QQ through a OneBot v11 client (NapCat, Lagrange...); see docs/channels/qq.md."""

    enabled: bool = False
    path: str = "/onebot"  # events by HTTP POST (the client's post_url)
    ws_path: str = "/onebot/ws"  # the client's reverse WebSocket (Universal) connects here
    secret: str = ""  # HTTP POST: the X-Signature HMAC-SHA1 key
    access_token: str = ""  # reverse WebSocket and the client's HTTP API: the Bearer token
    api_base: str = ""  # the client's HTTP API, used while no reverse WebSocket is open
    action_timeout_seconds: Seconds = 10.0
    max_body_bytes: Annotated[int, Field(ge=1024)] = 65536
    max_text_chars: Annotated[int, Field(ge=16)] = 3000

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> OneBotConfig:
        if not self.enabled:
            return self
        missing = [k for k in ("secret", "access_token") if not getattr(self, k)]
        if missing:
            raise ValueError(f"enabled, but {', '.join(missing)} not set: without them anyone "
                             "could post messages as the QQ client")
        if not (self.path.startswith("/") and self.ws_path.startswith("/")):
            raise ValueError("path and ws_path must start with /")
        return self

    def build(self, kefu: ChannelServices) -> Channel:
        from channels.onebot.channel import OneBotChannel

        return OneBotChannel(self, kefu.submit, kefu.clock)
