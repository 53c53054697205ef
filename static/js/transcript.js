// The transcript as the server keeps it: turns by item id, shown in `position` order, plus the
// partial text of items the server is still streaming (deltas are never stored server-side).

const FINAL = new Set(["completed", "incomplete", "failed", "untranscribed"]);

// How a person's turn was given (the server's `inputMode`).
const INPUT_LABEL = { text: "typed", audio: "spoken" };

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

const ROLE_LABEL = {
  user: "You",
  assistant: "Assistant",
  tool_call: "Tool call",
  tool_output: "Tool result",
};

export class Transcript {
  /** @param {HTMLOListElement} list  @param {HTMLElement} empty */
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
    /** @type {Map<string, object>} itemId → turn JSON from the server */
    this.turns = new Map();
    /** @type {Map<string, {role: string, text: string}>} itemId → partial text (deltas) */
    this.partials = new Map();
    /** @type {Map<string, HTMLLIElement>} */
    this.nodes = new Map();
  }

  clear() {
    this.turns.clear();
    this.partials.clear();
    this.nodes.clear();
    this.list.replaceChildren();
    this.render();
  }

  /** A full snapshot replaces what we had (partials of items still streaming survive). */
  replace(turns) {
    this.turns.clear();
    for (const turn of turns) this.turns.set(turn.itemId, turn);
    this.render();
  }

  upsert(turn) {
    const known = this.turns.get(turn.itemId);
    // A late, older copy must not undo a newer one (same position, status went final).
    if (known && FINAL.has(known.status) && !FINAL.has(turn.status)) return;
    this.turns.set(turn.itemId, turn);
    if (FINAL.has(turn.status) || turn.text) this.partials.delete(turn.itemId);
    this.render();
  }

  delta(itemId, role, text) {
    const known = this.turns.get(itemId);
    if (known && FINAL.has(known.status)) return;
    this.partials.set(itemId, { role, text });
    this.render();
  }

  /** Where an incremental re-read (`?after=`) should start: before the first unfinished turn. */
  resumePosition() {
    let lowestOpen = null;
    let highest = null;
    for (const turn of this.turns.values()) {
      if (highest === null || turn.position > highest) highest = turn.position;
      if (!FINAL.has(turn.status) && (lowestOpen === null || turn.position < lowestOpen)) {
        lowestOpen = turn.position;
      }
    }
    if (lowestOpen !== null) return lowestOpen - 1;
    return highest;
  }

  textOf(itemId) {
    return this.turns.get(itemId)?.text ?? this.partials.get(itemId)?.text ?? null;
  }

  highlight(itemIds, on) {
    for (const id of itemIds) this.nodes.get(id)?.classList.toggle("highlight", on);
  }

  /** Ordered view: server turns by position, then streaming items the server has not sent yet. */
  ordered() {
    const rows = [...this.turns.values()].sort((a, b) => a.position - b.position);
    for (const [itemId, partial] of this.partials) {
      if (!this.turns.has(itemId)) {
        rows.push({ itemId, role: partial.role, text: null, status: "in_progress", position: Infinity });
      }
    }
    return rows;
  }

  render() {
    const rows = this.ordered();
    const stickToBottom =
      this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const keep = new Set();
    let previous = null;
    for (const turn of rows) {
      keep.add(turn.itemId);
      let node = this.nodes.get(turn.itemId);
      if (!node) {
        node = document.createElement("li");
        this.nodes.set(turn.itemId, node);
      }
      this.fill(node, turn);
      // Move only when out of place, so screen readers are not told about unchanged rows.
      const expected = previous ? previous.nextSibling : this.list.firstChild;
      if (expected !== node) this.list.insertBefore(node, expected);
      previous = node;
    }
    for (const [itemId, node] of this.nodes) {
      if (!keep.has(itemId)) {
        node.remove();
        this.nodes.delete(itemId);
      }
    }
    this.empty.hidden = rows.length > 0;
    if (stickToBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  fill(node, turn) {
    const partial = this.partials.get(turn.itemId);
    const showPartial = Boolean(partial) && !FINAL.has(turn.status) && !turn.text;
    const text = showPartial ? partial.text : turn.text;
    const { body, placeholder } = describe(turn, text);
    const badge = badgeOf(turn);
    const signature = JSON.stringify([
      turn.role,
      turn.createdAt ?? "",
      turn.inputMode ?? "",
      body,
      placeholder,
      badge,
      showPartial,
      turn.status,
      turn.statusReason ?? "",
    ]);
    if (node.dataset.signature === signature) return;
    node.dataset.signature = signature;
    node.className = `turn turn--${turn.role}`;
    node.dataset.itemId = turn.itemId;
    node.dataset.status = turn.status;
    node.dataset.role = turn.role;
    node.dataset.input = turn.inputMode ?? "";
    node.dataset.partial = String(showPartial);

    const who = document.createElement("span");
    who.className = "who";
    who.textContent = ROLE_LABEL[turn.role] ?? turn.role;
    const how = INPUT_LABEL[turn.inputMode];
    if (how) {
      const mark = document.createElement("span");
      mark.className = `how how--${how}`;
      mark.textContent = how;
      who.append(" · ", mark);
    }
    if (turn.createdAt) {
      const when = document.createElement("time");
      when.dateTime = turn.createdAt;
      when.textContent = timeFormat.format(new Date(turn.createdAt));
      who.append(" · ", when);
    }
    const paragraph = document.createElement("p");
    paragraph.className = placeholder ? "text placeholder" : "text";
    paragraph.textContent = body;
    const children = [who, paragraph];
    if (badge) {
      const mark = document.createElement("span");
      mark.className = `badge badge--${turn.status}`;
      mark.textContent = badge;
      // The server's reason (e.g. the upstream's error code) for whoever wants the detail.
      if (turn.statusReason) mark.title = turn.statusReason;
      children.push(mark);
    }
    node.replaceChildren(...children);
  }
}

function describe(turn, text) {
  if (turn.role === "tool_call") {
    return { body: `${turn.name || "function"}(${turn.arguments || ""})`, placeholder: false };
  }
  if (turn.role === "tool_output") {
    return { body: turn.output || text || "", placeholder: false };
  }
  if (text) return { body: text, placeholder: false };
  if (turn.role === "user") {
    if (turn.status === "failed") return { body: "(spoken — no transcript)", placeholder: true };
    if (turn.status === "in_progress") return { body: "(speaking… transcript pending)", placeholder: true };
    return { body: "(spoken — no transcript)", placeholder: true };
  }
  if (turn.status === "in_progress") return { body: "…", placeholder: true };
  return { body: "(no text)", placeholder: true };
}

function badgeOf(turn) {
  if (turn.status === "incomplete") return "Interrupted";
  if (turn.status === "failed") return turn.role === "user" ? "Transcription failed" : "Failed";
  if (turn.status === "untranscribed") return "Not transcribed";
  return "";
}
