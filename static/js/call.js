// The call: the microphone, the peer connection to the voice service (a Realtime call opened
// with the session's client secret, or a Live session through our server), its registration,
// the hand-over from the previous call, a typed line sent on it, and every way it stops: lost
// (health.js), ended as the server tells (`call.ended`), or an error on its data channel.
// `renew` (session.js) is passed in: a call that stops renews on its own or offers Retry.

import { api } from "./api.js";
import { dataChannelReady, updateControls } from "./controls.js";
import { MicMeter, SpeakingCues } from "./cues.js";
import { CallWatch, LOST_REASON } from "./health.js";
import { liveCallOpen, liveClientEvents } from "./live_rtc.js";
import { $, LIVE, alertBox, config, el, hideAlert, log, setConnection, showAlert, state, superseded } from "./page.js";
import { callOpen, clientEvents, dataChannelOpen, microphoneOpen } from "./rtc.js";
import { keyExpirySet } from "./timers.js";
import { errorMessage } from "./ui.js";

const cues = new SpeakingCues({ you: $("cue-you"), assistant: $("cue-assistant") });
const micMeter = new MicMeter($("mic-level"));

// --- Opening and handing over -----------------------------------------------------------------

async function microphoneEnsure(renew) {
  const live = state.mic?.getAudioTracks().some((track) => track.readyState === "live");
  if (live) return;
  try {
    state.mic = await microphoneOpen();
    state.micRefused = false;
    for (const track of state.mic.getAudioTracks()) track.enabled = !state.muted;
    micMeter.attach(state.mic);
    log("page", "microphone on");
  } catch (error) {
    state.mic = null;
    state.micRefused = true;
    log("page", "microphone unavailable");
    // Not fatal: the call goes on receive-only and the person can type.
    showAlert(errorMessage(error), { retry: () => renew({ automatic: false }) });
  }
}

/**
 * Open a call with this secret and register it; the previous call (if any) keeps playing until
 * the new one is registered, so only a short gap is heard.
 */
export async function callConnect({ clientSecret, expiresAt, mintedAt, instructions, liveRequest, renew }) {
  await microphoneEnsure(renew);
  const previous = state.call;
  let opened = null;
  // Realtime: the call id is known once the upstream answered; items come after that (the
  // server's gap fill reads these hints; a Live sideband needs none).
  let callIdOpened = null;
  const peer = {
    micStream: state.mic,
    onTrack: (stream) => {
      el.audio.srcObject = stream;
      el.audio.play().catch(audioUnblockOnClick);
    },
    onEvent: (event) => {
      dataChannelEvent(event, renew);
      if (callIdOpened) state.reports?.itemEvent(callIdOpened, event);
    },
    onState: (connectionState) => {
      log("webrtc", connectionState);
      // Drops are the CallWatch's to report (sooner than these states come).
      if (state.call === null || state.call.pc !== opened) return;
      if (connectionState === "connected") setConnection("connected");
    },
  };
  if (liveRequest) {
    // Live: the offer goes to our server, which creates the session and registers the call.
    const { pc, dc, callId, data } = await liveCallOpen({ request: liveRequest, ...peer });
    opened = pc;
    log("server", "live session answered", callId);
    expiresAt = data.expiresAt;
    return callReady({ pc, dc, callId, previous, expiresAt, mintedAt, instructions: null, renew });
  }
  const { pc, dc, callId } = await callOpen({ baseUrl: config.upstreamBaseUrl, clientSecret, ...peer });
  opened = pc;
  callIdOpened = callId;
  log("upstream", "call answered", callId);
  try {
    await api("POST", "/session/call", { sessionId: state.sessionId, callId });
  } catch (error) {
    pc.close();
    throw error;
  }
  log("server", "call registered", callId);
  return callReady({ pc, dc, callId, previous, expiresAt, mintedAt, instructions, renew });
}

/** The new call is the session's: wait for its data channel, then let the previous one go. */
async function callReady({ pc, dc, callId, previous, expiresAt, mintedAt, instructions, renew }) {
  callWatchStop();
  state.call = { pc, dc, callId, startedAt: Date.now() };
  state.lost = false;
  state.watch = new CallWatch({ pc, dc, onLost: (reason) => callLost(reason, renew) });
  keyExpirySet(expiresAt, mintedAt);
  dc.addEventListener("close", updateControls);
  try {
    await dataChannelOpen(dc);
  } finally {
    previous?.pc.close();
  }
  if (instructions) {
    dc.send(JSON.stringify(clientEvents.sessionUpdate(instructions)));
    log("client", "session.update", "instructions applied");
  }
  if (pc.connectionState === "connected") setConnection("connected");
  updateControls();
}

