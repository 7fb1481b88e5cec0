// A sound, a desktop notification and a count in the tab's title, per kind of news;
// each kind can be muted by the agent (their settings, kept by kefu).
import { t } from "./i18n.js";

let muted = new Set();
let audio = null;
const BASE_TITLE = document.title;

export function setMuted(kinds) { muted = new Set(kinds); }
export function isMuted(kind) { return muted.has(kind); }

/** Browsers keep an AudioContext made without a user's gesture suspended: make it (or wake
 * it) on the agent's first click or key, so the first alert of the shift is heard. */
export function unlockSound() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume().catch(() => {});
  } catch (error) { /* no audio device */ }
}

export function soundState() { return audio ? audio.state : "none"; }

function beep() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume().catch(() => {});
    const tone = audio.createOscillator(), gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    tone.connect(gain).connect(audio.destination);
    tone.start(); tone.stop(audio.currentTime + 0.4);
  } catch (error) { /* no audio device: the other signals remain */ }
}

/** kind: new_chat, customer_message or breach; tag: one notification per conversation. */
export function notify(kind, title, body, tag, onClick) {
  if (muted.has(kind)) return false;
  beep();
  if ("Notification" in window && Notification.permission === "granted") {
    const shown = new Notification(title, { body, tag: kind + ":" + tag });
    shown.onclick = () => { window.focus(); onClick?.(); shown.close(); };
  }
  return true;
}

export function askPermission() {
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
}

/** "(3) 客服工作台": what waits for the agent, so it shows in a background tab. */
export function setTitleCount(count) {
  document.title = (count ? "(" + count + ") " : "") + BASE_TITLE;
}

export function permissionText() {
  if (!("Notification" in window)) return "—";
  return Notification.permission === "granted" ? "✓" : t("allowDesktop");
}
