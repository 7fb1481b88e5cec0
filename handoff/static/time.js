// Times as the shop keeps them: in business.timezone, whatever the browser's zone.
import { language, t } from "./i18n.js";

let zone = "Asia/Shanghai";
export function setZone(name) { zone = name; }

function format(ts, options) {
  return new Intl.DateTimeFormat(language() === "zh" ? "zh-CN" : "en-GB", { timeZone: zone, hour12: false, ...options })
    .format(new Date(ts * 1000));
}

const dayOf = (ts) => format(ts, { year: "numeric", month: "2-digit", day: "2-digit" });

/** 14:05 today, else 11-30 14:05. */
export function clock(ts) {
  if (ts == null) return "";
  const time = format(ts, { hour: "2-digit", minute: "2-digit" });
  return dayOf(ts) === dayOf(Date.now() / 1000) ? time : format(ts, { month: "2-digit", day: "2-digit" }) + " " + time;
}

export function fullTime(ts) {
  return format(ts, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function age(seconds) {
  if (seconds == null) return "";
  const s = Math.max(0, Math.floor(seconds)), m = Math.floor(s / 60);
  if (m >= 60) return t("hours", { h: Math.floor(m / 60), m: m % 60 });
  if (m >= 1) return t("minutes", { m, s: s % 60 });
  return t("seconds", { n: s });
}
