"""WeCom customer service's settings: `channels.wecom` in config.yaml."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from bot.settings import Seconds
from channels.tencent.settings import TencentApiConfig

if TYPE_CHECKING:
    from bot.channel import Channel, ChannelServices


class WeComConfig(TencentApiConfig):
    """WeCom customer service (企业微信 微信客服); see docs/channels/wecom.md."""

    enabled: bool = False
    path: str = "/wecom"  # the callback URL set for 微信客服 in the WeCom admin console
    corp_id: str = ""  # 企业ID
    secret: str = ""  # the 微信客服 secret: KEFU_CHANNELS__WECOM__SECRET
    token: str = ""  # the callback Token
    encoding_aes_key: str = ""  # the callback EncodingAESKey, 43 characters
    api_base: str = "https://qyapi.weixin.qq.com"
    welcome_code_seconds: Seconds = 20.0  # how long WeCom accepts a welcome_code
    sync_limit: Annotated[int, Field(ge=1, le=1000)] = 1000  # messages per kf/sync_msg page
    first_read_max_age_seconds: Seconds = 600.0  # the very first read skips older messages
    event_window_quota: Annotated[int, Field(ge=0)] = 0  # entering opens no window: the
    # greeting goes with the welcome_code instead
    # who answers when the bot hands off: kefu's agents (console, Telegram), or the
    # account's servicers (接待人员) in the WeCom app, through WeCom's pool
    agents: Literal["kefu", "wecom"] = "kefu"

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> WeComConfig:
        if not self.enabled:
            return self
        missing = [k for k in ("corp_id", "secret", "token") if not getattr(self, k)]
        if missing:
            raise ValueError(f"enabled, but {', '.join(missing)} not set")
        if not re.fullmatch(r"[A-Za-z0-9+/]{43}", self.encoding_aes_key):
            raise ValueError("encoding_aes_key: the 43 letters and digits of EncodingAESKey")
        if not self.path.startswith("/"):
            raise ValueError("path must start with /")
        return self

    def own_agents(self) -> str | None:
        return "agents: wecom" if self.agents == "wecom" else None

    def build(self, kefu: ChannelServices) -> Channel:
        from channels.wecom.channel import WeComChannel

        return WeComChannel(self, kefu.store, kefu.submit, kefu.leases,
                            kefu.desk.platform_news, kefu.clock)
