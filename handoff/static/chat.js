// The open conversation: its head, the 1-minute banner, the delivery window, labels, and
// the transcript with events as quiet lines and private notes as yellow ones.
import { api, button, el } from "./api.js";
import { language, t } from "./i18n.js";
import { channelMark, titleOf } from "./inbox.js";
import { state, $ } from "./state.js";
import { age, clock, fullTime } from "./time.js";

function reasonText(reason) {
  return reason ? t("reason_" + reason) : "";
}

// A platform's own agents, by the channel that holds them (bot/channel.py platform_holder).
const PLATFORMS = { wecom: { zh: "企业微信", en: "WeCom" }, wechat: { zh: "微信", en: "WeChat" } };

/** Who an agent id is: a colleague's name, a platform's servicer or pool, or a removed account. */
export function agentName(id) {
  if (!id) return "";
  const known = state.agents.find((a) => a.id === id);
  if (known) return known.name;
  if (id.includes(":")) {
    const [channel, person] = id.split(/:(.*)/s);
    const platform = PLATFORMS[channel]?.[language()] || channel;
    return person === "pool" ? t("platformPool", { channel: platform }) : t("platformPerson", { channel: platform, name: person });
  }
  return t("removedAgent");
}

export function eventText(e) {
  const d = e.detail || {};
  const values = {
    ...d, agent: agentName(e.agent_id) || t("someone"), from_agent: agentName(d.from_agent) || t("someone"),
    to: agentName(d.to), reason: reasonText(d.reason) || d.reason || "",
    seconds: age(d.seconds ?? d.waited_seconds ?? d.age_seconds), due: d.due_at ? clock(d.due_at) : "",
  };
  if (e.type === "closed" && d.reason === "left") return t("ev_closed_left");
  if (e.type === "requeued" && d.why === "removed") return t("ev_requeued_removed");
  const key = "ev_" + e.type;
  return t(key, values) === key ? e.type.replace(/_/g, " ") : t(key, values);
}

function whyText(m) {
  const meta = m.meta || {}, parts = [];
  if (meta.scores && meta.scores.length) {
    parts.push((meta.decision || "") + ": " + meta.scores.map((s) => s.entry + " " + s.score).join(", "));
  }
  if (meta.why) parts.push(meta.why);
  return parts.join(" · ");
}

export function messageNode(m) {
  if (m.role === "system" && m.kind !== "rating_request") {
    const line = el("div", "event", m.text);
    line.dataset.seq = m.seq;
    line.title = fullTime(m.ts);
    return line;
  }
  const node = el("div", "msg " + m.role);
  node.dataset.seq = m.seq;
  const who = m.role === "agent" ? (m.meta.agent_name || "") : m.role === "bot" ? t("bot") : m.role === "system" ? "kefu" : "";
  const head = el("span", "who", (who ? who + " · " : "") + clock(m.ts));
  head.title = fullTime(m.ts);
  node.appendChild(head);
  node.appendChild(el("span", "text", m.text));
  const why = whyText(m);
  if (why) node.appendChild(el("span", "why", why));
  if (m.quick_replies && m.quick_replies.length) node.appendChild(el("span", "why", m.quick_replies.join(" | ")));
  return node;
}

function eventNode(e) {
  const line = el("div", "event", eventText(e) + " · " + clock(e.ts));
  line.title = fullTime(e.ts);
  return line;
}

export function noteNode(n) {
  const node = el("div", "note");
  node.dataset.note = n.id;
  node.appendChild(el("span", "who", t("noteBy", { name: n.agent_name || "", time: clock(n.created_at) })));
  node.appendChild(el("span", "text", n.text));
  return node;
}

export function renderTranscript(detail) {
  const box = $("transcript");
  box.textContent = "";
  const items = [
    ...detail.messages.map((m) => ({ ts: m.ts, order: 0, node: () => messageNode(m) })),
    ...detail.events.map((e) => ({ ts: e.ts, order: 1, node: () => eventNode(e) })),
    ...detail.notes.map((n) => ({ ts: n.created_at, order: 2, node: () => noteNode(n) })),
  ].sort((a, b) => a.ts - b.ts || a.order - b.order);
  items.forEach((item) => box.appendChild(item.node()));
  box.scrollTop = box.scrollHeight;
}

