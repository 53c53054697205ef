// The page: start a session, hold the WebRTC call, show the server's transcript, renew before
// the key expires, refresh, extract the profile. Plain ES module, no build step.

import { ApiError, api } from "./api.js";
import { LiveSocket } from "./live.js";
import { ProfileCard, profileFetch } from "./profile.js";
import { callOpen, clientEvents, dataChannelOpen, microphoneOpen } from "./rtc.js";
import { Transcript } from "./transcript.js";
import { AlertBox, ConnectionIndicator, EventLog, errorMessage } from "./ui.js";

const STORAGE_KEY = "realtime.sessionId";
// After an automatic renew fails, wait this long before trying on our own again (Retry is
// always available).
const AUTO_RENEW_BACKOFF_MS = 15000;

const $ = (id) => document.getElementById(id);
const config = JSON.parse($("page-config").textContent);

const el = {
  startForm: $("start-form"),
  options: $("options"),
  optionsNote: $("options-note"),
  model: $("model"),
  voice: $("voice"),
  transcription: $("transcription"),
  carryMemory: $("carry-memory"),
  memoryNote: $("memory-note"),
  start: $("start"),
  mute: $("mute"),
  renew: $("renew"),
  refresh: $("refresh"),
  extract: $("extract"),
  info: $("session-info"),
  connection: $("connection"),
  connectionText: $("connection-text"),
  countdown: $("countdown"),
  countdownValue: $("countdown-value"),
  alert: $("alert"),
  alertText: $("alert-text"),
  retry: $("retry"),
  dismiss: $("dismiss"),
  messageForm: $("message-form"),
  message: $("message"),
  send: $("send"),
  log: $("event-log"),
  audio: $("remote-audio"),
};

const transcript = new Transcript($("transcript"), $("transcript-empty"));
const profileCard = new ProfileCard($("profile"), $("profile-fields"), $("profile-version"), transcript);

const state = {
  sessionId: null,
  /** @type {{pc: RTCPeerConnection, dc: RTCDataChannel, callId: string, startedAt: number} | null} */
  call: null,
  mic: null,
  micRefused: false,
  muted: false,
  expiresAt: null, // when the current key expires, on this page's clock (ms since epoch)
  serverExpiresAt: null, // the same instant as the server stated it (ISO 8601)
  busy: null, // the running start/renew, so a second click joins it
  extracting: false,
  live: null,
  autoRenewAfter: 0,
  appliedProfileVersion: null,
  hadSession: null, // what updateControls last laid the panel out for
};

// --- Status, alerts, controls ----------------------------------------------------------------

const eventLog = new EventLog(el.log);
const log = (direction, type, detail = "") => eventLog.add(direction, type, detail);
const indicator = new ConnectionIndicator(el.connection, el.connectionText);
const setConnection = (name) => indicator.set(name);
const alertBox = new AlertBox({
  root: el.alert,
  text: el.alertText,
  retry: el.retry,
  dismiss: el.dismiss,
});
const showAlert = (message, options) => alertBox.show(message, options);
const hideAlert = () => alertBox.hide();

function dataChannelReady() {
  return state.call !== null && state.call.dc.readyState === "open";
}

function updateControls() {
  const busy = state.busy !== null;
  const hasSession = state.sessionId !== null;
  el.start.disabled = busy || hasSession;
  // With a conversation going, the pickers only matter for Refresh: fold them away (on a phone
  // the transcript is then right below the controls) and hide Start.
  if (hasSession !== state.hadSession) {
    state.hadSession = hasSession;
    el.options.open = !hasSession;
    el.start.hidden = hasSession;
    el.optionsNote.hidden = !hasSession;
  }
  el.renew.disabled = busy || !hasSession;
  el.refresh.disabled = busy || !hasSession;
  el.extract.disabled = state.extracting || !hasSession;
  el.mute.disabled = state.mic === null || state.call === null;
  const ready = dataChannelReady();
  el.message.disabled = !ready;
  el.send.disabled = !ready;
  document.body.dataset.sessionId = state.sessionId ?? "";
  document.body.dataset.callId = state.call?.callId ?? "";
  document.body.dataset.ready = String(ready && !busy);
  const parts = [];
  if (state.sessionId) parts.push(`Session ${state.sessionId.slice(0, 8)}`);
  if (state.call) parts.push(`call ${state.call.callId.slice(0, 12)}…`);
  if (state.micRefused) parts.push("text only (no microphone)");
  el.info.textContent = parts.join(" · ");
}