/** After a reload the browser may refuse to play sound until the person interacts. */
function audioUnblockOnClick() {
  log("page", "audio autoplay blocked");
  showAlert("The browser paused the assistant's voice. Click anywhere on the page to hear it.", {
    level: "info",
  });
  document.addEventListener(
    "click",
    () => {
      el.audio.play().catch(() => undefined);
      if (alertBox.level === "info") hideAlert();
    },
    { once: true },
  );
}

export function callClose() {
  callWatchStop();
  state.call?.pc.close();
  state.call = null;
  el.audio.srcObject = null;
  cues.off();
}

function callWatchStop() {
  state.watch?.stop();
  state.watch = null;
}

// --- On the call ------------------------------------------------------------------------------

/** A typed line on the call; false (and an alert with Retry) when there is no call to take it. */
export function textSend(text, renew) {
  if (!dataChannelReady()) {
    showAlert("Not connected to the voice service. Press Retry to reconnect.", {
      retry: () => renew({ automatic: false }),
    });
    return false;
  }
  if (state.api === LIVE) {
    state.call.dc.send(JSON.stringify(liveClientEvents.userText(text)));
    log("client", "session.commentary.append");
  } else {
    state.call.dc.send(JSON.stringify(clientEvents.userText(text)));
    state.call.dc.send(JSON.stringify(clientEvents.responseCreate()));
    log("client", "conversation.item.create + response.create");
  }
  return true;
}

export function muteToggle() {
  state.muted = !state.muted;
  for (const track of state.mic?.getAudioTracks() ?? []) track.enabled = !state.muted;
  // The name stays "Mute"; aria-pressed says whether it is on ("Mute, pressed" = muted).
  el.mute.setAttribute("aria-pressed", String(state.muted));
  cues.setMuted(state.muted);
  micMeter.setMuted(state.muted);
  log("page", state.muted ? "muted" : "unmuted");
}

// --- When it stops ----------------------------------------------------------------------------

function dataChannelEvent(event, renew) {
  cues.event(event.type);
  if (event.type === "error") {
    const message = event.error?.message ?? "";
    log("upstream", "error", message, event);
    if (event.error?.code === "session_expired") {
      if (state.busy === null && !state.lost) renew({ automatic: true });
      return;
    }
    // Say what the voice service said; the call may well go on (a refused event is not fatal).
    showAlert(`The voice service reported an error: ${message || event.error?.code || "unknown"}. If the call stopped working, press Retry.`, {
      retry: () => renew({ automatic: false }),
    });
    return;
  }
  if (event.type === "session.closed") {
    log("upstream", "session.closed", event.reason ?? "", event);
    if (event.reason === "expired" && state.busy === null && !state.lost) renew({ automatic: true });
    return;
  }
  // Streaming deltas only bump a counter; other events keep their payload (folded).
  if (event.type?.endsWith(".delta")) log("upstream", event.type);
  else log("upstream", event.type ?? "event", "", event);
}

/** The current call is gone (see health.js): say so now, stop counting, offer Retry. */
function callLost(reason, renew) {
  log("page", "call lost", reason);
  state.lost = true;
  state.lostCallId = state.call?.callId ?? null;
  callClose();
  setConnection("failed");
  showAlert(`${LOST_REASON[reason] ?? "The call dropped"}. Press Retry to reconnect; the transcript is kept.`, {
    retry: () => renew({ automatic: false }),
  });
  updateControls();
}

/** The server's `call.ended` (from the live socket): why the call ended, and what follows. */
export function callEnded(msg, renew) {
  const callId = msg.callId ?? msg.call_id ?? null;
  // Only the current call's end matters: an older call ends whenever it is replaced (renew,
  // reload), and that is expected.
  // A call this page just lost (its connection dropped when the other window's registration
  // hung it up) still hears why it ended: the banner replaces the "dropped" alert.
  const current = state.call?.callId ?? state.lostCallId;
  if (!current || (callId && callId !== current)) return;
  if (msg.reason === "superseded") {
    // Our own renew replaces our call too; only a call this page did not replace moved away.
    if (state.busy !== null) return;
    callClose();
    hideAlert();
    superseded.show();
    setConnection("ended");
    updateControls();
    return;
  }
  if (!state.call) return; // the rest concerns the live call
  if (msg.reason === "session_expired" || msg.reason === "secret_expired") {
    if (state.busy === null && !state.lost && Date.now() >= state.autoRenewAfter) {
      showAlert("The call reached its time limit. Reconnecting…", { level: "info" });
      renew({ automatic: true });
    }
    return;
  }
  callWatchStop();
  state.lost = true;
  setConnection("ended");
  updateControls();
  const why =
    msg.reason === "hangup"
      ? "The call was hung up."
      : msg.reason === "session_closed"
        ? "This session was closed."
        : msg.reason === "abandoned"
          ? "The call was ended after a long silence with nobody on this page."
          : "The voice service ended the call.";
  showAlert(`${why} Press Retry to reconnect; the transcript is kept.`, {
    retry: () => renew({ automatic: false }),
  });
}
