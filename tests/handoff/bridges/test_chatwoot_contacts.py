"""The Chatwoot contact of a kefu customer: found, made, adopted, kept current, erased."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bot.store import AgentRole, Customer
from tests.handoff.bridges.conftest import AFTER_RESTART, World
from tests.harness import Visitor, wait_for


async def customer_who_said(world: World, *texts: str) -> Visitor:
    """A web customer whose record holds the contacts in `texts` (captured in the
    background, so waited for)."""
    visitor = await world.kefu.visitor()
    for text in texts:
        await visitor.say(text)
    await wait_for(lambda: _captured(world, visitor.id, len(texts)))
    return visitor


async def customer_of(kefu: Any, visitor_id: str) -> Customer | None:
    identity = await kefu.store.identity("webchat", visitor_id)
    return await kefu.store.get_customer(identity.customer_id) if identity else None


async def _captured(world: World, visitor_id: str, wanted: int) -> bool:
    customer = await customer_of(world.kefu, visitor_id)
    return customer is not None and len(customer.phones) + len(customer.emails) >= wanted


async def _handed_over(world: World, visitor: Visitor) -> Any:
    await visitor.say("转人工")
    conversation = await world.kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    await wait_for(lambda: any(
        c.custom_attributes.get("kefu_conversation_id") == conversation.id
        for c in world.chatwoot.conversations.values()))
    return world.chatwoot.conversation_of(conversation.id)


@pytest.mark.parametrize("known_by", ["email", "phone_number"])
async def test_a_person_your_team_already_has_in_chatwoot_is_that_contact(
        world: World, known_by: str) -> None:
    """Chatwoot keeps emails and phone numbers unique: POST /contacts is refused (422), and
    kefu uses the contact that has them, adding its own attributes, keeping the staff's."""
    staff = world.chatwoot.add_contact(
        name="王先生 (VIP)", custom_attributes={"tier": "gold"},
        **({"email": "wang@example.com"} if known_by == "email"
           else {"phone_number": "+8613812345678"}))
    visitor = await customer_who_said(world, "我的邮箱 wang@example.com",
                                      "电话 13812345678")
    chatwoot = await _handed_over(world, visitor)
    assert chatwoot.contact_id == staff["id"] and len(world.chatwoot.contacts) == 1
    contact = world.chatwoot.contacts[staff["id"]]
    assert contact["name"] == "王先生 (VIP)"  # the staff's
    assert contact["identifier"].startswith("kefu:C")
    assert contact["email"] == "wang@example.com"
    assert contact["phone_number"] == "+8613812345678"  # filled in: it had none
    attributes = contact["custom_attributes"]
    assert attributes["tier"] == "gold" and attributes["kefu_webchat"] == visitor.id
    assert attributes["kefu_emails"] == "wang@example.com"
    assert attributes["kefu_phones"] == "13812345678"
    refused = [p for m, p in world.chatwoot.calls if m == "POST" and p.endswith("/contacts")]
    assert len(refused) == 1
    await wait_for(lambda: any("handed this customer over" in m.content
                               for m in world.chatwoot.thread(chatwoot)))


async def test_two_kefu_records_of_one_person_share_their_contact(world: World) -> None:
    first = await customer_who_said(world, "邮箱 wang@example.com")
    one = await _handed_over(world, first)
    second = await customer_who_said(world, "我是王先生 wang@example.com")
    other = await _handed_over(world, second)
    assert one.contact_id == other.contact_id and len(world.chatwoot.contacts) == 1
    assert one.id != other.id  # one conversation each
    contact = world.chatwoot.contacts[one.contact_id]
    assert contact["custom_attributes"]["kefu_webchat"] in (first.id, second.id)


