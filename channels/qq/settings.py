"""The official QQ bot's settings: `channels.qq` in config.yaml."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field, model_validator

from bot.settings import ChannelSettings, Seconds

if TYPE_CHECKING:
    from bot.channel import Channel, ChannelServices


class QQConfig(ChannelSettings):
    """The official QQ bot API by webhook (QQ机器人); see docs/channels/qq.md."""

    enabled: bool = False
    path: str = "/qq"  # the callback URL set in the QQ bot admin (q.qq.com)
    app_id: str = ""  # AppID (机器人ID)
    secret: str = ""  # AppSecret (机器人密钥): KEFU_CHANNELS__QQ__SECRET
    api_base: str = "https://api.sgroup.qq.com"
    token_url: str = "https://bots.qq.com/app/getAppAccessToken"
    api_timeout_seconds: Seconds = 5.0  # QQ asks for at least 5 s
    token_refresh_margin_seconds: Seconds = 60.0
    send_attempts: Annotated[int, Field(ge=1)] = 3
    timestamp_tolerance_seconds: Seconds = 300.0  # older signed callbacks are replays
    max_body_bytes: Annotated[int, Field(ge=1024)] = 65536
    max_text_chars: Annotated[int, Field(ge=16)] = 2000
    private_reply_seconds: Seconds = 3600.0  # replies to a private message: 60 minutes...
    group_reply_seconds: Seconds = 300.0  # ...to a group @ message: 5 minutes...
    event_reply_seconds: Seconds = 300.0  # ...to an event (added as a friend or to a group)
    replies_per_message: Annotated[int, Field(ge=1)] = 5

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> QQConfig:
        if not self.enabled:
            return self
        missing = [k for k in ("app_id", "secret") if not getattr(self, k)]
        if missing:
            raise ValueError(f"enabled, but {', '.join(missing)} not set")
        if not self.path.startswith("/"):
            raise ValueError("path must start with /")
        return self

    def build(self, kefu: ChannelServices) -> Channel:
        from channels.qq.channel import QQChannel

        return QQChannel(self, kefu.store, kefu.submit, kefu.leases, kefu.clock)
