"""/metrics: what Prometheus scrapes, after real conversations; and who may scrape it."""

from __future__ import annotations

import gc
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from bot.config import Config
from tests.harness import Kefu


async def scrape(kefu: Kefu, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                      float]:
    assert kefu.client is not None
    response = await kefu.client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(await response.text())
            for s in family.samples}


async def test_metrics_count_what_customers_and_agents_did(kefu: Kefu) -> None:
    before = await scrape(kefu)
    assert before[("kefu_sla_breaches_total", (("rule", "greeting"),))] == 0
    assert before[("kefu_queue_length", ())] == 0
    assert before[("kefu_agents", (("presence", "online"),))] == 1  # "duty"

    answered = await kefu.visitor()
    await answered.open()
    await answered.say("退货怎么办")
    _, queued_id = await kefu.queued_customer("转人工")
    after = await scrape(kefu)

    webchat = (("channel", "webchat"),)
    assert after[("kefu_greeting_latency_seconds_count", webchat)] == 2
    assert after[("kefu_greeting_latency_seconds_bucket", (*webchat, ("le", "5.0")))] == 2
    assert after[("kefu_answer_latency_seconds_count", webchat)] == 2  # answer, handoff
    assert after[("kefu_messages_total", (*webchat, ("direction", "in")))] == 2
    # two greetings, the answer, the handoff message
    assert after[("kefu_messages_total", (*webchat, ("direction", "out")))] == 4
    assert after[("kefu_handoffs_total", (("reason", "request"),))] == 1
    assert after[("kefu_queue_length", ())] == 1
    assert after[("kefu_queue_oldest_wait_seconds", ())] >= 0

    duty = await kefu.agent("duty")
    await duty.act(queued_id, "take")
    taken = await scrape(kefu)
    assert taken[("kefu_queue_length", ())] == 0
    assert taken[("kefu_agent_chats", ())] == 1


async def test_metrics_are_served_only_where_the_config_allows(
        make_config: Callable[..., Config]) -> None:
    elsewhere = await Kefu(make_config(metrics={"allow": ["10.0.0.0/8"]})).start()
    try:
        assert elsewhere.client is not None
        refused = await elsewhere.client.get("/metrics")
        assert refused.status == 403
        assert "metrics.allow" in await refused.text()
    finally:
        await elsewhere.stop()

    with_token = await Kefu(make_config(metrics={"token": "s3cret-scraper"})).start()
    try:
        assert with_token.client is not None
        assert (await with_token.client.get("/metrics")).status == 401
        wrong = await with_token.client.get("/metrics",
                                            headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        await scrape(with_token, Authorization="Bearer s3cret-scraper")
    finally:
        await with_token.stop()

    off = await Kefu(make_config(metrics={"enabled": False})).start()
    try:
        assert off.client is not None
        assert (await off.client.get("/metrics")).status == 404
    finally:
        await off.stop()


async def test_metrics_show_the_garbage_collectors_pauses(kefu: Kefu) -> None:
    full = (("generation", "2"),)
    before = await scrape(kefu)
    gc.collect()  # a full collection, as Python runs them under load
    after = await scrape(kefu)
    assert after[("kefu_gc_pause_seconds_count", full)] \
        >= before[("kefu_gc_pause_seconds_count", full)] + 1
    assert after[("kefu_gc_pause_seconds_sum", full)] > before[("kefu_gc_pause_seconds_sum",
                                                                full)]
    assert after[("kefu_gc_pause_seconds_bucket", (*full, ("le", "+Inf")))] \
        == after[("kefu_gc_pause_seconds_count", full)]
