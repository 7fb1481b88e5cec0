"""The widget in a real browser: Playwright driving Debian's chromium against a real kefu."""

from __future__ import annotations

import pytest

from tests.browser import skip_without_chromium, url
from tests.harness import Kefu

pytestmark = pytest.mark.browser
skip_without_chromium()

from playwright.async_api import Browser, Page, expect  # noqa: E402


async def ask(page: Page, text: str) -> None:
    await page.get_by_role("textbox").fill(text)
    await page.get_by_role("textbox").press("Enter")


async def test_customer_opens_the_widget_is_greeted_and_answered(
    kefu: Kefu, browser: Browser
) -> None:
    page = await browser.new_page()
    await page.goto(url(kefu))
    await page.get_by_role("button", name="客服").click()
    greeting = page.locator(".kefu-kind-greeting")
    await expect(greeting).to_contain_text("欢迎光临测试店")
    await ask(page, "退货怎么办")
    await expect(page.locator(".kefu-kind-answer")).to_have_text("签收后 7 天内可以无理由退货。")
    await expect(page.locator(".kefu-customer")).to_have_text("退货怎么办")
    await expect(page.locator(".kefu-pending")).to_have_count(0)  # acknowledged
    await expect(greeting).to_have_count(1)


async def test_quick_replies_are_buttons_and_history_survives_a_reload(
    kefu: Kefu, browser: Browser
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(url(kefu))
    await page.get_by_role("button", name="客服").click()
    await ask(page, "退")  # return, or refund?
    option = page.locator(".kefu-quick button").filter(has_text="退货").first
    await expect(page.locator(".kefu-quick button").last).to_have_text("人工客服")
    chosen = await option.text_content()
    assert chosen in ("退货怎么办", "可以退货吗", "退货政策是什么")
    await option.click()
    await expect(page.locator(".kefu-kind-answer")).to_have_text("签收后 7 天内可以无理由退货。")

    await page.reload()  # same visitor id from localStorage: the conversation resumes
    await page.get_by_role("button", name="客服").click()
    await expect(page.locator(".kefu-kind-answer")).to_have_count(1)
    await expect(page.locator(".kefu-kind-greeting")).to_have_count(1)
    await expect(page.locator(".kefu-customer")).to_have_text(["退", chosen])
    await context.close()


async def test_customer_text_is_shown_as_text_never_as_html(kefu: Kefu, browser: Browser) -> None:
    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(url(kefu))
    await page.get_by_role("button", name="客服").click()
    payload = '<img src=x onerror="alert(1)">'
    await ask(page, payload)
    await expect(page.locator(".kefu-customer")).to_have_text(payload)
    await expect(page.locator(".kefu-kind-fallback")).to_have_count(1)
    assert await page.locator(".kefu-log img").count() == 0
    assert dialogs == []
