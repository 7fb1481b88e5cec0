"""The embedded store: SQLite from the standard library, one SQL thread with group commit.

All SQL runs on a single dedicated thread (bot/store/worker.py), so the event loop never
blocks on disk and writes are serialised without locks; writes waiting together share one
transaction. With `synchronous=FULL` (the default) a message acknowledged to a customer
survives a power cut, not only a crash.

Tables of plain records (conversations, agents, tickets...) are laid out from their
dataclasses: a field added to a record becomes a column, and an older database file gains
the column when it is opened, so an upgrade keeps every conversation.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from bot.messages import ConversationState, Kind, Role, StoredMessage
from bot.priority import current_priority
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
from bot.store.records import field_types, plain, typed
from bot.store.worker import SqlWorker

T = TypeVar("T")
R = TypeVar("R")

_SQL_TYPES = {str: "TEXT", float: "REAL", int: "INTEGER", bool: "INTEGER"}


class _Table(Generic[R]):
    """A table whose columns are the fields of a frozen dataclass."""

    def __init__(self, name: str, record: type[R], key: str | None) -> None:
        self.name = name
        self.record = record
        self.key = key
        self._types = field_types(record)
        self.columns = list(self._types)
        self.select = f"SELECT {', '.join(self.columns)} FROM {name}"

    def _column(self, name: str) -> str:
        return f"{name} {_SQL_TYPES.get(self._types[name], 'TEXT')}"

    def create(self) -> str:
        columns = [self._column(c) + (" PRIMARY KEY" if c == self.key else "")
                   for c in self.columns]
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({', '.join(columns)})"

    def add_missing_columns(self, db: sqlite3.Connection) -> None:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({self.name})")}
        for name in self.columns:
            if name not in present:
                db.execute(f"ALTER TABLE {self.name} ADD COLUMN {self._column(name)}"
                           f"{self._default_sql(name)}")

    def _default_sql(self, name: str) -> str:
        default = next(f.default for f in fields(self.record)  # type: ignore[arg-type]
                       if f.name == name)
        if default is MISSING or default is None:
            return ""
        return f" DEFAULT {_literal(default)}"

    def upsert(self) -> str:
        placeholders = ", ".join("?" for _ in self.columns)
        return f"INSERT OR REPLACE INTO {self.name} ({', '.join(self.columns)}) " \
               f"VALUES ({placeholders})"

    def values(self, record: R) -> tuple[Any, ...]:
        def sql(value: Any) -> Any:
            value = plain(value)
            return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) \
                else value

        return tuple(sql(getattr(record, c)) for c in self.columns)

    def decode(self, row: tuple[Any, ...]) -> R:
        return self.record(**{
            c: typed(self._types[c], v) for c, v in zip(self.columns, row, strict=True)
        })


def _literal(value: Any) -> str:
    """A default value as SQL, for columns added to an older database."""
    value = plain(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


CONVERSATIONS = _Table("conversations", Conversation, key="id")
UNANSWERED = _Table("unanswered", UnansweredQuestion, key=None)
AGENTS = _Table("agents", Agent, key="id")
SESSIONS = _Table("agent_sessions", AgentSession, key="token_hash")
TICKETS = _Table("tickets", Ticket, key="id")
EVENTS = _Table("events", ConversationEvent, key=None)
DELIVERIES = _Table("webhook_deliveries", WebhookDelivery, key="id")
CUSTOMERS = _Table("customers", Customer, key="id")
IDENTITIES = _Table("identities", Identity, key=None)
CASES = _Table("cases", Case, key="id")
AGENT_SETTINGS = _Table("agent_settings", AgentSettings, key="agent_id")
NOTES = _Table("notes", Note, key="id")
TRAIL = _Table("access_trail", AccessRecord, key=None)
_TABLES: tuple[_Table[Any], ...] = (CONVERSATIONS, UNANSWERED, AGENTS, SESSIONS, TICKETS, EVENTS,
                                    DELIVERIES, CUSTOMERS, IDENTITIES, CASES, AGENT_SETTINGS,
                                    NOTES, TRAIL)

_SCHEMA = """
CREATE INDEX IF NOT EXISTS conversations_by_customer
    ON conversations (channel, user_id, created_at);
