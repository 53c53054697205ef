// The header's clocks: how long the conversation has run, how long the current call has run
// against the upstream's cap on one call, and when the page reconnects for a fresh key. When
// the call is lost they stop (nothing counts down towards a reconnect that will not happen
// on its own).

import { clockOf } from "./cues.js";

export class SessionClocks {
  constructor({ elapsed, elapsedValue, callAgeValue, callCapValue, countdown, countdownValue, capS }) {
    this.elapsed = elapsed;
    this.elapsedValue = elapsedValue;
    this.callAgeValue = callAgeValue;
    this.countdown = countdown;
    this.countdownValue = countdownValue;
    callCapValue.textContent = clockOf(capS * 1000);
  }

  /**
   * @param {{now: number, startedAt: number|null, callStartedAt: number|null,
   *          expiresAt: number|null, serverExpiresAt: string|null, soonMs: number,
   *          lost: boolean}} view
   */
  render({ now, startedAt, callStartedAt, expiresAt, serverExpiresAt, soonMs, lost }) {
    this.elapsed.hidden = startedAt === null;
    if (startedAt !== null) this.elapsedValue.textContent = clockOf(now - startedAt);
    this.callAgeValue.textContent = callStartedAt === null || lost ? "–" : clockOf(now - callStartedAt);
    this.countdown.hidden = expiresAt === null || lost;
    if (expiresAt === null || lost) return;
    const remaining = expiresAt - now;
    this.countdownValue.textContent = clockOf(remaining);
    this.countdownValue.dateTime = serverExpiresAt ?? "";
    this.countdown.classList.toggle("soon", remaining < soonMs);
  }
}
