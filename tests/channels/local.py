"""Stand-ins listen on 127.0.0.1, on a free port."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer


async def serve(app: web.Application) -> tuple[TestServer, str]:
    """The running server and its base URL (no trailing slash)."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")
