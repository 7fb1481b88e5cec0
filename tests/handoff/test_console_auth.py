"""The console's doors: login on every route and socket, CSRF, origins, expiry, hashing."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.web_urldispatcher import PrefixedSubAppResource

from bot.config import Config
from handoff.auth import hash_token
from handoff.console import PUBLIC
from tests.channels.tencent_envelope import Clock
from tests.harness import Kefu
from tests.redis_support import REDIS_URL, forget, require_redis, unique_prefix

PASSWORD = "correct horse"


def console_routes(kefu: Kefu) -> list[tuple[str, str]]:
    """(method, path) of every route the console serves, with ids filled in."""
    routes = []
    for resource in kefu.app.router.resources():
        if isinstance(resource, PrefixedSubAppResource):
            for route in resource._app.router.routes():
                path = re.sub(r"\{[^}]+\}", "x1", route.resource.canonical)
                routes.append((route.method, path))
    return routes


async def test_every_console_route_refuses_a_request_without_login(kefu: Kefu) -> None:
    assert kefu.client is not None
    routes = [r for r in console_routes(kefu) if r not in PUBLIC and r[0] != "HEAD"]
    assert len(routes) >= 20  # the API, pages, static files and the socket
    for method, path in routes:
        response = await kefu.client.request(method, path, json={}, allow_redirects=False)
        if path in ("/agent", "/agent/"):
            assert response.status == 303 and response.headers["Location"] == "/agent/login"
        else:
            assert response.status == 401, f"{method} {path} answered {response.status}"
            assert (await response.json())["error"] == "login_required"
    response = await kefu.client.get("/agent/api/queue",
                                     headers={"Authorization": "Bearer forged"})
    assert response.status == 401
    try:
        await kefu.client.ws_connect("/agent/ws")
        raise AssertionError("the console socket accepted a client without a session")
    except WSServerHandshakeError as exc:
        assert exc.status == 401


async def test_browser_login_sets_a_strict_cookie_and_changes_need_the_csrf_token(
    kefu: Kefu,
) -> None:
    assert kefu.client is not None
    page = await kefu.client.get("/agent/login")
    assert page.status == 200 and 'name="password"' in await page.text()
    wrong = await kefu.client.post("/agent/login", data={"name": "duty", "password": "nope"},
                                   allow_redirects=False)
    assert wrong.status == 401 and "wrong name or password" in await wrong.text()
    login = await kefu.client.post("/agent/login", data={"name": "duty", "password": PASSWORD},
                                   allow_redirects=False)
    assert login.status == 303 and login.headers["Location"] == "/agent"
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/agent" in cookie
    console = await kefu.client.get("/agent")
    assert console.status == 200
    assert "script-src 'self'" in console.headers["Content-Security-Policy"]
    assert console.headers["X-Frame-Options"] == "DENY"

    no_token = await kefu.client.post("/agent/api/presence", json={"presence": "away"})
    assert no_token.status == 403 and (await no_token.json())["error"] == "csrf"
    csrf = (await (await kefu.client.get("/agent/api/me")).json())["csrf_token"]
    ok = await kefu.client.post("/agent/api/presence", json={"presence": "away"},
                                headers={"X-CSRF-Token": csrf})
    assert ok.status == 200
    foreign = await kefu.client.post("/agent/api/presence", json={"presence": "online"},
                                     headers={"X-CSRF-Token": csrf,
                                              "Origin": "https://evil.example"})
    assert foreign.status == 403 and (await foreign.json())["error"] == "cross_origin"
    try:
        await kefu.client.ws_connect("/agent/ws", headers={"Origin": "https://evil.example"})
        raise AssertionError("a foreign page opened the console socket")
    except WSServerHandshakeError as exc:
        assert exc.status == 403


async def test_sessions_expire_and_logout_ends_them(kefu: Kefu) -> None:
    agent = await kefu.agent("duty")
    assert (await agent.get("/me"))["agent"]["name"] == "duty"
    session = await kefu.store.get_session(hash_token(agent.token))
    assert session is not None
    await kefu.store.save_session(replace(session, expires_at=session.created_at))
    response = await agent.client.get("/agent/api/me", headers=agent.headers)
    assert response.status == 401

    again = await kefu.agent("duty")
    await again.post("/logout")
    assert (await again.client.get("/agent/api/me", headers=again.headers)).status == 401
    duty = await kefu.store.agent_by_name("duty")
    assert duty is not None and duty.presence.value == "offline"


async def login_from(kefu: Kefu, address: str, password: str,
                     headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    """A login from another address on this machine (127.0.0.0/8 is all loopback)."""
    assert kefu.client is not None
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        response = await session.post(kefu.client.make_url("/agent/api/login"), headers=headers,
                                      json={"name": "duty", "password": password})
        await response.read()
        return response


async def test_a_guesser_waits_longer_each_time_but_never_locks_the_agent_out(
        make_config: Callable[..., Config]) -> None:
    clock = Clock()
    kefu = await Kefu(make_config(), clock).start()
    try:
        await kefu.add_agent("duty")
        free = kefu.config.desk.login_free_attempts
        for _ in range(free):
            assert (await login_from(kefu, "127.0.0.2", "guess")).status == 401
        blocked = await login_from(kefu, "127.0.0.2", PASSWORD)
        assert blocked.status == 429  # even the right password waits, from there
        assert (await login_from(kefu, "127.0.0.1", PASSWORD)).status == 200  # her own place
        clock.advance(kefu.config.desk.login_backoff_seconds)  # 2 s: one more try...
        assert (await login_from(kefu, "127.0.0.2", "guess")).status == 401
        clock.advance(kefu.config.desk.login_backoff_seconds)
        assert (await login_from(kefu, "127.0.0.2", "guess")).status == 429  # ...then 4 s
        clock.advance(kefu.config.desk.login_backoff_seconds)
        assert (await login_from(kefu, "127.0.0.2", PASSWORD)).status == 200
        duty = await kefu.store.agent_by_name("duty")
        assert duty is not None
        assert duty.password_hash.startswith("scrypt$") and PASSWORD not in duty.password_hash
    finally:
        await kefu.stop()


async def test_processes_sharing_redis_share_the_count(
        make_config: Callable[..., Config]) -> None:
    await require_redis()
    store = {"type": "redis", "url": REDIS_URL, "prefix": unique_prefix()}
    one = await Kefu(make_config(store=store)).start()
    two = await Kefu(make_config(store=store)).start()
    try:
        await one.add_agent("duty")
        free = one.config.desk.login_free_attempts
        for i in range(free):  # spread over both processes
            assert (await login_from((one, two)[i % 2], "127.0.0.3", "guess")).status == 401
        assert (await login_from(one, "127.0.0.3", "guess")).status == 429
        assert (await login_from(two, "127.0.0.3", "guess")).status == 429
    finally:
        await one.stop()
        await two.stop()
        await forget(store["prefix"])


async def test_behind_a_trusted_proxy_the_agents_own_address_is_counted(
        make_config: Callable[..., Config]) -> None:
    kefu = await Kefu(make_config(server={"trusted_proxies": ["127.0.0.1/32"]})).start()
    try:
        await kefu.add_agent("duty")
        guesser = {"X-Forwarded-For": "203.0.113.9"}
        for _ in range(kefu.config.desk.login_free_attempts):
            assert (await login_from(kefu, "127.0.0.1", "guess", guesser)).status == 401
        assert (await login_from(kefu, "127.0.0.1", PASSWORD, guesser)).status == 429
        alice = {"X-Forwarded-For": "198.51.100.7"}  # through the same proxy, from home
        assert (await login_from(kefu, "127.0.0.1", PASSWORD, alice)).status == 200
    finally:
        await kefu.stop()


@pytest.mark.parametrize(("settings", "address", "proto", "secure"), [
    ({}, "127.0.0.1", "https", False),  # nobody's X-Forwarded-Proto is believed
    ({"server": {"trusted_proxies": ["127.0.0.1/32"]}}, "127.0.0.1", "https", True),
    ({"server": {"trusted_proxies": ["127.0.0.1/32"]}}, "127.0.0.4", "https", False),
    ({"server": {"trusted_proxies": ["127.0.0.1/32"]}}, "127.0.0.1", "http", False),
    ({"desk": {"secure_cookie": True}}, "127.0.0.1", "", True),
])
async def test_the_session_cookie_is_secure_behind_a_trusted_tls_proxy(
        make_config: Callable[..., Config], settings: dict[str, Any], address: str,
        proto: str, secure: bool) -> None:
    kefu = await Kefu(make_config(**settings)).start()
    try:
        await kefu.add_agent("duty")
        response = await login_from(kefu, address, PASSWORD,
                                    {"X-Forwarded-Proto": proto} if proto else {})
        assert response.status == 200
        cookie = response.headers["Set-Cookie"]
        assert ("Secure" in cookie.split("; ")) is secure, cookie
    finally:
        await kefu.stop()


async def test_deeply_nested_json_is_a_clear_400(kefu: Kefu) -> None:
    assert kefu.client is not None
    body = "[" * 20_000 + "]" * 20_000
    response = await kefu.client.post("/agent/api/login", data=body,
                                      headers={"Content-Type": "application/json"})
    assert response.status == 400 and (await response.json())["error"] == "bad_json"
