// kefu agent console: plain ES modules, no build step. API: docs/agent-api.md.
// Every text from customers (and everyone else) reaches the page as textContent.
import { api, button, el, setCsrf } from "./api.js";
import { append, messageNode, noteNode, renderBanner, renderHead, renderTranscript, saveLabels } from "./chat.js";
import { Composer } from "./composer.js";
import { alertBox, confirmBox, promptBox } from "./dialog.js";
import { crmHooks, customerName, loadCustomer, renderCases, rerenderCustomer, wireCrm } from "./crm.js";
import { loadInbox, titleOf, waitedOf } from "./inbox.js";
import { setLanguage, t, translatePage } from "./i18n.js";
import { askPermission, notify, setMuted, setTitleCount, unlockSound } from "./notify.js";
import { openAccounts, openSettings } from "./admin.js";
import { wireTrail } from "./trail.js";
import { state, $ } from "./state.js";
import { age, clock, setZone } from "./time.js";

const PANES = ["chat", "case-view", "handover", "trail", "empty"];
const breachTimers = new Map();  // conversation id -> timer for its 1-minute mark
const told = new Set();          // conversations whose breach was already notified
let known = null;                // ids seen in the queue, to tell new chats from old

function show(pane) {
  PANES.forEach((id) => { $(id).hidden = id !== pane; });
  $("customer-side").hidden = pane !== "chat";
  if (pane !== "chat") showDrawer(false);
}

/** On a tablet the customer's record is a drawer over the chat, opened from its head. */
function showDrawer(open) {
  $("customer-side").classList.toggle("open", open);
  $("toggle-customer").setAttribute("aria-expanded", String(open));
}

function complain(error) { if (error.status !== 401) alertBox(error.message); }

// the inbox and the side lists

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refresh().catch(console.error), 150);
}

async function refresh() {
  const [inbox, mine, queue, tickets, cases] = await Promise.all([
    loadInbox(), api("GET", "/inbox?tab=mine"), api("GET", "/inbox?tab=unassigned"),
    api("GET", "/tickets"), api("GET", "/cases")]);
  renderTickets(tickets);
  renderCases(cases);
  watchQueue(queue.conversations);
  watchBreaches(mine.conversations);
  const unread = mine.conversations.reduce((sum, c) => sum + (c.unread || 0), 0);
  // a chat past the 1-minute rule counts once even when its messages were read
  const late = mine.conversations.filter((c) => !c.unread && c.awaiting_seconds != null &&
    c.awaiting_seconds >= state.me.agent_reply_seconds).length;
  setTitleCount(unread + late + queue.conversations.length);
  return inbox;
}

function watchQueue(queued) {
  const ids = new Set(queued.map((c) => c.id));
  if (known) {
    queued.filter((c) => !known.has(c.id)).forEach((c) => {
      notify("new_chat", t("newChat"), t("newChatBody", { who: titleOf(c) }), c.id, () => select(c.id));
    });
  }
  known = ids;
}

/** A timer per chat of mine for the moment it passes the 1-minute rule. */
function watchBreaches(mine) {
  const limit = state.me.agent_reply_seconds;
  breachTimers.forEach((timer) => clearTimeout(timer));
  breachTimers.clear();
  mine.forEach((c) => {
    if (c.awaiting_seconds == null) { told.delete(c.id); return; }
    const due = (limit - c.awaiting_seconds) * 1000;
    const fire = () => {
      if (told.has(c.id)) return;
      told.add(c.id);
      notify("breach", t("breachTitle"), t("breachBody", { who: titleOf(c), age: age(waitedOf(c) + Math.max(0, -due) / 1000) }), c.id, () => select(c.id));
      refreshSoon();
    };
    if (due <= 0) fire(); else breachTimers.set(c.id, setTimeout(fire, due + 200));
  });
}