function fillPickers() {
  for (const [select, values, preferred] of [
    [el.model, config.models, config.defaultModel],
    [el.voice, config.voices, config.defaultVoice],
  ]) {
    select.replaceChildren(
      ...values.map((value) => {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = value;
        option.selected = value === preferred;
        return option;
      }),
    );
  }
}

// --- Countdown and automatic renew -----------------------------------------------------------

function formatRemaining(ms) {
  const total = Math.max(0, Math.round(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return `${minutes}:${seconds}`;
}

function countdownRender(now) {
  const remaining = state.expiresAt - now;
  el.countdown.hidden = false;
  el.countdownValue.textContent = formatRemaining(remaining);
  el.countdownValue.dateTime = state.serverExpiresAt ?? "";
  el.countdown.classList.toggle("soon", remaining < config.renewMarginS * 2000);
}

function tick() {
  if (state.expiresAt === null || state.sessionId === null) {
    el.countdown.hidden = true;
    return;
  }
  const now = Date.now();
  const remaining = state.expiresAt - now;
  const marginMs = config.renewMarginS * 1000;
  countdownRender(now);
  const callAge = state.call ? now - state.call.startedAt : 0;
  const callLimit = config.sessionMaxS * 1000 - marginMs;
  const due = remaining <= marginMs || (state.call !== null && callAge >= callLimit);
  if (due && state.busy === null && now >= state.autoRenewAfter) {
    log("page", "auto-renew", remaining <= marginMs ? "key about to expire" : "call near its time limit");
    renew({ automatic: true });
  }
}

/**
 * The key's deadline on this page's clock. Every key is minted when we ask for it, with the
 * server's TTL, so the deadline is "asked at + TTL" — the server's `expiresAt` is the same
 * instant on the server's clock, and a client clock that is off by minutes would otherwise
 * make the page renew too late, or over and over.
 */
function keyExpirySet(expiresAt, mintedAt) {
  state.serverExpiresAt = expiresAt;
  state.expiresAt = mintedAt + config.clientSecretTtlS * 1000;
  countdownRender(Date.now());
}

// --- The live socket -------------------------------------------------------------------------

function liveOpen(sessionId) {
  state.live?.close();
  state.live = new LiveSocket(sessionId, {
    onMessage: liveMessage,
    onGap: transcriptReread,
    onStatus: (status) => {
      log("server", `socket ${status}`);
      if (status === "forbidden") {
        showAlert(
          "This browser cannot follow that conversation any more (its cookie is gone). Press Start to begin a new one.",
        );
        sessionForget();
      }
    },
  });
}

function liveMessage(msg) {
  if (msg.type !== "delta") log("server", msg.type, msg.seq === undefined ? "" : `seq ${msg.seq}`);
  else log("server", "delta");
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
      callEnded(msg);
      break;
    case "profile":
      profileShow(msg);
      break;
    default:
      break;
  }
}

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

function callEnded(msg) {
  const callId = msg.callId ?? msg.call_id ?? null;
  // Only the current call's end matters: an older call ends whenever it is replaced (renew,
  // reload), and that is expected.
  if (msg.reason === "superseded" || !state.call || (callId && callId !== state.call.callId)) {
    return;
  }
  if (msg.reason === "session_expired" || msg.reason === "secret_expired") {
    if (state.busy === null && Date.now() >= state.autoRenewAfter) {
      showAlert("The call reached its time limit. Reconnecting…", { level: "info" });
      renew({ automatic: true });
    }
    return;
  }
  setConnection("ended");
  const why =
    msg.reason === "hangup"
      ? "The call was hung up."
      : msg.reason === "session_closed"
        ? "This session was closed."
        : "The voice service ended the call.";
  showAlert(`${why} Press Retry to reconnect; the transcript is kept.`, {
    retry: () => renew({ automatic: false }),
  });
}

// --- The call ---------------------------------------------------------------------------------

async function microphoneEnsure() {
  const live = state.mic?.getAudioTracks().some((track) => track.readyState === "live");
  if (live) return;
  try {
    state.mic = await microphoneOpen();
    state.micRefused = false;
    for (const track of state.mic.getAudioTracks()) track.enabled = !state.muted;
    log("page", "microphone on");
  } catch (error) {
    state.mic = null;
    state.micRefused = true;
    log("page", "microphone unavailable");
    // Not fatal: the call goes on receive-only and the person can type.
    showAlert(errorMessage(error), { retry: () => renew({ automatic: false }) });
  }
}

function dataChannelEvent(event) {
  if (event.type === "error") {
    const message = event.error?.message ?? "";
    log("upstream", "error", message);
    if (event.error?.code === "session_expired" && state.busy === null) renew({ automatic: true });
    return;
  }
  log("upstream", event.type ?? "event");
}

/**
 * Open a call with this secret and register it; the previous call (if any) keeps playing until
 * the new one is registered, so only a short gap is heard.
 */
async function callConnect({ clientSecret, expiresAt, mintedAt, instructions }) {
  await microphoneEnsure();
  const previous = state.call;
  let opened = null;
  const { pc, dc, callId } = await callOpen({
    baseUrl: config.upstreamBaseUrl,
    clientSecret,
    micStream: state.mic,
    onTrack: (stream) => {
      el.audio.srcObject = stream;
      el.audio.play().catch(audioUnblockOnClick);
    },
    onEvent: dataChannelEvent,
    onState: (connectionState) => {
      log("webrtc", connectionState);
      if (state.call === null || state.call.pc !== opened) return;
      if (connectionState === "connected") setConnection("connected");
      if (connectionState === "disconnected") setConnection("disconnected");
      if (connectionState === "failed") {
        setConnection("failed");
        showAlert("The audio connection dropped. Press Retry to reconnect; the transcript is kept.", {
          retry: () => renew({ automatic: false }),
        });
      }
    },
  });
  opened = pc;
  log("upstream", "call answered", callId);
  try {
    await api("POST", "/session/call", { sessionId: state.sessionId, callId });
  } catch (error) {
    pc.close();
    throw error;
  }
  log("server", "call registered", callId);
  state.call = { pc, dc, callId, startedAt: Date.now() };
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

function callClose() {
  state.call?.pc.close();
  state.call = null;
  el.audio.srcObject = null;
}

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

function sessionStart({ reset }) {
  const before = state.sessionId;
  // Once the new session exists, only its call is missing: Retry renews instead of creating
  // yet another session.
  const retry = () =>
    state.sessionId !== null && state.sessionId !== before
      ? renew({ automatic: false })
      : sessionStart({ reset });
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
      const mintedAt = Date.now();
      const { data } = await api("POST", "/session", body);
      log("server", reset ? "session refreshed" : "session created", data.sessionId);
      callClose();
      state.sessionId = data.sessionId;
      keyExpirySet(data.expiresAt, mintedAt);
      state.appliedProfileVersion = null;
      localStorage.setItem(STORAGE_KEY, data.sessionId);
      transcript.clear();
      profileCard.clear();
      memoryShow(data.memory);
      liveOpen(data.sessionId);
      updateControls();
      state.autoRenewAfter = 0;
      await callConnect({ clientSecret: data.clientSecret, expiresAt: data.expiresAt, mintedAt });
    },
    retry,
  );
}

