"""The Redis store: the same `Store` as the embedded one, shared by many kefu processes.

Every record is JSON under the store's key prefix. Indexes are sorted sets: a customer's
conversations by creation time, the conversations in each state (the queue in queue
order), tickets by due time, events and unanswered questions by time. What must happen
together (a transcript line and its dedupe key, a conversation and its indexes, an agent
and their unique name) happens in one Lua script, so a process dying half-way leaves
nothing half-written.

For Redis Cluster, give the prefix a hash tag (`{kefu}:`): every key then lives in one slot
and the scripts may touch them together.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.cluster import LeaseLost, held_lease
from bot.messages import ConversationState, Role, StoredMessage
from bot.store import (
    AccessRecord,
    Agent,
    AgentSession,
    AgentSettings,
    Case,
    Conversation,
    ConversationEvent,
    Customer,
    DeliveryStatus,
    Identity,
    NewMessage,
    Note,
    Presence,
    Received,
    Ticket,
    TicketStatus,
    UnansweredQuestion,
    WebhookDelivery,
    anonymous,
    goes_on,
    open_one,
)
from bot.store.records import field_types, from_json, plain, to_json, typed

OPEN_STATES = (ConversationState.BOT, ConversationState.QUEUED, ConversationState.AGENT)
# Queue order in one score: higher priority first, then earlier; ties go by id.
PRIORITY_WEIGHT = 1e11
SESSION_GRACE_SECONDS = 86400
# redis-py sends a command again when its reply was lost (a timeout, a dropped connection),
# though Redis may have run it: an append remembers its message id this long, so the second
# run returns the first one's seq instead of adding the message twice.
RETRIED_APPEND_SECONDS = 3600

_SAVE_CONVERSATION = """
-- KEYS: conversation, by customer, by creation time, state:bot, state:queued, state:agent,
--       new state set or '', unsettled set, the conversation's unsettled set
-- ARGV: conversation JSON, id, created at, state score, then the seqs to settle
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('ZREM', KEYS[6], ARGV[2])
if KEYS[7] ~= '' then redis.call('ZADD', KEYS[7], ARGV[4], ARGV[2]) end
for i = 5, #ARGV do
  redis.call('ZREM', KEYS[8], ARGV[2] .. '|' .. ARGV[i])
  redis.call('ZREM', KEYS[9], ARGV[i])
end
return 1
"""

_LATEST_CONVERSATION = """
-- KEYS: the customer's conversations by creation time; ARGV: the conversation keys' prefix
-- One round trip for the read every inbound event starts with (the keys share a slot).
local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0)[1]
if not newest then return false end
return redis.call('GET', ARGV[1] .. newest)
"""

_APPEND_MESSAGE = """
-- KEYS: transcript, dedupe key or '', unsettled set, the conversation's unsettled set,
--       the message id's key, the writer's lease or ''
-- ARGV: message JSON starting {"seq": -1, id, dedupe ttl, conversation id, now, id key ttl,
--       the writer's lease token or '', '1' to look back
-- Returns {seq}, followed when looking back by the conversation's messages unsettled before
-- it; {-1} for a duplicate platform message id; {-2} when the lease is lost.
local function appended(seq)
  local found = {seq}
  if ARGV[8] == '1' then
    for _, earlier in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
      if tonumber(earlier) < seq then
        table.insert(found, redis.call('LINDEX', KEYS[1], tonumber(earlier) - 1))
      end
    end
  end
  return found
end
local again = redis.call('GET', KEYS[5])
if again then return appended(tonumber(again)) end  -- the same call, retried after a lost reply
if KEYS[6] ~= '' then  -- written under a lease: refused unless the writer still holds it
  if redis.call('GET', KEYS[6]) ~= ARGV[7] then return {-2} end
end
if KEYS[2] ~= '' then
  if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3]) then return {-1} end
