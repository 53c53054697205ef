// Small pieces of the page's chrome: the developers' event log, the connection indicator and
// the alert with its Retry button.

import { ApiError } from "./api.js";

const LOG_LIMIT = 300;
// Keys whose values never go into the log, at any depth (the log is for developers, and may
// be copied into a bug report).
const REDACTED_KEY = /secret|authorization|token|password|api[_-]?key/i;

function redacted(value) {
  if (Array.isArray(value)) return value.map(redacted);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, v]) => [key, REDACTED_KEY.test(key) ? "[redacted]" : redacted(v)]),
  );
}

/**
 * The developers' event log: newest first, each line with its payload folded under it, and a
 * filter box. It never holds secrets: callers pass event types and short notes, and payloads
 * lose any secret-looking key.
 */
export class EventLog {
  /** @param {HTMLOListElement} list  @param {HTMLInputElement} filter */
  constructor(list, filter, limit = LOG_LIMIT) {
    this.list = list;
    this.filter = filter;
    this.limit = limit;
    filter?.addEventListener("input", () => {
      for (const item of this.list.children) this.applyFilter(item);
    });
  }

  applyFilter(item) {
    const needle = this.filter?.value.trim().toLowerCase() ?? "";
    item.hidden = needle !== "" && !item.dataset.search.includes(needle);
  }

  /** One line; a repeat of the newest line without detail or payload only bumps its counter. */
  add(direction, type, detail = "", payload = undefined) {
    const newest = this.list.firstElementChild;
    const key = `${direction}|${type}`;
    if (newest && newest.dataset.key === key && !detail && payload === undefined) {
      const count = Number(newest.dataset.count) + 1;
      newest.dataset.count = String(count);
      newest.querySelector(".count").textContent = ` ×${count}`;
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
    const line = [`${time} `, dir, ` ${type}${detail ? ` — ${detail}` : ""}`, count];
    let json = "";
    if (payload === undefined) {
      item.append(...line);
    } else {
      json = JSON.stringify(redacted(payload), null, 2);
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.append(...line);
      const pre = document.createElement("pre");
      pre.textContent = json;
      details.append(summary, pre);
      item.append(details);
    }
    item.dataset.search = `${direction} ${type} ${detail} ${json}`.toLowerCase();
    this.applyFilter(item);
    this.list.prepend(item);
    while (this.list.childElementCount > this.limit) this.list.lastElementChild.remove();
  }
}

const CONNECTION_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  renewing: "Reconnecting…",
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

/**
 * Refresh asks first (it ends the conversation on this page) and offers to carry the profile
 * into the new one. Resolves `{carryProfile}` on confirm, null on cancel or Escape.
 */
export class RefreshDialog {
  constructor({ dialog, carry, carryField }) {
    this.dialog = dialog;
    this.carry = carry;
    this.carryField = carryField;
  }

  ask({ hasProfile }) {
    this.carryField.hidden = !hasProfile;
    this.carry.checked = hasProfile;
    this.dialog.returnValue = "";
    return new Promise((resolve) => {
      this.dialog.addEventListener(
        "close",
        () => resolve(this.dialog.returnValue === "confirm" ? { carryProfile: hasProfile && this.carry.checked } : null),
        { once: true },
      );
      this.dialog.showModal();
    });
  }
}
