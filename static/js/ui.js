// Small pieces of the page's chrome: the developers' event log, the connection indicator and
// the alert with its Retry button.

import { ApiError } from "./api.js";

const LOG_LIMIT = 300;

/** The collapsed event log. It never holds secrets: callers pass event types and short notes. */
export class EventLog {
  /** @param {HTMLOListElement} list */
  constructor(list, limit = LOG_LIMIT) {
    this.list = list;
    this.limit = limit;
  }

  /** One line; a repeat of the previous line without detail only bumps its counter. */
  add(direction, type, detail = "") {
    const last = this.list.lastElementChild;
    const key = `${direction}|${type}`;
    if (last && last.dataset.key === key && !detail) {
      const count = Number(last.dataset.count) + 1;
      last.dataset.count = String(count);
      last.querySelector(".count").textContent = ` ×${count}`;
      return;
    }
    const item = document.createElement("li");
    item.dataset.key = key;
    item.dataset.count = "1";
    const time = new Date().toISOString().slice(11, 23);
    const dir = document.createElement("span");
    dir.className = "dir";
    dir.textContent = direction;
    const count = document.createElement("span");
    count.className = "count";
    item.append(`${time} `, dir, ` ${type}${detail ? ` — ${detail}` : ""}`, count);
    this.list.append(item);
    while (this.list.childElementCount > this.limit) this.list.firstElementChild.remove();
  }
}

const CONNECTION_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  renewing: "Renewing…",
  connected: "Connected",
  disconnected: "Connection lost",
  failed: "Connection failed",
  ended: "Call ended",
};

/** The header's connection indicator (`role="status"`). */
export class ConnectionIndicator {
  constructor(root, text) {
    this.root = root;
    this.text = text;
  }

  set(name) {
    this.root.dataset.state = name;
    this.text.textContent = CONNECTION_TEXT[name] ?? name;
  }
}

/** The alert (`role="alert"`): a sentence, and Retry when there is something to retry. */
export class AlertBox {
  constructor({ root, text, retry, dismiss }) {
    this.root = root;
    this.text = text;
    this.retryButton = retry;
    this.retryAction = null;
    retry.addEventListener("click", () => {
      const action = this.retryAction;
      this.hide();
      action?.();
    });
    dismiss.addEventListener("click", () => this.hide());
  }

  get level() {
    return this.root.hidden ? null : this.root.dataset.level;
  }

  show(message, { retry = null, level = "error" } = {}) {
    this.root.dataset.level = level;
    this.text.textContent = message;
    this.retryAction = retry;
    this.retryButton.hidden = retry === null;
    this.root.hidden = false;
  }

  hide() {
    this.root.hidden = true;
    this.retryAction = null;
  }
}

export function errorMessage(error) {
  if (error instanceof ApiError) return error.message;
  return "Something unexpected went wrong. Press Retry; if it keeps happening, reload the page.";
}
