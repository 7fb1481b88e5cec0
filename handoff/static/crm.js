// The customer's record beside the chat, and complaint cases (docs/crm.md).
import { api, button, el } from "./api.js";
import { titleOf } from "./inbox.js";
import { state, $ } from "./state.js";
import { clock } from "./time.js";

let hooks = { open: () => {}, refresh: () => {}, show: () => {} };
export function crmHooks(given) { hooks = given; }

let customer = null, caseId = null, caseConversation = null;

function complain(error) { if (error.status !== 401) alert(error.message); }

export function caseLabel(k) {
  return k.id + " · " + k.status + (k.repeat_of ? " · 重复 repeat" : "") + " · " + (k.severity || "");
}

export function renderCases(cases) {
  const list = $("cases"); list.textContent = "";
  $("cases-count").textContent = cases.length;
  cases.forEach((k) => {
    const li = el("li", "card" + (k.overdue || k.follow_up_overdue ? " overdue" : ""));
    li.appendChild(el("div", "card-title", caseLabel(k)));
    li.appendChild(el("div", "preview", k.summary));
    const due = k.status === "resolved" ? "回访 follow-up " + clock(k.follow_up_due_at) : "截止 due " + clock(k.due_at);
    li.appendChild(el("div", "card-meta", (k.customer_name || k.customer_id) + " · " + due));
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

function renderCustomer(view) {
  const c = view.customer;
  $("customer-name").textContent = c.name || c.phones[0] || c.emails[0] ||
    (state.detail ? titleOf(state.detail.conversation) : c.id);
  $("customer-tags").textContent = c.tags.length ? "· " + c.tags.join(", ") : "";
  $("customer-name-input").value = c.name;
  $("customer-tags-input").value = c.tags.join(", ");
  $("customer-note-input").value = "";
  const contacts = $("customer-contacts"); contacts.textContent = "";
  c.phones.concat(c.emails).forEach((value) => {
    const span = el("span", "contact", value);
    if (c.verified.includes(value)) span.appendChild(el("span", "verified", " ✓"));
    else span.appendChild(button("核实 Verify", () => changeCustomer("/verify", { contact: value }), "small"));
    contacts.appendChild(span);
  });
  if (!c.phones.length && !c.emails.length) contacts.appendChild(el("span", "muted", "没有联系方式 no phone or email yet"));
  $("customer-facts").textContent = "负责人 owner: " + (view.owner_name || "-") + " · " +
    view.identities.map((i) => i.channel).join(", ") + " · 会话 conversations: " +
    view.conversation_count + " · 留言 offline messages: " + view.tickets.length;
  const list = $("customer-conversations"); list.textContent = "";
  view.conversations.forEach((conv) => {
    const li = el("li", null, clock(conv.created_at) + " · " + conv.channel + " · " + conv.state +
      (conv.handoff_reason ? " · " + conv.handoff_reason : "") + (conv.rating ? " · ★" + conv.rating : "") + " ");
    li.appendChild(button("查看 Open", () => hooks.open(conv.id), "small"));
    list.appendChild(li);
  });
  const notes = $("customer-notes"); notes.textContent = "";
  c.notes.forEach((n) => notes.appendChild(el("li", null, clock(n.at) + " " + n.by + ": " + n.text)));
  const matches = $("customer-matches"); matches.textContent = "";
  view.possible_matches.forEach((m) => {
    const line = el("div", "match", "可能是同一人 Same person? " + (m.name || m.id) + " · " + m.phones.concat(m.emails).join(", ") + " ");
    line.appendChild(button("合并 Merge", () => {
      if (confirm("把 " + m.id + " 合并到当前客户？ Merge into this customer?")) changeCustomer("/merge", { other_id: m.id });
    }, "small"));
    matches.appendChild(line);
  });
  const cases = $("customer-cases"); cases.textContent = "";
  view.cases.forEach((k) => {
    const line = el("div", "case-line", "投诉 " + caseLabel(k) + " · " + k.summary + " ");
    line.appendChild(button("查看 Open", () => showCase(k.id), "small"));
    cases.appendChild(line);
  });
}

async function changeCustomer(suffix, body) {
  try {
    const view = await api("POST", "/customers/" + encodeURIComponent(customer.customer.id) + suffix, body);
    customer = view; renderCustomer(view);
  } catch (error) { complain(error); }
}

export async function showCase(id) {
  const view = await api("GET", "/cases/" + encodeURIComponent(id));
  const k = view.case;
  caseId = k.id; caseConversation = k.conversation_id;
  $("case-title").textContent = k.id + " · " + k.status + (k.repeat_of ? " · 重复投诉 repeat of " + k.repeat_of : "");
  const info = $("case-info"); info.textContent = "";
  info.appendChild(el("span", null, "客户 customer: " + (view.customer ? (view.customer.name || view.customer.id) : k.customer_id) +
    " · 类别 " + (k.category || "-") + " · 严重度 " + k.severity + " · "));
  const due = k.status === "resolved" ? "回访 follow-up due " + clock(k.follow_up_due_at) : "截止 due " + clock(k.due_at);
  info.appendChild(el("span", k.overdue || k.follow_up_overdue ? "overdue-text" : null, due));
  $("case-summary").textContent = k.summary;
  const timeline = $("case-timeline"); timeline.textContent = "";
  k.timeline.forEach((e) => timeline.appendChild(el("li", null, clock(e.at) + " · " + e.by + " · " + e.what + (e.note ? ": " + e.note : ""))));
  hooks.show("case-view");
}

async function caseAction(action) {
  const body = {};
  let path = action;
  if (action === "resolve") {
    const how = prompt("如何解决的？ How was it resolved?", "");
    if (!how) return;
    body.note = how;
  } else if (action === "satisfied" || action === "unsatisfied") {
    path = "follow_up"; body.satisfied = action === "satisfied";
    body.note = prompt("回访记录 Follow-up note", "") || "";
  } else if (action === "note") {
    const note = prompt("备注 Note", "");
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
    const summary = prompt("投诉内容 What is the complaint?", "");
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
}