CREATE INDEX IF NOT EXISTS conversations_by_state ON conversations (state, queued_at);
CREATE INDEX IF NOT EXISTS conversations_by_time ON conversations (created_at);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, seq INTEGER NOT NULL,
    role TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL, ts REAL NOT NULL,
    quick_replies TEXT NOT NULL, platform_msg_id TEXT, meta TEXT NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS seen_inbound (
    channel TEXT NOT NULL, user_id TEXT NOT NULL, platform_msg_id TEXT NOT NULL,
    message_id TEXT NOT NULL, PRIMARY KEY (channel, user_id, platform_msg_id)
);
CREATE INDEX IF NOT EXISTS unanswered_by_time ON unanswered (ts);
CREATE UNIQUE INDEX IF NOT EXISTS agents_by_name ON agents (name);
CREATE INDEX IF NOT EXISTS tickets_by_due ON tickets (status, due_at);
CREATE INDEX IF NOT EXISTS events_by_conversation ON events (conversation_id, ts);
CREATE INDEX IF NOT EXISTS events_by_time ON events (ts);
CREATE UNIQUE INDEX IF NOT EXISTS identities_by_channel ON identities (channel, user_id);
CREATE INDEX IF NOT EXISTS identities_by_customer ON identities (customer_id, first_seen_at);
CREATE TABLE IF NOT EXISTS customer_contacts (contact TEXT NOT NULL, customer_id TEXT NOT NULL,
    PRIMARY KEY (contact, customer_id));
