// The header's clocks: how long the conversation has run, how long the current call has run
// against the upstream's cap on one call, and when the page reconnects for a fresh key. When
// the call is lost they stop (nothing counts down towards a reconnect that will not happen
// on its own). Also the key's deadline on this page's clock, and whether a renew is due.

import { clockOf } from "./cues.js";
import { $, LIVE, config, el, state, voiceApis } from "./page.js";

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

// --- The page's clocks and its key's deadline -------------------------------------------------

const clocks = new SessionClocks({
  elapsed: $("elapsed"),
  elapsedValue: $("elapsed-value"),
  callAgeValue: $("call-age-value"),
  callCapValue: $("call-cap-value"),
  countdown: el.countdown,
  countdownValue: el.countdownValue,
  capS: config.sessionMaxS,
});

export function clocksRender(now) {
  clocks.render({
    now,
    startedAt: state.sessionId === null ? null : state.startedAt,
    callStartedAt: state.call?.startedAt ?? null,
    expiresAt: state.sessionId === null ? null : state.expiresAt,
    serverExpiresAt: state.serverExpiresAt,
    soonMs: config.renewMarginS * 2000,
    lost: state.lost,
  });
}

/** How long one call may last: the upstream's cap for the session's voice API. */
export function sessionMaxS() {
  return state.api === LIVE ? voiceApis.apis.live.sessionMaxS : config.sessionMaxS;
}

/**
 * The key's deadline on this page's clock. Every key is minted when we ask for it, with the
 * server's TTL, so the deadline is "asked at + TTL" — the server's `expiresAt` is the same
 * instant on the server's clock, and a client clock that is off by minutes would otherwise
 * make the page renew too late, or over and over.
 */
export function keyExpirySet(expiresAt, mintedAt) {
  state.serverExpiresAt = expiresAt;
  // A Live session has no key: its own lifetime (from its creation) is the deadline.
  const ttlS = state.api === LIVE ? sessionMaxS() : config.clientSecretTtlS;
  state.expiresAt = mintedAt + ttlS * 1000;
  clocksRender(Date.now());
}

/**
 * Why the session should renew at `now`, or null: its key is within `renewMarginS` of expiring,
 * or its call within that margin of the call's cap. A lost call waits for Retry: renewing on
 * our own as well would spend a second key.
 */
export function renewDue(now) {
  if (state.expiresAt === null || state.sessionId === null || state.lost) return null;
  const remaining = state.expiresAt - now;
  const marginMs = config.renewMarginS * 1000;
  const callAge = state.call ? now - state.call.startedAt : 0;
  const callLimit = sessionMaxS() * 1000 - marginMs;
  if (remaining <= marginMs) return "key about to expire";
  if (state.call !== null && callAge >= callLimit) return "call near its time limit";
  return null;
}