end
local seq = redis.call('LLEN', KEYS[1]) + 1
redis.call('RPUSH', KEYS[1], '{"seq": ' .. seq .. string.sub(ARGV[1], 11))
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4] .. '|' .. seq)
redis.call('ZADD', KEYS[4], ARGV[5], seq)
redis.call('SET', KEYS[5], seq, 'EX', ARGV[6])
return appended(seq)
"""

_SAVE_AGENT = """
-- KEYS: agent hash, names hash; ARGV: id, name, then field/value pairs
local owner = redis.call('HGET', KEYS[2], ARGV[2])
if owner and owner ~= ARGV[1] then return redis.error_reply('name taken') end
local old = redis.call('HGET', KEYS[1], 'name')
if old then
  local old_name = cjson.decode(old)
  if old_name ~= ARGV[2] then redis.call('HDEL', KEYS[2], old_name) end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

_UPDATE_AGENT = """
-- KEYS: agent hash; ARGV: field/value pairs; nothing for an unknown agent
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

_DELETE_AGENT = """
-- KEYS: agent hash, names hash, settings, the agent's sessions set; ARGV: none
local old = redis.call('HGET', KEYS[1], 'name')
if old then redis.call('HDEL', KEYS[2], cjson.decode(old)) end
for _, session in ipairs(redis.call('SMEMBERS', KEYS[4])) do redis.call('DEL', session) end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
return 1
"""

_END_SESSIONS = """
-- KEYS: the agent's sessions set; ARGV: the session key to keep ('' for none)
for _, session in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if session ~= ARGV[1] then
    redis.call('DEL', session)
    redis.call('SREM', KEYS[1], session)
  end
