// The console's words, one table per language (as bot/texts.py is for the bot).
// Values may hold {name} slots; t() fills them.
const TEXTS = {
  zh: {
    title: "客服工作台", presence: "状态", online: "在线", away: "离开", offline: "离线",
    handover: "交接班", reports: "报表", accounts: "账号", settings: "设置", logout: "退出",
    live: "已连接", reconnecting: "重连中…",
    search: "搜索客户、电话、消息…", allChannels: "全部渠道", anyState: "全部状态",
    queued: "排队中", agent: "接待中", closed: "已结束", bot: "机器人",
    anyLabel: "全部标签", anyWait: "任意等待", waited1: "等待超过 1 分钟", waited5: "等待超过 5 分钟",
    mine: "我的", unassigned: "待接入", all: "全部", tickets: "留言", cases: "投诉",
    nothingHere: "这里没有会话", visitor: "访客 {id}", pick: "从左侧选择一个会话",
    waiting: "等待 {age}", customerOnline: "在线", customerLeft: "已离开 · {time}起",
    take: "接入", hold: "请稍候", transfer: "转接", transferTo: "转接给", handback: "转回机器人",
    close: "结束", exportText: "导出 .txt", exportJson: ".json",
    breach: "客户已等待 {age} 未获回复，请尽快回复（1 分钟规则）",
    platform: "在平台应用中接待，此处不能回复", handoffReason: "转人工原因：{reason}",
    reason_request: "客户要求人工", reason_complaint: "投诉", reason_misses: "机器人两次未答上", reason_entry: "问题需要人工",
    reply: "回复", note: "内部备注", send: "发送", addNote: "添加备注",
    replyPlaceholder: "回复客户…  输入 / 选择快捷回复，Enter 发送，Shift+Enter 换行",
    notePlaceholder: "内部备注，仅客服可见…",
    noteBy: "备注 · {name} · {time}", labels: "标签", addLabel: "+ 标签", labelPrompt: "新标签",
    typing: "客户正在输入…", earlier: "此前的会话", customer: "客户",
    sendAnyway: "仍然发送", vague: "这条回复可能显得含糊或生硬：{phrases}。请说明会怎么处理、何时答复。",
    undelivered: "未送达：{reason}（消息已保留）", confirmClose: "结束会话并邀请客户评分？",
    windowLeft: "还可发送 {n} 条 · 窗口剩余 {time}", windowLast: "只剩最后 {n} 条可发送，请把要点写在一条里",
    windowClosed: "发送窗口已关闭，客户再次来信后才能回复",
    windowUsedUp: "本窗口的消息已用完，客户再次来信后才能回复（此时发送的回复会保留，届时补发）",
    newChat: "新会话", newChatBody: "{who} 在排队等待", newMessage: "{who} 发来消息", breachTitle: "超时未回复",
    breachBody: "{who} 已等待 {age}",
    ev_queued: "进入排队 · {reason}", ev_assigned: "{agent} 接入了会话", ev_first_response: "首次回复用时 {seconds}",
    ev_reply_breach: "客户等待 {seconds} 未获回复", ev_transferred: "{from_agent} 转接给 {to}",
    ev_handed_back: "已转回机器人", ev_closed: "会话已结束", ev_closed_left: "客户已离开，会话结束",
    ev_abandoned: "客户离开了排队（等待 {seconds}）", ev_offline_offered: "无人值班，已请客户留言",
    ev_ticket_created: "已建留言 {ticket}，{due} 前答复", ev_ticket_done: "留言已处理",
    ev_undelivered: "消息未送达：{reason}",
    ev_requeued: "{from_agent} 已停用，会话回到排队", ev_requeued_removed: "原客服的账号已删除，会话回到排队",
    ev_delivered_late: "保留的回复已在客户再次来信时送达（晚了 {seconds}）",
    removedAgent: "已删除的客服", platformPerson: "{channel}接待人员 {name}", platformPool: "{channel}接待池",
    someone: "有人",
    notifications: "通知", notifyOn: "提醒我（声音和桌面通知）", mute_new_chat: "新会话",
    mute_customer_message: "我的会话里客户的新消息", mute_breach: "超过 1 分钟未回复",
    allowDesktop: "允许桌面通知", language: "语言", password: "修改密码", current: "当前密码",
    newPassword: "新密码", save: "保存", saved: "已保存", done: "完成",
    addAgent: "添加客服", name: "账号", role: "角色", maxChats: "同时接待", disable: "停用", enable: "启用",
    reset: "重置密码", disabled: "已停用", supervisor: "主管", agentRole: "客服",
    due: "截止 {time}", overdue: "已超时", open: "查看", ticketDone: "已处理", whatWasDone: "处理说明？",
    noContact: "无联系方式：在会话中回复", queuedSection: "排队中", inProgress: "进行中", overdueTickets: "超时留言",
    seconds: "{n}秒", minutes: "{m}分{s}秒", hours: "{h}小时{m}分",
  },
  en: {
    title: "Agent console", presence: "Presence", online: "Online", away: "Away", offline: "Offline",
    handover: "Hand-over", reports: "Reports", accounts: "Accounts", settings: "Settings", logout: "Log out",
    live: "Live", reconnecting: "Reconnecting…",
    search: "Search customers, phones, messages…", allChannels: "All channels", anyState: "Any state",
    queued: "Queued", agent: "In progress", closed: "Closed", bot: "Bot",
    anyLabel: "Any label", anyWait: "Any wait", waited1: "Waiting over 1 min", waited5: "Waiting over 5 min",
    mine: "Mine", unassigned: "Unassigned", all: "All", tickets: "Messages", cases: "Cases",
    nothingHere: "No conversations here", visitor: "Visitor {id}", pick: "Pick a conversation on the left",
    waiting: "waiting {age}", customerOnline: "Online", customerLeft: "Left · since {time}",
    take: "Take", hold: "Please wait", transfer: "Transfer", transferTo: "Transfer to", handback: "Hand back",
    close: "Close", exportText: "Export .txt", exportJson: ".json",
    breach: "The customer has waited {age} without a reply: answer now (1-minute rule)",
    platform: "Answered in the platform's app; you cannot reply here", handoffReason: "Handed over: {reason}",
    reason_request: "asked for a person", reason_complaint: "complaint", reason_misses: "the bot missed twice", reason_entry: "needs a person",
    reply: "Reply", note: "Private note", send: "Send", addNote: "Add note",
    replyPlaceholder: "Reply…  type / for canned replies, Enter sends, Shift+Enter for a new line",
    notePlaceholder: "A private note, only agents see it…",
    noteBy: "Note · {name} · {time}", labels: "Labels", addLabel: "+ label", labelPrompt: "New label",
    typing: "The customer is typing…", earlier: "Earlier conversations", customer: "Customer",
    sendAnyway: "Send anyway", vague: "This reply may read as vague or curt: {phrases}. Say what you will do and when.",
    undelivered: "Not delivered: {reason} (the message is kept)", confirmClose: "Close and ask for a rating?",
    windowLeft: "{n} messages left · window closes in {time}", windowLast: "Only {n} message(s) left: put everything in one",
    windowClosed: "The window has closed: you can reply once the customer writes again",
    windowUsedUp: "No messages left in this window: replies now are kept and sent once the customer writes again",
    newChat: "New chat", newChatBody: "{who} is waiting in the queue", newMessage: "{who} wrote", breachTitle: "No reply yet",
    breachBody: "{who} has waited {age}",
    ev_queued: "Queued · {reason}", ev_assigned: "{agent} joined", ev_first_response: "First reply after {seconds}",
    ev_reply_breach: "The customer waited {seconds} for a reply", ev_transferred: "{from_agent} transferred to {to}",
    ev_handed_back: "Handed back to the bot", ev_closed: "Conversation closed", ev_closed_left: "The customer left; closed",
    ev_abandoned: "The customer left the queue (waited {seconds})", ev_offline_offered: "Nobody on duty: offered to leave a message",
    ev_ticket_created: "Message {ticket} left, to answer by {due}", ev_ticket_done: "Message handled",
    ev_undelivered: "Not delivered: {reason}",
    ev_requeued: "{from_agent} was disabled: back in the queue", ev_requeued_removed: "The agent's account was removed: back in the queue",
    ev_delivered_late: "A kept reply was delivered when the customer wrote again ({seconds} late)",
    removedAgent: "a removed agent", platformPerson: "{channel} servicer {name}", platformPool: "the {channel} pool",
    someone: "Someone",
    notifications: "Notifications", notifyOn: "Tell me (sound and desktop notification)", mute_new_chat: "A new chat",
    mute_customer_message: "A customer writes in my chats", mute_breach: "A reply is over 1 minute late",
    allowDesktop: "Allow desktop notifications", language: "Language", password: "Change password", current: "Current password",
    newPassword: "New password", save: "Save", saved: "Saved", done: "Done",
    addAgent: "Add agent", name: "Name", role: "Role", maxChats: "Chats at once", disable: "Disable", enable: "Enable",
    reset: "Reset password", disabled: "disabled", supervisor: "supervisor", agentRole: "agent",
    due: "due {time}", overdue: "overdue", open: "Open", ticketDone: "Done", whatWasDone: "What was done?",
    noContact: "no contact: reply in the chat", queuedSection: "Queued", inProgress: "In progress", overdueTickets: "Overdue messages",
    seconds: "{n}s", minutes: "{m}m {s}s", hours: "{h}h {m}m",
  },
};

let lang = "zh";

export function setLanguage(chosen) { lang = TEXTS[chosen] ? chosen : "zh"; document.documentElement.lang = lang; }
export function language() { return lang; }

export function t(key, values = {}) {
  const text = TEXTS[lang][key] ?? TEXTS.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (values[name] ?? ""));
}

/** Every element with data-t="key" gets the text; data-t-placeholder and data-t-title likewise. */
export function translatePage(root = document) {
  root.querySelectorAll("[data-t]").forEach((node) => { node.textContent = t(node.dataset.t); });
  root.querySelectorAll("[data-t-placeholder]").forEach((node) => { node.placeholder = t(node.dataset.tPlaceholder); });
  root.querySelectorAll("[data-t-title]").forEach((node) => { node.title = t(node.dataset.tTitle); });
}
