"""Agent accounts and sessions: scrypt password hashes, hashed session tokens, CSRF tokens.

A session token is only ever stored as its SHA-256, so a copy of the database cannot be
used to log in. Browsers carry the token in an HttpOnly, SameSite=Strict cookie and send
the session's CSRF token in a header on every change; other tools send the token as
`Authorization: Bearer`, which a foreign page cannot make a browser send.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.config import DeskConfig
from bot.store import Agent, AgentRole, AgentSession, Presence, Store

# scrypt cost: 2**14 x 8 x 1 takes about 50 ms and 16 MiB here, the usual interactive choice.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_CHARS = 8
LAST_SEEN_EVERY_SECONDS = 10.0  # how often activity refreshes an agent's last-seen time


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_CHARS:
        return f"the password needs at least {MIN_PASSWORD_CHARS} characters"
    return None


def new_agent(name: str, password: str, role: AgentRole, max_chats: int, now: float) -> Agent:
    return Agent(id=uuid.uuid4().hex, name=name, role=role, max_chats=max_chats,
                 password_hash=hash_password(password), created_at=now)


@dataclass(frozen=True, slots=True)
class LoggedIn:
    token: str  # give to the client once; only its hash is kept
    session: AgentSession
    agent: Agent


class Sessions:
    def __init__(self, store: Store, config: DeskConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._config = config
        self._clock = clock

    def _throttles(self, name: str, address: str) -> tuple[tuple[str, int], ...]:
        c = self._config
        return ((f"login:{address}:{name}", c.login_free_attempts),
                (f"login:{address}", c.login_free_attempts_per_address))

    async def login_wait(self, name: str, address: str) -> float:
        """Seconds before `name` may try again from `address` (0: now). Wrong passwords
        are counted per name and address together, so a guesser elsewhere never locks
        the agent out; after the free tries each wait doubles, up to the maximum."""
        now, c = self._clock(), self._config
        wait = 0.0
        for key, free in self._throttles(name, address):
            failures, last_at = await self._store.failures(key, now)
            if failures >= free:
                backoff = min(c.login_max_backoff_seconds,
                              c.login_backoff_seconds * 2 ** (failures - free))
                wait = max(wait, last_at + backoff - now)
        return wait

    async def attempt(self, name: str, password: str, address: str) -> LoggedIn | None:
        """Log in, counting a wrong password against the name and address."""
        logged_in = await self.login(name, password)
        now = self._clock()
        if logged_in is None:
            for key, _ in self._throttles(name, address):
                await self._store.count_failure(key, now,
                                                self._config.login_max_backoff_seconds * 2)
        else:
            await self._store.clear_failures(self._throttles(name, address)[0][0])
        return logged_in

    async def login(self, name: str, password: str) -> LoggedIn | None:
        agent = await self._store.agent_by_name(name)
        if agent is None:
            verify_password(password, _dummy_hash())  # same time whether or not the name exists
            return None
        if not verify_password(password, agent.password_hash) or agent.disabled:
            return None
        now = self._clock()
        token = secrets.token_urlsafe(32)
        session = AgentSession(token_hash=hash_token(token), agent_id=agent.id,
                               csrf_token=secrets.token_urlsafe(24), created_at=now,
                               expires_at=now + self._config.session_hours * 3600)
        await self._store.save_session(session)
        return LoggedIn(token, session, agent)

    async def authenticate(self, token: str) -> tuple[Agent, AgentSession] | None:
        """The agent behind a token, or None when it is unknown or expired."""
        session = await self._store.get_session(hash_token(token))
        if session is None:
            return None
        now = self._clock()
        if now >= session.expires_at:
            await self._store.delete_session(session.token_hash)
            return None
        agent = await self._store.get_agent(session.agent_id)
        if agent is None or agent.disabled:
            return None
        if agent.last_seen_at is None or now - agent.last_seen_at > LAST_SEEN_EVERY_SECONDS:
            await self._store.update_agent(agent.id, last_seen_at=now)
            agent = replace(agent, last_seen_at=now)
        return agent, session

    async def logout(self, session: AgentSession) -> None:
        await self._store.delete_session(session.token_hash)
        await self._store.update_agent(session.agent_id, presence=Presence.OFFLINE)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))
