"""What every settings model is built on: kefu's own in bot/config.py, each channel's in
its package (channels/<name>/settings.py), which bot/config.py reads through
channels.ChannelsConfig, and each helpdesk bridge's (handoff/bridges/<name>/settings.py),
read through handoff.bridges.BridgesConfig. Nothing here imports the rest of kefu, so these
settings can be read before the channels and bridges themselves are imported."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from bot.channel import Channel, ChannelServices
    from bot.store import Store
    from handoff.bridges import BridgeServices, DeskBridge

Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseModel):
    """Unknown keys are mistakes; settings never change once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelSettings(Settings):
    """A channel's settings under `channels.<name>`; the channel is built when enabled."""

    enabled: bool = False

    def own_agents(self) -> str | None:
        """The setting, as "<key>: <value>", by which the platform's own agents answer this
        channel's handoffs instead of kefu's desk; None when kefu's desk does."""
        return None

    @abstractmethod
    def build(self, kefu: ChannelServices) -> Channel:
        """The channel, made of these settings and what it needs of kefu. Implementations
        import their channel here: a channel needs the whole bot, while its settings are
        read first, by bot/config.py."""


class BridgeSettings(Settings):
    """A helpdesk bridge's settings under `handoff.<name>`; the bridge is built when
    `handoff.desk: <name>`."""

    def missing(self) -> list[str]:
        """The settings a handoff to this helpdesk cannot do without."""
        return []

    @abstractmethod
    def build(self, kefu: BridgeServices) -> DeskBridge:
        """The bridge, made of these settings and what it needs of kefu (imported here, as
        a channel's `build` does)."""

    async def forget(self, store: Store, conversation_ids: Sequence[str]) -> int:
        """An erased customer's conversations: queue, durably, the deletion of what the
        helpdesk keeps of them, and say how many records were queued. It runs wherever the
        erasure does (`kefu customer erase` too), before erasure deletes the channel state
        that names them; the bridge's `run` does the deleting."""
        return 0
