"""The console's doors: login on every route and socket, CSRF, origins, expiry, hashing."""

from __future__ import annotations

import re
from dataclasses import replace

from aiohttp import WSServerHandshakeError
from aiohttp.web_urldispatcher import PrefixedSubAppResource

from handoff.auth import hash_token
from handoff.console import PUBLIC
from tests.harness import Kefu

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


async def test_password_guessing_is_slowed_and_passwords_are_never_stored(kefu: Kefu) -> None:
    assert kefu.client is not None
    for _ in range(kefu.config.desk.login_attempts_per_minute):
        response = await kefu.client.post("/agent/api/login",
                                          json={"name": "duty", "password": "guess"})
        assert response.status == 401
    blocked = await kefu.client.post("/agent/api/login",
                                     json={"name": "duty", "password": PASSWORD})
    assert blocked.status == 429
    duty = await kefu.store.agent_by_name("duty")
    assert duty is not None
    assert duty.password_hash.startswith("scrypt$") and PASSWORD not in duty.password_hash


async def test_deeply_nested_json_is_a_clear_400(kefu: Kefu) -> None:
    assert kefu.client is not None
    body = "[" * 20_000 + "]" * 20_000
    response = await kefu.client.post("/agent/api/login", data=body,
                                      headers={"Content-Type": "application/json"})
    assert response.status == 400 and (await response.json())["error"] == "bad_json"