function renew({ automatic }) {
  const retry = () => renew({ automatic: false });
  return exclusive(
    "renewing",
    async () => {
      if (!state.sessionId) return;
      try {
        const mintedAt = Date.now();
        const { data } = await api("POST", "/session/renew", { sessionId: state.sessionId });
        log("server", "renewed", automatic ? "automatic" : "on demand");
        await callConnect({
          clientSecret: data.clientSecret,
          expiresAt: data.expiresAt,
          mintedAt,
          instructions: data.instructions,
        });
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

// --- Profile ----------------------------------------------------------------------------------

// What the new session carried from earlier ones (`memory` of POST /session): its profile as
// version 1, and how many recent turns its instructions recap.
function memoryShow(memory) {
  el.memoryNote.hidden = !memory?.carried;
  if (!memory?.carried) return;
  const turns = memory.recapTurns.length;
  el.memoryNote.textContent =
    `Carried from earlier sessions: ${memory.profile ? "this profile" : "no profile"}` +
    `${turns ? ` and the last ${turns} turn${turns === 1 ? "" : "s"}` : ""}.`;
  if (memory.profile) profileCard.show(memory.profile, 1);
  log("server", "memory carried", memory.fromSessionId ?? `${turns} turns`);
}

function profileShow({ profile, instructions, version }) {
  if (profileCard.version !== null && version !== undefined && version < profileCard.version) return;
  profileCard.show(profile, version);
  if (instructions && version !== state.appliedProfileVersion && dataChannelReady()) {
    state.call.dc.send(JSON.stringify(clientEvents.sessionUpdate(instructions)));
    state.appliedProfileVersion = version;
    log("client", "session.update", `profile v${version} instructions`);
  }
}

async function profileExtract() {
  if (!state.sessionId || state.extracting) return;
  state.extracting = true;
  updateControls();
  el.extract.textContent = "Extracting…";
  try {
    const data = await profileFetch(state.sessionId);
    if (data === null) {
      showAlert("The profile is taking longer than usual. It will appear here when ready.", {
        level: "info",
      });
      return;
    }
    log("server", "profile", `v${data.version}`);
    profileShow(data);
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      showAlert("There is nothing to extract yet. Talk or type a little, then try again.", {
        level: "info",
      });
    } else {
      showAlert(errorMessage(error), { retry: profileExtract });
    }
  } finally {
    state.extracting = false;
    el.extract.textContent = "Extract profile";
    updateControls();
  }
}

function sessionForget() {
  callClose();
  state.live?.close();
  state.live = null;
  state.sessionId = null;
  state.expiresAt = null;
  state.serverExpiresAt = null;
  localStorage.removeItem(STORAGE_KEY);
  setConnection("idle");
  updateControls();
}

// --- Resume after a reload ---------------------------------------------------------------------

async function sessionResume() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (!saved) return;
  try {
    const { data } = await api("GET", `/session/${encodeURIComponent(saved)}`);
    if (data?.status && data.status !== "active") {
      localStorage.removeItem(STORAGE_KEY);
      return;
    }
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 400)) {
      localStorage.removeItem(STORAGE_KEY);
      return;
    }
    showAlert(errorMessage(error), { retry: sessionResume });
    return;
  }
  state.sessionId = saved;
  log("page", "resuming session", saved);
  liveOpen(saved);
  updateControls();
  await renew({ automatic: false });
}