end
return 1
"""

_ORDERED_ADD = """
-- KEYS: sorted set, counter; ARGV: score, record: members stay in insertion order per score
local n = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], ARGV[1], string.format('%012d', n) .. '|' .. ARGV[2])
return n
"""


def connect(url: str, *, sentinels: Iterable[str] = (), sentinel_master: str = "",
            cluster: bool = False, max_connections: int = 1000,
            pool_timeout_seconds: float = 15.0) -> Any:
    """A client that retries for a few seconds while Redis restarts or fails over.

    Its pool holds up to `max_connections` (redis-py's default, 100, ran out with a few
    hundred customers: `MaxConnectionsError`); a request that finds them all busy waits
    up to `pool_timeout_seconds` for one (redis-py's `BlockingConnectionPool`) before it
    fails like any other Redis error."""
    # A restart is ridden through (about 10 s of attempts); an unreachable Redis fails a
    # request within about 25 s (8 attempts of 2 s and the pauses), so a customer hears
    # not_stored rather than nothing.
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=8)
    options: dict[str, Any] = {
        "retry": retry, "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "socket_timeout": 2, "socket_connect_timeout": 2, "health_check_interval": 15}
    if sentinels:
        from redis.asyncio.sentinel import Sentinel

        hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in sentinels]
        return Sentinel(hosts, **options).master_for(sentinel_master,
                                                     max_connections=max_connections)
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster.from_url(url, retry=retry, max_connections=max_connections)
    return aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout_seconds, **options))


class RedisStore:
    def __init__(self, client: Any, prefix: str = "kefu:", dedupe_seconds: int = 7 * 86400
                 ) -> None:
        self.client = client
        self.prefix = prefix
        self._dedupe_seconds = dedupe_seconds
        self._save_conversation = client.register_script(_SAVE_CONVERSATION)
        self._append = client.register_script(_APPEND_MESSAGE)
        self._latest = client.register_script(_LATEST_CONVERSATION)
        self._save_agent = client.register_script(_SAVE_AGENT)
        self._update_agent = client.register_script(_UPDATE_AGENT)
        self._ordered_add = client.register_script(_ORDERED_ADD)
        self._delete_agent = client.register_script(_DELETE_AGENT)
        self._end_sessions = client.register_script(_END_SESSIONS)

    @classmethod
    async def open(cls, url: str, **options: Any) -> RedisStore:
        store_options = {k: options.pop(k) for k in ("prefix", "dedupe_seconds")
                         if k in options}
        store = cls(connect(url, **options), **store_options)
        await store.client.ping()  # a wrong URL stops start-up, clearly
        return store

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def close(self) -> None:
        await self.client.aclose()

    # conversations

    async def _conversations(self, ids: list[Any]) -> list[Conversation]:
        if not ids:
            return []
        raw = await self.client.mget([self.key("conv", _text(i)) for i in ids])
        return [from_json(Conversation, r) for r in raw if r is not None]

    async def conversations_of(self, channel: str, user_id: str) -> list[Conversation]:
        ids = await self.client.zrevrange(self.key("customer", channel, user_id), 0, -1)
        return await self._conversations(ids)

    async def current_conversation(self, channel: str, user_id: str) -> Conversation | None:
        return open_one(await self.latest_conversation(channel, user_id))

    async def latest_conversation(self, channel: str, user_id: str) -> Conversation | None:
        raw = await self._latest(keys=[self.key("customer", channel, user_id)],
                                 args=[self.key("conv", "")])
        return from_json(Conversation, raw) if raw is not None else None

    async def begin_unless_open(self, new: Conversation, greeting: NewMessage,
                                idle_before: float
                                ) -> tuple[Conversation | None, StoredMessage | None]:
        latest = await self.latest_conversation(new.channel, new.user_id)
        if goes_on(latest, idle_before):
            return latest, None
        return latest, await self.append_message(new, greeting)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        raw = await self.client.get(self.key("conv", conversation_id))
        return from_json(Conversation, raw) if raw is not None else None

    async def save_conversation(self, conversation: Conversation,
                                settled: Sequence[int] = (),
                                deliveries: Sequence[WebhookDelivery] = ()) -> None:
        if deliveries:
            async with self.client.pipeline(transaction=True) as pipe:
                await self._save_conversation_with(conversation, settled, pipe)
                self._queue_deliveries(pipe, deliveries)
                await pipe.execute()
        else:
            await self._save_conversation_with(conversation, settled, self.client)

    async def _save_conversation_with(self, conversation: Conversation,
                                      settled: Sequence[int], client: Any) -> None:
        c = conversation
        open_state = c.state is not ConversationState.CLOSED
        score = (-c.priority * PRIORITY_WEIGHT + (c.queued_at or c.created_at)
                 if c.state is ConversationState.QUEUED else c.created_at)
        keys = [self.key("conv", c.id), self.key("customer", c.channel, c.user_id),
                self.key("created"), *(self.key("state", s.value) for s in OPEN_STATES),
                self.key("state", c.state.value) if open_state else "", self.key("unsettled"),
                self.key("unsettled", c.id)]
        await self._save_conversation(
            client=client, keys=keys, args=[to_json(c), c.id, c.created_at, score, *settled])

    async def conversations_in_state(self, state: ConversationState) -> list[Conversation]:
        if state is ConversationState.CLOSED:
            raise ValueError("closed conversations are not listed by state")
        return await self._conversations(
            await self.client.zrange(self.key("state", state.value), 0, -1))

    async def conversations_created(self, since: float, until: float) -> list[Conversation]:
        return await self._conversations(
            await self.client.zrangebyscore(self.key("created"), since, f"({until}"))

    async def queue_position(self, conversation_id: str) -> int | None:
        rank = await self.client.zrank(self.key("state", "queued"), conversation_id)
        return None if rank is None else int(rank) + 1

    # transcript

    async def append_message(self, conversation: Conversation, message: NewMessage
                             ) -> StoredMessage | None:
        received = await self._appended(conversation, message, look_back=False)
        return None if received is None else received.message

    async def append_inbound(self, conversation: Conversation, message: NewMessage
                             ) -> Received | None:
        return await self._appended(conversation, message, look_back=True)

    async def _appended(self, conversation: Conversation, message: NewMessage,
                        look_back: bool) -> Received | None:
        """One script: the look at earlier unsettled messages takes no round trip."""
        message_id = message.id or uuid.uuid4().hex
        stored = StoredMessage(
            id=message_id, conversation_id=conversation.id, seq=-1, role=message.role,
            kind=message.kind, text=message.text, ts=message.ts,
            quick_replies=message.quick_replies, platform_msg_id=message.platform_msg_id,
            meta=message.meta)
        # `seq` goes first, as -1: the script puts the real one there.
        record = json.dumps({"seq": -1} | {name: plain(getattr(stored, name))
                                           for name in field_types(StoredMessage)
                                           if name != "seq"}, ensure_ascii=False)
        seen = (self.key("seen", conversation.channel, conversation.user_id,
                         message.platform_msg_id)
                if message.platform_msg_id is not None else "")
        lease_key, lease_token = held_lease.get() or ("", "")
        seq, *earlier = await self._append(
            keys=[self.key("msgs", conversation.id), seen, self.key("unsettled"),
                  self.key("unsettled", conversation.id), self.key("appended", message_id),
                  lease_key],
            args=[record, message_id, self._dedupe_seconds, conversation.id, time.time(),
                  RETRIED_APPEND_SECONDS, lease_token, "1" if look_back else ""])
        if seq == -2:
            raise LeaseLost(f"{lease_key}: taken by another process; "
                            f"message not added to {conversation.id}")
        if seq < 0:
            return None
        theirs = (m for m in (from_json(StoredMessage, raw) for raw in earlier if raw)
                  if m.role is Role.CUSTOMER)
        return Received(replace(stored, seq=int(seq)),
                        tuple(sorted(theirs, key=lambda m: m.seq)))

    async def messages(self, conversation_id: str, after_seq: int = 0) -> list[StoredMessage]:
        raw = await self.client.lrange(self.key("msgs", conversation_id), after_seq, -1)
        return [from_json(StoredMessage, r) for r in raw]

    async def settle(self, conversation_id: str, seq: int) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self.key("unsettled"), f"{conversation_id}|{seq}")
            pipe.zrem(self.key("unsettled", conversation_id), seq)
            await pipe.execute()

    async def unsettled(self, before: float, conversation_id: str | None = None
                        ) -> list[StoredMessage]:
        if conversation_id is not None:  # the conversation's own set: no scan of everyone's
            seqs = await self.client.zrangebyscore(self.key("unsettled", conversation_id),
                                                   "-inf", f"({before}")
            members = [(conversation_id, int(seq)) for seq in seqs]
        else:
            members = [(c, int(seq)) for c, seq in (
                _text(m).rsplit("|", 1) for m in await self.client.zrangebyscore(
                    self.key("unsettled"), "-inf", f"({before}"))]
        if not members:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for c, seq in members:
                pipe.lindex(self.key("msgs", c), seq - 1)
            found = await pipe.execute()
        return [from_json(StoredMessage, raw) for raw in found if raw is not None]

    # records kept in time order

    async def _add_ordered(self, name: str, score: float, record: Any) -> None:
        await self._ordered_add(keys=[self.key(name), self.key(name, "counter")],
                                args=[score, to_json(record)])

    async def _ordered(self, name: str, record: type[Any], since: float) -> list[Any]:
        raw = await self.client.zrangebyscore(self.key(name), since, "+inf")
        return [from_json(record, _text(r).split("|", 1)[1]) for r in raw]

    async def record_unanswered(self, question: UnansweredQuestion) -> None:
        await self._add_ordered("unanswered", question.ts, question)

    async def unanswered(self, since: float = 0.0) -> list[UnansweredQuestion]:
        return await self._ordered("unanswered", UnansweredQuestion, since)

    async def record_event(self, event: ConversationEvent,
                           deliveries: Sequence[WebhookDelivery] = ()) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            for name in ("events", f"events:{event.conversation_id}"):
                await self._ordered_add(keys=[self.key(name), self.key(name, "counter")],
                                        args=[event.ts, to_json(event)], client=pipe)
            self._queue_deliveries(pipe, deliveries)
            await pipe.execute()

    async def events(self, conversation_id: str | None = None, since: float = 0.0
                     ) -> list[ConversationEvent]:
        name = "events" if conversation_id is None else f"events:{conversation_id}"
        return await self._ordered(name, ConversationEvent, since)

    # agents and sessions

    async def save_agent(self, agent: Agent) -> None:
        pairs: list[Any] = []
        for name in field_types(Agent):
            pairs += [name, json.dumps(plain(getattr(agent, name)), ensure_ascii=False)]
        try:
            await self._save_agent(keys=[self.key("agent", agent.id), self.key("agent-names")],
                                   args=[agent.id, agent.name, *pairs])
        except Exception as exc:
            if "name taken" in str(exc):
                raise ValueError(f"an agent named {agent.name!r} already exists") from None
            raise

    async def update_agent(self, agent_id: str, *, presence: Presence | None = None,
                           last_seen_at: float | None = None, password_hash: str | None = None,
                           disabled: bool | None = None) -> None:
        changes = {"presence": presence, "last_seen_at": last_seen_at,
                   "password_hash": password_hash, "disabled": disabled}
        pairs: list[Any] = []
        for name, value in changes.items():
            if value is not None:
                pairs += [name, json.dumps(plain(value))]
        if pairs:
            await self._update_agent(keys=[self.key("agent", agent_id)], args=pairs)

    async def delete_agent(self, agent_id: str) -> None:
        await self._delete_agent(keys=[self.key("agent", agent_id), self.key("agent-names"),
                                       self.key("agent-settings", agent_id),
                                       self.key("sessions-of", agent_id)])

    async def get_agent(self, agent_id: str) -> Agent | None:
        fields = await self.client.hgetall(self.key("agent", agent_id))
        if not fields:
            return None
        types = field_types(Agent)
        return Agent(**{_text(k): typed(types[_text(k)], json.loads(v))
                        for k, v in fields.items() if _text(k) in types})

    async def agent_by_name(self, name: str) -> Agent | None:
        agent_id = await self.client.hget(self.key("agent-names"), name)
        return await self.get_agent(_text(agent_id)) if agent_id is not None else None

    async def agents(self) -> list[Agent]:
        names = await self.client.hgetall(self.key("agent-names"))
        found = [await self.get_agent(_text(i)) for _, i in sorted(
            names.items(), key=lambda item: _text(item[0]))]
        return [a for a in found if a is not None]

    async def save_session(self, session: AgentSession) -> None:
        # Redis forgets a session a day after it ends; kefu refuses it from its end on.
        lifetime = max(session.expires_at - time.time(), 0) + SESSION_GRACE_SECONDS
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key("session", session.token_hash), to_json(session),
                     ex=int(lifetime))
            # so that removing the agent ends their sessions; dead members cost nothing
            pipe.sadd(self.key("sessions-of", session.agent_id),
                      self.key("session", session.token_hash))
            await pipe.execute()

    async def get_session(self, token_hash: str) -> AgentSession | None:
        raw = await self.client.get(self.key("session", token_hash))
        return from_json(AgentSession, raw) if raw is not None else None

    async def delete_session(self, token_hash: str) -> None:
        await self.client.delete(self.key("session", token_hash))

    async def end_sessions(self, agent_id: str, keep: str | None = None) -> None:
        kept = self.key("session", keep) if keep else None
        await self._end_sessions(keys=[self.key("sessions-of", agent_id)],
                                 args=[kept or ""])

    async def save_agent_settings(self, settings: AgentSettings) -> None:
        await self.client.set(self.key("agent-settings", settings.agent_id), to_json(settings))

    async def agent_settings(self, agent_id: str) -> AgentSettings:
        raw = await self.client.get(self.key("agent-settings", agent_id))
        return from_json(AgentSettings, raw) if raw is not None else AgentSettings(agent_id)

    # notes and labels

    async def add_note(self, note: Note) -> None:
        await self._add_ordered(f"notes:{note.conversation_id}", note.created_at, note)

    async def notes(self, conversation_id: str) -> list[Note]:
        return await self._ordered(f"notes:{conversation_id}", Note, 0.0)

    async def set_labels(self, conversation_id: str, labels: Sequence[str]) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.key("labels", conversation_id))
            if labels:
                pipe.sadd(self.key("labels", conversation_id), *labels)
            await pipe.execute()

    async def labels(self, conversation_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        async with self.client.pipeline(transaction=False) as pipe:
            for conversation_id in conversation_ids:
                pipe.smembers(self.key("labels", conversation_id))
            found = await pipe.execute()
        return {conversation_id: tuple(sorted(_text(label) for label in members))
                for conversation_id, members in zip(conversation_ids, found, strict=True)
                if members}

    # tickets

    async def save_ticket(self, ticket: Ticket, deliveries: Sequence[WebhookDelivery] = ()
                          ) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            self._queue_deliveries(pipe, deliveries)
            pipe.set(self.key("ticket", ticket.id), to_json(ticket))
            pipe.zadd(self.key("tickets"), {ticket.id: ticket.due_at})
            for status in TicketStatus:
                pipe.zrem(self.key("tickets", status.value), ticket.id)
            pipe.zadd(self.key("tickets", ticket.status.value), {ticket.id: ticket.due_at})
            await pipe.execute()

    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        raw = await self.client.get(self.key("ticket", ticket_id))
        return from_json(Ticket, raw) if raw is not None else None

    async def tickets(self, status: TicketStatus | None = None) -> list[Ticket]:
        index = self.key("tickets") if status is None else self.key("tickets", status.value)
        ids = await self.client.zrange(index, 0, -1)
        if not ids:
            return []
        raw = await self.client.mget([self.key("ticket", _text(i)) for i in ids])
        return [from_json(Ticket, r) for r in raw if r is not None]

    # customers and cases

    async def save_customer(self, customer: Customer) -> None:
        c = customer
        old = await self.get_customer(c.id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key("customer", c.id), to_json(c))
            for contact in (*old.phones, *old.emails) if old else ():
                pipe.srem(self.key("contact", contact), c.id)
            if c.merged_into is None:
                pipe.zadd(self.key("customers"), {c.id: c.created_at})
                for contact in (*c.phones, *c.emails):
                    pipe.sadd(self.key("contact", contact), c.id)
            else:
                pipe.zrem(self.key("customers"), c.id)
            await pipe.execute()

    async def get_customer(self, customer_id: str) -> Customer | None:
        raw = await self.client.get(self.key("customer", customer_id))
        return from_json(Customer, raw) if raw is not None else None

    async def _customers(self, ids: Any) -> list[Customer]:
        if not ids:
            return []
        raw = await self.client.mget([self.key("customer", _text(i)) for i in ids])
        found = [from_json(Customer, r) for r in raw if r is not None]
        return sorted((c for c in found if c.merged_into is None),
                      key=lambda c: (c.created_at, c.id))

    async def save_identity(self, identity: Identity) -> None:
        i = identity
        old = await self.identity(i.channel, i.user_id)
        member = f"{i.channel}\x00{i.user_id}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key("identity", i.channel, i.user_id), to_json(i))
            if old is not None and old.customer_id != i.customer_id:
                pipe.zrem(self.key("identities-of", old.customer_id), member)
            pipe.zadd(self.key("identities-of", i.customer_id), {member: i.first_seen_at})
            await pipe.execute()

    async def claim_identity(self, identity: Identity) -> Identity:
        i = identity
        key = self.key("identity", i.channel, i.user_id)
        while not await self.client.set(key, to_json(i), nx=True):
            held = await self.client.get(key)
            if held is not None:  # else it went between the two calls: claim again
                return from_json(Identity, held)
        await self.client.zadd(self.key("identities-of", i.customer_id),
                               {f"{i.channel}\x00{i.user_id}": i.first_seen_at})
        return identity

    async def identity(self, channel: str, user_id: str) -> Identity | None:
        raw = await self.client.get(self.key("identity", channel, user_id))
        return from_json(Identity, raw) if raw is not None else None

    async def identities_of(self, customer_id: str) -> list[Identity]:
        members = await self.client.zrange(self.key("identities-of", customer_id), 0, -1)
        keys = [self.key("identity", *_text(m).split("\x00", 1)) for m in members]
        raw = await self.client.mget(keys) if keys else []
        return [from_json(Identity, r) for r in raw if r is not None]

    async def customers_with_contact(self, contact: str) -> list[Customer]:
        return await self._customers(await self.client.smembers(self.key("contact", contact)))

    async def customers(self, since: float = 0.0) -> list[Customer]:
        return await self._customers(
            await self.client.zrangebyscore(self.key("customers"), since, "+inf"))

    async def save_case(self, case: Case, deliveries: Sequence[WebhookDelivery] = ()
                        ) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            self._queue_deliveries(pipe, deliveries)
            pipe.set(self.key("case", case.id), to_json(case))
            pipe.zadd(self.key("cases"), {case.id: case.due_at})
            pipe.zadd(self.key("cases-of", case.customer_id), {case.id: case.due_at})
            await pipe.execute()

    async def get_case(self, case_id: str) -> Case | None:
        raw = await self.client.get(self.key("case", case_id))
        return from_json(Case, raw) if raw is not None else None

    async def cases(self, customer_id: str | None = None) -> list[Case]:
        index = self.key("cases") if customer_id is None else \
            self.key("cases-of", customer_id)
        ids = await self.client.zrange(index, 0, -1)
        if not ids:
            return []
        raw = await self.client.mget([self.key("case", _text(i)) for i in ids])
        return [from_json(Case, r) for r in raw if r is not None]

    # outbound webhooks

    async def save_delivery(self, delivery: WebhookDelivery) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            self._queue_deliveries(pipe, [delivery])
            await pipe.execute()

    def _queue_deliveries(self, pipe: Any, deliveries: Sequence[WebhookDelivery]) -> None:
        """The commands that save `deliveries`, in a transaction the caller executes."""
        for d in deliveries:
            pipe.set(self.key("delivery", d.id), to_json(d))
            pipe.zadd(self.key("deliveries"), {d.id: d.created_at})
            for status in DeliveryStatus:
                pipe.zrem(self.key("deliveries", status.value), d.id)
            pipe.zadd(self.key("deliveries", d.status.value), {d.id: d.created_at})
            if d.status is DeliveryStatus.PENDING:
                pipe.zadd(self.key("deliveries-due"), {d.id: d.next_at})
            else:
                pipe.zrem(self.key("deliveries-due"), d.id)

    async def _deliveries(self, ids: list[Any]) -> list[WebhookDelivery]:
        if not ids:
            return []
        raw = await self.client.mget([self.key("delivery", _text(i)) for i in ids])
        return [from_json(WebhookDelivery, r) for r in raw if r is not None]

    async def due_deliveries(self, now: float, limit: int) -> list[WebhookDelivery]:
        return await self._deliveries(await self.client.zrangebyscore(
            self.key("deliveries-due"), "-inf", now, start=0, num=limit))

    async def deliveries(self, status: DeliveryStatus | None = None, limit: int = 100
                         ) -> list[WebhookDelivery]:
        index = self.key("deliveries") if status is None else \
            self.key("deliveries", status.value)
        return await self._deliveries(await self.client.zrevrange(index, 0, limit - 1))

    # personal data

    async def record_access(self, record: AccessRecord) -> None:
        await self._add_ordered("trail", record.at, record)

    async def access_trail(self, since: float = 0.0, until: float = float("inf"),
                           limit: int = 1000) -> list[AccessRecord]:
        raw = await self.client.zrevrangebyscore(self.key("trail"), f"({until}", since,
                                                 start=0, num=limit)
        return [from_json(AccessRecord, _text(r).split("|", 1)[1]) for r in raw[::-1]]

    async def forget_access_before(self, before: float) -> int:
        return int(await self.client.zremrangebyscore(self.key("trail"), "-inf",
                                                      f"({before}"))

    async def anonymise_conversation(self, conversation_id: str, pseudonym: str) -> bool:
        conversation = await self.get_conversation(conversation_id)
        if conversation is None:
            return False
        c = conversation
        messages = await self.messages(c.id)
        seen = []
        if time.time() - c.last_activity_at < self._dedupe_seconds:  # else expired long ago
            seen = [k async for k in self.client.scan_iter(
                match=_pattern(self.key("seen", c.channel, c.user_id)) + ":*", count=1000)]
        # Questions were asked while the conversation was open.
        asked = await self.client.zrangebyscore(self.key("unanswered"), c.created_at,
                                                c.closed_at if c.closed_at else "+inf")
        unanswered = [m for m in asked
                      if json.loads(_text(m).split("|", 1)[1])["conversation_id"] == c.id]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self.key("customer", c.channel, c.user_id), c.id)
            await self._save_conversation_with(replace(c, user_id=pseudonym), (), pipe)
            if messages:
                pipe.delete(self.key("msgs", c.id))
                pipe.rpush(self.key("msgs", c.id), *(to_json(anonymous(m)) for m in messages))
                pipe.zrem(self.key("unsettled"), *(f"{c.id}|{m.seq}" for m in messages))
            if seen:
                pipe.delete(*seen)
            if unanswered:
                pipe.zrem(self.key("unanswered"), *unanswered)
            pipe.delete(self.key(f"notes:{c.id}"), self.key(f"notes:{c.id}", "counter"))
            await pipe.execute()
        return True

    async def delete_customer(self, customer_id: str) -> list[str]:
        # Records merged away are not indexed by what they were merged into: look at all.
        merged: dict[str, list[str]] = {}
        async for key in self.client.scan_iter(match=_pattern(self.key("customer")) + ":C*",
                                               count=1000):
            raw = await self.client.get(key)  # a record (other customer:... keys are sets)
            record = from_json(Customer, raw) if raw is not None else None
            if record is not None and record.merged_into:
                merged.setdefault(record.merged_into, []).append(record.id)
        gone: list[str] = []
        todo = [customer_id]
        while todo:
            current = todo.pop()
            if current not in gone:
                gone.append(current)
                todo += merged.get(current, [])
        for current in gone:
            record = await self.get_customer(current)
            members = await self.client.zrange(self.key("identities-of", current), 0, -1)
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(self.key("customer", current), self.key("identities-of", current))
                pipe.zrem(self.key("customers"), current)
                for contact in (*record.phones, *record.emails) if record else ():
                    pipe.srem(self.key("contact", contact), current)
                for member in members:
                    pipe.delete(self.key("identity", *_text(member).split("\x00", 1)))
                await pipe.execute()
        return gone

    async def delete_case(self, case_id: str) -> None:
        case = await self.get_case(case_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.key("case", case_id))
            pipe.zrem(self.key("cases"), case_id)
            if case is not None:
                pipe.zrem(self.key("cases-of", case.customer_id), case_id)
            await pipe.execute()

    async def delete_deliveries(self, delivery_ids: Sequence[str]) -> None:
        if not delivery_ids:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(*(self.key("delivery", i) for i in delivery_ids))
            for index in ("deliveries", "deliveries-due",
                          *(f"deliveries:{s.value}" for s in DeliveryStatus)):
                pipe.zrem(self.key(index), *delivery_ids)
            await pipe.execute()

    async def state_keys(self) -> list[str]:
        prefix = self.key("channel-state") + ":"
        keys = [_text(k)[len(prefix):] async for k in self.client.scan_iter(
            match=_pattern(prefix) + "*", count=1000)]
        return sorted(keys)

    async def delete_state(self, key: str) -> None:
        await self.client.delete(self.key("channel-state", key))

    # channel state

    async def load_state(self, key: str) -> dict[str, Any] | None:
        raw = await self.client.get(self.key("channel-state", key))
        return json.loads(raw) if raw is not None else None

    async def save_state(self, key: str, value: dict[str, Any]) -> None:
        await self.client.set(self.key("channel-state", key),
                              json.dumps(value, ensure_ascii=False))

    async def count_failure(self, key: str, now: float, forget_after: float) -> int:
        counted = await self.client.eval(
            _COUNT_FAILURE, 1, self.key("failures", key), repr(now), repr(forget_after))
        return int(counted)

    async def failures(self, key: str, now: float) -> tuple[int, float]:
        raw = await self.client.get(self.key("failures", key))
        record = json.loads(raw) if raw is not None else None
        if record is None or record["until"] <= now:
            return 0, 0.0
        return int(record["count"]), float(record["last_at"])

    async def clear_failures(self, key: str) -> None:
        await self.client.delete(self.key("failures", key))


# One more failure, atomically: the count goes on while the last one is recent, else starts
# again; the key expires with the count, so Redis forgets idle names and addresses.
_COUNT_FAILURE = """
local raw = redis.call('GET', KEYS[1])
local now, forget = tonumber(ARGV[1]), tonumber(ARGV[2])
local count = 1
if raw then
  local record = cjson.decode(raw)
  if record['until'] > now then count = record['count'] + 1 end
end
redis.call('SET', KEYS[1], cjson.encode({count = count, last_at = now, ['until'] = now + forget}),
           'PX', math.ceil(forget * 1000))
return count
"""


def _pattern(text: str) -> str:
    """`text` as a SCAN pattern that matches only itself."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
