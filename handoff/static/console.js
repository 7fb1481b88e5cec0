/* kefu agent console: plain JS, no build step. API: docs/agent-api.md.
 * Every text from customers (and everyone else) is put on the page with textContent. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var state = { me: null, csrf: "", selected: null, detail: null, quick: [], agents: [],
                lastSeq: 0, pendingReply: null, customer: null, caseId: null, caseConversation: null };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }
  function clock(ts) { return new Date(ts * 1000).toLocaleString(); }
  function age(seconds) {
    if (seconds == null) return "";
    var m = Math.floor(seconds / 60);
    return m >= 60 ? Math.floor(m / 60) + "h" + (m % 60) + "m" : m + "m" + Math.floor(seconds % 60) + "s";
  }

  async function api(method, path, body) {
    var options = { method: method, credentials: "same-origin", headers: {} };
    if (method !== "GET") {
      options.headers["X-CSRF-Token"] = state.csrf;
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body || {});
    }
    var response = await fetch("/agent/api" + path, options);
    if (response.status === 401) { location.href = "/agent/login"; throw new Error("login"); }
    var data = await response.json();
    if (!response.ok) { var error = new Error(data.message || response.status); error.data = data; throw error; }
    return data;
  }

  // lists on the left

  function item(list, c, label, detail) {
    var li = el("li", c.flagged ? "flagged" : "");
    if (state.selected === c.id) li.classList.add("selected");
    var title = el("div", null, label);
    if (c.unread) title.appendChild(el("span", "badge", String(c.unread)));
    li.appendChild(title);
    li.appendChild(el("div", "preview", c.preview || ""));
    if (detail) li.appendChild(el("div", "muted", detail));
    li.dataset.id = c.id;
    li.onclick = function () { select(c.id); };
    list.appendChild(li);
  }

  async function refreshLists() {
    var results = await Promise.all([api("GET", "/queue"), api("GET", "/chats"), api("GET", "/tickets"), api("GET", "/cases")]);
    renderCases(results[3]);
    var queue = $("queue"), chats = $("chats"), tickets = $("tickets");
    queue.textContent = ""; chats.textContent = ""; tickets.textContent = "";
    $("queue-count").textContent = "(" + results[0].length + ")";
    results[0].forEach(function (c) {
      item(queue, c, "#" + c.position + " " + c.channel + " · " + c.user_id,
           "等待 waiting " + age(c.waited_seconds) + " · " + (c.handoff_reason || ""));
    });
    results[1].forEach(function (c) {
      var who = c.agent_id === state.me.id ? "" : " (" + (c.agent_name || "?") + ")";
      item(chats, c, c.channel + " · " + c.user_id + who,
           c.flagged ? "⏰ 超过 " + age(c.awaiting_seconds) + " 未回复 no reply" : "");
    });
    results[2].forEach(function (t) {
      var li = el("li", t.overdue ? "overdue" : "");
      li.appendChild(el("div", null, t.id + " · 截止 due " + clock(t.due_at) + (t.overdue ? " · 已超时 OVERDUE" : "")));
      li.appendChild(el("div", "preview", t.question));
      li.appendChild(el("div", "muted", t.contact || "(no contact: reply in the chat)"));
      var open = el("button", null, "查看 Open"); open.type = "button";
      open.onclick = function (event) { event.stopPropagation(); select(t.conversation_id); };
      var done = el("button", null, "已处理 Done"); done.type = "button";
      done.onclick = async function (event) {
        event.stopPropagation();
        var note = prompt("处理说明 What was done?", "");
        if (note === null) return;
        await api("POST", "/tickets/" + encodeURIComponent(t.id) + "/done", { note: note });
        refreshLists();
      };
      li.appendChild(open); li.appendChild(done);
      tickets.appendChild(li);
    });
  }
  function caseLabel(k) {
    return k.id + " · " + k.status + (k.repeat_of ? " · 重复 repeat" : "") + " · " + (k.severity || "");
  }

  function renderCases(cases) {
    var list = $("cases"); list.textContent = "";
    $("cases-count").textContent = "(" + cases.length + ")";
    cases.forEach(function (k) {
      var li = el("li", k.overdue || k.follow_up_overdue ? "overdue" : "");
      li.appendChild(el("div", null, caseLabel(k)));
      li.appendChild(el("div", "preview", k.summary));
      var due = k.status === "resolved" ? "回访 follow-up " + clock(k.follow_up_due_at) : "截止 due " + clock(k.due_at);
      li.appendChild(el("div", "muted", (k.customer_name || k.customer_id) + " · " + due));
      li.onclick = function () { showCase(k.id); };
      list.appendChild(li);
    });
  }

  // customer records and cases

  async function loadCustomer(id) {
    var view = await api("GET", "/customers/" + encodeURIComponent(id));
    if (state.detail && state.detail.customer_id !== id && state.detail.customer_id !== view.customer.id) return;
    state.customer = view;
    renderCustomer(view);
  }

  function renderCustomer(view) {
    var c = view.customer;
    $("customer-name").textContent = c.name || c.id;
    $("customer-tags").textContent = c.tags.length ? "· " + c.tags.join(", ") : "";
    $("customer-name-input").value = c.name;
    $("customer-tags-input").value = c.tags.join(", ");
    $("customer-note-input").value = "";
    var contacts = $("customer-contacts"); contacts.textContent = "";
    c.phones.concat(c.emails).forEach(function (value) {
      var span = el("span", "contact", value);
      if (c.verified.indexOf(value) >= 0) span.appendChild(el("span", "verified", " ✓"));
      else {
        var verify = el("button", null, "核实 Verify"); verify.type = "button";
        verify.onclick = function () { changeCustomer("/verify", { contact: value }); };
        span.appendChild(verify);
      }
      contacts.appendChild(span);
    });
    if (!c.phones.length && !c.emails.length) contacts.appendChild(el("span", "muted", "没有联系方式 no phone or email yet"));
    $("customer-facts").textContent = "负责人 owner: " + (view.owner_name || "-") + " · " +
      view.identities.map(function (i) { return i.channel; }).join(", ") + " · 会话 conversations: " +
      view.conversation_count + " · 留言 offline messages: " + view.tickets.length;
    var list = $("customer-conversations"); list.textContent = "";
    view.conversations.forEach(function (conv) {
      var li = el("li", null, clock(conv.created_at) + " · " + conv.channel + " · " + conv.state +
        (conv.handoff_reason ? " · " + conv.handoff_reason : "") + (conv.rating ? " · ★" + conv.rating : ""));
      var open = el("button", null, "查看 Open"); open.type = "button";
      open.onclick = function () { select(conv.id); };
      li.appendChild(open); list.appendChild(li);
    });
    var notes = $("customer-notes"); notes.textContent = "";
    c.notes.forEach(function (n) { notes.appendChild(el("li", null, clock(n.at) + " " + n.by + ": " + n.text)); });
    var matches = $("customer-matches"); matches.textContent = "";
    view.possible_matches.forEach(function (m) {
      var line = el("div", "match", "可能是同一人 Same person? " + (m.name || m.id) + " · " + m.phones.concat(m.emails).join(", ") + " ");
      var merge = el("button", null, "合并 Merge"); merge.type = "button";
      merge.onclick = function () {
        if (confirm("把 " + m.id + " 合并到当前客户？ Merge into this customer?")) changeCustomer("/merge", { other_id: m.id });
      };
      line.appendChild(merge); matches.appendChild(line);
    });
    var cases = $("customer-cases"); cases.textContent = "";
    view.cases.forEach(function (k) {
      var line = el("div", "case-line", "投诉 " + caseLabel(k) + " · " + k.summary + " ");
      var open = el("button", null, "查看 Open"); open.type = "button";
      open.onclick = function () { showCase(k.id); };
      line.appendChild(open); cases.appendChild(line);
    });
  }

  async function changeCustomer(suffix, body) {
    try {
      var view = await api("POST", "/customers/" + encodeURIComponent(state.customer.customer.id) + suffix, body);
      state.customer = view; renderCustomer(view);
    } catch (error) { if (error.message !== "login") alert(error.message); }
  }

  async function showCase(id) {
    var view = await api("GET", "/cases/" + encodeURIComponent(id));
    var k = view.case;
    state.caseId = k.id; state.caseConversation = k.conversation_id;
    $("case-title").textContent = k.id + " · " + k.status + (k.repeat_of ? " · 重复投诉 repeat of " + k.repeat_of : "");
    var info = $("case-info"); info.textContent = "";
    info.appendChild(el("span", null, "客户 customer: " + (view.customer ? (view.customer.name || view.customer.id) : k.customer_id) +
      " · 类别 " + (k.category || "-") + " · 严重度 " + k.severity + " · "));
    var due = k.status === "resolved" ? "回访 follow-up due " + clock(k.follow_up_due_at) : "截止 due " + clock(k.due_at);
    info.appendChild(el("span", k.overdue || k.follow_up_overdue ? "overdue-text" : null, due));
    $("case-summary").textContent = k.summary;
    var timeline = $("case-timeline"); timeline.textContent = "";
    k.timeline.forEach(function (t) { timeline.appendChild(el("li", null, clock(t.at) + " · " + t.by + " · " + t.what + (t.note ? ": " + t.note : ""))); });
    $("chat").hidden = true; $("handover").hidden = true; $("empty").hidden = true; $("case-view").hidden = false;
  }

  async function caseAction(action) {
    var body = {}, path = action;
    if (action === "resolve") {
      var how = prompt("如何解决的？ How was it resolved?", "");
      if (!how) return;
      body.note = how;
    } else if (action === "satisfied" || action === "unsatisfied") {
      path = "follow_up"; body.satisfied = action === "satisfied";
      body.note = prompt("回访记录 Follow-up note", "") || "";
    } else if (action === "note") {
      var note = prompt("备注 Note", "");
      if (!note) return;
      body.note = note;
    }
    try {
      await api("POST", "/cases/" + encodeURIComponent(state.caseId) + "/" + path, body);
      await showCase(state.caseId);
      refreshSoon();
    } catch (error) { if (error.message !== "login") alert(error.message); }
  }

  var refreshTimer = null;
  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () { refreshLists().catch(console.error); }, 150);
  }

  // the selected conversation

  function whyText(m) {
    var meta = m.meta || {}, parts = [];
    if (meta.scores && meta.scores.length) {
      parts.push((meta.decision || "") + ": " + meta.scores.map(function (s) { return s.entry + " " + s.score; }).join(", "));
    }
    if (meta.why) parts.push(meta.why);
    if (meta.reason) parts.push("reason: " + meta.reason);
    return parts.join(" · ");
  }

  function messageNode(m) {
    var node = el("div", "msg " + m.role);
    node.dataset.seq = m.seq;
    var who = m.role === "agent" ? "客服 " + (m.meta.agent_name || "") : m.role + (m.kind !== "text" ? " · " + m.kind : "");
    node.appendChild(el("span", "who", who + " · " + clock(m.ts)));
    node.appendChild(el("span", "text", m.text));
    var why = whyText(m);
    if (why) node.appendChild(el("span", "why", why));
    if (m.quick_replies && m.quick_replies.length) node.appendChild(el("span", "why", "options: " + m.quick_replies.join(" | ")));
    return node;
  }

  function appendMessage(m) {
    var transcript = $("transcript");
    if (transcript.querySelector('[data-seq="' + m.seq + '"]')) return;
    transcript.appendChild(messageNode(m));
    transcript.scrollTop = transcript.scrollHeight;
    state.lastSeq = Math.max(state.lastSeq, m.seq);
  }

  function renderHead(c) {
    $("chat-title").textContent = c.channel + " · " + c.user_id;
    var platform = c.state === "agent" && c.held_by_platform;
    $("chat-info").textContent = "状态 " + c.state + (c.agent_name ? " · " + c.agent_name : "") +
      (platform ? " · 在平台应用中接待，此处不能回复 (answered in the platform's app)" : "") +
      (c.handoff_reason ? " · 转人工原因 handoff: " + c.handoff_reason : "") + " · 语言 " + c.lang +
      " · 开始 " + clock(c.created_at);
    var supervisor = state.me.role === "supervisor";
    var mine = c.state === "agent" && !platform && (c.agent_id === state.me.id || supervisor);
    $("take").hidden = !(c.state === "queued" || c.state === "bot");
    ["hold", "transfer", "transfer-to"].forEach(function (id) { $(id).hidden = !mine; });
    $("handback").hidden = !(mine || (platform && supervisor));
    $("close").hidden = !(mine || (state.me.role === "supervisor" && c.state !== "closed"));
    $("reply-form").hidden = !mine;
    $("chat-flag").hidden = !c.flagged;
    $("chat-flag").textContent = c.flagged ? "⏰ 客户已等待 " + age(c.awaiting_seconds) + "，请尽快回复 (1-minute rule)" : "";
    $("export-text").href = "/agent/api/conversations/" + c.id + "/transcript?format=text";
    $("export-json").href = "/agent/api/conversations/" + c.id + "/transcript?format=json";
  }

  async function select(id) {
    state.selected = id;
    var detail = await api("GET", "/conversations/" + encodeURIComponent(id));
    if (state.selected !== id) return;
    state.detail = detail; state.lastSeq = 0;
    $("handover").hidden = true; $("case-view").hidden = true; $("chat").hidden = false; $("empty").hidden = true;
    renderHead(detail.conversation);
    if (detail.customer_id) loadCustomer(detail.customer_id).catch(console.error);
    var transcript = $("transcript"); transcript.textContent = "";
    var events = detail.events.slice();
    detail.messages.forEach(function (m) {
      while (events.length && events[0].ts <= m.ts) transcript.appendChild(eventNode(events.shift()));
      appendMessage(m);
    });
    events.forEach(function (e) { transcript.appendChild(eventNode(e)); });
    var earlier = $("earlier-list"); earlier.textContent = "";
    $("earlier-count").textContent = detail.earlier.length;
    detail.earlier.forEach(function (c) {
      var box = el("div", "earlier");
      box.appendChild(el("h3", null, clock(c.created_at) + " · " + c.state + (c.rating ? " · ★" + c.rating : "")));
      c.messages.forEach(function (m) { box.appendChild(messageNode(m)); });
      earlier.appendChild(box);
    });
    markRead();
    refreshSoon();
  }

  function eventNode(e) {
    var detail = Object.keys(e.detail || {}).map(function (k) { return k + "=" + e.detail[k]; }).join(", ");
    return el("div", "event", "— " + e.type + (detail ? " (" + detail + ")" : "") + " · " + clock(e.ts) + " —");
  }

  async function markRead() {
    var c = state.detail && state.detail.conversation;
    if (!c || c.state !== "agent" || c.agent_id !== state.me.id || !state.lastSeq) return;
    await api("POST", "/conversations/" + c.id + "/read", { seq: state.lastSeq }).catch(console.error);
  }

  async function act(action, body) {
    var c = state.detail.conversation;
    try {
      var result = await api("POST", "/conversations/" + c.id + "/" + action, body);
      await select(c.id);
      return result;
    } catch (error) {
      if (error.message !== "login") alert(error.message);
    }
  }

  // replying, with quick replies and the vague-reply warning

  function showWarning(text, onConfirm) {
    var box = $("warning"); box.textContent = text; box.hidden = !text;
    if (onConfirm) {
      var again = el("button", null, "仍然发送 Send anyway"); again.type = "button";
      again.onclick = onConfirm; box.appendChild(document.createTextNode(" ")); box.appendChild(again);
    }
  }

  async function sendReply(confirmed) {
    var text = $("reply").value.trim();
    if (!text) return;
    var c = state.detail.conversation;
    try {
      var result = await api("POST", "/conversations/" + c.id + "/reply", { text: text, confirm: !!confirmed });
      appendMessage(result.message);
      $("reply").value = "";
      showWarning(result.undelivered ? "未送达 Not delivered: " + result.undelivered +
                  "（消息已保留 the message is kept）" : "");
      $("chat-flag").hidden = true;
    } catch (error) {
      if (error.data && error.data.error === "vague_reply") {
        showWarning("这条回复可能显得含糊或生硬：" + error.data.phrases.join("、") +
                    "。请说明会怎么处理、何时答复。 This reply may read as vague or curt.",
                    function () { sendReply(true); });
      } else if (error.message !== "login") {
        showWarning(error.message);
      }
    }
  }

  function showShortcuts() {
    var box = $("shortcuts"); box.textContent = "";
    var match = /^\/(\S*)$/.exec($("reply").value);
    if (!match) return [];
    var found = state.quick.filter(function (q) { return q.shortcut.indexOf(match[1]) === 0; });
    found.forEach(function (q) {
      var b = el("button", null, "/" + q.shortcut + " " + q.text); b.type = "button";
      b.onclick = function () { insert(q); };
      box.appendChild(b);
    });
    return found;
  }
  function insert(q) { $("reply").value = q.text; $("shortcuts").textContent = ""; $("reply").focus(); }

  async function checkWebhooks() {
    var view = await api("GET", "/webhooks");
    var badge = $("webhooks-failed");
    badge.hidden = view.failed.length === 0;
    badge.textContent = "Webhooks: " + view.failed.length + " 未送达 failed";
    badge.title = view.failed.map(function (d) { return d.endpoint + " · " + d.type + " · " + d.last_error; }).join("\n");
  }

  async function refreshAgents() {
    state.agents = await api("GET", "/agents");
    var to = $("transfer-to"); to.textContent = "";
    state.agents.forEach(function (a) {
      if (a.id === state.me.id) return;
      var o = el("option", null, a.name + (a.online ? " · online" : " · " + a.presence)); o.value = a.name; to.appendChild(o);
    });
  }

  // live updates

  function connect() {
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/agent/ws");
    var ping = null;
    ws.onopen = function () {
      $("live").textContent = "● live";
      ping = setInterval(function () { ws.send(JSON.stringify({ type: "ping" })); }, 20000);
      refreshSoon();
    };
    ws.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "message" && frame.conversation_id === state.selected) {
        appendMessage(frame.message); markRead();
      }
      if (frame.type === "conversation" && frame.conversation_id === state.selected) select(state.selected);
      if (frame.type === "changed" && frame.what === "agents") refreshAgents().catch(console.error);
      if (frame.type === "message" || frame.type === "conversation" || frame.type === "changed") refreshSoon();
    };
    ws.onclose = function (event) {
      clearInterval(ping);
      $("live").textContent = "○ reconnecting";
      if (event.code === 4401) { location.href = "/agent/login"; return; }
      setTimeout(connect, 2000);
    };
  }

  async function showHandover() {
    var view = await api("GET", "/handover");
    var body = $("handover-body"); body.textContent = "";
    function section(title, rows) {
      body.appendChild(el("h3", null, title + " (" + rows.length + ")"));
      var ul = el("ul"); rows.forEach(function (r) { ul.appendChild(el("li", null, r)); }); body.appendChild(ul);
    }
    section("排队中 Queued", view.queued.map(function (c) { return "#" + c.position + " " + c.channel + "/" + c.user_id + " · waiting " + age(c.waited_seconds) + " · " + (c.preview || ""); }));
    section("进行中 In progress", view.in_progress.map(function (c) { return c.channel + "/" + c.user_id + " · " + (c.agent_name || "") + (c.flagged ? " · NO REPLY " + age(c.awaiting_seconds) : ""); }));
    section("超时留言 Overdue offline messages", view.overdue_tickets.map(function (t) { return t.id + " · due " + clock(t.due_at) + " · " + (t.contact || "-") + " · " + t.question; }));
    $("chat").hidden = true; $("empty").hidden = true; $("case-view").hidden = true; $("handover").hidden = false;
  }

  async function start() {
    var me = await api("GET", "/me");
    state.me = me.agent; state.csrf = me.csrf_token;
    $("me").textContent = me.agent.name + " (" + me.agent.role + ")";
    $("reports").hidden = me.agent.role !== "supervisor";
    if (me.agent.role === "supervisor") {
      checkWebhooks();
      setInterval(checkWebhooks, 60000);
    }
    $("presence").value = me.agent.presence;
    var quick = await api("GET", "/quick-replies"); state.quick = quick.replies;
    await refreshAgents();
    $("presence").onchange = function () { api("POST", "/presence", { presence: $("presence").value }); };
    $("logout").onclick = async function () { await api("POST", "/logout"); location.href = "/agent/login"; };
    $("take").onclick = function () { act("take"); };
    $("hold").onclick = function () { act("hold"); };
    $("handback").onclick = function () { act("handback"); };
    $("close").onclick = function () { if (confirm("结束会话并邀请客户评分？ Close and ask for a rating?")) act("close"); };
    $("transfer").onclick = function () { if ($("transfer-to").value) act("transfer", { to: $("transfer-to").value }); };
    $("show-handover").onclick = showHandover;
    $("customer-form").onsubmit = function (event) {
      event.preventDefault();
      changeCustomer("", { name: $("customer-name-input").value,
                           tags: $("customer-tags-input").value.split(/[,，]/).map(function (t) { return t.trim(); }).filter(Boolean),
                           note: $("customer-note-input").value || null });
    };
    $("open-case").onclick = async function () {
      var summary = prompt("投诉内容 What is the complaint?", "");
      if (!summary) return;
      try {
        var view = await api("POST", "/cases", { conversation_id: state.detail.conversation.id, summary: summary });
        refreshSoon(); showCase(view.case.id);
      } catch (error) { if (error.message !== "login") alert(error.message); }
    };
    document.querySelectorAll("#case-actions [data-action]").forEach(function (button) {
      button.onclick = function () { caseAction(button.dataset.action); };
    });
    $("case-conversation").onclick = function () { select(state.caseConversation); };
    $("hide-case").onclick = function () { $("case-view").hidden = true; $("empty").hidden = !!state.selected; $("chat").hidden = !state.selected; };
    $("hide-handover").onclick = function () { $("handover").hidden = true; $("empty").hidden = !!state.selected; $("chat").hidden = !state.selected; };
    var lastTyping = 0;
    $("reply").oninput = function () {
      showShortcuts(); showWarning("");
      var c = state.detail && state.detail.conversation;
      if (c && c.state === "agent" && Date.now() - lastTyping > 5000 && $("reply").value.charAt(0) !== "/") {
        lastTyping = Date.now();
        api("POST", "/conversations/" + c.id + "/typing").catch(function () {});
      }
    };
    $("reply").onkeydown = function (event) {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        var found = showShortcuts(), typed = $("reply").value.slice(1);
        var exact = found.filter(function (q) { return q.shortcut === typed; });
        if (exact.length) insert(exact[0]);
        else if (found.length === 1) insert(found[0]);
        else if (!found.length) sendReply(false);
      }
    };
    $("reply-form").onsubmit = function (event) { event.preventDefault(); sendReply(false); };
    await refreshLists();
    connect();
  }
  start().catch(function (error) { console.error(error); });
})();
