// The agent's own settings (language, notifications, password) and, for supervisors,
// colleagues' accounts: dialogs over the console.
import { api, button, el } from "./api.js";
import { promptBox } from "./dialog.js";
import { t, translatePage } from "./i18n.js";
import { permissionText } from "./notify.js";
import { state, $ } from "./state.js";

function field(label, input) {
  const row = el("label", "field");
  row.appendChild(el("span", null, label));
  row.appendChild(input);
  return row;
}

function input(type, name) {
  const node = el("input");
  node.type = type; node.name = name;
  return node;
}

function dialog(title) {
  const box = $("dialog");
  box.textContent = "";
  const head = el("div", "dialog-head");
  head.appendChild(el("h2", null, title));
  head.appendChild(button("×", () => box.close(), "icon")).setAttribute("aria-label", t("done"));
  box.appendChild(head);
  return box;
}

function status(box) {
  const line = el("p", "status");
  line.setAttribute("role", "status");
  box.appendChild(line);
  return (text, bad) => { line.textContent = text; line.classList.toggle("bad", !!bad); };
}

export function openSettings(onSaved) {
  const box = dialog(t("settings"));
  const settings = state.me.settings;
  const lang = el("select");
  [["zh", "中文"], ["en", "English"]].forEach(([value, name]) => lang.appendChild(new Option(name, value)));
  lang.value = settings.lang;
  box.appendChild(field(t("language"), lang));
  box.appendChild(el("h3", null, t("notifications")));
  box.appendChild(el("p", "muted", t("notifyOn")));
  const checks = state.me.notices.map((notice) => {
    const check = input("checkbox", notice);
    check.checked = !settings.muted.includes(notice);
    const row = el("label", "check");
    row.appendChild(check); row.appendChild(el("span", null, t("mute_" + notice)));
    box.appendChild(row);
    return check;
  });
  box.appendChild(button(permissionText(), () => Notification.requestPermission(), "small"));
  const say = status(box);
  box.appendChild(button(t("save"), async () => {
    try {
      const saved = await api("POST", "/me/settings", {
        lang: lang.value, muted: checks.filter((c) => !c.checked).map((c) => c.name) });
      onSaved(saved.settings); say(t("saved"));
    } catch (error) { say(error.message, true); }
  }, "primary"));
  box.appendChild(el("h3", null, t("password")));
  const current = input("password", "current"), fresh = input("password", "new");
  current.autocomplete = "current-password"; fresh.autocomplete = "new-password";
  box.appendChild(field(t("current"), current));
  box.appendChild(field(t("newPassword"), fresh));
  const sayPassword = status(box);
  box.appendChild(button(t("password"), async () => {
    try {
      await api("POST", "/me/password", { current: current.value, new: fresh.value });
      current.value = ""; fresh.value = ""; sayPassword(t("saved"));
    } catch (error) { sayPassword(error.message, true); }
  }));
  box.showModal();
}

export async function openAccounts(onChanged) {
  const box = dialog(t("accounts"));
  const say = status(box);
  const table = el("table", "accounts");
  box.appendChild(table);
  async function render() {
    const agents = await api("GET", "/agents");
    table.textContent = "";
    agents.forEach((a) => {
      const row = table.insertRow();
      row.insertCell().textContent = a.name;
      row.insertCell().textContent = t(a.role === "supervisor" ? "supervisor" : "agentRole");
      row.insertCell().textContent = a.disabled ? t("disabled") : (a.online ? t("online") : t(a.presence));
      const actions = row.insertCell();
      if (a.id !== state.me.agent.id) {
        actions.appendChild(button(t(a.disabled ? "enable" : "disable"), () =>
          change(a, a.disabled ? "enable" : "disable"), "small"));
      }
      actions.appendChild(button(t("reset"), async () => {
        const password = await promptBox(t("newPassword"), {
          title: t("resetFor", { name: a.name }), ok: t("reset"),
          input: { type: "password", required: true } });
        if (password) change(a, "password", { password });
      }, "small"));
    });
  }
  async function change(agent, action, body) {
    try { await api("POST", "/agents/" + agent.id + "/" + action, body); say(t("saved")); await render(); onChanged(); }
    catch (error) { say(error.message, true); }
  }
  box.appendChild(el("h3", null, t("addAgent")));
  const name = input("text", "name"), password = input("password", "password");
  const role = el("select"), chats = input("number", "max_chats");
  role.appendChild(new Option(t("agentRole"), "agent")); role.appendChild(new Option(t("supervisor"), "supervisor"));
  chats.min = 1; chats.value = 5;
  [[t("name"), name], [t("newPassword"), password], [t("role"), role], [t("maxChats"), chats]].forEach(([l, i]) => box.appendChild(field(l, i)));
  box.appendChild(button(t("addAgent"), async () => {
    try {
      await api("POST", "/agents", { name: name.value, password: password.value, role: role.value, max_chats: Number(chats.value) });
      name.value = ""; password.value = ""; say(t("saved")); await render(); onChanged();
    } catch (error) { say(error.message, true); }
  }, "primary"));
  await render();
  translatePage(box);
  box.showModal();
}
