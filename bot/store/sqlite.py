"""The embedded store: SQLite from the standard library, one writer thread.

All SQL runs on a single dedicated thread, so the event loop never blocks on disk and writes
are serialised without locks. With `synchronous=FULL` (the default) a message acknowledged to
a customer survives a power cut, not only a crash.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from bot.messages import ConversationState, Kind, Role, StoredMessage
from bot.store import Conversation, NewMessage, UnansweredQuestion

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, channel TEXT NOT NULL, user_id TEXT NOT NULL, state TEXT NOT NULL,
    lang TEXT NOT NULL, created_at REAL NOT NULL, last_activity_at REAL NOT NULL,
    consecutive_misses INTEGER NOT NULL, handoff_reason TEXT, queued_at REAL, closed_at REAL,
    rating INTEGER, greeting_latency_ms REAL, greeting_breach TEXT, last_holding_at REAL
);
CREATE INDEX IF NOT EXISTS conversations_by_customer
    ON conversations (channel, user_id, created_at);
CREATE INDEX IF NOT EXISTS conversations_by_state ON conversations (state, queued_at);
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
CREATE TABLE IF NOT EXISTS unanswered (
    conversation_id TEXT NOT NULL, text TEXT NOT NULL, best_entry_id TEXT, best_score REAL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS unanswered_by_time ON unanswered (ts);
"""

_CONVERSATION_COLUMNS = ", ".join(f.name for f in fields(Conversation))


class SqliteStore:
    def __init__(self, path: Path, *, synchronous: str = "full") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kefu-sqlite")
        self._path = path
        self._synchronous = synchronous
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path, *, synchronous: str = "full") -> SqliteStore:
        store = cls(path, synchronous=synchronous)
        await store._run(store._connect)
        return store

    def _connect(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        db.executescript(_SCHEMA)
        self._db = db

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store is closed")
        return self._db

    async def close(self) -> None:
        def _close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(_close)
        self._executor.shutdown(wait=True)

    # conversations

    def _conversations(self, where: str, *args: Any) -> list[Conversation]:
        rows = self.db.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE {where}", args
        ).fetchall()
        return [_conversation(row) for row in rows]

    async def current_conversation(self, channel: str, user_id: str) -> Conversation | None:
        found = await self._run(
            self._conversations,
            "channel = ? AND user_id = ? AND state != 'closed' ORDER BY created_at DESC LIMIT 1",
            channel, user_id,
        )
        return found[0] if found else None

    async def latest_conversation(self, channel: str, user_id: str) -> Conversation | None:
        found = await self._run(
            self._conversations,
            "channel = ? AND user_id = ? ORDER BY created_at DESC LIMIT 1", channel, user_id,
        )
        return found[0] if found else None

    async def conversations_of(self, channel: str, user_id: str) -> list[Conversation]:
        return await self._run(
            self._conversations, "channel = ? AND user_id = ? ORDER BY created_at DESC",
            channel, user_id,
        )

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        found = await self._run(self._conversations, "id = ?", conversation_id)
        return found[0] if found else None

    async def save_conversation(self, conversation: Conversation) -> None:
        placeholders = ", ".join("?" for _ in fields(Conversation))
        values = tuple(
            v.value if isinstance(v, ConversationState) else v for v in astuple(conversation)
        )
        await self._run(
            self.db.execute,
            f"INSERT OR REPLACE INTO conversations ({_CONVERSATION_COLUMNS}) "
            f"VALUES ({placeholders})",
            values,
        )

    async def queue_position(self, conversation_id: str) -> int | None:
        def position() -> int | None:
            row = self.db.execute(
                "SELECT queued_at FROM conversations WHERE id = ? AND state = 'queued'",
                (conversation_id,),
            ).fetchone()
            if row is None:
                return None
            (ahead,) = self.db.execute(
                "SELECT COUNT(*) FROM conversations WHERE state = 'queued' AND "
                "(queued_at < ? OR (queued_at = ? AND id < ?))",
                (row[0], row[0], conversation_id),
            ).fetchone()
            return int(ahead) + 1

        return await self._run(position)

    # transcript

    async def append_message(
        self, conversation: Conversation, message: NewMessage
    ) -> StoredMessage | None:
        def append() -> StoredMessage | None:
            db = self.db
            message_id = uuid.uuid4().hex
            db.execute("BEGIN IMMEDIATE")
            try:
                if message.platform_msg_id is not None:
                    inserted = db.execute(
                        "INSERT OR IGNORE INTO seen_inbound VALUES (?, ?, ?, ?)",
                        (conversation.channel, conversation.user_id,
                         message.platform_msg_id, message_id),
                    ).rowcount
                    if not inserted:
                        db.execute("ROLLBACK")
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
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return stored

        return await self._run(append)

    async def messages(self, conversation_id: str, after_seq: int = 0) -> list[StoredMessage]:
        def select() -> list[StoredMessage]:
            rows = self.db.execute(
                "SELECT id, conversation_id, seq, role, kind, text, ts, quick_replies, "
                "platform_msg_id, meta FROM messages WHERE conversation_id = ? AND seq > ? "
                "ORDER BY seq",
                (conversation_id, after_seq),
            ).fetchall()
            return [
                StoredMessage(
                    id=r[0], conversation_id=r[1], seq=r[2], role=Role(r[3]), kind=Kind(r[4]),
                    text=r[5], ts=r[6], quick_replies=tuple(json.loads(r[7])),
                    platform_msg_id=r[8], meta=json.loads(r[9]),
                )
                for r in rows
            ]

        return await self._run(select)

    # questions the bot could not answer

    async def record_unanswered(self, question: UnansweredQuestion) -> None:
        await self._run(
            self.db.execute, "INSERT INTO unanswered VALUES (?, ?, ?, ?, ?)", astuple(question)
        )

    async def unanswered(self, since: float = 0.0) -> list[UnansweredQuestion]:
        def select() -> list[UnansweredQuestion]:
            rows = self.db.execute(
                "SELECT * FROM unanswered WHERE ts >= ? ORDER BY ts", (since,)
            ).fetchall()
            return [UnansweredQuestion(*row) for row in rows]

        return await self._run(select)


def _conversation(row: tuple[Any, ...]) -> Conversation:
    conversation = Conversation(*row)
    return replace(conversation, state=ConversationState(conversation.state))