async def test_chatwoot_refusing_the_contact_is_logged_once_and_tried_less_often(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.chatwoot.contact_refusal = "Contact limit reached for this plan"
    with caplog.at_level(logging.DEBUG, logger="handoff.bridges.chatwoot.bridge"):
        visitor = await world.kefu.visitor()
        said = await visitor.say("转人工")
        assert any(m["kind"] == "handoff" for m in said)  # kefu's own messages go on
        await asyncio.sleep(1.5)
        tries = [p for m, p in world.chatwoot.calls if m == "POST" and p.endswith("/contacts")]
        # sync every 0.1 s would be 15 tries; the back-off (0.1, 0.2, 0.3, 0.3...) is fewer
        assert 2 <= len(tries) <= 10
        errors = [r for r in caplog.records if r.levelno >= logging.WARNING
                  and "not copied" in r.getMessage()]
        assert len(errors) == 1 and errors[0].levelno == logging.ERROR
        assert "Contact limit reached for this plan" in errors[0].getMessage()
        world.chatwoot.contact_refusal = None
        conversation = await world.kefu.store.latest_conversation("webchat", visitor.id)
        assert conversation is not None
        await wait_for(lambda: any(
            c.custom_attributes.get("kefu_conversation_id") == conversation.id
            for c in world.chatwoot.conversations.values()))
        await wait_for(lambda: any("copied again" in r.getMessage() for r in caplog.records))


async def test_the_contact_follows_kefus_record_but_keeps_what_staff_typed(
        world: World) -> None:
    visitor, conversation = await world.handed_off()
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    contact = world.chatwoot.contacts[chatwoot.contact_id]
    assert contact["email"] is None and contact["phone_number"] is None
    await visitor.say("我的电话 13812345678，邮箱 wang@example.com")
    await wait_for(lambda: contact["phone_number"] == "+8613812345678"
                   and contact["email"] == "wang@example.com")
    assert contact["custom_attributes"]["kefu_phones"] == "13812345678"
    assert contact["custom_attributes"]["kefu_emails"] == "wang@example.com"
    assert [m for m, p in world.chatwoot.calls
            if p.endswith(f"/contacts/{contact['id']}")].count("PUT") == 1
    contact["email"] = "wang.work@shop.example"  # an agent corrects it in Chatwoot
    await visitor.say("另一个邮箱 xiaoming@example.com")
    await wait_for(lambda: "xiaoming@example.com" in
                   contact["custom_attributes"]["kefu_emails"])
    assert contact["custom_attributes"]["kefu_emails"] == \
        "wang@example.com, xiaoming@example.com"
    assert contact["email"] == "wang.work@shop.example"  # the agent's stays
    assert contact["phone_number"] == "+8613812345678"


async def test_an_erased_customer_leaves_nothing_in_chatwoot(world: World) -> None:
    """Erasure queues the contact's deletion in kefu's store: Chatwoot down then still
    gets it, once back; deleting the contact deletes its conversations in Chatwoot."""
    kefu = await world.restart(catch_up_seconds=0.2)
    visitor = await customer_who_said(world, "我叫王小明，电话 13812345678，邮箱 wang@example.com")
    chatwoot = await _handed_over(world, visitor)
    await wait_for(lambda: any("handed this customer over" in m.content
                               for m in world.chatwoot.thread(chatwoot)))
    await world.chatwoot.resolve(chatwoot)  # the chat ends in Chatwoot, and so in kefu
    conversation = await kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    await wait_for(lambda: _closed(kefu, conversation.id), within=AFTER_RESTART)
    await visitor.disconnect()
    customer = await customer_of(kefu, visitor.id)
    assert customer is not None
    await kefu.add_agent("boss", role=AgentRole.SUPERVISOR, online=True)
    boss = await kefu.agent("boss")
    world.chatwoot.down = True
    erased = (await boss.post(f"/customers/{customer.id}/erase", {"confirm": True}))["erased"]
    assert erased["helpdesk records to delete"] == 1
    await asyncio.sleep(0.6)  # a few rounds, Chatwoot still down
    assert world.chatwoot.contacts
    world.chatwoot.down = False
    await wait_for(lambda: not world.chatwoot.contacts, within=AFTER_RESTART)
    assert not world.chatwoot.conversations and not world.chatwoot.messages
    assert not world.chatwoot.contact_inboxes
    assert not [k for k in await kefu.store.state_keys() if k.startswith("chatwoot")]


async def _closed(kefu: Any, conversation_id: str) -> bool:
    from bot.messages import ConversationState
    found = await kefu.store.get_conversation(conversation_id)
    return found is not None and found.state is ConversationState.CLOSED


async def test_a_phone_another_contact_has_stays_in_the_custom_attributes(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    other = world.chatwoot.add_contact(name="李四", phone_number="+8613900001111")
    visitor, conversation = await world.handed_off()
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    contact = world.chatwoot.contacts[chatwoot.contact_id]
    with caplog.at_level(logging.INFO, logger="handoff.bridges.chatwoot.bridge"):
        await visitor.say("电话 13900001111，邮箱 wang@example.com")
        await wait_for(lambda: contact["email"] == "wang@example.com")
    assert contact["phone_number"] is None  # PUT refused for the phone (422): kept out
    assert contact["custom_attributes"]["kefu_phones"] == "13900001111"
    assert other["phone_number"] == "+8613900001111" and other["name"] == "李四"
    assert any("keeps its phone_number" in r.getMessage() for r in caplog.records)
