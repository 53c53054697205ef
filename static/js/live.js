// The server's live socket (`ws/session/<id>/`): a snapshot on connect, then numbered messages.
// A gap in the numbers means a message was lost (channels-redis drops past capacity, Redis was
// away), so the page re-reads the transcript from the server, which stays the source of truth.
// Numbers count within an epoch: the server starts a new epoch when its counter was recreated
// (Redis restarted without its data, the key expired), and numbering starts again at 1. A
// message of another epoch is new by definition: the page re-reads and counts afresh, instead
// of dropping everything numbered below what it saw before.
// Below the socket: what each message does on the page (`liveOpen`, `liveMessage`).

import { api } from "./api.js";
import { callEnded } from "./call.js";
import { config, log, showAlert, state, transcript } from "./page.js";
import { profileShow } from "./profile.js";
import { PageReports } from "./reports.js";
import { errorMessage } from "./ui.js";

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10000;
// The server closes with 4403 when this browser does not own the session: do not retry.
const CLOSE_FORBIDDEN = 4403;

export class LiveSocket {
  /**
   * @param {string} sessionId
   * @param {{onMessage: (msg: object) => void, onGap: () => void, onStatus: (s: string) => void}} handlers
   */
  constructor(sessionId, { onMessage, onGap, onStatus }) {
    this.sessionId = sessionId;
    this.onMessage = onMessage;
    this.onGap = onGap;
    this.onStatus = onStatus;
    this.seq = null;
    this.epoch = null;
    this.socket = null;
    this.closed = false;
    this.attempt = 0;
    this.timer = null;
    this.connect();
  }

  url() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${window.location.host}/ws/session/${encodeURIComponent(this.sessionId)}/`;
  }

  connect() {
    if (this.closed) return;
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempt = 0;
      this.onStatus("open");
    });
    socket.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      this.receive(msg);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket || this.closed) return;
      if (event.code === CLOSE_FORBIDDEN) {
        this.closed = true;
        this.onStatus("forbidden");
        return;
      }
      this.onStatus("closed");
      const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** this.attempt);
      this.attempt += 1;
      // Jitter so many pages do not reconnect in step after a server restart.
      this.timer = setTimeout(() => this.connect(), delay * (0.5 + Math.random() / 2));
    });
  }

  receive(msg) {
    const seq = typeof msg.seq === "number" ? msg.seq : null;
    const epoch = typeof msg.epoch === "number" ? msg.epoch : null;
    if (msg.type === "snapshot") {
      this.seq = seq;
      this.epoch = epoch;
      this.onMessage(msg);
      return;
    }
    if (seq !== null) {
      if (this.seq !== null && epoch === this.epoch) {
        if (seq <= this.seq) return; // already seen (a snapshot can include it)
        if (seq > this.seq + 1) this.onGap();
      } else if (this.seq !== null) {
        this.onGap(); // another epoch: whatever came between is only on the server
      }
      this.seq = seq;
      this.epoch = epoch;
    }
    this.onMessage(msg);
  }

  /** Send `msg` to the server; false when the socket is not open (the caller keeps it). */
  send(msg) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(msg));
    return true;
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.socket?.close();
    this.socket = null;
  }
}

// --- The page's socket ------------------------------------------------------------------------

/**
 * Follow session `sessionId` on its socket (and report on it, reports.js), instead of any
 * session followed before. `renew` answers a call that ended for its time limit or offers
 * Retry; `forget` drops a session this browser may no longer follow (close code 4403).
 */
export function liveOpen(sessionId, { renew, forget }) {
  state.live?.close();
  state.reports?.close();
  state.live = new LiveSocket(sessionId, {
    onMessage: (msg) => liveMessage(msg, renew),
    onGap: transcriptReread,
    onStatus: (status) => {
      log("server", `socket ${status}`);
      if (status === "forbidden") {
        showAlert(
          "This browser cannot follow that conversation any more (its cookie is gone). Press Start to begin a new one.",
        );
        forget();
      }
    },
  });
  state.reports = new PageReports(state.live, config.presenceIntervalS);
}

function liveMessage(msg, renew) {
  if (msg.type !== "delta") {
    log("server", msg.type, msg.seq === undefined ? "" : `seq ${msg.seq}`, msg);
  } else log("server", "delta");
  switch (msg.type) {
    case "snapshot":
      transcript.replace(msg.turns ?? []);
      break;
    case "turn":
      if (msg.turn) transcript.upsert(msg.turn);
      break;
    case "delta":
      transcript.delta(msg.itemId, msg.role ?? "assistant", msg.text ?? "");
      break;
    case "call.ended":
      callEnded(msg, renew);
      break;
    case "profile":
      profileShow(msg);
      break;
    default:
      break;
  }
}

/** A message was missed: read the turns that may have changed since from the server. */
async function transcriptReread() {
  if (!state.sessionId) return;
  const after = transcript.resumePosition();
  const query = after === null ? "" : `?after=${encodeURIComponent(after)}`;
  try {
    const { data } = await api("GET", `/session/${state.sessionId}/transcript${query}`);
    const turns = Array.isArray(data) ? data : (data?.turns ?? data?.results ?? []);
    log("server", "transcript re-read", `${turns.length} turns`);
    for (const turn of turns) transcript.upsert(turn);
  } catch (error) {
    log("page", "transcript re-read failed", errorMessage(error));
  }
}
