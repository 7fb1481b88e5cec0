// The customer's record beside the chat, complaint cases (docs/crm.md) and, for
// supervisors, erasing a person on their request (docs/privacy.md).
import { api, button, el } from "./api.js";
import { alertBox, confirmBox, promptBox } from "./dialog.js";
import { t } from "./i18n.js";
import { titleOf } from "./inbox.js";
import { state, $ } from "./state.js";
import { clock } from "./time.js";

let hooks = { open: () => {}, refresh: () => {}, show: () => {} };
export function crmHooks(given) { hooks = given; }

let customer = null, caseId = null, caseConversation = null;

function complain(error) { if (error.status !== 401) alertBox(error.message); }

/** A word the console knows (t(prefix + value)), else the value as it is. */
function known(prefix, value) {
  if (!value) return "";
  const key = prefix + value, text = t(key);
  return text === key ? value : text;
}

export function channelName(channel) { return known("ch_", channel); }

function caseDue(k) {
  return k.status === "resolved" ? t("followUpDue", { time: clock(k.follow_up_due_at) }) : t("due", { time: clock(k.due_at) });
}

export function caseLabel(k) {
  return [k.id, known("case_", k.status), k.repeat_of ? t("repeatCase") : "", known("sev_", k.severity)].filter(Boolean).join(" · ");
}

export function renderCases(cases) {
  const list = $("cases"); list.textContent = "";
  $("cases-count").textContent = cases.length;
  cases.forEach((k) => {
    const li = el("li", "card" + (k.overdue || k.follow_up_overdue ? " overdue" : ""));
    li.appendChild(el("div", "card-title", caseLabel(k)));
    li.appendChild(el("div", "preview", k.summary));
    li.appendChild(el("div", "card-meta", (k.customer_name || k.customer_id) + " · " + caseDue(k)));
    li.addEventListener("click", () => showCase(k.id));
    list.appendChild(li);
  });
}

export async function loadCustomer(id) {
  const view = await api("GET", "/customers/" + encodeURIComponent(id));
  if (state.detail && state.detail.customer_id !== id && state.detail.customer_id !== view.customer.id) return;
  customer = view;
  renderCustomer(view);
}

export function customerName() { return customer?.customer.name || ""; }

/** The agent chose another language: the record's words follow. */
export function rerenderCustomer() { if (customer) renderCustomer(customer); }

function customerTitle(c) {
  return c.name || c.phones[0] || c.emails[0] || (state.detail ? titleOf(state.detail.conversation) : c.id);
}

function renderCustomer(view) {
  const c = view.customer;
  $("customer-name").textContent = customerTitle(c);
  $("customer-tags").textContent = c.tags.length ? "· " + c.tags.join(", ") : "";
  $("customer-name-input").value = c.name;
  $("customer-tags-input").value = c.tags.join(", ");
  $("customer-note-input").value = "";
  const contacts = $("customer-contacts"); contacts.textContent = "";
  c.phones.concat(c.emails).forEach((value) => {
    const span = el("span", "contact", value);
    if (c.verified.includes(value)) span.appendChild(el("span", "verified", " ✓"));
    else span.appendChild(button(t("verify"), () => changeCustomer("/verify", { contact: value }), "small"));
    contacts.appendChild(span);
  });
  if (!c.phones.length && !c.emails.length) contacts.appendChild(el("span", "muted", t("noContactYet")));
  const channels = [...new Set(view.identities.map((i) => channelName(i.channel)))].join("、");
  $("customer-facts").textContent = [t("ownerIs", { name: view.owner_name || t("nobody") }), channels,
    t("conversationCount", { n: view.conversation_count }), t("ticketCount", { n: view.tickets.length })].filter(Boolean).join(" · ");
  const list = $("customer-conversations"); list.textContent = "";
  view.conversations.forEach((conv) => {
    const reason = conv.handoff_reason ? known("reason_", conv.handoff_reason) : "";
    const li = el("li", null, [clock(conv.created_at), channelName(conv.channel), t(conv.state), reason,
      conv.rating ? "★" + conv.rating : ""].filter(Boolean).join(" · ") + " ");
    li.appendChild(button(t("open"), () => hooks.open(conv.id), "small"));
    list.appendChild(li);
  });
  const notes = $("customer-notes"); notes.textContent = "";
  c.notes.forEach((n) => notes.appendChild(el("li", null, clock(n.at) + " " + n.by + ": " + n.text)));
  const matches = $("customer-matches"); matches.textContent = "";
  view.possible_matches.forEach((m) => {
    const who = (m.name || m.id) + " · " + m.phones.concat(m.emails).join(", ");
    const line = el("div", "match", t("samePerson", { who }) + " ");
    line.appendChild(button(t("merge"), async () => {
      if (await confirmBox(t("confirmMerge", { who: m.name || m.id }), { ok: t("merge") })) changeCustomer("/merge", { other_id: m.id });
    }, "small"));
    matches.appendChild(line);
  });
  const cases = $("customer-cases"); cases.textContent = "";
  view.cases.forEach((k) => {
    const line = el("div", "case-line", t("caseLine", { label: caseLabel(k) }) + " · " + k.summary + " ");
    line.appendChild(button(t("open"), () => showCase(k.id), "small"));
    cases.appendChild(line);
  });
  $("erase-customer").hidden = state.me.agent.role !== "supervisor";
}