// --- Wiring -----------------------------------------------------------------------------------

el.startForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStart({ reset: false });
});
el.refresh.addEventListener("click", () => sessionStart({ reset: true }));
el.renew.addEventListener("click", () => renew({ automatic: false }));
el.extract.addEventListener("click", profileExtract);
el.mute.addEventListener("click", () => {
  state.muted = !state.muted;
  for (const track of state.mic?.getAudioTracks() ?? []) track.enabled = !state.muted;
  el.mute.setAttribute("aria-pressed", String(state.muted));
  el.mute.textContent = state.muted ? "Unmute" : "Mute";
  log("page", state.muted ? "muted" : "unmuted");
});
el.messageForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = el.message.value.trim();
  if (!text) return;
  if (!dataChannelReady()) {
    showAlert("Not connected to the voice service. Press Retry to reconnect.", {
      retry: () => renew({ automatic: false }),
    });
    return;
  }
  state.call.dc.send(JSON.stringify(clientEvents.userText(text)));
  state.call.dc.send(JSON.stringify(clientEvents.responseCreate()));
  log("client", "conversation.item.create + response.create");
  el.message.value = "";
  el.message.focus();
});

// Leaving or reloading the page: hang up now, so the upstream ends the call at once instead of
// waiting for the connection to time out (the session, and its transcript, stay).
window.addEventListener("pagehide", () => {
  state.live?.close();
  callClose();
});

fillPickers();
updateControls();
setInterval(tick, 1000);
sessionResume();
