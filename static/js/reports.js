// What the page tells the server over its live socket, beside listening:
// - the conversation items its data channel saw (ids only, never text): when the server's
//   sideband missed some, it asks the upstream for each of these ids, so no turn is lost;
// - that it is still here (presence): a call nobody follows and the upstream has gone quiet on
//   is ended by the server after a while, so a vanished browser does not leave it running.

// The server takes at most this many items per report (sideband.hints.HINTS_PER_MESSAGE).
const ITEMS_PER_REPORT = 100;
// Items waiting while the socket is down; the oldest go first when there are more.
const ITEMS_PENDING_MAX = 500;
const FLUSH_DELAY_MS = 200;

export class PageReports {
  /**
   * @param {{send: (msg: object) => boolean}} live the session's live socket (LiveSocket)
   * @param {number} presenceIntervalS how often to say "still here"
   */
  constructor(live, presenceIntervalS) {
    this.live = live;
    /** @type {Map<string, {callId: string, id: string, previousItemId: string | null}>} */
    this.pending = new Map();
    this.flushTimer = null;
    this.presenceTimer = setInterval(() => this.live.send({ type: "presence" }), presenceIntervalS * 1000);
  }

  /** A data-channel event of call `callId`: remember the item it added, if any. */
  itemEvent(callId, event) {
    if (event.type !== "conversation.item.added" && event.type !== "conversation.item.created") return;
    const id = event.item?.id;
    if (typeof id !== "string" || this.pending.has(id)) return;
    const previous = typeof event.previous_item_id === "string" ? event.previous_item_id : null;
    this.pending.set(id, { callId, id, previousItemId: previous });
    while (this.pending.size > ITEMS_PENDING_MAX) this.pending.delete(this.pending.keys().next().value);
    this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_DELAY_MS);
  }

  /** Send what is pending, one report per call and at most ITEMS_PER_REPORT items each. */
  flush() {
    this.flushTimer = null;
    const byCall = new Map();
    for (const item of this.pending.values()) {
      const items = byCall.get(item.callId) ?? [];
      if (items.length < ITEMS_PER_REPORT) items.push(item);
      byCall.set(item.callId, items);
    }
    for (const [callId, items] of byCall) {
      const report = { type: "items.seen", callId, items: items.map(({ id, previousItemId }) => ({ id, previousItemId })) };
      if (!this.live.send(report)) break; // the socket is down: try again later
      for (const item of items) this.pending.delete(item.id);
    }
    if (this.pending.size > 0) this.flushTimer = setTimeout(() => this.flush(), FLUSH_DELAY_MS * 5);
  }

  close() {
    clearInterval(this.presenceTimer);
    clearTimeout(this.flushTimer);
    this.pending.clear();
  }
}