function renderTickets(tickets) {
  const list = $("tickets"); list.textContent = "";
  $("tickets-count").textContent = tickets.length;
  tickets.forEach((k) => {
    const li = el("li", "card" + (k.overdue ? " overdue" : ""));
    li.appendChild(el("div", "card-title", k.id + " · " + t("due", { time: clock(k.due_at) }) + (k.overdue ? " · " + t("overdue") : "")));
    li.appendChild(el("div", "preview", k.question));
    li.appendChild(el("div", "card-meta", k.contact || t("noContact")));
    const row = el("div", "row");
    row.appendChild(button(t("open"), (event) => { event.stopPropagation(); select(k.conversation_id); }, "small"));
    row.appendChild(button(t("ticketDone"), async (event) => {
      event.stopPropagation();
      const note = await promptBox(t("whatWasDone"), { input: { multiline: true }, ok: t("ticketDone") });
      if (note === null) return;
      await api("POST", "/tickets/" + encodeURIComponent(k.id) + "/done", { note }).catch(complain);
      refreshSoon();
    }, "small"));
    li.appendChild(row);
    list.appendChild(li);
  });
}

// the open conversation

async function select(id) {
  state.selected = id;
  const detail = await api("GET", "/conversations/" + encodeURIComponent(id));
  if (state.selected !== id) return;
  state.detail = detail; state.loadedAt = Date.now();
  show("chat");
  renderHead(detail, changeLabels);
  setMode(state.mode);
  renderTranscript(detail);
  $("earlier-count").textContent = detail.earlier.length;
  const earlier = $("earlier-list"); earlier.textContent = "";
  detail.earlier.forEach((c) => {
    const box = el("div", "earlier");
    box.appendChild(el("h3", null, clock(c.created_at) + " · " + t(c.state) + (c.rating ? " · ★" + c.rating : "")));
    c.messages.forEach((m) => box.appendChild(messageNode(m)));
    earlier.appendChild(box);
  });
  if (detail.customer_id) loadCustomer(detail.customer_id).catch(console.error);
  document.querySelectorAll("#inbox .card").forEach((card) => card.classList.toggle("selected", card.dataset.id === id));
  markRead();
}

async function changeLabels(labels) {
  try { await saveLabels(labels); renderHead(state.detail, changeLabels); refreshSoon(); } catch (error) { complain(error); }
}

function lastSeq() {
  return state.detail.messages.reduce((most, m) => Math.max(most, m.seq), 0);
}

async function markRead() {
  const c = state.detail?.conversation;
  if (!c || c.state !== "agent" || c.agent_id !== state.me.agent.id || !lastSeq()) return;
  await api("POST", "/conversations/" + c.id + "/read", { seq: lastSeq() }).catch(console.error);
}

async function act(action, body) {
  const c = state.detail.conversation;
  try {
    const result = await api("POST", "/conversations/" + c.id + "/" + action, body);
    await select(c.id);
    refreshSoon();
    return result;
  } catch (error) { complain(error); }
}

function setMode(mode) {
  state.mode = mode;
  $("mode-reply").classList.toggle("active", mode === "reply");
  $("mode-note").classList.toggle("active", mode === "note");
  $("reply-form").classList.toggle("noting", mode === "note");
  $("reply").placeholder = t(mode === "note" ? "notePlaceholder" : "replyPlaceholder");
  $("send").textContent = t(mode === "note" ? "addNote" : "send");
}

function showWarning(text, onConfirm) {
  const box = $("warning"); box.textContent = text; box.hidden = !text;
  if (onConfirm) box.appendChild(button(t("sendAnyway"), onConfirm, "small"));
}

async function send(confirmed) {
  const text = $("reply").value.trim();
  if (!text) return;
  const c = state.detail.conversation;
  try {
    if (state.mode === "note") {
      const saved = await api("POST", "/conversations/" + c.id + "/notes", { text });
      addNote(saved.note);
      $("reply").value = "";
      return;
    }
    const result = await api("POST", "/conversations/" + c.id + "/reply", { text, confirm: !!confirmed });
    addMessage(result.message);
    $("reply").value = "";
    showWarning(result.undelivered ? t("undelivered", { reason: result.undelivered }) : "");
    c.awaiting_seconds = null;
    renderBanner();
    refreshSoon();
  } catch (error) {
    if (error.data?.error === "vague_reply") showWarning(t("vague", { phrases: error.data.phrases.join("、") }), () => send(true));
    else if (error.status !== 401) showWarning(error.message);
  }
}

function addMessage(m) {
  if (state.detail.messages.some((x) => x.seq === m.seq)) return;
  state.detail.messages.push(m);
  append(messageNode(m));
}

