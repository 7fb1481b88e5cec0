"""Where a channel's settings live: each package owns its settings model and how it is
built; the wiring builds whatever `channels.ChannelsConfig` lists and the config enables."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web
from pydantic import ValidationError

from bot.app import CHANNELS
from bot.channel import Channel, ChannelServices
from bot.config import Config, HandoffConfig
from bot.messages import StoredMessage
from bot.settings import BridgeSettings, ChannelSettings
from bot.store import Conversation
from channels import ChannelsConfig
from handoff.bridges import BridgeServices, DeskBridge
from tests.conftest import PROJECT
from tests.harness import Kefu


def test_each_channel_package_owns_its_settings() -> None:
    for name, field in ChannelsConfig.model_fields.items():
        assert field.annotation is not None
        assert field.annotation.__module__ == f"channels.{name}.settings", name
        assert issubclass(field.annotation, ChannelSettings)
    wiring = (PROJECT / "bot" / "app.py").read_text(encoding="utf-8")
    config = (PROJECT / "bot" / "config.py").read_text(encoding="utf-8")
    for kind in ("WebChat", "WeChat", "WeCom", "QQ", "OneBot", "Telegram"):
        assert f"{kind}Channel" not in wiring and f"class {kind}Config" not in config


class PagerChannel:
    """A channel as a new package would add one: the smallest that kefu can run."""

    name = "pager"

    def __init__(self, settings: PagerConfig, kefu: ChannelServices) -> None:
        self.settings, self.kefu = settings, kefu

    def add_routes(self, app: web.Application) -> None:
        async def hello(request: web.Request) -> web.Response:
            return web.Response(text=self.settings.greeting)

        app.router.add_get("/pager", hello)

    async def send(self, conversation: Conversation, message: StoredMessage) -> None: ...

    async def send_state(self, conversation: Conversation, position: int | None) -> None: ...

    async def typing(self, conversation: Conversation) -> None: ...

    async def absent_since(self, user_id: str) -> float | None:
        return None

    async def aclose(self) -> None: ...


class PagerConfig(ChannelSettings):
    greeting: str = "beep"

    def build(self, kefu: ChannelServices) -> Channel:
        return PagerChannel(self, kefu)


class WithPager(ChannelsConfig):
    pager: PagerConfig = PagerConfig()


async def test_a_new_channel_is_its_settings_and_a_line_in_the_registry(
        make_config: Callable[..., Config]) -> None:
    base = make_config()
    channels = WithPager(webchat=base.channels.webchat.model_copy(update={"enabled": False}),
                         pager=PagerConfig(enabled=True, greeting="滴滴"))
    kefu = await Kefu(base.model_copy(update={"channels": channels})).start()
    try:
        assert kefu.app is not None and list(kefu.app[CHANNELS]) == ["pager"]
        pager = kefu.app[CHANNELS]["pager"]
        assert isinstance(pager, PagerChannel) and pager.kefu.store is kefu.store
        assert kefu.client is not None
        assert await (await kefu.client.get("/pager")).text() == "滴滴"
    finally:
        await kefu.stop()


class PagerDesk:
    """A helpdesk bridge as a new package would add one: the smallest kefu can run."""

    name = "pagerdesk"

    def __init__(self, settings: PagerDeskSettings, kefu: BridgeServices) -> None:
        self.settings, self.kefu = settings, kefu

    async def on_duty(self, now: float) -> bool:
        return True

    async def end(self, conversation: Conversation) -> None: ...

    def add_routes(self, app: web.Application) -> None:
        async def hello(request: web.Request) -> web.Response:
            return web.Response(text=self.settings.pager)

        app.router.add_get("/bridges/pagerdesk", hello)

    async def run(self) -> None: ...


class PagerDeskSettings(BridgeSettings):
    pager: str = ""

    def missing(self) -> list[str]:
        return [] if self.pager else ["pager"]

    def build(self, kefu: BridgeServices) -> DeskBridge:
        return PagerDesk(self, kefu)


class WithPagerDesk(HandoffConfig):
    pagerdesk: PagerDeskSettings = PagerDeskSettings()


def test_each_bridge_package_owns_its_settings() -> None:
    for name, settings in HandoffConfig().bridges().items():
        assert type(settings).__module__ == f"handoff.bridges.{name}.settings", name
    wiring = (PROJECT / "bot" / "app.py").read_text(encoding="utf-8")
    config = (PROJECT / "bot" / "config.py").read_text(encoding="utf-8")
    assert "chatwoot" not in wiring.lower() and "chatwoot" not in config.lower()


async def test_a_new_helpdesk_is_its_settings_and_a_line_in_the_registry(
        make_config: Callable[..., Config]) -> None:
    with pytest.raises(ValidationError, match=r"desk is pagerdesk: set pagerdesk\.pager"):
        WithPagerDesk(desk="pagerdesk")
    with pytest.raises(ValidationError, match="desk: kefu, or a helpdesk"):
        HandoffConfig(desk="pagerdesk")
    base = make_config()
    handoff = WithPagerDesk(desk="pagerdesk", pagerdesk=PagerDeskSettings(pager="滴滴"))
    kefu = await Kefu(base.model_copy(update={"handoff": handoff})).start()
    try:
        assert kefu.client is not None
        assert await (await kefu.client.get("/bridges/pagerdesk")).text() == "滴滴"
    finally:
        await kefu.stop()
