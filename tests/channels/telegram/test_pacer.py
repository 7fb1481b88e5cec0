"""The pacer on its own: stopping leaves nobody waiting for a send."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.errors import ChannelSendError
from channels.telegram.pacer import Outgoing, Pacer


async def test_a_send_stopped_before_it_began_is_failed_not_left_pending() -> None:
    async def send(message: Outgoing) -> Any:
        await asyncio.sleep(10)

    pacer = Pacer(send, per_chat_per_second=1.0, group_per_minute=20,
                  overall_per_second=30.0, max_chars=4096, merged_note="({n})")
    done = pacer.submit(Outgoing(5550001, "您好"))
    pacer._dispatch()  # its send is a task now, not yet started
    await pacer.aclose()  # ...and is cancelled before it starts
    assert done.done()
    with pytest.raises(ChannelSendError, match="kefu is stopping"):
        done.result()
