"""Channel adapters: each turns its platform's wire format into kefu's message types.

Each package owns its settings (`settings.py`) and how it is built (their `build`); this is
the registry: a channel is a line here, and config.yaml's `channels.<name>` section.
"""

from __future__ import annotations

from bot.settings import ChannelSettings, Settings
from channels.onebot.settings import OneBotConfig
from channels.qq.settings import QQConfig
from channels.telegram.settings import TelegramConfig
from channels.webchat.settings import WebChatConfig
from channels.wechat.settings import WeChatConfig
from channels.wecom.settings import WeComConfig


class ChannelsConfig(Settings):
    webchat: WebChatConfig = WebChatConfig()
    wechat: WeChatConfig = WeChatConfig()
    wecom: WeComConfig = WeComConfig()
    qq: QQConfig = QQConfig()
    onebot: OneBotConfig = OneBotConfig()
    telegram: TelegramConfig = TelegramConfig()

    def enabled(self) -> dict[str, ChannelSettings]:
        """The channels to build, by name, in the order above."""
        found = {name: getattr(self, name) for name in type(self).model_fields}
        return {name: settings for name, settings in found.items() if settings.enabled}