function addNote(n) {
  if (state.detail.notes.some((x) => x.id === n.id)) return;
  state.detail.notes.push(n);
  append(noteNode(n));
}

let typingTimer = null;
function showTyping() {
  $("typing").hidden = false;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => { $("typing").hidden = true; }, 5000);
}

// live updates

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/agent/ws");
  let ping = null;
  ws.onopen = () => {
    $("live").textContent = "● " + t("live"); $("live").className = "live on";
    ping = setInterval(() => ws.send(JSON.stringify({ type: "ping" })), 20000);
    refreshSoon();
  };
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data), open = frame.conversation_id === state.selected;
    if (frame.type === "message") {
      const m = frame.message;
      if (open) {
        addMessage(m); markRead();
        if (m.role === "customer") {
          $("typing").hidden = true;
          if (state.detail.conversation.awaiting_seconds == null) { state.detail.conversation.awaiting_seconds = 0; state.loadedAt = Date.now(); }
        }
      }
      if (m.role === "customer") heardCustomer(frame.conversation_id, m, open).catch(console.error);
    }
    if (frame.type === "typing" && open) showTyping();
    if (frame.type === "note" && open) addNote(frame.note);
    if (frame.type === "labels" && open) { state.detail.conversation.labels = frame.labels; renderHead(state.detail, changeLabels); }
    if (frame.type === "conversation" && open) select(state.selected);
    if (frame.type === "changed" && frame.what === "agents") refreshAgents().catch(console.error);
    if (frame.type !== "pong" && frame.type !== "typing" && frame.type !== "hello") refreshSoon();
  };
  ws.onclose = (event) => {
    clearInterval(ping);
    $("live").textContent = "○ " + t("reconnecting"); $("live").className = "live";
    if (event.code === 4401) { location.href = "/agent/login"; return; }
    setTimeout(connect, 2000);
  };
}

/** A customer wrote in one of my chats: tell me unless I am looking at it. */
async function heardCustomer(conversationId, message, open) {
  if (open && document.hasFocus()) return;
  const mine = await api("GET", "/inbox?tab=mine");
  const chat = mine.conversations.find((c) => c.id === conversationId);
  if (chat) notify("customer_message", t("newMessage", { who: titleOf(chat) }), message.text, conversationId, () => select(conversationId));
}

async function refreshAgents() {
  state.agents = await api("GET", "/agents");
  const to = $("transfer-to"); to.textContent = "";
  state.agents.filter((a) => a.id !== state.me.agent.id && !a.disabled).forEach((a) => {
    to.appendChild(new Option(a.name + " · " + (a.online ? t("online") : t(a.presence)), a.name));
  });
}

async function showHandover() {
  const view = await api("GET", "/handover");
  const body = $("handover-body"); body.textContent = "";
  function section(title, rows) {
    body.appendChild(el("h3", null, title + " (" + rows.length + ")"));
    const ul = el("ul"); rows.forEach((r) => ul.appendChild(el("li", null, r))); body.appendChild(ul);
  }
  section(t("queuedSection"), view.queued.map((c) => "#" + c.position + " " + titleOf(c) + " · " + t("waiting", { age: age(c.waited_seconds) }) + " · " + (c.preview || "")));
  section(t("inProgress"), view.in_progress.map((c) => titleOf(c) + " · " + (c.agent_name || "") + (c.flagged ? " · " + t("waiting", { age: age(c.awaiting_seconds) }) : "")));
  section(t("overdueTickets"), view.overdue_tickets.map((k) => k.id + " · " + t("due", { time: clock(k.due_at) }) + " · " + (k.contact || "-") + " · " + k.question));
  show("handover");
}

async function checkWebhooks() {
  const view = await api("GET", "/webhooks");
  const badge = $("webhooks-failed");
  badge.hidden = view.failed.length === 0;
  badge.textContent = "Webhooks: " + view.failed.length + " ✗";
  badge.title = view.failed.map((d) => d.endpoint + " · " + d.type + " · " + d.last_error).join("\n");
}

