"""A WeChat Official Account's settings: `channels.wechat` in config.yaml."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from bot.settings import Seconds
from channels.tencent.settings import TencentApiConfig

if TYPE_CHECKING:
    from bot.channel import Channel, ChannelServices


class WeChatConfig(TencentApiConfig):
    """A WeChat Official Account (公众号); see docs/channels/wechat.md."""

    enabled: bool = False
    path: str = "/wechat"  # the URL configured in the Official Account's server settings
    app_id: str = ""
    app_secret: str = ""  # better from the environment: KEFU_CHANNELS__WECHAT__APP_SECRET
    token: str = ""  # the Token of the server settings (signatures)
    encoding_aes_key: str = ""  # 43 characters; needed in compatible and safe mode
    mode: Literal["plain", "compatible", "safe"] = "safe"
    api_base: str = "https://api.weixin.qq.com"
    reply_budget_seconds: Annotated[float, Field(gt=0, lt=5)] = 4.0  # WeChat waits 5 s
    retry_window_seconds: Seconds = 120.0  # how long a push is remembered for its retries

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> WeChatConfig:
        if not self.enabled:
            return self
        missing = [k for k in ("app_id", "app_secret", "token") if not getattr(self, k)]
        if missing:
            raise ValueError(f"enabled, but {', '.join(missing)} not set")
        if self.mode != "plain" and not re.fullmatch(r"[A-Za-z0-9+/]{43}",
                                                     self.encoding_aes_key):
            raise ValueError(f"mode {self.mode} needs encoding_aes_key: the 43 letters and "
                             "digits of EncodingAESKey")
        if not self.path.startswith("/"):
            raise ValueError("path must start with /")
        return self

    def build(self, kefu: ChannelServices) -> Channel:
        from channels.wechat.channel import WeChatChannel

        return WeChatChannel(self, kefu.store, kefu.submit, kefu.leases, kefu.clock)
