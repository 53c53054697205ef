// Notices at once when the current call is gone, instead of waiting for the browser's own
// verdict. Chromium marks a peer connection "disconnected" only ~5-8 s after the far end
// vanished and "failed" after ~18 s; the upstream, though, sends audio packets all the time
// (silence between turns), so packets that stop for STALL_POLLS polls in a row mean the far
// end is gone. Counted in polls, not clock time, so a page whose clock jumps (a laptop waking
// up, a test's fake clock) does not take one late poll for a stall.

const POLL_MS = 300;
const STALL_POLLS = 4; // ~1.2 s without a packet

/** Why a call was declared lost, in words for the alert. */
export const LOST_REASON = {
  stalled: "The voice service stopped answering",
  channel: "The call's control channel closed",
  failed: "The audio connection failed",
  disconnected: "The audio connection dropped",
};

/**
 * Watches one call: its data channel closing, its peer connection failing, its incoming audio
 * stopping. Calls `onLost(reason)` once (a key of LOST_REASON); `stop()` ends the watch (the
 * page replacing or closing the call itself is not a loss).
 */
export class CallWatch {
  constructor({ pc, dc, onLost }) {
    this.pc = pc;
    this.dc = dc;
    this.onLost = onLost;
    this.stopped = false;
    this.packets = null;
    this.idlePolls = 0;
    this.closed = () => this.lost("channel");
    this.stateChanged = () => {
      const state = this.pc.connectionState;
      if (state === "failed" || state === "disconnected") this.lost(state);
    };
    dc.addEventListener("close", this.closed);
    pc.addEventListener("connectionstatechange", this.stateChanged);
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  async poll() {
    let received = 0;
    let found = false;
    try {
      const report = await this.pc.getStats();
      report.forEach((stat) => {
        if (stat.type === "inbound-rtp" && stat.kind === "audio") {
          received += stat.packetsReceived ?? 0;
          found = true;
        }
      });
    } catch {
      return; // a closed connection: its own events say so
    }
    if (this.stopped || !found) return;
    if (this.packets === null || received > this.packets) {
      this.packets = received;
      this.idlePolls = 0;
      return;
    }
    this.idlePolls += 1;
    // Only once audio has flowed: a call still setting up has not stalled.
    if (received > 0 && this.idlePolls >= STALL_POLLS) this.lost("stalled");
  }

  lost(reason) {
    if (this.stopped) return;
    this.stop();
    this.onLost(reason);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    this.dc.removeEventListener("close", this.closed);
    this.pc.removeEventListener("connectionstatechange", this.stateChanged);
  }
}