function applySettings(settings) {
  state.me.settings = settings;
  setLanguage(settings.lang);
  setMuted(settings.muted);
  translatePage();
  $("me").textContent = state.me.agent.name + " · " + t(state.me.agent.role === "supervisor" ? "supervisor" : "agentRole");
  if (state.detail) { renderHead(state.detail, changeLabels); setMode(state.mode); renderTranscript(state.detail); rerenderCustomer(); }
  refreshSoon();
}

async function start() {
  const me = await api("GET", "/me");
  state.me = me; setCsrf(me.csrf_token); setZone(me.time_zone);
  applySettings(me.settings);
  const supervisor = me.agent.role === "supervisor";
  $("reports").hidden = !supervisor; $("show-accounts").hidden = !supervisor; $("show-trail").hidden = !supervisor;
  if (supervisor) wireTrail(show);
  if (supervisor) { checkWebhooks(); setInterval(checkWebhooks, 60000); }
  $("presence").value = me.agent.presence;
  state.quick = (await api("GET", "/quick-replies")).replies;
  await refreshAgents();
  crmHooks({ open: select, refresh: refreshSoon, show });
  wireCrm();
  $("presence").addEventListener("change", () => api("POST", "/presence", { presence: $("presence").value }).catch(complain));
  $("logout").addEventListener("click", async () => { await api("POST", "/logout"); location.href = "/agent/login"; });
  $("take").addEventListener("click", async () => {
    if (await act("take")) { state.tab = "mine"; loadInbox().catch(console.error); }  // the chat is mine now
  });
  $("hold").addEventListener("click", () => act("hold"));
  $("handback").addEventListener("click", () => act("handback"));
  $("close").addEventListener("click", async () => { if (await confirmBox(t("confirmClose"), { ok: t("close") })) act("close"); });
  $("transfer-go").addEventListener("click", () => { if ($("transfer-to").value) act("transfer", { to: $("transfer-to").value }); });
  $("show-handover").addEventListener("click", showHandover);
  $("hide-handover").addEventListener("click", () => show(state.selected ? "chat" : "empty"));
  $("hide-case").addEventListener("click", () => show(state.selected ? "chat" : "empty"));
  $("hide-trail").addEventListener("click", () => show(state.selected ? "chat" : "empty"));
  $("toggle-customer").addEventListener("click", () => showDrawer(!$("customer-side").classList.contains("open")));
  $("hide-customer").addEventListener("click", () => showDrawer(false));
  $("show-settings").addEventListener("click", () => openSettings(applySettings));
  $("show-accounts").addEventListener("click", () => openAccounts(refreshAgents));
  $("mode-reply").addEventListener("click", () => { state.modeChosen = true; setMode("reply"); $("reply").focus(); });
  $("mode-note").addEventListener("click", () => { state.modeChosen = true; setMode("note"); $("reply").focus(); });
  document.querySelectorAll("#tabs [data-tab]").forEach((tab) => tab.addEventListener("click", () => {
    state.tab = tab.dataset.tab; loadInbox().catch(console.error);
  }));
  $("inbox").addEventListener("click", (event) => { const card = event.target.closest(".card"); if (card) select(card.dataset.id); });
  let searchTimer = null;
  $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => loadInbox().catch(console.error), 250); });
  ["filter-channel", "filter-state", "filter-label", "filter-waiting"].forEach((id) => $(id).addEventListener("change", () => loadInbox().catch(console.error)));
  let lastTyping = 0;
  new Composer($("reply"), $("picker"), {
    replies: state.quick,
    variables: () => ({ customer: customerName(), agent: state.me.agent.name, shop: state.me.shop }),
    onSend: () => send(false),
    onTyping: () => {
      showWarning("");
      const c = state.detail?.conversation;
      if (state.mode === "reply" && c && c.state === "agent" && Date.now() - lastTyping > 5000) {
        lastTyping = Date.now();
        api("POST", "/conversations/" + c.id + "/typing").catch(() => {});
      }
    },
  });
  $("reply-form").addEventListener("submit", (event) => { event.preventDefault(); send(false); });
  document.addEventListener("click", askPermission, { once: true });
  ["pointerdown", "keydown"].forEach((type) => document.addEventListener(type, unlockSound, { once: true, capture: true }));
  setInterval(renderBanner, 1000);
  setInterval(refreshSoon, 30000);  // wait times and the customers' presence move on
  await refresh();
  connect();
}

start().catch((error) => console.error(error));
