"""Real-browser tests: Playwright driving Debian's chromium (never Playwright's download)."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from tests.harness import Kefu

CHROMIUM = shutil.which("chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               "--disable-quic"]


def skip_without_chromium() -> None:
    """Skip the calling test module on a machine without chromium, except under CI."""
    if CHROMIUM is None and os.environ.get("CI") != "true":
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); "
                    "browser tests run in CI", allow_module_level=True)


def url(kefu: Kefu, path: str = "/") -> str:
    assert kefu.client is not None
    return str(kefu.client.make_url(path))


async def log_in(page: Any, kefu: Kefu, name: str, role: str = "agent",
                 password: str = "correct horse") -> None:
    """The console's login form, filled in as an agent does."""
    from playwright.async_api import expect

    await page.goto(url(kefu, "/agent/login"))
    await page.get_by_label("账号 Name").fill(name)
    await page.get_by_label("密码 Password").fill(password)
    await page.get_by_role("button", name="登录 Log in").click()
    role_name = {"agent": "客服", "supervisor": "主管"}[role]
    await expect(page.locator("#me")).to_have_text(f"{name} · {role_name}")
