"""The agents' bridge: a Telegram supergroup with topics, one topic per escalated chat.

When a conversation from any channel is queued for a person, a topic named after the
customer and channel opens with a summary and the whole transcript; what the customer, the
bot and agents in the web console say appears in it. What an agent writes in the topic goes
to the customer on their own channel, as that agent, through the same desk the console
uses, so the two always agree and nothing is answered twice. Commands in a topic: /take,
/transfer NAME, /bot (back to the bot), /close; /online, /away, /offline anywhere in the
group. A reply starting with ! is sent even if it reads as vague.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from telegram import Message
from telegram.error import RetryAfter, TelegramError

from bot.config import DeskConfig
from bot.lanes import Lanes
from bot.messages import ConversationState, Role, StoredMessage, split_text
from bot.speaker import Speaker
from bot.store import Agent, Conversation, Presence, Store
from channels.telegram.channel import TelegramChannel
from channels.telegram.pacer import Outgoing, retry_after_seconds
from channels.telegram.settings import TelegramConfig
from handoff.desk import Desk, DeskError

log = logging.getLogger(__name__)

VIA = "telegram"
TOPIC_NAME_CHARS = 128
HELP = ("/take 接入 · /transfer 名字 转接 · /bot 转回机器人 · /close 结束\n"
        "直接回复即发给客户；以 ! 开头可强制发送。Reply here to answer the customer.")
ICONS = {Role.CUSTOMER: "👤", Role.BOT: "🤖", Role.AGENT: "🧑‍💼", Role.SYSTEM: "ℹ️"}


class TelegramBridge:
    def __init__(self, config: TelegramConfig, desk_config: DeskConfig,
                 channel: TelegramChannel, store: Store, desk: Desk, speaker: Speaker,
                 zone: str, clock: Callable[[], float] = time.time) -> None:
        self._group = config.bridge.group_id
        self._agents = config.bridge.agents
        self._desk_config = desk_config
        self._channel = channel
        self._store = store
        self._desk = desk
        self._zone = ZoneInfo(zone)
        self._clock = clock
        self._lanes = Lanes()  # one per conversation: its topic exists before it is posted to
        self._phone_agents: set[str] = set()
        speaker.listen_here(self._on_conversation)  # one post per change, not per process
        channel.on_topic_message(self._on_topic_message)

    # mirroring conversations into topics

    def _on_conversation(self, conversation: Conversation, message: StoredMessage | None
                         ) -> None:
        if conversation.handoff_reason is None and conversation.agent_id is None:
            return  # never escalated: nothing for agents to see
        self._lanes.submit(("topic", conversation.id),
                           lambda: self._mirror(conversation, message))

    async def idle(self) -> None:
        await self._lanes.idle()

    def _key(self, conversation_id: str) -> str:
        return f"telegram:topic:{self._group}:{conversation_id}"

    async def _mirror(self, conversation: Conversation, message: StoredMessage | None) -> None:
        topic = await self._store.load_state(self._key(conversation.id))
        if topic is None:
            if conversation.state in (ConversationState.QUEUED, ConversationState.AGENT):
                await self._open_topic(conversation)
            return
        thread = int(topic["thread_id"])
        if message is not None and message.seq > topic["last_seq"]:
            if message.meta.get("via") != VIA:  # what an agent wrote here is here already
                self._post(thread, self._line(message))
            await self._store.save_state(self._key(conversation.id),
                                         {**topic, "last_seq": message.seq})
        elif message is None and conversation.state is ConversationState.CLOSED \
                and not topic.get("closed"):
            self._post(thread, f"✅ 会话已结束 · closed ({conversation.close_reason})")
            await self._store.save_state(self._key(conversation.id), {**topic, "closed": True})
            await self._call(self._channel.bot.close_forum_topic, self._group, thread)

    async def _open_topic(self, conversation: Conversation) -> None:
        name = f"{conversation.user_id} · {conversation.channel}"[:TOPIC_NAME_CHARS]
        created = await self._call(self._channel.bot.create_forum_topic, self._group, name)
        if created is None:
            return
        thread = int(created.message_thread_id)
        messages = await self._store.messages(conversation.id)
        await self._store.save_state(self._key(conversation.id), {
            "thread_id": thread, "last_seq": messages[-1].seq if messages else 0})
        await self._store.save_state(f"telegram:thread:{self._group}:{thread}",
                                     {"conversation_id": conversation.id})
        summary = (f"🆕 {conversation.channel} · {conversation.user_id} · "
                   f"{conversation.lang}\n转人工原因 reason: {conversation.handoff_reason}\n"
                   f"{HELP}\n\n对话记录 transcript:")
        lines = [summary, *(self._line(m) for m in messages)]
        # The transcript in as few messages as fit: the group has 20 a minute.
        for part in split_text("\n".join(lines), self._channel.max_text_chars):
            self._post(thread, part, mergeable=False)

    def _line(self, message: StoredMessage) -> str:
        at = datetime.fromtimestamp(message.ts, self._zone).strftime("%H:%M")
        who = message.meta.get("agent_name", "") if message.role is Role.AGENT else ""
        return f"[{at}] {ICONS[message.role]} {who + ': ' if who else ''}{message.text}"

    def _post(self, thread: int, text: str, mergeable: bool = True) -> None:
        done = self._channel.submit(Outgoing(self._group, text, thread_id=thread,
                                             mergeable=mergeable))
        done.add_done_callback(_log_failure)

    async def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        for _ in range(2):
            try:
                return await method(*args)
            except RetryAfter as exc:
                await asyncio.sleep(retry_after_seconds(exc))
            except TelegramError as exc:
                log.error("telegram bridge: %s failed: %s", method.__name__, exc)
                return None
        return None

    # agents writing in the group

    async def _on_topic_message(self, message: Message) -> None:
        user = message.from_user
        if user is None or user.is_bot:
            return
        thread = message.message_thread_id if message.is_topic_message else None
        name = self._agents.get(str(user.id))
        agent = await self._store.agent_by_name(name) if name else None
        if agent is None:
            self._say(thread, f"⚠️ Telegram 用户 {user.id} 还不是 kefu 客服：请管理员在 "
                      "channels.telegram.bridge.agents 里登记 (not a kefu agent yet)")
            return
        await self._store.update_agent(agent.id, last_seen_at=self._clock())
        text = (message.text or "").strip()
        command, _, rest = text.partition(" ")
        command = command.split("@")[0]
        if command in ("/online", "/away", "/offline"):
            await self._presence(agent, Presence(command[1:]))
            self._say(thread, f"{agent.name}: {command[1:]}")
            return
        conversation_id = await self._conversation_of(thread)
        if conversation_id is None:
            return  # the group's general chatter
        try:
            await self._act(agent, conversation_id, command, rest.strip(), text, thread)
        except DeskError as exc:
            hint = "（以 ! 开头可仍然发送 · start with ! to send anyway）" \
                if exc.code == "vague_reply" else ""
            self._say(thread, f"⚠️ {exc}{hint}")

    async def _act(self, agent: Agent, conversation_id: str, command: str, rest: str,
                   text: str, thread: int | None) -> None:
        if command == "/take":
            await self._desk.take(agent, conversation_id)
        elif command == "/transfer":
            await self._desk.transfer(agent, conversation_id, rest)
        elif command in ("/bot", "/handback"):
            await self._desk.hand_back(agent, conversation_id)
        elif command == "/close":
            await self._desk.close(agent, conversation_id)
        elif not text:
            self._say(thread, "⚠️ 只能转发文字 · only text reaches the customer")
        else:
            conversation = await self._store.get_conversation(conversation_id)
            if conversation is not None and conversation.state in (
                    ConversationState.QUEUED, ConversationState.BOT):
                await self._desk.take(agent, conversation_id)  # writing is taking
            said = await self._desk.reply(agent, conversation_id, text.removeprefix("!"),
                                          confirmed=text.startswith("!"), via=VIA)
            if said.undelivered:
                self._say(thread, f"⚠️ 未送达，已保留 · not delivered, kept: {said.undelivered}")

    async def _conversation_of(self, thread: int | None) -> str | None:
        if thread is None:
            return None
        found = await self._store.load_state(f"telegram:thread:{self._group}:{thread}")
        return str(found["conversation_id"]) if found else None

    def _say(self, thread: int | None, text: str) -> None:
        done = self._channel.submit(Outgoing(self._group, text, thread_id=thread))
        done.add_done_callback(_log_failure)

    # presence for agents who work from their phones

    async def _presence(self, agent: Agent, presence: Presence) -> None:
        await self._desk.set_presence(agent, presence)
        if presence is Presence.ONLINE:
            self._phone_agents.add(agent.id)
        else:
            self._phone_agents.discard(agent.id)

    async def keep_present(self) -> None:
        """An agent who said /online stays online while kefu runs: a phone is not a
        console that pings; they say /offline (or /away) when they stop."""
        while True:
            await asyncio.sleep(self._desk_config.presence_timeout_seconds / 3)
            for agent_id in list(self._phone_agents):
                await self._store.update_agent(agent_id, last_seen_at=self._clock())


def _log_failure(done: asyncio.Future[Any]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.warning("telegram bridge: a post failed: %s", done.exception())
