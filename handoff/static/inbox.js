// The inbox: tabs with counts, filters, search and the conversation cards.
import { api, el } from "./api.js";
import { t } from "./i18n.js";
import { state, $ } from "./state.js";
import { age, clock } from "./time.js";

// A channel's mark: a short coloured word, so no emoji font is needed.
const CHANNEL_MARKS = { webchat: "Web", wechat: "微信", wecom: "企微", qq: "QQ", telegram: "TG", onebot: "QQ" };

export function channelMark(channel) {
  const mark = el("span", "channel ch-" + channel, CHANNEL_MARKS[channel] || channel);
  mark.title = t("ch_" + channel) === "ch_" + channel ? channel : t("ch_" + channel);
  return mark;
}

export function titleOf(c) {
  return c.title || t("visitor", { id: c.user_id.slice(-6) });
}

export function waitedOf(c) {
  return c.awaiting_seconds ?? (c.state === "queued" ? c.waited_seconds : null);
}

function query() {
  const params = new URLSearchParams({ tab: state.tab });
  for (const [id, name] of [["filter-channel", "channel"], ["filter-state", "state"],
                            ["filter-label", "label"], ["filter-waiting", "waiting"]]) {
    if ($(id).value) params.set(name, $(id).value);
  }
  if ($("search").value.trim()) params.set("q", $("search").value.trim());
  return params.toString();
}

export async function loadInbox() {
  const inbox = await api("GET", "/inbox?" + query());
  state.inbox = inbox;
  renderInbox(inbox);
  return inbox;
}

function renderTabs(inbox) {
  document.querySelectorAll("#tabs [data-tab]").forEach((tab) => {
    const count = inbox.counts[tab.dataset.tab];
    tab.hidden = count === undefined;
    tab.classList.toggle("active", tab.dataset.tab === state.tab);
    tab.setAttribute("aria-selected", String(tab.dataset.tab === state.tab));
    tab.querySelector(".count").textContent = count ?? "";
  });
  const labels = $("filter-label"), chosen = labels.value;
  labels.length = 1;
  inbox.labels.forEach((label) => labels.appendChild(new Option(label, label)));
  labels.value = inbox.labels.includes(chosen) ? chosen : "";
}

function card(c) {
  const li = el("li", "card");
  li.dataset.id = c.id;
  if (c.id === state.selected) li.classList.add("selected");
  if (c.flagged) li.classList.add("flagged");
  const top = el("div", "card-top");
  top.appendChild(channelMark(c.channel));
  top.appendChild(el("span", "card-title", titleOf(c)));
  if (c.customer_online === true) top.appendChild(el("span", "dot online")).title = t("customerOnline");
  if (c.customer_online === false) top.appendChild(el("span", "dot left")).title = t("customerLeft", { time: clock(c.customer_left_at) });
  const when = c.last_message ? clock(c.last_message.ts) : "";
  top.appendChild(el("span", "card-time", when));
  li.appendChild(top);
  const last = c.last_message;
  const bottom = el("div", "card-bottom");
  // what the customer last said; a reply mark only while they have said nothing
  bottom.appendChild(el("span", "preview", c.preview || (last ? "↩ " + last.text : "")));
  if (c.unread) bottom.appendChild(el("span", "badge", String(c.unread)));
  li.appendChild(bottom);
  const meta = el("div", "card-meta");
  const waited = waitedOf(c);
  if (waited != null && c.state !== "closed") meta.appendChild(el("span", c.flagged ? "wait late" : "wait", t("waiting", { age: age(waited) })));
  if (state.tab === "all" && c.agent_name) meta.appendChild(el("span", "holder", c.agent_name));
  c.labels.forEach((label) => meta.appendChild(el("span", "chip", label)));
  if (meta.children.length) li.appendChild(meta);
  return li;
}

export function renderInbox(inbox) {
  renderTabs(inbox);
  const list = $("inbox");
  list.textContent = "";
  inbox.conversations.forEach((c) => list.appendChild(card(c)));
  $("inbox-empty").hidden = inbox.conversations.length > 0;
}
