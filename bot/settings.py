"""What every settings model is built on: kefu's own in bot/config.py, and each channel's in
its package (channels/<name>/settings.py), which bot/config.py reads through
channels.ChannelsConfig. Nothing here imports the rest of kefu, so a channel's settings can
be read before the channel itself is imported."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from bot.channel import Channel, ChannelServices

Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseModel):
    """Unknown keys are mistakes; settings never change once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelSettings(Settings):
    """A channel's settings under `channels.<name>`; the channel is built when enabled."""

    enabled: bool = False

    @abstractmethod
    def build(self, kefu: ChannelServices) -> Channel:
        """The channel, made of these settings and what it needs of kefu. Implementations
        import their channel here: a channel needs the whole bot, while its settings are
        read first, by bot/config.py."""
