"""What kefu needs of a channel adapter: a small Protocol every adapter implements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiohttp import web

from bot.messages import InboundMessage, StoredMessage
from bot.store import Conversation, Store

if TYPE_CHECKING:
    from bot.cluster import Fanout, Leases
    from bot.config import Config
    from bot.router import Accepted
    from bot.speaker import Speaker
    from handoff.desk import Desk


class Channel(Protocol):
    name: str

    def add_routes(self, app: web.Application) -> None:
        """Register the adapter's webhooks or sockets on kefu's app."""

    async def send(self, conversation: Conversation, message: StoredMessage) -> None:
        """Deliver a stored message to the customer."""

    async def send_state(self, conversation: Conversation, position: int | None) -> None:
        """Tell the customer's client the conversation's state (and queue position)."""

    async def typing(self, conversation: Conversation) -> None:
        """Show the customer that an agent is writing, where the platform allows it."""

    async def absent_since(self, user_id: str) -> float | None:
        """When the customer was last connected, if the channel knows they have left
        (a web chat tab closed); None while connected or when the channel cannot tell."""

    async def aclose(self) -> None: ...


# Fan-out topic: {"channel", "user_id"} of a customer typing, for the agents' consoles.
CUSTOMER_TYPING = "customer-typing"


@runtime_checkable
class SeesPresence(Protocol):
    """A channel that knows whether its customer is there now (the web chat's open tab)."""

    async def is_present(self, user_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class ChannelServices:
    """What a channel is built with (`ChannelSettings.build`): kefu's shared parts, so that
    a new channel is a package of its own and a line in channels.ChannelsConfig."""

    config: Config  # the whole tree: a channel may follow the desk's rules or the hours
    store: Store
    submit: Callable[[InboundMessage], Awaitable[Accepted]]  # the router's front door
    leases: Leases
    fanout: Fanout
    desk: Desk
    speaker: Speaker
    clock: Callable[[], float]
    # work to run while the app runs (cancelled at shutdown), e.g. Telegram's agents' bridge
    background: Callable[[Callable[[], Coroutine[Any, Any, None]]], None]


@dataclass(frozen=True, slots=True)
class PlatformNews:
    """What a platform's own human agents did in a customer's session (WeCom's 接待人员,
    who answer in the WeCom app), or a bridged helpdesk's agents, for the desk to record."""

    channel: str
    user_id: str
    what: str  # "assigned", "transferred", "wrote", "ended"
    agent: str  # the platform's id of the person
    ts: float
    text: str = ""  # what they wrote
    platform_msg_id: str | None = None
    can_tell: bool = False  # the platform lets kefu write to the customer about it, once
    # A helpdesk bridge's name (handoff/bridges/) when the agent works there: kefu delivers
    # what they write, and the holder is "<desk>:<agent>" whatever the customer's channel.
    desk: str | None = None


def platform_holder(channel: str, person: str | None = None) -> str:
    """The `agent_id` of a conversation held by a platform's own agents: one person, or
    the platform's waiting pool while nobody has taken it yet."""
    return f"{channel}:{person}" if person else f"{channel}:pool"


def held_by_platform(agent_id: str | None) -> bool:
    """kefu's own agents have ids without a colon."""
    return agent_id is not None and ":" in agent_id


def holder_name(agent_id: str) -> str:
    channel, _, person = agent_id.partition(":")
    return f"{channel} pool" if person == "pool" else f"{person} ({channel})"


async def platform_name(channels: Mapping[str, Channel], channel: str, user_id: str) -> str:
    """The name the customer's platform shows for them, for channels that can look it up
    (`display_name`, e.g. WeCom's kf/customer/batchget); '' otherwise."""
    look_up = getattr(channels.get(channel), "display_name", None)
    return str(await look_up(user_id)) if look_up is not None else ""


@dataclass(frozen=True, slots=True)
class DeliveryWindow:
    """How many more messages a platform lets kefu send a customer, and until when; the
    console shows it so an agent does not spend the last one on small talk."""

    messages_left: int
    reserve: int  # the last this many are kept for people: automatic messages never use them
    closes_at: float  # unix seconds

    def as_json(self) -> dict[str, Any]:
        return {"messages_left": self.messages_left, "reserve": self.reserve,
                "closes_at": datetime.fromtimestamp(self.closes_at, UTC).isoformat()}


@runtime_checkable
class WindowLimited(Protocol):
    """A channel whose platform allows API messages only for a while after the customer
    wrote, and only so many (WeChat, WeCom)."""

    async def delivery_window(self, user_id: str, now: float) -> DeliveryWindow | None:
        """The customer's window; None when it is closed or was never opened."""


async def delivery_window(channels: Mapping[str, Channel], conversation: Conversation,
                          now: float) -> DeliveryWindow | None:
    """The conversation's window where its channel has one, else None."""
    channel = channels.get(conversation.channel)
    if not isinstance(channel, WindowLimited):
        return None
    return await channel.delivery_window(conversation.user_id, now)


class PlatformAgents(Protocol):
    """A channel whose platform has human agents of its own, who answer customers in the
    platform's app; kefu hands sessions to them and records what they do."""

    async def on_duty(self, conversation: Conversation) -> bool:
        """Someone of the platform's agents takes sessions now."""

    async def hand_over(self, conversation: Conversation) -> str:
        """Give the session to the platform's agents; the conversation's new `agent_id`.
        Raises ChannelSendError when the platform refuses."""

    async def end(self, conversation: Conversation) -> None:
        """End a session a platform agent holds, so that the bot answers the customer's next
        message; the message said next (a notice, the rating request) still reaches the
        customer. Raises ChannelSendError when the platform refuses."""
