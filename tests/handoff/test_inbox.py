"""The console's inbox, notes, labels, presence, typing and accounts, through the agent API."""

from __future__ import annotations

import asyncio

from bot.store import AgentRole
from handoff.auth import verify_password
from tests.harness import Kefu, wait_for


async def test_tabs_count_and_list_mine_unassigned_and_all(kefu: Kefu) -> None:
    await kefu.add_agent("boss", role=AgentRole.SUPERVISOR, online=True)
    _, first = await kefu.queued_customer("转人工")
    _, second = await kefu.queued_customer("我要投诉，快递丢了")
    duty = await kefu.agent("duty")
    await duty.act(first, "take")

    mine = await duty.get("/inbox?tab=mine")
    assert mine["counts"] == {"mine": 1, "unassigned": 1}  # no All tab for an agent
    assert [c["id"] for c in mine["conversations"]] == [first]
    queue = await duty.get("/inbox?tab=unassigned")
    assert [c["id"] for c in queue["conversations"]] == [second]
    assert queue["conversations"][0]["last_message"]["text"]
    response = await duty.client.get("/agent/api/inbox?tab=all", headers=duty.headers)
    assert response.status == 403

    boss = await kefu.agent("boss")
    every = await boss.get("/inbox?tab=all")
    assert every["counts"] == {"mine": 0, "unassigned": 1, "all": 2}
    assert {c["id"] for c in every["conversations"]} == {first, second}
    bad = await boss.client.get("/agent/api/inbox?tab=everything", headers=boss.headers)
    assert bad.status == 400


async def test_search_finds_message_text_and_filters_narrow_the_counts(kefu: Kefu) -> None:
    _, parcel = await kefu.queued_customer("转人工，快递三天没动")
    _, invoice = await kefu.queued_customer("转人工，发票抬头开错了")
    duty = await kefu.agent("duty")
    found = await duty.get("/inbox?tab=unassigned&q=" + "发票")
    assert [c["id"] for c in found["conversations"]] == [invoice]
    assert found["counts"]["unassigned"] == 1
    assert (await duty.get("/inbox?tab=unassigned&channel=wechat"))["conversations"] == []
    assert len((await duty.get("/inbox?tab=unassigned&waiting=0"))["conversations"]) == 2
    assert (await duty.get("/inbox?tab=unassigned&waiting=3600"))["conversations"] == []
    await duty.post(f"/conversations/{parcel}/labels", {"labels": ["物流", " 加急 ", "物流"]})
    labelled = await duty.get("/inbox?tab=unassigned&label=物流")
    assert [(c["id"], c["labels"]) for c in labelled["conversations"]] == [
        (parcel, ["加急", "物流"])]
    assert labelled["labels"] == ["加急", "物流"]


async def test_a_conversation_is_titled_by_the_customers_name_or_contact(kefu: Kefu) -> None:
    _, cid = await kefu.queued_customer("转人工，电话 13812345678")
    duty = await kefu.agent("duty")
    summary = (await duty.get("/inbox?tab=unassigned"))["conversations"][0]
    assert summary["title"] == "13812345678"
    customer_id = (await duty.get(f"/conversations/{cid}"))["customer_id"]
    await duty.post(f"/customers/{customer_id}", {"name": "李女士"})
    assert (await duty.get("/inbox?tab=unassigned&q=李女士"))["conversations"][0]["title"] \
        == "李女士"


async def test_notes_stay_with_agents_and_reach_every_console(kefu: Kefu) -> None:
    visitor, cid = await kefu.queued_customer()
    duty = await kefu.agent("duty")
    note = await duty.post(f"/conversations/{cid}/notes", {"text": "老顾客，上次补偿过"})
    assert note["note"]["agent_name"] == "duty"
    frame = await duty.next_event("note", cid)
    assert frame["note"]["text"] == "老顾客，上次补偿过"
    detail = await duty.get(f"/conversations/{cid}")
    assert [n["text"] for n in detail["notes"]] == ["老顾客，上次补偿过"]
    assert all("老顾客" not in m["text"] for m in detail["messages"])
    assert all("老顾客" not in str(f) for f in visitor.frames)
    await duty.post(f"/conversations/{cid}/notes", {"text": "  "}, status=400)
    await duty.post(f"/conversations/{cid}/notes", {"text": "x" * 2001}, status=400)
    await duty.post("/conversations/nope/notes", {"text": "hi"}, status=404)
    await duty.post(f"/conversations/{cid}/labels", {"labels": "vip"}, status=400)
    await duty.post(f"/conversations/{cid}/labels", {"labels": ["x" * 21]}, status=400)


