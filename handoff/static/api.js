// The agent API (docs/agent-api.md), with the session's CSRF token on every change.
let csrf = "";
export function setCsrf(token) { csrf = token; }

export class ApiError extends Error {
  constructor(data, status) { super(data.message || String(status)); this.data = data; this.status = status; }
}

export async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    options.headers["X-CSRF-Token"] = csrf;
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body || {});
  }
  const response = await fetch("/agent/api" + path, options);
  if (response.status === 401) { location.href = "/agent/login"; throw new ApiError({ message: "login" }, 401); }
  const data = await response.json();
  if (!response.ok) throw new ApiError(data, response.status);
  return data;
}

/** A DOM element; text is always set as text, never parsed as HTML. */
export function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text != null) node.textContent = text;
  return node;
}

export function button(text, onClick, cls) {
  const node = el("button", cls, text);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}
