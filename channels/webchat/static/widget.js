/* kefu web chat widget: <script src="https://your-kefu/widget.js" defer></script>
 * Options as data- attributes on the script tag: data-lang="zh|en", data-open="true",
 * data-title="...". No build step, no dependencies. Protocol: docs/webchat-protocol.md */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = new URL(script.src, location.href);
  var lang = script.dataset.lang || ((navigator.language || "zh").slice(0, 2) === "zh" ? "zh" : "en");
  var L = {
    zh: { title: "在线客服", placeholder: "请输入您的问题…", send: "发送", queued: "排队中，您是第 {n} 位",
          agent: "人工客服已接入", agentName: "客服 ", busy: "网络繁忙，正在为您重新发送…", typing: "客服正在输入…", reconnecting: "连接中断，正在重连…",
          failed: "未发送：", retry: "重试", open: "客服" },
    en: { title: "Customer service", placeholder: "Type your question…", send: "Send",
          queued: "In the queue: you are number {n}", agent: "A colleague has joined",
          agentName: "", typing: "Typing…", busy: "One moment, sending again…", reconnecting: "Connection lost, reconnecting…",
          failed: "Not sent: ", retry: "Retry", open: "Chat" }
  }[lang === "zh" ? "zh" : "en"];

  function randomId(n) {
    var chars = "abcdefghijklmnopqrstuvwxyz0123456789", out = "";
    var bytes = new Uint8Array(n);
    crypto.getRandomValues(bytes);
    for (var i = 0; i < n; i++) out += chars[bytes[i] % chars.length];
    return out;
  }
  function visitorId() {
    var id = null;
    try { id = localStorage.getItem("kefu.visitor"); } catch (e) { /* private mode */ }
    if (!id) {
      id = "v" + randomId(23);
      try { localStorage.setItem("kefu.visitor", id); } catch (e) { /* keep it for this page */ }
    }
    return id;
  }

  var css = [
    ".kefu-launch{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:24px;",
    "padding:12px 20px;background:#1677ff;color:#fff;font:15px system-ui,sans-serif;cursor:pointer;box-shadow:0 4px 12px rgba(0,0,0,.2)}",
    ".kefu-panel{position:fixed;right:20px;bottom:76px;z-index:2147483000;width:360px;max-width:calc(100vw - 40px);",
    "height:520px;max-height:calc(100vh - 100px);display:none;flex-direction:column;background:#fff;border-radius:12px;",
    "box-shadow:0 8px 28px rgba(0,0,0,.25);font:14px/1.5 system-ui,sans-serif;color:#222;overflow:hidden}",
    ".kefu-panel.kefu-open{display:flex}",
    ".kefu-head{background:#1677ff;color:#fff;padding:12px 16px;font-weight:600}",
    ".kefu-status{font-size:12px;padding:4px 16px;background:#f0f5ff;color:#1d39c4;display:none}",
    ".kefu-log{flex:1;overflow-y:auto;padding:12px;background:#f7f8fa}",
    ".kefu-msg{width:fit-content;max-width:80%;margin:6px 0;padding:8px 12px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word}",
    ".kefu-customer{margin-left:auto;background:#1677ff;color:#fff}",
    ".kefu-bot,.kefu-agent,.kefu-system{background:#fff;border:1px solid #e5e6eb}",
    ".kefu-agent{border-color:#b7eb8f}",
    ".kefu-name{display:block;font-size:12px;color:#389e0d}",
    ".kefu-system{font-size:13px;color:#555;background:#f0f5ff}",
    ".kefu-pending{opacity:.6}.kefu-failed{background:#fff1f0;color:#a8071a;border:1px solid #ffa39e}",
    ".kefu-quick{display:flex;flex-wrap:wrap;gap:6px;padding:0 12px 8px;background:#f7f8fa}",
    ".kefu-quick button{border:1px solid #1677ff;background:#fff;color:#1677ff;border-radius:14px;padding:4px 10px;cursor:pointer;font:inherit}",
    ".kefu-form{display:flex;border-top:1px solid #e5e6eb}",
    ".kefu-form input{flex:1;border:0;padding:12px;font:inherit;outline:none}",
    ".kefu-form button{border:0;background:#1677ff;color:#fff;padding:0 18px;font:inherit;cursor:pointer}"
  ].join("");

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;  // always text: customer input is never HTML
    return node;
  }

  var style = el("style"); style.textContent = css; document.head.appendChild(style);
  var launch = el("button", "kefu-launch", L.open);
  var panel = el("div", "kefu-panel");
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", script.dataset.title || L.title);
  var head = el("div", "kefu-head", script.dataset.title || L.title);
  var status = el("div", "kefu-status");
  var log = el("div", "kefu-log");
  log.setAttribute("aria-live", "polite");
  var quick = el("div", "kefu-quick");
  var form = el("form", "kefu-form");
  var input = el("input"); input.placeholder = L.placeholder; input.maxLength = 2000;
  input.setAttribute("aria-label", L.placeholder);
  var sendButton = el("button", null, L.send); sendButton.type = "submit";
  form.appendChild(input); form.appendChild(sendButton);
  [head, status, log, quick, form].forEach(function (n) { panel.appendChild(n); });
  document.body.appendChild(launch); document.body.appendChild(panel);

  var visitor = visitorId();
  var ws = null, connected = false, backoff = 500, opened = false;
  var conversationId = null, seen = {}, contiguous = 0;
  var pending = {};  // client_msg_id -> {text, node}, until acknowledged

  function setStatus(text) { status.textContent = text || ""; status.style.display = text ? "block" : "none"; }
  function scroll() { log.scrollTop = log.scrollHeight; }

  function showQuickReplies(options) {
    quick.textContent = "";
    (options || []).forEach(function (text) {
      var b = el("button", null, text); b.type = "button";
      b.onclick = function () { sendText(text); };
      quick.appendChild(b);
    });
  }

  function follow(id) {  // a new conversation starts a new sequence
    if (id !== conversationId) { conversationId = id; seen = {}; contiguous = 0; }
  }
  function markSeen(seq) {
    if (seen[seq]) return false;
    seen[seq] = true;
    while (seen[contiguous + 1]) contiguous++;
    return true;
  }

  function addMessage(frame) {
    follow(frame.conversation_id);
    if (!markSeen(frame.seq)) return;
    if (frame.role === "customer" && frame.client_msg_id) {
      var mine = document.querySelector('[data-client-msg-id="' + CSS.escape(frame.client_msg_id) + '"]');
      if (mine) { mine.classList.remove("kefu-pending"); return; }
    }
    var node = el("div", "kefu-msg kefu-" + frame.role + " kefu-kind-" + frame.kind, frame.text);
    node.dataset.seq = frame.seq;
    if (frame.role === "agent" && frame.name) node.prepend(el("span", "kefu-name", L.agentName + frame.name));
    log.appendChild(node);
    if (frame.role !== "customer") showQuickReplies(frame.quick_replies);
    scroll();
  }

  var typingTimer = null;
  function showTyping() {
    setStatus(L.typing);
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { if (status.textContent === L.typing) setStatus(panel.dataset.state === "agent" ? L.agent : ""); }, 6000);
  }

  function showState(frame) {
    follow(frame.conversation_id);
    panel.dataset.state = frame.state;
    if (frame.state === "queued" && frame.position) setStatus(L.queued.replace("{n}", frame.position));
    else if (frame.state === "agent") setStatus(L.agent);
    else setStatus("");
  }

  function send(frame) {
    if (connected) ws.send(JSON.stringify(frame));
  }

  function sendText(text) {
    text = text.trim();
    if (!text) return;
    var id = "m" + Date.now().toString(36) + randomId(6);
    var node = el("div", "kefu-msg kefu-customer kefu-pending", text);
    node.dataset.clientMsgId = id;
    log.appendChild(node); scroll();
    showQuickReplies([]);
    pending[id] = { text: text, node: node };
    send({ type: "message", text: text, client_msg_id: id, lang: lang });
  }

  function onFrame(frame) {
    if (frame.type === "message") addMessage(frame);
    else if (frame.type === "state") showState(frame);
    else if (frame.type === "typing") showTyping();
    else if (frame.type === "ack") {
      var p = pending[frame.client_msg_id];
      if (p) { p.node.classList.remove("kefu-pending"); delete pending[frame.client_msg_id]; }
      if (frame.seq) { follow(frame.conversation_id); markSeen(frame.seq); }
    } else if (frame.type === "error") {
      var failed = frame.client_msg_id && pending[frame.client_msg_id];
      if (failed && frame.code === "not_stored") {  // kefu could not save it yet: try again
        setStatus(L.busy);
        setTimeout(function () {
          if (pending[frame.client_msg_id]) send({ type: "message", text: failed.text, client_msg_id: frame.client_msg_id, lang: lang });
        }, 2000);
      } else if (failed) {
        delete pending[frame.client_msg_id];
        failed.node.className = "kefu-msg kefu-failed";
        failed.node.textContent = L.failed + failed.text + " (" + frame.message + ") ";
        var again = el("button", null, L.retry); again.type = "button";
        again.onclick = function () { failed.node.remove(); sendText(failed.text); };
        failed.node.appendChild(again);
      } else {
        setStatus(frame.message);
      }
    }
  }

  function connect() {
    var url = new URL("chat/ws", base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("visitor", visitor);
    if (conversationId) {
      url.searchParams.set("conversation", conversationId);
      url.searchParams.set("after", String(contiguous));
    }
    ws = new WebSocket(url.toString());
    ws.onopen = function () {
      connected = true; backoff = 500; setStatus("");
      ws.send(JSON.stringify({ type: "open", lang: lang }));
      Object.keys(pending).forEach(function (id) {  // resend: the server acknowledges, never repeats
        ws.send(JSON.stringify({ type: "message", text: pending[id].text, client_msg_id: id, lang: lang }));
      });
    };
    ws.onmessage = function (event) {
      try { onFrame(JSON.parse(event.data)); } catch (e) { console.error("kefu: bad frame", e); }
    };
    ws.onclose = function (event) {
      connected = false;
      if (event.code === 1008) { setStatus(event.reason || "closed"); return; }
      setStatus(L.reconnecting);
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }

  function openPanel() {
    panel.classList.add("kefu-open");
    input.focus();
    if (!opened) { opened = true; connect(); }
  }
  launch.onclick = function () {
    if (panel.classList.contains("kefu-open")) panel.classList.remove("kefu-open"); else openPanel();
  };
  form.onsubmit = function (event) { event.preventDefault(); sendText(input.value); input.value = ""; };
  var typingSent = 0;  // the agent sees "typing…"; told at most every 3 s
  input.oninput = function () {
    if (input.value && Date.now() - typingSent > 3000) { typingSent = Date.now(); send({ type: "typing" }); }
  };
  if (script.dataset.open === "true") openPanel();
})();