export function append(node) {
  const box = $("transcript");
  const near = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  box.appendChild(node);
  if (near || node.classList.contains("agent") || node.classList.contains("note")) box.scrollTop = box.scrollHeight;
}

/** How long the customer has waited for a reply, now (the detail was fetched a while ago). */
export function awaitingNow() {
  const c = state.detail?.conversation;
  if (!c || c.awaiting_seconds == null || c.state !== "agent") return null;
  return c.awaiting_seconds + (Date.now() - state.loadedAt) / 1000;
}

export function renderBanner() {
  const waited = awaitingNow();
  const late = waited != null && waited >= state.me.agent_reply_seconds;
  $("chat-flag").hidden = !late;
  if (late) $("chat-flag").textContent = t("breach", { age: age(waited) });
}

function presenceText(c) {
  if (c.customer_online === true) return { text: t("customerOnline"), cls: "online" };
  if (c.customer_online === false) return { text: t("customerLeft", { time: c.customer_left_at ? clock(c.customer_left_at) : "?" }), cls: "left" };
  return null;
}

function renderWindow(c) {
  const box = $("delivery-window");
  const w = c.delivery_window;
  box.hidden = !w;
  if (!w) return;
  const secondsLeft = (Date.parse(w.closes_at) - Date.now()) / 1000;
  box.className = "window";
  if (secondsLeft <= 0) {
    box.textContent = t("windowClosed"); box.classList.add("closed");
  } else if (w.messages_left <= 0) {
    box.textContent = t("windowUsedUp"); box.classList.add("closed");
  } else if (w.messages_left <= 1) {  // the last one: warn before it is used
    box.textContent = t("windowLast", { n: w.messages_left }) + " · " + t("windowLeft", { n: w.messages_left, time: age(secondsLeft) });
    box.classList.add("last");
  } else {
    box.textContent = t("windowLeft", { n: w.messages_left, time: age(secondsLeft) });
  }
}

function renderLabels(c, onChange) {
  const box = $("chat-labels");
  box.textContent = "";
  c.labels.forEach((label) => {
    const chip = el("span", "chip", label);
    chip.appendChild(button("×", () => onChange(c.labels.filter((x) => x !== label)), "chip-remove"))
      .setAttribute("aria-label", "remove " + label);
    box.appendChild(chip);
  });
  const input = el("input", "label-input");
  input.placeholder = t("addLabel");
  input.setAttribute("aria-label", t("labelPrompt"));
  input.maxLength = 20;
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.isComposing && input.value.trim()) {
      event.preventDefault();
      onChange(c.labels.concat([input.value.trim()]));
    }
  });
  box.appendChild(input);
}

export function renderHead(detail, onLabels) {
  const c = detail.conversation, me = state.me.agent;
  $("chat-title").textContent = titleOf(c);
  $("chat-channel").replaceChildren(channelMark(c.channel));
  const presence = presenceText(c), line = $("chat-presence");
  line.hidden = !presence;
  if (presence) { line.textContent = presence.text; line.className = "presence " + presence.cls; }
  const platform = c.state === "agent" && c.held_by_platform;
  $("chat-info").textContent = [t(c.state), c.agent_name, platform ? t("platform") : "",
    c.handoff_reason ? t("handoffReason", { reason: reasonText(c.handoff_reason) || c.handoff_reason }) : "",
    clock(c.created_at)].filter(Boolean).join(" · ");
  const supervisor = me.role === "supervisor";
  const mine = c.state === "agent" && !platform && (c.agent_id === me.id || supervisor);
  $("take").hidden = !(c.state === "queued" || c.state === "bot");
  ["hold", "transfer"].forEach((id) => { $(id).hidden = !mine; });
  $("handback").hidden = !(mine || (platform && supervisor));
  $("close").hidden = !(mine || (supervisor && c.state !== "closed"));
  $("mode-reply").hidden = !mine;
  if (!mine && state.mode === "reply") state.mode = "note";
  if (mine && !state.modeChosen) state.mode = "reply";
  $("export-text").href = "/agent/api/conversations/" + c.id + "/transcript?format=text";
  $("export-json").href = "/agent/api/conversations/" + c.id + "/transcript?format=json";
  renderLabels(c, onLabels);
  renderWindow(c);
  renderBanner();
}

export async function saveLabels(labels) {
  const c = state.detail.conversation;
  const saved = await api("POST", "/conversations/" + c.id + "/labels", { labels });
  c.labels = saved.labels;
}
