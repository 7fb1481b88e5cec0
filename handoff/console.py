"""The agent console at /agent: pages, the JSON API and live updates over a WebSocket.

The API is documented in docs/agent-api.md. Every route but the login ones needs a session:
a cookie (the console page) or `Authorization: Bearer <token>` (other tools). Requests that
change something must come from kefu's own origin and, with a cookie, carry the session's
CSRF token in `X-CSRF-Token`. Customer text reaches the page as JSON and is shown with
`textContent`, never as HTML.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import WSMsgType, web

from bot.channel import CUSTOMER_TYPING
from bot.cluster import Fanout
from bot.config import Config
from bot.messages import ConversationState, StoredMessage
from bot.speaker import Said, Speaker
from bot.store import (
    Agent,
    AgentRole,
    AgentSession,
    Conversation,
    DeliveryStatus,
    Note,
    Notice,
    Presence,
    Store,
)
from bot.wire import (
    BadJson,
    address_in,
    client_address,
    networks_of,
    parse_json,
    same_secret,
)
from handoff.auth import Sessions, hash_password, new_agent, password_problem, verify_password
from handoff.board import Board, InboxFilter, Tab
from handoff.cases import CaseBook
from handoff.crm_views import CrmViews
from handoff.customers import CustomerBook, CustomerError
from handoff.desk import DESK_NEWS, Desk, DeskError, is_online
from handoff.privacy import Privacy
from handoff.replies import load_canned_replies
from handoff.report import Period, Report, make_report
from handoff.report_view import as_csv, as_html, as_markdown
from handoff.transcript import agent_json, message_json, transcript_json, transcript_text
from handoff.webhooks import Webhooks

log = logging.getLogger(__name__)

STATIC = files("handoff") / "static"
COOKIE = "kefu_agent"
AGENT = web.RequestKey("agent", Agent)
SESSION = web.RequestKey("session", AgentSession)
PUBLIC = {("GET", "/agent/login"), ("POST", "/agent/login"), ("POST", "/agent/api/login")}
MAX_BODY_BYTES = 64 * 1024
# The console runs only its own script: even text that slipped into the page as HTML could
# not run, load or send anything, and no other site may frame the console.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# The report page is static: its own inline style and SVG, nothing to run or load.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
              "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
WS_SESSION_EXPIRED = 4401
CONSOLE_NEWS = "console"  # fan-out topic: notes and labels, as frames for every console
CONSOLE_LANGUAGES = ("zh", "en")
SOCKET_QUEUE_FRAMES = 1000  # a console that falls this far behind is closed and reloads
AUDIT_LIMIT = 10_000  # records of the trail one request returns (the newest)

_ERROR_STATUS = {"not_found": 404, "empty_text": 400, "text_too_long": 400, "bad_request": 400,
                 "vague_reply": 422, "not_yours": 403, "bad_state": 409}


@dataclass(eq=False)
class _Socket:
    agent: Agent
    ws: web.WebSocketResponse
    frames: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(SOCKET_QUEUE_FRAMES))


class Console:
    def __init__(self, config: Config, store: Store, desk: Desk, board: Board,
                 sessions: Sessions, speaker: Speaker, fanout: Fanout, webhooks: Webhooks,
                 customers: CustomerBook, cases: CaseBook, clock: Callable[[], float],
                 privacy: Privacy) -> None:
        self._settings = config
        self._fanout = fanout
        self._privacy = privacy
        self._webhooks = webhooks
        self._customers = customers
        self._cases = cases
        self._crm = CrmViews(store, customers)
        self._config = config.desk
        self._trusted_proxies = networks_of(config.server.trusted_proxies)
        self._store = store
        self._desk = desk
        self._board = board
        self._sessions = sessions
        self._zone_name = config.business.timezone
        self._clock = clock
        self._open: set[_Socket] = set()
        speaker.listen(self._on_conversation)
        fanout.subscribe(DESK_NEWS, self._on_desk_news)
        fanout.subscribe(CUSTOMER_TYPING, self._on_customer_typing)
        fanout.subscribe(CONSOLE_NEWS, self._on_console_news)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY_BYTES)
        r = app.router
        r.add_get("/login", self._login_page)
        r.add_post("/login", self._login_form)
        r.add_get("", self._console_page)
        r.add_get("/", self._console_page)
        r.add_get("/static/{name}", self._static)
        r.add_post("/api/login", self._api_login)
        r.add_post("/api/logout", self._logout)
        r.add_get("/api/me", self._me)
        r.add_post("/api/me/settings", self._settings_change)
        r.add_post("/api/me/password", self._password_change)
        r.add_post("/api/presence", self._presence)
        r.add_get("/api/agents", self._json(self._board.agents))
        r.add_post("/api/agents", self._agent_add)
        for action in ("disable", "enable", "password"):
            r.add_post(f"/api/agents/{{id}}/{action}", self._agent_change)
        r.add_get("/api/inbox", self._inbox)
        r.add_get("/api/queue", self._json(self._board.queue))
        r.add_get("/api/chats", self._chats)
        r.add_get("/api/tickets", self._json(self._board.tickets))
        r.add_post("/api/tickets/{id}/done", self._ticket_done)
        r.add_get("/api/handover", self._json(self._board.handover))
        r.add_get("/report", self._report)
        r.add_get("/api/customers/{id}", self._customer)
        r.add_post("/api/customers/{id}", self._customer_change)
        r.add_post("/api/customers/{id}/verify", self._customer_change)
        r.add_post("/api/customers/{id}/merge", self._customer_change)
        r.add_post("/api/customers/{id}/erase", self._customer_erase)
        r.add_get("/api/audit", self._audit)
        r.add_get("/api/cases", self._case_list)
        r.add_post("/api/cases", self._case_open)
        r.add_get("/api/cases/{id}", self._case)
        for action in ("investigate", "resolve", "follow_up", "assign", "classify", "note"):
            r.add_post(f"/api/cases/{{id}}/{action}", self._case_act)
        r.add_get("/api/webhooks", self._webhook_deliveries)
        r.add_post("/api/webhooks/{id}/retry", self._webhook_retry)
        r.add_get("/api/quick-replies", self._quick_replies)
        r.add_get("/api/conversations/{id}", self._conversation)
        r.add_get("/api/conversations/{id}/transcript", self._transcript)
        r.add_post("/api/conversations/{id}/notes", self._note_add)
        r.add_post("/api/conversations/{id}/labels", self._labels_set)
        for action in ("take", "reply", "hold", "typing", "transfer", "handback", "close",
                       "read"):
            r.add_post(f"/api/conversations/{{id}}/{action}", self._act)
        r.add_get("/ws", self._websocket)
        return app

    # authentication, CSRF and origin checks for every route

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        path = request.path
        changes = request.method not in ("GET", "HEAD", "OPTIONS")
        if (changes or path == "/agent/ws") and not _same_origin(request):
            return _error(403, "cross_origin", "requests must come from kefu's own pages")
        if (request.method, path) in PUBLIC:
            return await handler(request)
        token, by_cookie = _token(request)
        found = await self._sessions.authenticate(token) if token else None
        if found is None:
            if request.method == "GET" and path in ("/agent", "/agent/"):
                raise web.HTTPSeeOther("/agent/login")
            return _error(401, "login_required", "log in first")
        agent, session = found
        if changes and by_cookie and not same_secret(
                request.headers.get("X-CSRF-Token", ""), session.csrf_token):
            return _error(403, "csrf", "missing or wrong X-CSRF-Token header")
        request[AGENT] = agent
        request[SESSION] = session
        return await handler(request)

    # pages

    async def _login_page(self, request: web.Request, problem: str = "") -> web.Response:
        html = (STATIC / "login.html").read_text(encoding="utf-8")
        html = html.replace("{{problem}}", _escape(problem))
        return web.Response(text=html, content_type="text/html",
                            status=401 if problem else 200,
                            headers={**PAGE_HEADERS, "Content-Security-Policy":
                                     CSP.replace("style-src 'self'",
                                                 "style-src 'self' 'unsafe-inline'")})

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        logged_in, problem = await self._try_login(request, name, password)
        if logged_in is None:
            return await self._login_page(request, problem)
        response = web.Response(status=303, headers={"Location": "/agent"})
        self._set_cookie(request, response, logged_in.token)
        return response

    async def _console_page(self, request: web.Request) -> web.Response:
        return web.Response(body=(STATIC / "console.html").read_bytes(),
                            content_type="text/html", charset="utf-8",
                            headers={**PAGE_HEADERS, "Content-Security-Policy": CSP})

    async def _static(self, request: web.Request) -> web.Response:
        """The console's stylesheet and ES modules (no build step: the browser loads them)."""
        name = request.match_info["name"]
        suffix = name.rsplit(".", 1)[-1]
        types = {"js": "application/javascript", "css": "text/css"}
        if suffix not in types or not (STATIC / name).is_file():
            raise web.HTTPNotFound()
        return web.Response(body=(STATIC / name).read_bytes(), content_type=types[suffix],
                            charset="utf-8", headers={"Cache-Control": "no-cache"})

    async def _report(self, request: web.Request) -> web.Response:
        """The report for supervisors, as `kefu report` makes it: ?from=&to=&format=, and
        lang= (the page's language; by default the agent's console language)."""
        if request[AGENT].role is not AgentRole.SUPERVISOR:
            return _error(403, "supervisors_only", "reports are for supervisors")
        now = self._clock()
        try:
            period = Period.parse(request.query.get("from") or None,
                                  request.query.get("to") or None, ZoneInfo(self._zone_name),
                                  now, self._settings.reports.max_days)
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        chosen = request.query.get("format", "html")
        lang = request.query.get("lang") or (
            await self._store.agent_settings(request[AGENT].id)).lang
        if lang not in CONSOLE_LANGUAGES:
            return _error(400, "bad_request", "lang is zh or en")
        formats: dict[str, tuple[Callable[[Report], str], str]] = {
            "html": (lambda r: as_html(r, period_form=True, lang=lang), "text/html"),
            "md": (as_markdown, "text/markdown"), "csv": (as_csv, "text/csv")}
        if chosen not in formats:
            return _error(400, "bad_request", "format is html, md or csv")
        render, content_type = formats[chosen]
        report = await make_report(self._store, period, self._settings, now=now)
        headers = {**PAGE_HEADERS, "Content-Security-Policy": REPORT_CSP}
        if chosen != "html":
            headers["Content-Disposition"] = (f'attachment; filename="kefu-report-'
                                              f'{period.first}-{period.last}.{chosen}"')
        return web.Response(text=render(report), content_type=content_type, headers=headers)

    # customers and cases

    async def _customer(self, request: web.Request) -> web.Response:
        agent, customer_id = request[AGENT], request.match_info["id"]
        customer = await self._customers.get(customer_id)
        if customer is None:
            return _error(404, "not_found", "no such customer")
        if not await self._privacy.may_read_customer(agent, customer):
            return _not_allowed()
        await self._privacy.record(agent.name, "opened_customer", customer.id,
                                   self._address(request))
        return await self._customer_view(agent, customer.id)

    async def _customer_view(self, agent: Agent, customer_id: str) -> web.Response:
        view = await self._crm.customer(customer_id, self._clock())
        if view is None:
            return _error(404, "not_found", "no such customer")
        return web.json_response(self._privacy.shown_to(agent, view), dumps=_dumps)

    async def _customer_erase(self, request: web.Request) -> web.Response:
        """Supervisors erase a person on their request (docs/privacy.md)."""
        agent = request[AGENT]
        if agent.role is not AgentRole.SUPERVISOR:
            return _error(403, "supervisors_only", "erasing a customer is for supervisors")
        if (await _body(request)).get("confirm") is not True:
            return _error(400, "bad_request", 'send {"confirm": true}: erasure cannot be undone')
        try:
            counts = await self._privacy.erase(request.match_info["id"], agent.name,
                                               self._address(request))
        except CustomerError as exc:
            return _error(_ERROR_STATUS.get(exc.code, 409), exc.code, str(exc))
        return web.json_response({"erased": counts}, dumps=_dumps)

    async def _audit(self, request: web.Request) -> web.Response:
        """Supervisors read the access trail: ?from=&to= (days), &actor=, &action=,
        &subject=."""
        agent = request[AGENT]
        if agent.role is not AgentRole.SUPERVISOR:
            return _error(403, "supervisors_only", "the access trail is for supervisors")
        try:
            period = Period.parse(request.query.get("from") or None,
                                  request.query.get("to") or None, ZoneInfo(self._zone_name),
                                  self._clock(), self._settings.reports.max_days)
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        wanted = {k: request.query[k] for k in ("actor", "action", "subject")
                  if request.query.get(k)}
        records = await self._privacy.trail(period.since, period.until, AUDIT_LIMIT, **wanted)
        await self._privacy.record(agent.name, "read_trail", "trail", self._address(request),
                                   first=str(period.first), last=str(period.last),
                                   filters=wanted)
        return web.json_response({"records": [asdict(r) for r in records]}, dumps=_dumps)

    async def _customer_change(self, request: web.Request) -> web.Response:
        agent, customer_id = request[AGENT], request.match_info["id"]
        body = await _body(request)
        action = request.path.rsplit("/", 1)[1]
        try:
            if action == "verify":
                await self._customers.verify(agent, customer_id, _required_text(body, "contact"))
            elif action == "merge":
                await self._customers.merge(agent, customer_id, _required_text(body, "other_id"))
            else:
                tags = body.get("tags")
                if tags is not None and not (isinstance(tags, list)
                                             and all(isinstance(t, str) for t in tags)):
                    return _error(400, "bad_request", "tags must be a list of words")
                await self._customers.update(
                    agent, customer_id, name=_optional_text(body, "name"), tags=tags,
                    note=_optional_text(body, "note"), owner_id=_optional_text(body, "owner_id"))
        except CustomerError as exc:
            return _error(_ERROR_STATUS.get(exc.code, 409), exc.code, str(exc))
        return await self._customer_view(agent, customer_id)

    async def _case_list(self, request: web.Request) -> web.Response:
        cases = await self._crm.cases(self._clock(),
                                      include_closed=request.query.get("closed") == "1")
        return web.json_response(self._privacy.shown_to(request[AGENT], cases), dumps=_dumps)

    async def _case(self, request: web.Request) -> web.Response:
        view = await self._crm.case(request.match_info["id"], self._clock())
        if view is None:
            return _error(404, "not_found", "no such case")
        return web.json_response(self._privacy.shown_to(request[AGENT], view), dumps=_dumps)

    async def _case_open(self, request: web.Request) -> web.Response:
        body = await _body(request)
        conversation = await self._store.get_conversation(
            _required_text(body, "conversation_id"))
        if conversation is None:
            return _error(404, "not_found", "no such conversation")
        try:
            case = await self._cases.open(
                conversation, _required_text(body, "summary"), by=request[AGENT].name,
                category=_optional_text(body, "category") or "",
                severity=_optional_text(body, "severity") or "normal", agent=request[AGENT])
        except CustomerError as exc:
            return _error(_ERROR_STATUS.get(exc.code, 409), exc.code, str(exc))
        return web.json_response(await self._crm.case(case.id, self._clock()), dumps=_dumps)

    async def _case_act(self, request: web.Request) -> web.Response:
        body = await _body(request)
        fields = {k: body[k] for k in ("satisfied", "owner_id", "department", "category",
                                       "severity") if k in body}
        try:
            case = await self._cases.act(request[AGENT], request.match_info["id"],
                                         request.path.rsplit("/", 1)[1],
                                         _optional_text(body, "note") or "", **fields)
        except CustomerError as exc:
            return _error(_ERROR_STATUS.get(exc.code, 409), exc.code, str(exc))
        return web.json_response(await self._crm.case(case.id, self._clock()), dumps=_dumps)

    async def _webhook_deliveries(self, request: web.Request) -> web.Response:
        """Supervisors see what other systems have not received."""
        if request[AGENT].role is not AgentRole.SUPERVISOR:
            return _error(403, "supervisors_only", "webhook deliveries are for supervisors")
        failed = await self._store.deliveries(DeliveryStatus.FAILED, limit=100)
        pending = await self._store.deliveries(DeliveryStatus.PENDING, limit=100)
        fields = ("id", "event_id", "endpoint", "type", "created_at", "next_at", "attempts",
                  "last_error")
        return web.json_response({
            "failed": [{k: getattr(d, k) for k in fields} for d in failed],
            "pending": [{k: getattr(d, k) for k in fields} for d in pending]}, dumps=_dumps)

    async def _webhook_retry(self, request: web.Request) -> web.Response:
        if request[AGENT].role is not AgentRole.SUPERVISOR:
            return _error(403, "supervisors_only", "webhook deliveries are for supervisors")
        again = await self._webhooks.retry(request.match_info["id"])
        if again is None:
            return _error(404, "not_found", "no failed delivery with this id")
        return web.json_response({"id": again.id, "status": again.status.value})

    # sessions

    async def _try_login(self, request: web.Request, name: str, password: str
                         ) -> tuple[Any, str]:
        client = self._address(request)
        wait = await self._sessions.login_wait(name, client)
        if wait > 0:
            return None, f"too many attempts; try again in {math.ceil(wait)} s"
        logged_in = await self._sessions.attempt(name, password, client)
        if logged_in is None:
            log.info("console: failed login for %r from %s", name, client)
            return None, "wrong name or password"
        log.info("console: %s logged in from %s", name, client)
        return logged_in, ""

    def _set_cookie(self, request: web.Request, response: web.StreamResponse, token: str
                    ) -> None:
        response.set_cookie(COOKIE, token, path="/agent", httponly=True, samesite="Strict",
                            secure=self._over_tls(request),
                            max_age=int(self._config.session_hours * 3600))

    def _address(self, request: web.Request) -> str:
        """Where a request came from (through a trusted proxy: the address it names), for
        login throttling and the access trail."""
        return client_address(request.remote, request.headers.get("X-Forwarded-For", ""),
                              self._trusted_proxies)

    def _over_tls(self, request: web.Request) -> bool:
        """Whether the browser reached kefu over HTTPS: directly, or through a trusted
        proxy that says so in X-Forwarded-Proto (or the setting says always)."""
        if self._config.secure_cookie or request.secure:
            return True
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return proto == "https" and address_in(request.remote, self._trusted_proxies)

    async def _api_login(self, request: web.Request) -> web.Response:
        body = await _body(request)
        logged_in, problem = await self._try_login(request, str(body.get("name", "")),
                                                   str(body.get("password", "")))
        if logged_in is None:
            return _error(429 if "attempts" in problem else 401, "login_failed", problem)
        response = web.json_response({
            "token": logged_in.token, "csrf_token": logged_in.session.csrf_token,
            "expires_at": logged_in.session.expires_at, "agent": agent_json(logged_in.agent)})
        self._set_cookie(request, response, logged_in.token)
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        await self._sessions.logout(request[SESSION])
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE, path="/agent")
        return response

    async def _me(self, request: web.Request) -> web.Response:
        session = request[SESSION]
        agent = await self._store.get_agent(request[AGENT].id) or request[AGENT]
        return web.json_response({
            "agent": {**agent_json(agent), "online": is_online(agent, self._clock(), self._config)},
            "csrf_token": session.csrf_token, "expires_at": session.expires_at,
            "time_zone": self._zone_name,
            "shop": self._settings.business.name,
            "settings": asdict(await self._store.agent_settings(agent.id)),
            "notices": [n.value for n in Notice],
            "max_note_chars": self._config.console.max_note_chars,
            "agent_reply_seconds": self._config.agent_reply_seconds,
            "banned_phrases": self._config.banned_phrases,
            "curt_replies": self._config.curt_replies})

    async def _settings_change(self, request: web.Request) -> web.Response:
        body = await _body(request)
        settings = await self._store.agent_settings(request[AGENT].id)
        lang = body.get("lang", settings.lang)
        muted = body.get("muted", list(settings.muted))
        if lang not in CONSOLE_LANGUAGES:
            return _error(400, "bad_request", "lang is zh or en")
        notices = {n.value for n in Notice}
        if not (isinstance(muted, list) and all(m in notices for m in muted)):
            return _error(400, "bad_request", f"muted is a list of {', '.join(sorted(notices))}")
        settings = replace(settings, lang=lang, muted=tuple(dict.fromkeys(muted)))
        await self._store.save_agent_settings(settings)
        return web.json_response({"settings": asdict(settings)})

    async def _password_change(self, request: web.Request) -> web.Response:
        """An agent's own password: the current one is needed, as for any account."""
        body = await _body(request)
        agent = await self._store.get_agent(request[AGENT].id) or request[AGENT]
        if not verify_password(str(body.get("current", "")), agent.password_hash):
            return _error(403, "wrong_password", "the current password is not right")
        return await self._set_password(agent, body.get("new"),
                                        keep=request[SESSION].token_hash)

    async def _set_password(self, agent: Agent, password: object, keep: str | None = None
                            ) -> web.Response:
        """A new password ends every session of the account but `keep` (the agent's own,
        when they changed it): whoever knew the old one is logged out."""
        if not isinstance(password, str):
            return _error(400, "bad_request", "the new password must be text")
        problem = password_problem(password)
        if problem:
            return _error(400, "weak_password", problem)
        await self._store.update_agent(agent.id, password_hash=hash_password(password))
        await self._store.end_sessions(agent.id, keep)
        log.info("console: password of %s changed; their other sessions ended", agent.name)
        return web.json_response({"ok": True})

    async def _agent_add(self, request: web.Request) -> web.Response:
        """Supervisors add colleagues, as `kefu agent add` does."""
        if request[AGENT].role is not AgentRole.SUPERVISOR:
            return _error(403, "supervisors_only", "only supervisors add agents")
        body = await _body(request)
        name = _required_text(body, "name").strip()
        password = _required_text(body, "password")
        max_chats = body.get("max_chats", self._config.default_max_chats)
        try:
            role = AgentRole(body.get("role", "agent"))
        except ValueError:
            return _error(400, "bad_request", "role is agent or supervisor")
        if not isinstance(max_chats, int) or isinstance(max_chats, bool) or max_chats < 1:
            return _error(400, "bad_request", "max_chats is a whole number, at least 1")
        problem = password_problem(password)
        if problem:
            return _error(400, "weak_password", problem)
        agent = new_agent(name, password, role, max_chats, self._clock())
        try:
            await self._store.save_agent(agent)
        except ValueError as exc:
            return _error(409, "name_taken", str(exc))
        log.info("console: %s added agent %s", request[AGENT].name, name)
        self._fanout_changed("agents")
        return web.json_response({"agent": agent_json(agent)})

    async def _agent_change(self, request: web.Request) -> web.Response:
        """Supervisors disable, enable and reset colleagues' accounts."""
        if request[AGENT].role is not AgentRole.SUPERVISOR:
            return _error(403, "supervisors_only", "only supervisors change other accounts")
        agent = await self._store.get_agent(request.match_info["id"])
        if agent is None:
            return _error(404, "not_found", "no such agent")
        action = request.path.rsplit("/", 1)[1]
        if action == "password":
            return await self._set_password(agent, (await _body(request)).get("password"))
        if agent.id == request[AGENT].id:
            return _error(409, "own_account", "a supervisor cannot disable their own account")
        disabled = action == "disable"
        await self._store.update_agent(agent.id, disabled=disabled,
                                       presence=Presence.OFFLINE if disabled else None)
        log.info("console: %s %sd agent %s", request[AGENT].name, action, agent.name)
        if disabled:  # nobody would answer their open chats: the next free agent does
            await self._desk.requeue_chats_of(agent.id, "disabled")
        self._fanout_changed("agents")
        return web.json_response({"agent": agent_json(replace(agent, disabled=disabled))})

    def _fanout_changed(self, what: str) -> None:
        asyncio.get_running_loop().create_task(self._fanout.publish(DESK_NEWS, {"what": what}))

    async def _presence(self, request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            presence = Presence(str(body.get("presence", "")))
        except ValueError:
            return _error(400, "bad_request", "presence must be online, away or offline")
        await self._desk.set_presence(request[AGENT], presence)
        return web.json_response({"presence": presence.value})

    # reading

    def _json(self, read: Callable[[], Awaitable[Any]]
              ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(self._privacy.shown_to(request[AGENT], await read()),
                                     dumps=_dumps)

        return handler

    async def _inbox(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            tab = Tab(query.get("tab", "mine"))
            state = ConversationState(query["state"]) if query.get("state") else None
            waiting = float(query["waiting"]) if query.get("waiting") else None
        except ValueError:
            return _error(400, "bad_request", "tab is mine, unassigned or all; state is queued, "
                          "agent or closed; waiting is seconds")
        if state is ConversationState.BOT:
            return _error(400, "bad_request", "state is queued, agent or closed")
        wanted = InboxFilter(channel=query.get("channel") or None, state=state,
                             label=query.get("label") or None, waiting_seconds=waiting,
                             search=query.get("q", "").strip())
        try:
            found = await self._board.inbox(request[AGENT], tab, wanted)
        except PermissionError as exc:
            return _error(403, "supervisors_only", str(exc))
        return web.json_response(self._privacy.shown_to(request[AGENT], found), dumps=_dumps)

    async def _seen_conversation(self, request: web.Request) -> Conversation:
        """The conversation a note or labels are for, if the agent may read it."""
        conversation = await self._store.get_conversation(request.match_info["id"])
        if conversation is None:
            raise web.HTTPNotFound(text='{"error":"not_found","message":"no such conversation"}',
                                   content_type="application/json")
        if not await self._privacy.may_read_conversation(request[AGENT], conversation):
            raise web.HTTPForbidden(text=_not_allowed().text, content_type="application/json")
        return conversation

    async def _note_add(self, request: web.Request) -> web.Response:
        """A private note: agents see it beside the transcript, the customer never does."""
        conversation = await self._seen_conversation(request)
        text = _required_text(await _body(request), "text").strip()
        limit = self._config.console.max_note_chars
        if len(text) > limit:
            return _error(400, "text_too_long", f"notes are limited to {limit} characters")
        agent = request[AGENT]
        note = Note(uuid.uuid4().hex, conversation.id, agent.id, text, self._clock())
        await self._store.add_note(note)
        shown = {**asdict(note), "agent_name": agent.name}
        await self._fanout.publish(CONSOLE_NEWS, {"type": "note", "conversation_id":
                                                  conversation.id, "note": shown})
        return web.json_response({"note": shown}, dumps=_dumps)

    async def _labels_set(self, request: web.Request) -> web.Response:
        conversation = await self._seen_conversation(request)
        labels = (await _body(request)).get("labels")
        console = self._config.console
        if not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            return _error(400, "bad_request", "labels must be a list of words")
        cleaned = list(dict.fromkeys(x.strip() for x in labels if x.strip()))
        if len(cleaned) > console.max_labels or any(
                len(x) > console.max_label_chars for x in cleaned):
            return _error(400, "bad_request", f"at most {console.max_labels} labels of up to "
                          f"{console.max_label_chars} characters")
        await self._store.set_labels(conversation.id, cleaned)
        await self._fanout.publish(CONSOLE_NEWS, {"type": "labels", "conversation_id":
                                                  conversation.id, "labels": sorted(cleaned)})
        return web.json_response({"labels": sorted(cleaned)}, dumps=_dumps)

    async def _chats(self, request: web.Request) -> web.Response:
        agent = request[AGENT]
        return web.json_response(self._privacy.shown_to(agent, await self._board.chats(agent)),
                                 dumps=_dumps)

    async def _readable(self, request: web.Request, action: str, **detail: Any
                        ) -> Conversation | web.Response:
        """The conversation, if the agent may read it (recorded in the trail); else the
        error to answer with."""
        agent = request[AGENT]
        conversation = await self._store.get_conversation(request.match_info["id"])
        if conversation is None:
            return _error(404, "not_found", "no such conversation")
        if not await self._privacy.may_read_conversation(agent, conversation):
            return _not_allowed()
        await self._privacy.record(agent.name, action, conversation.id, self._address(request),
                                   **detail)
        return conversation

    async def _conversation(self, request: web.Request) -> web.Response:
        conversation = await self._readable(request, "opened_conversation")
        if isinstance(conversation, web.Response):
            return conversation
        detail = await self._board.detail(conversation.id)
        if detail is None:
            return _error(404, "not_found", "no such conversation")
        return web.json_response(self._privacy.shown_to(request[AGENT], detail), dumps=_dumps)

    async def _transcript(self, request: web.Request) -> web.Response:
        chosen = request.query.get("format", "text")
        conversation = await self._readable(request, "opened_transcript", format=chosen)
        if isinstance(conversation, web.Response):
            return conversation
        agent = request[AGENT]
        messages = await self._store.messages(conversation.id)
        events = await self._store.events(conversation.id)
        disposition = f'attachment; filename="conversation-{conversation.id}'
        if chosen == "json":
            return web.json_response(
                self._privacy.shown_to(agent, transcript_json(conversation, messages, events)),
                dumps=_dumps, headers={"Content-Disposition": disposition + '.json"'})
        names = {a.id: a.name for a in await self._store.agents()}
        text = transcript_text(conversation, messages, events, ZoneInfo(self._zone_name), names)
        return web.Response(text=self._privacy.shown_to(agent, text), content_type="text/plain",
                            headers={"Content-Disposition": disposition + '.txt"'})

    async def _quick_replies(self, request: web.Request) -> web.Response:
        replies, problems = load_canned_replies(self._config.quick_replies_path)
        return web.json_response({"replies": [{"shortcut": r.shortcut, "text": r.text}
                                              for r in replies], "problems": problems},
                                 dumps=_dumps)

    # acting

    async def _act(self, request: web.Request) -> web.Response:
        agent = request[AGENT]
        conversation_id = request.match_info["id"]
        action = request.path.rsplit("/", 1)[1]
        body = await _body(request)
        try:
            result: Any
            if action == "take":
                result = await self._desk.take(agent, conversation_id)
            elif action == "reply":
                result = await self._desk.reply(agent, conversation_id,
                                                _text_field(body, "text"),
                                                confirmed=body.get("confirm") is True)
            elif action == "hold":
                result = await self._desk.hold(agent, conversation_id)
            elif action == "typing":
                await self._desk.typing(agent, conversation_id)
                result = None
            elif action == "transfer":
                result = await self._desk.transfer(agent, conversation_id,
                                                   _text_field(body, "to"))
            elif action == "handback":
                result = await self._desk.hand_back(agent, conversation_id)
            elif action == "close":
                result = await self._desk.close(agent, conversation_id)
            else:
                seq = body.get("seq")
                if not isinstance(seq, int) or isinstance(seq, bool):
                    raise DeskError("bad_request", "seq must be a whole number")
                await self._desk.mark_read(agent, conversation_id, seq)
                result = None
        except DeskError as exc:
            return _error(_ERROR_STATUS.get(exc.code, 409), exc.code, str(exc), **exc.detail)
        if isinstance(result, Said):
            return web.json_response({"message": message_json(result.message),
                                      "undelivered": result.undelivered}, dumps=_dumps)
        if isinstance(result, Conversation):
            return web.json_response({"conversation": {"id": result.id,
                                                       "state": result.state.value,
                                                       "agent_id": result.agent_id}})
        return web.json_response({"ok": True})

    async def _ticket_done(self, request: web.Request) -> web.Response:
        body = await _body(request)
        note = body.get("note", "")
        if not isinstance(note, str):
            return _error(400, "bad_request", "note must be text")
        try:
            ticket = await self._desk.resolve_ticket(request[AGENT], request.match_info["id"],
                                                     note)
        except DeskError as exc:
            return _error(_ERROR_STATUS.get(exc.code, 409), exc.code, str(exc))
        return web.json_response({"id": ticket.id, "status": ticket.status.value})

    # live updates

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
        await ws.prepare(request)
        socket = _Socket(request[AGENT], ws)
        self._open.add(socket)
        sender = asyncio.create_task(self._send_frames(socket))
        try:
            await ws.send_json({"type": "hello", "agent": request[AGENT].name})
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                # A ping keeps the agent's last-seen time fresh, and ends an expired session.
                if await self._sessions.authenticate(_token(request)[0] or "") is None:
                    await ws.close(code=WS_SESSION_EXPIRED, message=b"session expired")
                    break
                await ws.send_json({"type": "pong"})
        finally:
            self._open.discard(socket)
            sender.cancel()
        return ws

    async def _send_frames(self, socket: _Socket) -> None:
        while True:
            frame = await socket.frames.get()
            try:
                await socket.ws.send_json(frame, dumps=_dumps)
            except (ConnectionError, RuntimeError):
                return

    def _push(self, socket: _Socket, frame: dict[str, Any]) -> None:
        try:
            socket.frames.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("console of %s is not keeping up; closing it", socket.agent.name)
            self._open.discard(socket)
            asyncio.get_running_loop().create_task(socket.ws.close(message=b"too slow"))

    def _push_all(self, frame: dict[str, Any]) -> None:
        for socket in list(self._open):
            self._push(socket, frame)

    async def _on_desk_news(self, news: dict[str, Any]) -> None:
        self._push_all({"type": "changed", "what": news["what"]})

    async def _on_console_news(self, frame: dict[str, Any]) -> None:
        """Notes and labels, from this process or another, to every console."""
        self._push_all(frame)

    async def _on_customer_typing(self, news: dict[str, Any]) -> None:
        conversation = await self._store.current_conversation(news["channel"], news["user_id"])
        if conversation is None or conversation.state is ConversationState.BOT:
            return
        for socket in list(self._open):
            if self._may_see(socket.agent, conversation):
                self._push(socket, {"type": "typing", "conversation_id": conversation.id})

    def _on_conversation(self, conversation: Conversation, message: StoredMessage | None
                         ) -> None:
        """A state change goes to every console (lists move); a message only to the agents
        who may see the conversation: queued, theirs, or any for a supervisor."""
        for socket in list(self._open):
            agent = socket.agent
            if message is None:
                self._push(socket, {"type": "conversation", "conversation_id": conversation.id,
                                    "state": conversation.state.value,
                                    "agent_id": conversation.agent_id})
            elif self._may_see(agent, conversation):
                self._push(socket, {"type": "message", "conversation_id": conversation.id,
                                    "message": self._privacy.shown_to(
                                        agent, message_json(message))})

    @staticmethod
    def _may_see(agent: Agent, conversation: Conversation) -> bool:
        """Live news of a chat: queued ones for all, held ones for their agent and
        supervisors."""
        return (conversation.state is ConversationState.QUEUED
                or conversation.agent_id == agent.id or agent.role is AgentRole.SUPERVISOR)

    async def aclose(self) -> None:
        for socket in list(self._open):
            await socket.ws.close(message=b"server shutting down")


def _not_allowed() -> web.Response:
    return _error(403, "not_allowed", "agents read the chats they held or were offered "
                  "(privacy.agents_read)")


def _token(request: web.Request) -> tuple[str | None, bool]:
    """The session token, and whether it came in a cookie (then CSRF checks apply)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):].strip() or None, False
    return request.cookies.get(COOKIE), True


def _same_origin(request: web.Request) -> bool:
    """A browser names the page that sent a request in Origin; it must be kefu's own."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not from a browser page (curl, other tools): the token is the guard
    return urlsplit(origin).netloc == request.host


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": "bad_request", "message": message}),
                              content_type="application/json")


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad_request(f"{name} must be text")
    return value


def _required_text(body: dict[str, Any], name: str) -> str:
    value = _optional_text(body, name)
    if not value or not value.strip():
        raise _bad_request(f"{name} is needed")
    return value


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = parse_json(await request.read())
    except BadJson:
        raise web.HTTPBadRequest(text='{"error":"bad_json","message":"send a JSON object"}',
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error":"bad_json","message":"send a JSON object"}',
                                 content_type="application/json")
    return body


def _text_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise DeskError("bad_request", f"{name} must be text")
    return value


def _error(status: int, code: str, message: str, **detail: object) -> web.Response:
    return web.json_response({"error": code, "message": message, **detail}, status=status,
                             dumps=_dumps)


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
