// The session on this page: Start, Refresh (asked first), renew — on demand, Retry, or
// automatic before the key or the call's cap runs out — and forgetting a session this browser
// can no longer use. One at a time: a second request joins the running one, and a failure
// becomes an alert with Retry.

import { ApiError, api } from "./api.js";
import { callClose, callConnect } from "./call.js";
import { dataChannelReady, updateControls } from "./controls.js";
import { liveOpen } from "./live.js";
import { $, LIVE, STORAGE_KEY, el, hideAlert, log, setConnection, showAlert, state, superseded, transcript } from "./page.js";
import { memoryShow, profileCard, profileRestore } from "./profile.js";
import { clocksRender, keyExpirySet, renewDue } from "./timers.js";
import { RefreshDialog, errorMessage } from "./ui.js";

// After an automatic renew fails, wait this long before trying on our own again (Retry is
// always available).
const AUTO_RENEW_BACKOFF_MS = 15000;

const refreshDialog = new RefreshDialog({
  dialog: $("refresh-dialog"),
  carry: $("carry-profile"),
  carryField: $("carry-field"),
});

/**
 * Run one start/renew at a time (a second request joins the running one). A failure becomes an
 * alert with Retry; the returned promise never rejects.
 */
async function exclusive(label, work, retry) {
  if (state.busy) return state.busy;
  let release;
  state.busy = new Promise((resolve) => {
    release = resolve;
  });
  setConnection(label);
  hideAlert();
  updateControls();
  try {
    await work();
  } catch (error) {
    log("page", `${label} failed`, errorMessage(error));
    setConnection(state.call && dataChannelReady() ? "connected" : "failed");
    showAlert(errorMessage(error), { retry });
  } finally {
    state.busy = null;
    release();
    updateControls();
  }
}

export function sessionStart({ reset, carryProfile = false }) {
  const before = state.sessionId;
  // Once the new session exists, only its call is missing: Retry renews instead of creating
  // yet another session.
  const retry = () =>
    state.sessionId !== null && state.sessionId !== before
      ? renew({ automatic: false })
      : sessionStart({ reset, carryProfile });
  return exclusive(
    "connecting",
    async () => {
      const body = {
        model: el.model.value,
        voice: el.voice.value,
        enableTranscription: el.transcription.checked,
        carryMemory: el.carryMemory.checked,
      };
      if (reset) body.reset = true;
      if (carryProfile) body.carryProfile = true;
      const mintedAt = Date.now();
      const begin = async (data, voiceApi) => {
        log("server", reset ? "session refreshed" : "session created", data.sessionId);
        callClose();
        state.sessionId = data.sessionId;
        state.api = voiceApi;
        state.startedAt = mintedAt;
        state.lost = false;
        keyExpirySet(data.expiresAt, mintedAt);
        state.appliedProfileVersion = null;
        localStorage.setItem(STORAGE_KEY, data.sessionId);
        transcript.clear();
        profileCard.clear();
        memoryShow(data.memory);
        liveOpen(data.sessionId, { renew, forget: sessionForget });
        updateControls();
        state.autoRenewAfter = 0;
        // The carried profile is the new session's version 1: show the server's copy of it.
        if (carryProfile) await profileRestore(data.sessionId);
      };
      if (el.api.value === LIVE) {
        // The session is created with the page's SDP offer: one request makes session and call.
        await callConnect({
          mintedAt,
          liveRequest: async (sdp) => {
            const { data } = await api("POST", "/session", { ...body, api: LIVE, sdp });
            await begin(data, LIVE);
            return data;
          },
          renew,
        });
        return;
      }
      const { data } = await api("POST", "/session", body);
      await begin(data, "realtime");
      await callConnect({ clientSecret: data.clientSecret, expiresAt: data.expiresAt, mintedAt, renew });
    },
    retry,
  );
}

/** Refresh asks first (ending this conversation), offering to carry the profile. */
export async function sessionRefresh() {
  const answer = await refreshDialog.ask({ hasProfile: profileCard.version !== null });
  if (answer === null) return;
  sessionStart({ reset: true, carryProfile: answer.carryProfile });
}

export function renew({ automatic }) {
  const retry = () => renew({ automatic: false });
  return exclusive(
    "renewing",
    async () => {
      if (!state.sessionId) return;
      try {
        const mintedAt = Date.now();
        const how = automatic ? "automatic" : "on demand";
        if (state.api === LIVE) {
          // A new Live session, started with the profile's instructions and the real turns.
          await callConnect({
            mintedAt,
            liveRequest: async (sdp) => {
              const body = { sessionId: state.sessionId, sdp };
              const { data } = await api("POST", "/session/renew", body);
              log("server", "renewed", how);
              superseded.hide();
              return data;
            },
            renew,
          });
        } else {
          const { data } = await api("POST", "/session/renew", { sessionId: state.sessionId });
          log("server", "renewed", how);
          superseded.hide();
          await callConnect({
            clientSecret: data.clientSecret,
            expiresAt: data.expiresAt,
            mintedAt,
            instructions: data.instructions,
            renew,
          });
        }
        state.autoRenewAfter = 0;
      } catch (error) {
        if (automatic) state.autoRenewAfter = Date.now() + AUTO_RENEW_BACKOFF_MS;
        // A closed session cannot be renewed: stop trying on our own (Refresh starts anew).
        if (error instanceof ApiError && error.status === 409) state.autoRenewAfter = Infinity;
        if (error instanceof ApiError && error.status === 404) sessionForget();
        throw error;
      }
    },
    retry,
  );
}

/**
 * Every second: the clocks, and the automatic renew when one is due (renewDue) — unless a
 * start or renew is running, a failed one's backoff is not over, or another window has the
 * conversation.
 */
export function tick() {
  const now = Date.now();
  clocksRender(now);
  const why = renewDue(now);
  if (why !== null && state.busy === null && now >= state.autoRenewAfter && !superseded.shown) {
    log("page", "auto-renew", why);
    renew({ automatic: true });
  }
}

export function sessionForget() {
  callClose();
  state.live?.close();
  state.live = null;
  state.reports?.close();
  state.reports = null;
  state.sessionId = null;
  state.api = null;
  state.startedAt = null;
  state.lost = false;
  state.expiresAt = null;
  state.serverExpiresAt = null;
  localStorage.removeItem(STORAGE_KEY);
  setConnection("idle");
  updateControls();
}