/** Supervisors: erase the person on their request, after saying whom it erases. */
async function eraseCustomer() {
  const c = customer.customer, who = customerTitle(c) + (c.name ? "" : " (" + c.id + ")");
  const sure = await confirmBox(t("confirmErase", { who }), { title: t("eraseTitle"), ok: t("eraseGo"), danger: true });
  if (!sure) return;
  try {
    const done = await api("POST", "/customers/" + encodeURIComponent(c.id) + "/erase", { confirm: true });
    const counts = Object.entries(done.erased).filter(([, n]) => n > 0).map(([kind, n]) => {
      const key = "cnt_" + kind, text = t(key, { n });
      return text === key ? n + " " + kind : text;
    }).join(t("listComma"));
    await alertBox(t("erased", { who, counts }), { title: t("eraseTitle") });
    customer = null;
    hooks.refresh();
    if (state.selected) hooks.open(state.selected);
  } catch (error) {
    if (error.status !== 401) alertBox(t("eraseRefused", { reason: error.data?.error === "bad_state" ? t("eraseBusy") : error.message }), { title: t("eraseTitle") });
  }
}

async function changeCustomer(suffix, body) {
  try {
    const view = await api("POST", "/customers/" + encodeURIComponent(customer.customer.id) + suffix, body);
    customer = view; renderCustomer(view);
    if (view.customer.name && state.detail) $("chat-title").textContent = view.customer.name;  // as the list will
    hooks.refresh();
  } catch (error) { complain(error); }
}

export async function showCase(id) {
  const view = await api("GET", "/cases/" + encodeURIComponent(id));
  const k = view.case;
  caseId = k.id; caseConversation = k.conversation_id;
  $("case-title").textContent = [k.id, known("case_", k.status), k.repeat_of ? t("repeatOf", { id: k.repeat_of }) : ""].filter(Boolean).join(" · ");
  const info = $("case-info"); info.textContent = "";
  info.appendChild(el("span", null, t("caseInfo", {
    customer: view.customer ? (view.customer.name || view.customer.id) : k.customer_id,
    category: k.category || "-", severity: known("sev_", k.severity) }) + " · "));
  info.appendChild(el("span", k.overdue || k.follow_up_overdue ? "overdue-text" : null, caseDue(k)));
  $("case-summary").textContent = k.summary;
  const timeline = $("case-timeline"); timeline.textContent = "";
  k.timeline.forEach((e) => timeline.appendChild(el("li", null, clock(e.at) + " · " + e.by + " · " + known("what_", e.what) + (e.note ? ": " + e.note : ""))));
  hooks.show("case-view");
}

async function caseAction(action) {
  const body = {};
  let path = action;
  if (action === "resolve") {
    const how = await promptBox(t("howResolved"), { input: { multiline: true, required: true }, ok: t("resolve") });
    if (!how) return;
    body.note = how;
  } else if (action === "satisfied" || action === "unsatisfied") {
    const note = await promptBox(t("followUpNote"), { input: { multiline: true }, ok: t(action) });
    if (note === null) return;
    path = "follow_up"; body.satisfied = action === "satisfied"; body.note = note;
  } else if (action === "note") {
    const note = await promptBox(t("caseNote"), { input: { multiline: true, required: true } });
    if (!note) return;
    body.note = note;
  }
  try {
    await api("POST", "/cases/" + encodeURIComponent(caseId) + "/" + path, body);
    await showCase(caseId);
    hooks.refresh();
  } catch (error) { complain(error); }
}

export function wireCrm() {
  $("customer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    changeCustomer("", {
      name: $("customer-name-input").value,
      tags: $("customer-tags-input").value.split(/[,，]/).map((x) => x.trim()).filter(Boolean),
      note: $("customer-note-input").value || null,
    });
  });
  $("open-case").addEventListener("click", async () => {
    const summary = await promptBox(t("complaintPrompt"), { input: { multiline: true, required: true }, ok: t("openCase") });
    if (!summary) return;
    try {
      const view = await api("POST", "/cases", { conversation_id: state.detail.conversation.id, summary });
      hooks.refresh(); showCase(view.case.id);
    } catch (error) { complain(error); }
  });
  document.querySelectorAll("#case-actions [data-action]").forEach((b) => {
    b.addEventListener("click", () => caseAction(b.dataset.action));
  });
  $("case-conversation").addEventListener("click", () => hooks.open(caseConversation));
  $("erase-customer").addEventListener("click", () => { if (customer) eraseCustomer(); });
}
