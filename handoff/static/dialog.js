// The console's own small dialogs in place of the browser's alert, confirm and prompt:
// in the agent's language and the console's look, and a password field for passwords.
import { button, el } from "./api.js";
import { t } from "./i18n.js";

/** One question in the #ask dialog (it may open over another dialog); resolves with the
 * typed text (input), true (a confirmation) or null when cancelled. */
function ask({ title, message, input, ok, danger, cancel = true }) {
  const box = document.getElementById("ask");
  box.textContent = "";
  const form = el("form");
  form.method = "dialog";
  if (title) form.appendChild(el("h2", null, title));
  if (message) form.appendChild(el("p", "ask-message", message));
  let field = null;
  if (input) {
    field = el(input.multiline ? "textarea" : "input");
    if (!input.multiline) field.type = input.type || "text";
    if (input.type === "password") field.autocomplete = "new-password";
    field.value = input.value || "";
    field.required = !!input.required;
    const label = el("label", "field");
    label.appendChild(el("span", null, input.label || ""));
    label.appendChild(field);
    form.appendChild(label);
  }
  const row = el("div", "ask-buttons");
  if (cancel) row.appendChild(button(t("cancel"), () => box.close("cancel")));
  const go = el("button", danger ? "danger-fill" : "primary", ok || t("ok"));
  go.type = "submit"; go.value = "ok";
  row.appendChild(go);
  form.appendChild(row);
  box.appendChild(form);
  return new Promise((resolve) => {
    box.returnValue = "";
    box.addEventListener("close", () => {
      if (box.returnValue !== "ok") resolve(null);
      else resolve(field ? field.value : true);
    }, { once: true });
    box.showModal();
    (field || go).focus();
  });
}

export function confirmBox(message, options = {}) {
  return ask({ message, ...options }).then((answer) => answer === true);
}

export function promptBox(label, options = {}) {
  return ask({ ...options, input: { label, ...(options.input || {}) } });
}

export function alertBox(message, options = {}) {
  return ask({ message, cancel: false, ...options });
}
