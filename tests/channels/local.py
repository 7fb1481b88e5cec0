"""Stand-ins listen on 127.0.0.1, on a free port."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.test_utils import TestServer

STANDIN_ACCESS_LOG = "standin.access"


async def serve(app: web.Application) -> tuple[TestServer, str]:
    """The running server and its base URL (no trailing slash)."""
    server = TestServer(app, host="127.0.0.1")
    # The platform's own access log: its URLs may hold a token (Telegram's do), which is
    # the platform's business; tests/conftest.py checks kefu's lines, not these.
    await server.start_server(access_log=logging.getLogger(STANDIN_ACCESS_LOG))
    return server, str(server.make_url("")).rstrip("/")
