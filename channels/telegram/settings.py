"""A Telegram bot's settings, and its agents' bridge's: `channels.telegram` in config.yaml."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from bot.settings import ChannelSettings, Settings

if TYPE_CHECKING:
    from bot.channel import Channel, ChannelServices


class TelegramBridgeConfig(Settings):
    """Agents answering from a Telegram supergroup with topics (one topic a conversation)."""

    group_id: int = 0  # the supergroup's id (negative, -100...); 0: no bridge
    agents: dict[str, str] = Field(default_factory=dict)  # Telegram user id -> kefu agent
    group_per_minute: Annotated[int, Field(ge=1)] = 20  # Telegram's budget for one group


class TelegramConfig(ChannelSettings):
    """A Telegram bot for customers and, optionally, the agents' bridge; see
    docs/channels/telegram.md."""

    enabled: bool = False
    token: str = ""  # from @BotFather; better from KEFU_CHANNELS__TELEGRAM__TOKEN
    mode: Literal["polling", "webhook"] = "polling"
    webhook_path: str = "/telegram"
    webhook_url: str = ""  # the public https URL of webhook_path, registered at start-up
    secret_token: str = ""  # checked on every webhook request
    api_base: str = "https://api.telegram.org"
    per_chat_per_second: Annotated[float, Field(gt=0)] = 1.0
    overall_per_second: Annotated[float, Field(gt=0)] = 30.0
    max_text_chars: Annotated[int, Field(ge=16, le=4096)] = 4096
    poll_timeout_seconds: Annotated[int, Field(ge=0)] = 10
    concurrent_updates: Annotated[int, Field(ge=1)] = 256  # updates handled at once (chats)
    bridge: TelegramBridgeConfig = TelegramBridgeConfig()

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> TelegramConfig:
        if not self.enabled:
            return self
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]{20,}", self.token):
            raise ValueError("enabled, but token is not a bot token like 123456:ABC-DEF...")
        if self.mode == "webhook" and not re.fullmatch(r"[A-Za-z0-9_-]{16,256}",
                                                       self.secret_token):
            raise ValueError("webhook mode needs secret_token: 16-256 letters, digits, _ or -")
        return self

    def build(self, kefu: ChannelServices) -> Channel:
        """The bot, and with `bridge.group_id` the agents' bridge beside it."""
        from channels.telegram.bridge import TelegramBridge
        from channels.telegram.channel import TelegramChannel

        channel = TelegramChannel(self, kefu.submit, kefu.clock,
                                  stop_seconds=kefu.config.server.stop_timeout_seconds)
        if self.bridge.group_id:
            bridge = TelegramBridge(self, kefu.config.desk, channel, kefu.store, kefu.desk,
                                    kefu.speaker, kefu.config.business.timezone, kefu.clock)
            kefu.background(bridge.keep_present)
        return channel