CREATE INDEX IF NOT EXISTS contacts_by_customer ON customer_contacts (customer_id);
CREATE INDEX IF NOT EXISTS customers_by_time ON customers (created_at);
CREATE INDEX IF NOT EXISTS cases_by_customer ON cases (customer_id, due_at);
CREATE INDEX IF NOT EXISTS cases_by_due ON cases (due_at);
CREATE INDEX IF NOT EXISTS deliveries_due ON webhook_deliveries (status, next_at);
CREATE INDEX IF NOT EXISTS deliveries_by_time ON webhook_deliveries (created_at);
CREATE TABLE IF NOT EXISTS channel_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS unsettled (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX IF NOT EXISTS unsettled_by_time ON unsettled (ts);
CREATE INDEX IF NOT EXISTS notes_by_conversation ON notes (conversation_id, created_at);
CREATE TABLE IF NOT EXISTS conversation_labels (conversation_id TEXT NOT NULL,
    label TEXT NOT NULL, PRIMARY KEY (conversation_id, label));
CREATE INDEX IF NOT EXISTS sessions_by_agent ON agent_sessions (agent_id);
CREATE INDEX IF NOT EXISTS trail_by_time ON access_trail (at);
CREATE INDEX IF NOT EXISTS customers_by_merge ON customers (merged_into);
-- The access trail is append-only: nothing changes a record, and only retention removes
-- one, never one less than a day old (whoever opens the file with sqlite3 included).
CREATE TRIGGER IF NOT EXISTS access_trail_unchanged BEFORE UPDATE ON access_trail
BEGIN SELECT RAISE(ABORT, 'the access trail cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS access_trail_kept BEFORE DELETE ON access_trail
WHEN OLD.at > CAST(strftime('%s', 'now') AS REAL) - 86400
BEGIN SELECT RAISE(ABORT, 'the access trail cannot be changed'); END;
"""

_MESSAGE_COLUMNS = ("id, conversation_id, seq, role, kind, text, ts, quick_replies, "
                    "platform_msg_id, meta")


def _message(r: tuple[Any, ...]) -> StoredMessage:
    return StoredMessage(id=r[0], conversation_id=r[1], seq=r[2], role=Role(r[3]),
                         kind=Kind(r[4]), text=r[5], ts=r[6],
                         quick_replies=tuple(json.loads(r[7])), platform_msg_id=r[8],
                         meta=json.loads(r[9]))


def _unsettled(db: sqlite3.Connection, where: str, params: tuple[Any, ...]
               ) -> list[StoredMessage]:
    columns = ", ".join(f"m.{c.strip()}" for c in _MESSAGE_COLUMNS.split(","))
    rows = db.execute(
        f"SELECT {columns} FROM unsettled u JOIN messages m ON "
        f"m.conversation_id = u.conversation_id AND m.seq = u.seq WHERE {where} "
        "ORDER BY u.ts, u.seq", params).fetchall()
    return [_message(r) for r in rows]


# A customer's conversations, the newest first.
_NEWEST_FIRST = "channel = ? AND user_id = ? ORDER BY created_at DESC"
# Queue order: higher priority first, then first come first served.
_QUEUE_ORDER = "priority DESC, queued_at, id"


class SqliteStore:
    def __init__(self, path: Path, *, synchronous: str = "full") -> None:
        self._worker = SqlWorker("kefu-sqlite")
        self._path = path
        self._synchronous = synchronous

    @classmethod
    async def open(cls, path: Path, *, synchronous: str = "full") -> SqliteStore:
        store = cls(path, synchronous=synchronous)
        await store._worker.submit(store._connect, (), plain=True)
        return store

    def _connect(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        for table in _TABLES:
            db.execute(table.create())
            table.add_missing_columns(db)
        db.executescript(_SCHEMA)
        self._worker.db = db

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run on the SQL thread, in the next group commit; higher priority goes first."""
        result: T = await self._worker.submit(fn, args, level=current_priority())
        return result

    @property
    def db(self) -> sqlite3.Connection:
        if self._worker.db is None:
            raise RuntimeError("store is closed")
        return self._worker.db

    async def close(self) -> None:
        def _close() -> None:
            if self._worker.db is not None:
                self._worker.db.close()
                self._worker.db = None

        await self._worker.submit(_close, (), plain=True)
        await asyncio.to_thread(self._worker.stop)

    # records

    async def _select(self, table: _Table[R], where: str, *args: Any) -> list[R]:
        def select() -> list[R]:
            rows = self.db.execute(f"{table.select} WHERE {where}", args).fetchall()
            return [table.decode(row) for row in rows]

        return await self._run(select)

    async def _first(self, table: _Table[R], where: str, *args: Any) -> R | None:
        found = await self._select(table, f"{where} LIMIT 1", *args)
        return found[0] if found else None

    async def _upsert(self, table: _Table[R], record: R,
                      deliveries: Sequence[WebhookDelivery] = ()) -> None:
        """Insert or replace `record`, with the webhook deliveries that announce it."""
        if not deliveries:
            await self._run(self.db.execute, table.upsert(), table.values(record))
            return

        def save() -> None:  # in a transaction: see bot/store/worker.py
            self.db.execute(table.upsert(), table.values(record))
            self.db.executemany(DELIVERIES.upsert(), [DELIVERIES.values(d) for d in deliveries])

        await self._run(save)

    # conversations

    async def current_conversation(self, channel: str, user_id: str) -> Conversation | None:
        return open_one(await self.latest_conversation(channel, user_id))

    async def latest_conversation(self, channel: str, user_id: str) -> Conversation | None:
        return await self._run(self._latest_now, channel, user_id)

    def _latest_now(self, channel: str, user_id: str) -> Conversation | None:
        """On the SQL thread."""
        row = self.db.execute(f"{CONVERSATIONS.select} WHERE {_NEWEST_FIRST} LIMIT 1",
                              (channel, user_id)).fetchone()
        return CONVERSATIONS.decode(row) if row is not None else None

    async def conversations_of(self, channel: str, user_id: str) -> list[Conversation]:
        return await self._select(CONVERSATIONS, _NEWEST_FIRST, channel, user_id)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        return await self._first(CONVERSATIONS, "id = ?", conversation_id)

    async def save_conversation(self, conversation: Conversation,
                                settled: Sequence[int] = (),
                                deliveries: Sequence[WebhookDelivery] = ()) -> None:
        def save() -> None:  # in a transaction: see bot/store/worker.py
            self.db.execute(CONVERSATIONS.upsert(), CONVERSATIONS.values(conversation))
            self.db.executemany("DELETE FROM unsettled WHERE conversation_id = ? AND seq = ?",
                                [(conversation.id, seq) for seq in settled])
            self.db.executemany(DELIVERIES.upsert(), [DELIVERIES.values(d) for d in deliveries])

        await self._run(save)

    async def conversations_in_state(self, state: ConversationState) -> list[Conversation]:
        if state is ConversationState.CLOSED:
            raise ValueError("closed conversations are not listed by state")
        order = _QUEUE_ORDER if state is ConversationState.QUEUED else "created_at, id"
        return await self._select(CONVERSATIONS, f"state = ? ORDER BY {order}", state.value)

    async def conversations_created(self, since: float, until: float) -> list[Conversation]:
        return await self._select(
            CONVERSATIONS, "created_at >= ? AND created_at < ? ORDER BY created_at, id",
            since, until)

    async def queue_position(self, conversation_id: str) -> int | None:
        def position() -> int | None:
            row = self.db.execute(
                "SELECT priority, queued_at FROM conversations WHERE id = ? AND state = 'queued'",
                (conversation_id,),
            ).fetchone()
            if row is None:
                return None
            priority, queued_at = row
            (ahead,) = self.db.execute(
                "SELECT COUNT(*) FROM conversations WHERE state = 'queued' AND "
                "(priority > ? OR (priority = ? AND (queued_at < ? OR "
                "(queued_at = ? AND id < ?))))",
                (priority, priority, queued_at, queued_at, conversation_id),
            ).fetchone()
            return int(ahead) + 1

        return await self._run(position)

    # transcript

    async def append_message(
        self, conversation: Conversation, message: NewMessage
    ) -> StoredMessage | None:
        received = await self._append(conversation, message, look_back=False)
        return None if received is None else received.message

    async def append_inbound(
        self, conversation: Conversation, message: NewMessage
    ) -> Received | None:
        return await self._append(conversation, message, look_back=True)

    async def _append(
        self, conversation: Conversation, message: NewMessage, look_back: bool
    ) -> Received | None:
        """One operation of the SQL thread, so the look at earlier unsettled messages takes
        no group commit of its own."""

        def append_and_look() -> Received | None:
            stored = self._append_now(conversation, message)
            if stored is None:
                return None
            earlier = _unsettled(self.db, "u.conversation_id = ? AND u.seq < ? AND m.role = ?",
                                 (stored.conversation_id, stored.seq, Role.CUSTOMER.value)
                                 ) if look_back else []
            return Received(stored, tuple(earlier))

        return await self._run(append_and_look)

    def _append_now(self, conversation: Conversation, message: NewMessage
                    ) -> StoredMessage | None:
        """On the SQL thread, in a transaction (see bot/store/worker.py)."""
        db = self.db
        message_id = message.id or uuid.uuid4().hex
        if message.id is not None:
            row = db.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?",
                             (message.id,)).fetchone()
            if row is not None:  # the same call again
                return _message(row)
        if message.platform_msg_id is not None:
            inserted = db.execute(
                "INSERT OR IGNORE INTO seen_inbound VALUES (?, ?, ?, ?)",
                (conversation.channel, conversation.user_id,
                 message.platform_msg_id, message_id),
            ).rowcount
            if not inserted:
                return None
        (seq,) = db.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?",
            (conversation.id,),
        ).fetchone()
        stored = StoredMessage(
            id=message_id, conversation_id=conversation.id, seq=seq, role=message.role,
            kind=message.kind, text=message.text, ts=message.ts,
            quick_replies=message.quick_replies,
            platform_msg_id=message.platform_msg_id, meta=message.meta,
        )
        db.execute(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (stored.id, stored.conversation_id, stored.seq, stored.role.value,
             stored.kind.value, stored.text, stored.ts,
             json.dumps(list(stored.quick_replies), ensure_ascii=False),
             stored.platform_msg_id, json.dumps(stored.meta, ensure_ascii=False)),
        )
        db.execute("INSERT INTO unsettled VALUES (?, ?, ?)",
                   (stored.conversation_id, stored.seq, time.time()))
        return stored

    async def begin_unless_open(self, new: Conversation, greeting: NewMessage,
                                idle_before: float
                                ) -> tuple[Conversation | None, StoredMessage | None]:
        def begin() -> tuple[Conversation | None, StoredMessage | None]:
            latest = self._latest_now(new.channel, new.user_id)
            if goes_on(latest, idle_before):
                return latest, None
            return latest, self._append_now(new, greeting)

        return await self._run(begin)

    async def messages(self, conversation_id: str, after_seq: int = 0) -> list[StoredMessage]:
        def select() -> list[StoredMessage]:
            rows = self.db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ? "
                "ORDER BY seq",
                (conversation_id, after_seq),
            ).fetchall()
            return [_message(r) for r in rows]

        return await self._run(select)

    async def settle(self, conversation_id: str, seq: int) -> None:
        await self._run(self.db.execute,
                        "DELETE FROM unsettled WHERE conversation_id = ? AND seq = ?",
                        (conversation_id, seq))

    async def unsettled(self, before: float, conversation_id: str | None = None
                        ) -> list[StoredMessage]:
        of_one = "" if conversation_id is None else " AND u.conversation_id = ?"
        return await self._run(
            _unsettled, self.db, f"u.ts < ?{of_one}",
            (before,) if conversation_id is None else (before, conversation_id))

    # questions the bot could not answer

    async def record_unanswered(self, question: UnansweredQuestion) -> None:
        await self._upsert(UNANSWERED, question)

    async def unanswered(self, since: float = 0.0) -> list[UnansweredQuestion]:
        return await self._select(UNANSWERED, "ts >= ? ORDER BY ts, rowid", since)

    # agents and sessions

    async def save_agent(self, agent: Agent) -> None:
        def save() -> None:  # in a transaction: see bot/store/worker.py
            db = self.db
            row = db.execute("SELECT id FROM agents WHERE name = ?", (agent.name,)).fetchone()
            if row is not None and row[0] != agent.id:
                raise ValueError(f"an agent named {agent.name!r} already exists")
            db.execute(AGENTS.upsert(), AGENTS.values(agent))

        await self._run(save)

    async def update_agent(self, agent_id: str, *, presence: Presence | None = None,
                           last_seen_at: float | None = None, password_hash: str | None = None,
                           disabled: bool | None = None) -> None:
        changes = {"presence": presence.value if presence else None,
                   "last_seen_at": last_seen_at, "password_hash": password_hash,
                   "disabled": disabled}
        columns = [c for c, v in changes.items() if v is not None]
        if not columns:
            return
        await self._run(self.db.execute,
                        f"UPDATE agents SET {', '.join(f'{c} = ?' for c in columns)} "
                        "WHERE id = ?", (*(changes[c] for c in columns), agent_id))

    async def end_sessions(self, agent_id: str, keep: str | None = None) -> None:
        await self._run(self.db.execute,
                        "DELETE FROM agent_sessions WHERE agent_id = ? AND token_hash != ?",
                        (agent_id, keep or ""))

    async def delete_agent(self, agent_id: str) -> None:
        def delete() -> None:  # in a transaction: see bot/store/worker.py
            self.db.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
            self.db.execute("DELETE FROM agent_settings WHERE agent_id = ?", (agent_id,))
            self.db.execute("DELETE FROM agent_sessions WHERE agent_id = ?", (agent_id,))

        await self._run(delete)

    async def get_agent(self, agent_id: str) -> Agent | None:
        return await self._first(AGENTS, "id = ?", agent_id)

    async def agent_by_name(self, name: str) -> Agent | None:
        return await self._first(AGENTS, "name = ?", name)

    async def agents(self) -> list[Agent]:
        return await self._select(AGENTS, "1 ORDER BY name")

    async def save_session(self, session: AgentSession) -> None:
        await self._upsert(SESSIONS, session)

    async def get_session(self, token_hash: str) -> AgentSession | None:
        return await self._first(SESSIONS, "token_hash = ?", token_hash)

    async def delete_session(self, token_hash: str) -> None:
        await self._run(self.db.execute, "DELETE FROM agent_sessions WHERE token_hash = ?",
                        (token_hash,))

    async def save_agent_settings(self, settings: AgentSettings) -> None:
        await self._upsert(AGENT_SETTINGS, settings)

    async def agent_settings(self, agent_id: str) -> AgentSettings:
        return await self._first(AGENT_SETTINGS, "agent_id = ?", agent_id) \
            or AgentSettings(agent_id)

    # notes and labels

    async def add_note(self, note: Note) -> None:
        await self._upsert(NOTES, note)

    async def notes(self, conversation_id: str) -> list[Note]:
        return await self._select(NOTES, "conversation_id = ? ORDER BY created_at, rowid",
                                  conversation_id)

    async def set_labels(self, conversation_id: str, labels: Sequence[str]) -> None:
        def replace_labels() -> None:  # in a transaction: see bot/store/worker.py
            self.db.execute("DELETE FROM conversation_labels WHERE conversation_id = ?",
                            (conversation_id,))
            self.db.executemany("INSERT OR IGNORE INTO conversation_labels VALUES (?, ?)",
                                [(conversation_id, label) for label in labels])

        await self._run(replace_labels)

    async def labels(self, conversation_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        def select() -> dict[str, tuple[str, ...]]:
            found: dict[str, list[str]] = {}
            marks = ", ".join("?" for _ in conversation_ids)
            for conversation_id, label in self.db.execute(
                    f"SELECT conversation_id, label FROM conversation_labels WHERE "
                    f"conversation_id IN ({marks}) ORDER BY conversation_id, label",
                    tuple(conversation_ids)):
                found.setdefault(conversation_id, []).append(label)
            return {k: tuple(v) for k, v in found.items()}

        return await self._run(select) if conversation_ids else {}

    # tickets and events

    async def save_ticket(self, ticket: Ticket, deliveries: Sequence[WebhookDelivery] = ()
                          ) -> None:
        await self._upsert(TICKETS, ticket, deliveries)

    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        return await self._first(TICKETS, "id = ?", ticket_id)

    async def tickets(self, status: TicketStatus | None = None) -> list[Ticket]:
        if status is None:
            return await self._select(TICKETS, "1 ORDER BY due_at, id")
        return await self._select(TICKETS, "status = ? ORDER BY due_at, id", status.value)

    async def record_event(self, event: ConversationEvent,
                           deliveries: Sequence[WebhookDelivery] = ()) -> None:
        await self._upsert(EVENTS, event, deliveries)

    # customers and cases

    async def save_customer(self, customer: Customer) -> None:
        def save() -> None:
            self.db.execute(CUSTOMERS.upsert(), CUSTOMERS.values(customer))
            self.db.execute("DELETE FROM customer_contacts WHERE customer_id = ?",
                            (customer.id,))
            if customer.merged_into is None:
                self.db.executemany(
                    "INSERT OR IGNORE INTO customer_contacts (contact, customer_id) "
                    "VALUES (?, ?)", [(c, customer.id) for c in
                                      (*customer.phones, *customer.emails)])

        await self._run(save)

    async def get_customer(self, customer_id: str) -> Customer | None:
        return await self._first(CUSTOMERS, "id = ?", customer_id)

    async def save_identity(self, identity: Identity) -> None:
        await self._upsert(IDENTITIES, identity)

    async def claim_identity(self, identity: Identity) -> Identity:
        def claim() -> Identity:  # in a transaction: see bot/store/worker.py
            insert = IDENTITIES.upsert().replace("INSERT OR REPLACE", "INSERT OR IGNORE")
            self.db.execute(insert, IDENTITIES.values(identity))
            row = self.db.execute(f"{IDENTITIES.select} WHERE channel = ? AND user_id = ?",
                                  (identity.channel, identity.user_id)).fetchone()
            return IDENTITIES.decode(row)

        return await self._run(claim)

    async def identity(self, channel: str, user_id: str) -> Identity | None:
        return await self._first(IDENTITIES, "channel = ? AND user_id = ?", channel, user_id)

    async def identities_of(self, customer_id: str) -> list[Identity]:
        return await self._select(IDENTITIES, "customer_id = ? ORDER BY first_seen_at, rowid",
                                  customer_id)

    async def customers_with_contact(self, contact: str) -> list[Customer]:
        return await self._select(
            CUSTOMERS, "id IN (SELECT customer_id FROM customer_contacts WHERE contact = ?) "
            "AND merged_into IS NULL ORDER BY created_at, id", contact)

    async def customers(self, since: float = 0.0) -> list[Customer]:
        return await self._select(CUSTOMERS, "created_at >= ? AND merged_into IS NULL "
                                  "ORDER BY created_at, id", since)

    async def save_case(self, case: Case, deliveries: Sequence[WebhookDelivery] = ()
                        ) -> None:
        await self._upsert(CASES, case, deliveries)

    async def get_case(self, case_id: str) -> Case | None:
        return await self._first(CASES, "id = ?", case_id)

    async def cases(self, customer_id: str | None = None) -> list[Case]:
        if customer_id is None:
            return await self._select(CASES, "1 ORDER BY due_at, id")
        return await self._select(CASES, "customer_id = ? ORDER BY due_at, id", customer_id)

    async def save_delivery(self, delivery: WebhookDelivery) -> None:
        await self._upsert(DELIVERIES, delivery)

    async def due_deliveries(self, now: float, limit: int) -> list[WebhookDelivery]:
        return await self._select(DELIVERIES, "status = ? AND next_at <= ? ORDER BY next_at, id "
                                  "LIMIT ?", DeliveryStatus.PENDING.value, now, limit)

    async def deliveries(self, status: DeliveryStatus | None = None, limit: int = 100
                         ) -> list[WebhookDelivery]:
        if status is None:
            return await self._select(DELIVERIES, "1 ORDER BY created_at DESC, id LIMIT ?",
                                      limit)
        return await self._select(DELIVERIES, "status = ? ORDER BY created_at DESC, id LIMIT ?",
                                  status.value, limit)

    async def events(self, conversation_id: str | None = None, since: float = 0.0
                     ) -> list[ConversationEvent]:
        if conversation_id is None:
            return await self._select(EVENTS, "ts >= ? ORDER BY ts, rowid", since)
        return await self._select(EVENTS, "conversation_id = ? AND ts >= ? ORDER BY ts, rowid",
                                  conversation_id, since)

    # personal data

    async def record_access(self, record: AccessRecord) -> None:
        await self._upsert(TRAIL, record)

    async def access_trail(self, since: float = 0.0, until: float = float("inf"),
                           limit: int = 1000) -> list[AccessRecord]:
        newest = await self._select(TRAIL, "at >= ? AND at < ? ORDER BY at DESC, rowid DESC "
                                    "LIMIT ?", since, until, limit)
        return newest[::-1]

    async def forget_access_before(self, before: float) -> int:
        def forget() -> int:
            return self.db.execute("DELETE FROM access_trail WHERE at < ?", (before,)).rowcount

        return await self._run(forget)

    async def anonymise_conversation(self, conversation_id: str, pseudonym: str) -> bool:
        def anonymise() -> bool:  # in a transaction: see bot/store/worker.py
            db = self.db
            row = db.execute(f"{CONVERSATIONS.select} WHERE id = ?",
                             (conversation_id,)).fetchone()
            if row is None:
                return False
            conversation = CONVERSATIONS.decode(row)
            db.execute("DELETE FROM seen_inbound WHERE channel = ? AND user_id = ?",
                       (conversation.channel, conversation.user_id))
            db.execute("UPDATE conversations SET user_id = ? WHERE id = ?",
                       (pseudonym, conversation_id))
            rows = db.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE "
                              "conversation_id = ?", (conversation_id,)).fetchall()
            db.executemany(
                "UPDATE messages SET text = ?, quick_replies = '[]', platform_msg_id = NULL, "
                "meta = ? WHERE id = ?",
                [(m.text, json.dumps(m.meta, ensure_ascii=False), m.id)
                 for m in (anonymous(_message(r)) for r in rows)])
            for table in ("unsettled", "unanswered", "notes"):
                db.execute(f"DELETE FROM {table} WHERE conversation_id = ?", (conversation_id,))
            return True

        return await self._run(anonymise)

    async def delete_customer(self, customer_id: str) -> list[str]:
        def delete() -> list[str]:  # in a transaction: see bot/store/worker.py
            db, gone, todo = self.db, [], [customer_id]
            while todo:
                current = todo.pop()
                if current in gone:
                    continue
                gone.append(current)
                todo += [r[0] for r in db.execute(
                    "SELECT id FROM customers WHERE merged_into = ?", (current,))]
                for table in ("customers WHERE id", "customer_contacts WHERE customer_id",
                              "identities WHERE customer_id"):
                    db.execute(f"DELETE FROM {table} = ?", (current,))
            return gone

        return await self._run(delete)

    async def delete_case(self, case_id: str) -> None:
        await self._run(self.db.execute, "DELETE FROM cases WHERE id = ?", (case_id,))

    async def delete_deliveries(self, delivery_ids: Sequence[str]) -> None:
        await self._run(self.db.executemany, "DELETE FROM webhook_deliveries WHERE id = ?",
                        [(i,) for i in delivery_ids])

    async def state_keys(self) -> list[str]:
        def keys() -> list[str]:
            return [r[0] for r in self.db.execute("SELECT key FROM channel_state ORDER BY key")]

        return await self._run(keys)

    async def delete_state(self, key: str) -> None:
        await self._run(self.db.execute, "DELETE FROM channel_state WHERE key = ?", (key,))

    # channel state

    async def load_state(self, key: str) -> dict[str, Any] | None:
        def load() -> dict[str, Any] | None:
            row = self.db.execute("SELECT value FROM channel_state WHERE key = ?",
                                  (key,)).fetchone()
            return json.loads(row[0]) if row else None

        return await self._run(load)

    async def save_state(self, key: str, value: dict[str, Any]) -> None:
        await self._run(self.db.execute, "INSERT OR REPLACE INTO channel_state VALUES (?, ?)",
                        (key, json.dumps(value, ensure_ascii=False)))

    def _failure_record(self, key: str, now: float) -> dict[str, Any] | None:
        row = self.db.execute("SELECT value FROM channel_state WHERE key = ?",
                              (f"failures:{key}",)).fetchone()
        record: dict[str, Any] | None = json.loads(row[0]) if row else None
        return record if record is not None and record["until"] > now else None

    async def count_failure(self, key: str, now: float, forget_after: float) -> int:
        def count() -> int:  # on the one SQL thread: nothing runs in between
            record = self._failure_record(key, now)
            counted = (record["count"] if record else 0) + 1
            self.db.execute("INSERT OR REPLACE INTO channel_state VALUES (?, ?)", (
                f"failures:{key}", json.dumps({"count": counted, "last_at": now,
                                               "until": now + forget_after})))
            return counted

        return await self._run(count)

    async def failures(self, key: str, now: float) -> tuple[int, float]:
        record = await self._run(self._failure_record, key, now)
        return (int(record["count"]), float(record["last_at"])) if record else (0, 0.0)

    async def clear_failures(self, key: str) -> None:
        await self._run(self.db.execute, "DELETE FROM channel_state WHERE key = ?",
                        (f"failures:{key}",))
