// The reply box: canned replies picked by keyboard (↑ ↓ Enter Tab, Esc), their variables
// filled in, and Enter that never sends while an input method is composing (pinyin).
import { el } from "./api.js";

export class Composer {
  constructor(textarea, picker, { replies, variables, onSend, onTyping }) {
    this.box = textarea; this.picker = picker; this.replies = replies;
    this.variables = variables; this.onSend = onSend; this.onTyping = onTyping;
    this.matches = []; this.chosen = 0;
    textarea.addEventListener("input", () => { this.update(); if (!this.box.value.startsWith("/")) this.onTyping(); });
    textarea.addEventListener("keydown", (event) => this.key(event));
    // leaving the box closes the list (later, so that a click on it still counts)
    textarea.addEventListener("blur", () => setTimeout(() => {
      if (document.activeElement !== this.box) this.hide();
    }, 150));
  }

  update() {
    const typed = /^\/(\S*)$/.exec(this.box.value);
    if (!typed) { this.hide(); return; }
    const word = typed[1].toLowerCase();
    const starts = this.replies.filter((r) => r.shortcut.toLowerCase().startsWith(word));
    // shortcuts that start so; failing any, replies that contain the word
    this.matches = starts.length ? starts : this.replies.filter((r) =>
      r.shortcut.toLowerCase().includes(word) || r.text.toLowerCase().includes(word));
    this.chosen = 0;
    this.render();
  }

  render() {
    this.picker.textContent = "";
    this.picker.hidden = this.matches.length === 0;
    this.matches.forEach((reply, i) => {
      const item = el("li", i === this.chosen ? "chosen" : "");
      item.setAttribute("role", "option");
      item.setAttribute("aria-selected", String(i === this.chosen));
      item.appendChild(el("span", "shortcut", "/" + reply.shortcut));
      item.appendChild(el("span", "text", this.fill(reply.text)));
      item.addEventListener("mousedown", (event) => { event.preventDefault(); this.insert(reply); });
      this.picker.appendChild(item);
    });
    this.picker.children[this.chosen]?.scrollIntoView({ block: "nearest" });
  }

  hide() { this.matches = []; this.picker.hidden = true; this.picker.textContent = ""; }

  fill(text) {
    const values = this.variables();
    return text.replace(/\{(customer|agent|shop)\}/g, (_, name) => values[name] || "");
  }

  insert(reply) {
    this.box.value = this.fill(reply.text);
    this.hide();
    this.box.focus();
    this.box.setSelectionRange(this.box.value.length, this.box.value.length);
  }

  key(event) {
    // While an input method composes (pinyin, kana), Enter chooses its candidate: never send.
    if (event.isComposing || event.keyCode === 229) return;
    const open = this.matches.length > 0;
    if (open && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.chosen = (this.chosen + step + this.matches.length) % this.matches.length;
      this.render();
    } else if (open && (event.key === "Enter" || event.key === "Tab")) {
      event.preventDefault();
      this.insert(this.matches[this.chosen]);
    } else if (open && event.key === "Escape") {
      this.hide();
    } else if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      if (!this.box.value.startsWith("/")) this.onSend();
    }
  }
}
