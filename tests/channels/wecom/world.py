"""A kefu with WeCom enabled, against the stand-in: what the WeCom tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.app import CHANNELS
from bot.config import Config
from tests.channels.tencent_envelope import Clock
from tests.channels.wecom.standin import WeComStandIn
from tests.conftest import TEST_KB
from tests.harness import Kefu, write_kb


@dataclass
class WeCom:
    kefu: Kefu
    standin: WeComStandIn
    clock: Clock
    url: str

    async def settle(self) -> None:
        """Until kefu has read everything and answered it."""
        channel = self.kefu.app[CHANNELS]["wecom"]
        for _ in range(3):  # reading leads to answers, answers to nothing more
            await channel.finished_reading()
            await self.kefu.router.idle()

    async def nudged(self, **how: Any) -> None:
        status, text = await self.standin.nudge(self.url, **how)
        assert (status, text) == (200, "success")
        await self.settle()

    async def writes(self, customer: str, text: str) -> list[str]:
        """The customer writes; what kefu said to them because of it."""
        before = len(self.standin.sent_to(customer))
        self.standin.writes(customer, text)
        await self.nudged()
        return self.standin.sent_to(customer)[before:]

    async def conversation(self, customer: str) -> Any:
        return await self.kefu.store.latest_conversation(
            "wecom", f"{self.standin.open_kfid}:{customer}")


@pytest.fixture
async def wecom_world(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[Kefu, WeComStandIn]] = []

    async def start(standin: WeComStandIn | None = None, store: Path | None = None,
                    **wecom: Any) -> WeCom:
        clock = standin.clock if standin else Clock()
        standin = standin or WeComStandIn(clock)
        api = await standin.start() if standin.server is None else \
            str(standin.server.make_url("")).rstrip("/")
        kb = write_kb(tmp_path / f"kb-{len(started)}", TEST_KB)
        config = Config.model_validate({
            "business": {"name": "测试店", "hours": {d: "00:00-24:00" for d in (
                "mon", "tue", "wed", "thu", "fri", "sat", "sun")}},
            "knowledge_base": {"path": str(kb), "regressions": str(tmp_path / "none.yaml")},
            "store": {"path": str(store or tmp_path / f"kefu-{len(started)}.sqlite3")},
            "desk": {"auto_assign": False},
            "channels": {"wecom": {
                "enabled": True, "corp_id": standin.corp_id, "secret": standin.secret,
                "token": standin.token, "encoding_aes_key": standin.aes_key,
                "api_base": api, "send_attempts": 2, **wecom}},
        })
        kefu = await Kefu(config, clock).start()
        if not started or store is None:
            await kefu.add_agent("duty", online=True)
        started.append((kefu, standin))
        assert kefu.client is not None
        return WeCom(kefu, standin, clock, str(kefu.client.make_url("/wecom")))

    yield start
    for kefu, standin in reversed(started):
        await kefu.stop()
        await standin.close()


async def servicers_world(wecom_world: Any, **wecom: Any) -> WeCom:
    """`agents: wecom`, with two servicers taking sessions."""
    world: WeCom = await wecom_world(agents="wecom", **wecom)
    world.standin.servicers = {"zhangsan": 0, "lisi": 0}
    return world
