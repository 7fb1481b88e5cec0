// The access trail for supervisors (GET /api/audit): who opened, exported or erased what,
// when and from where. Read-only: nobody can change it, here or anywhere.
import { api, el } from "./api.js";
import { t } from "./i18n.js";
import { $ } from "./state.js";
import { fullTime } from "./time.js";

const LIMIT = 10000;  // console.py AUDIT_LIMIT: the API returns at most the newest this many

function actionName(action) {
  const key = "act_" + action, text = t(key);
  return text === key ? action : text;
}

function detailText(detail) {
  return Object.entries(detail || {}).filter(([, v]) => v !== "" && v != null && !(typeof v === "object" && !Object.keys(v).length))
    .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v)).join(" ");
}

export async function loadTrail() {
  const params = new URLSearchParams();
  [["trail-from", "from"], ["trail-to", "to"], ["trail-actor", "actor"], ["trail-action", "action"],
   ["trail-subject", "subject"]].forEach(([id, name]) => { if ($(id).value.trim()) params.set(name, $(id).value.trim()); });
  const say = $("trail-status"), body = $("trail-table").tBodies[0];
  try {
    const { records } = await api("GET", "/audit?" + params);
    body.textContent = "";
    records.slice().reverse().forEach((r) => {  // the newest first
      const row = body.insertRow();
      row.insertCell().textContent = fullTime(r.at);
      row.insertCell().textContent = r.actor;
      const what = row.insertCell();
      what.appendChild(el("span", null, actionName(r.action)));
      const detail = detailText(r.detail);
      if (detail) what.appendChild(el("span", "muted trail-detail", " " + detail));
      row.insertCell().textContent = r.subject;
      row.insertCell().textContent = r.address;
    });
    const actors = $("trail-actors"); actors.textContent = "";
    [...new Set(records.map((r) => r.actor))].forEach((name) => actors.appendChild(new Option(name)));
    say.classList.remove("bad");
    say.textContent = records.length ? (records.length >= LIMIT ? t("trailLimited", { n: LIMIT }) : "") : t("trailNone");
  } catch (error) {
    say.textContent = error.message; say.classList.add("bad");
  }
}

export function wireTrail(show) {
  $("show-trail").addEventListener("click", () => { show("trail"); loadTrail(); });
  $("trail-form").addEventListener("submit", (event) => { event.preventDefault(); loadTrail(); });
}