async def test_the_customer_is_shown_online_then_left_with_the_time(kefu: Kefu) -> None:
    visitor, cid = await kefu.queued_customer()
    duty = await kefu.agent("duty")
    summary = (await duty.get(f"/conversations/{cid}"))["conversation"]
    assert (summary["customer_online"], summary["customer_left_at"]) == (True, None)
    await visitor.disconnect()

    async def left() -> bool:
        summary = (await duty.get(f"/conversations/{cid}"))["conversation"]
        return summary["customer_online"] is False and summary["customer_left_at"] is not None

    await wait_for(left)


async def test_a_held_chat_whose_customer_left_long_ago_is_closed(kefu: Kefu) -> None:
    visitor, cid = await kefu.queued_customer()
    duty = await kefu.agent("duty")
    await duty.act(cid, "take")
    await visitor.disconnect()

    async def gone() -> bool:
        state = await kefu.store.load_state(f"webchat:presence:{visitor.id}")
        return state is not None and "left_at" in state

    await wait_for(gone)
    presence = await kefu.store.load_state(f"webchat:presence:{visitor.id}")
    assert presence is not None
    after = kefu.config.desk.console.close_left_after_seconds
    await kefu.store.save_state(f"webchat:presence:{visitor.id}",
                                {**presence, "left_at": presence["left_at"] - after - 1})
    await kefu.desk.tick()
    await kefu.router.idle()
    conversation = await kefu.store.get_conversation(cid)
    assert conversation is not None
    assert (conversation.state.value, conversation.close_reason) == ("closed", "left")
    assert (await duty.get("/inbox?tab=mine"))["conversations"] == []


async def test_a_typing_customer_is_shown_to_the_agent(kefu: Kefu) -> None:
    visitor, cid = await kefu.queued_customer()
    duty = await kefu.agent("duty")
    await duty.act(cid, "take")
    await visitor.send({"type": "typing"})
    frame = await asyncio.wait_for(duty.next_event("typing", cid), 5)
    assert frame == {"type": "typing", "conversation_id": cid}


async def test_settings_are_kept_and_checked(kefu: Kefu) -> None:
    duty = await kefu.agent("duty")
    assert (await duty.get("/me"))["settings"] == {"agent_id": (await duty.get("/me"))[
        "agent"]["id"], "lang": "zh", "muted": []}
    await duty.post("/me/settings", {"lang": "en", "muted": ["breach", "new_chat"]})
    settings = (await duty.get("/me"))["settings"]
    assert (settings["lang"], settings["muted"]) == ("en", ["breach", "new_chat"])
    await duty.post("/me/settings", {"lang": "fr"}, status=400)
    await duty.post("/me/settings", {"muted": ["everything"]}, status=400)


async def test_agents_change_their_password_and_supervisors_manage_accounts(kefu: Kefu
                                                                           ) -> None:
    boss_account = await kefu.add_agent("boss", role=AgentRole.SUPERVISOR)
    duty = await kefu.agent("duty")
    await duty.post("/me/password", {"current": "wrong one", "new": "a new password"},
                    status=403)
    await duty.post("/me/password", {"current": "correct horse", "new": "short"}, status=400)
    elsewhere = await kefu.agent("duty")  # the same account logged in on another device
    await duty.post("/me/password", {"current": "correct horse", "new": "a new password"})
    stored = await kefu.store.agent_by_name("duty")
    assert stored is not None and verify_password("a new password", stored.password_hash)
    assert (await duty.get("/me"))["agent"]["name"] == "duty"  # who changed it stays in
    response = await elsewhere.client.get("/agent/api/me", headers=elsewhere.headers)
    assert response.status == 401  # whoever knew the old password is logged out

    boss = await kefu.agent("boss")
    await duty.post("/agents", {"name": "mei", "password": "mei's password"}, status=403)
    added = await boss.post("/agents", {"name": "mei", "password": "mei's password",
                                        "role": "agent", "max_chats": 3})
    await boss.post("/agents", {"name": "mei", "password": "mei's password"}, status=409)
    mei = await kefu.agent("mei", "mei's password")
    mei_id = added["agent"]["id"]
    await boss.post(f"/agents/{mei_id}/disable")
    response = await mei.client.get("/agent/api/me", headers=mei.headers)
    assert response.status == 401  # a disabled account's sessions stop working
    refused = await mei.client.post("/agent/api/login",
                                    json={"name": "mei", "password": "mei's password"})
    assert refused.status == 401
    listed = {a["name"]: a for a in await boss.get("/agents")}
    assert listed["mei"]["disabled"] is True
    await boss.post(f"/agents/{mei_id}/enable")
    await mei.get("/me")
    await boss.post(f"/agents/{mei_id}/password", {"password": "reset by boss"})
    response = await mei.client.get("/agent/api/me", headers=mei.headers)
    assert response.status == 401  # a reset password ends the account's sessions
    await kefu.agent("mei", "reset by boss")
    await boss.post(f"/agents/{boss_account.id}/disable", status=409)
    await boss.post("/agents/nobody/disable", status=404)
