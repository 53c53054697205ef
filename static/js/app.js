// The page: start a session, hold the WebRTC call, show the server's transcript, renew before
// the key expires, refresh, extract the profile. Plain ES module, no build step.

import { ApiError, api } from "./api.js";
import { ComposerGuide } from "./composer.js";
import { MicMeter, SpeakingCues } from "./cues.js";
import { TranscriptDownloads } from "./download.js";
import { CallWatch, LOST_REASON } from "./health.js";
import { LiveSocket } from "./live.js";
import { PageReports } from "./reports.js";
import { ProfileCard, profileFetch } from "./profile.js";
import { liveCallOpen, liveClientEvents } from "./live_rtc.js";
import { callOpen, clientEvents, dataChannelOpen, microphoneOpen } from "./rtc.js";
import { SupersededBanner } from "./superseded.js";
import { SessionClocks } from "./timers.js";
import { Transcript } from "./transcript.js";
import { AlertBox, ConnectionIndicator, EventLog, RefreshDialog, errorMessage } from "./ui.js";

const STORAGE_KEY = "realtime.sessionId";
// After an automatic renew fails, wait this long before trying on our own again (Retry is
// always available).
const AUTO_RENEW_BACKOFF_MS = 15000;

const $ = (id) => document.getElementById(id);
const config = JSON.parse($("page-config").textContent);
// OpenAI's two voice APIs: {default, apis: {realtime|live: {label, models, voices, sessionMaxS}}}.
const voiceApis = JSON.parse($("voice-apis").textContent);
const LIVE = "live";

const el = {
  startForm: $("start-form"),
  options: $("options"),
  optionsNote: $("options-note"),
  api: $("api"),
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
  logFilter: $("event-filter"),
  audio: $("remote-audio"),
};

const transcript = new Transcript($("transcript"), $("transcript-empty"));
const profileCard = new ProfileCard($("profile"), $("profile-fields"), $("profile-version"), transcript);

const state = {
  sessionId: null,
  api: null, // the session's voice API: "realtime" or "live"
  /** @type {{pc: RTCPeerConnection, dc: RTCDataChannel, callId: string, startedAt: number} | null} */
  call: null,
  mic: null,
  micRefused: false,
  muted: false,
  expiresAt: null, // when the current key expires, on this page's clock (ms since epoch)
  serverExpiresAt: null, // the same instant as the server stated it (ISO 8601)
  busy: null, // the running start/renew, so a second click joins it
  lost: false, // the call dropped: nothing renews on its own until Retry (one renew per recovery)
  lostCallId: null, // the call that dropped, until the next one (its end may still be told)
  watch: null, // the CallWatch of the current call
  startedAt: null, // when the conversation (the session) began, on this page's clock
  extracting: false,
  live: null,
  reports: null, // what the page reports on the live socket (item ids seen, presence)
  autoRenewAfter: 0,
  appliedProfileVersion: null,
  hadSession: null, // what updateControls last laid the panel out for
};

// --- Status, alerts, controls ----------------------------------------------------------------

const eventLog = new EventLog(el.log, el.logFilter);
const log = (direction, type, detail = "", payload = undefined) =>
  eventLog.add(direction, type, detail, payload);
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
const superseded = new SupersededBanner(el.alert, { onTakeBack: () => renew({ automatic: false }) });
const cues = new SpeakingCues({ you: $("cue-you"), assistant: $("cue-assistant") });
const micMeter = new MicMeter($("mic-level"));
const downloads = new TranscriptDownloads({
  root: $("downloads"),
  markdown: $("download-md"),
  json: $("download-json"),
});
const composer = new ComposerGuide({
  hint: $("composer-hint"),
  skipLink: document.querySelector(".skip-link"),
});
const refreshDialog = new RefreshDialog({
  dialog: $("refresh-dialog"),
  carry: $("carry-profile"),
  carryField: $("carry-field"),
});
const clocks = new SessionClocks({
  elapsed: $("elapsed"),
  elapsedValue: $("elapsed-value"),
  callAgeValue: $("call-age-value"),
  callCapValue: $("call-cap-value"),
  countdown: el.countdown,
  countdownValue: el.countdownValue,
  capS: config.sessionMaxS,
});

function dataChannelReady() {
  // A call taken over by another window is hung up: nothing sent on it would be recorded.
  return state.call !== null && state.call.dc.readyState === "open" && !superseded.shown;
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
  composer.update({ ready, busy, hasSession, lost: state.lost, micRefused: state.micRefused });
  downloads.show(state.sessionId);
  clocksRender(Date.now());
  document.body.dataset.sessionId = state.sessionId ?? "";
  document.body.dataset.callId = state.call?.callId ?? "";
  document.body.dataset.ready = String(ready && !busy);
  const parts = [];
  if (state.sessionId) parts.push(`Session ${state.sessionId.slice(0, 8)}`);
  if (state.sessionId && state.api === LIVE) parts.push("GPT-Live");
  if (state.call) parts.push(`call ${state.call.callId.slice(0, 12)}…`);
  if (state.micRefused) parts.push("text only (no microphone)");
  el.info.textContent = parts.join(" · ");
}

function fillApiPicker() {
  el.api.replaceChildren(
    ...Object.entries(voiceApis.apis).map(([value, { label }]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      option.selected = value === voiceApis.default;
      return option;
    }),
  );
  el.api.addEventListener("change", fillPickers);
}

/** The model and voice pickers offer the chosen API's; Live always transcribes. */
function fillPickers() {
  const live = el.api.value === LIVE;
  const models = live ? voiceApis.apis.live.models : config.models;
  const voices = live ? voiceApis.apis.live.voices : config.voices;
  el.transcription.disabled = live;
  if (live) el.transcription.checked = true;
  for (const [select, values, preferred] of [
    [el.model, models, live ? models[0] : config.defaultModel],
    [el.voice, voices, live ? voices[0] : config.defaultVoice],
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

// --- Clocks and automatic renew --------------------------------------------------------------

function clocksRender(now) {
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

function tick() {
  const now = Date.now();
  clocksRender(now);
  // A lost call waits for Retry: renewing on our own as well would spend a second key.
  if (state.expiresAt === null || state.sessionId === null || state.lost) return;
  const remaining = state.expiresAt - now;
  const marginMs = config.renewMarginS * 1000;
  const callAge = state.call ? now - state.call.startedAt : 0;
  const callLimit = sessionMaxS() * 1000 - marginMs;
  const due = remaining <= marginMs || (state.call !== null && callAge >= callLimit);
  if (due && state.busy === null && now >= state.autoRenewAfter && !superseded.shown) {
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
  // A Live session has no key: its own lifetime (from its creation) is the deadline.
  const ttlS = state.api === LIVE ? sessionMaxS() : config.clientSecretTtlS;
  state.expiresAt = mintedAt + ttlS * 1000;
  clocksRender(Date.now());
}

function sessionMaxS() {
  return state.api === LIVE ? voiceApis.apis.live.sessionMaxS : config.sessionMaxS;
}

// --- The live socket -------------------------------------------------------------------------

function liveOpen(sessionId) {
  state.live?.close();
  state.reports?.close();
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
  state.reports = new PageReports(state.live, config.presenceIntervalS);
}

function liveMessage(msg) {
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

// --- The call ---------------------------------------------------------------------------------

async function microphoneEnsure() {
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

function dataChannelEvent(event) {
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

function callWatchStop() {
  state.watch?.stop();
  state.watch = null;
}

/** The current call is gone (see health.js): say so now, stop counting, offer Retry. */
function callLost(reason) {
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

/**
 * Open a call with this secret and register it; the previous call (if any) keeps playing until
 * the new one is registered, so only a short gap is heard.
 */
async function callConnect({ clientSecret, expiresAt, mintedAt, instructions, liveRequest }) {
  await microphoneEnsure();
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
      dataChannelEvent(event);
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
    return callReady({ pc, dc, callId, previous, expiresAt, mintedAt, instructions: null });
  }
  const { pc, dc, callId } = await callOpen({
    baseUrl: config.upstreamBaseUrl,
    clientSecret,
    ...peer,
  });
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
  return callReady({ pc, dc, callId, previous, expiresAt, mintedAt, instructions });
}

/** The new call is the session's: wait for its data channel, then let the previous one go. */
async function callReady({ pc, dc, callId, previous, expiresAt, mintedAt, instructions }) {
  callWatchStop();
  state.call = { pc, dc, callId, startedAt: Date.now() };
  state.lost = false;
  state.watch = new CallWatch({ pc, dc, onLost: callLost });
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
  callWatchStop();
  state.call?.pc.close();
  state.call = null;
  el.audio.srcObject = null;
  cues.off();
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

function sessionStart({ reset, carryProfile = false }) {
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
        liveOpen(data.sessionId);
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
        });
        return;
      }
      const { data } = await api("POST", "/session", body);
      await begin(data, "realtime");
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
  // A Live session's instructions are fixed once it started: the next renew carries them.
  if (instructions && state.api !== LIVE && version !== state.appliedProfileVersion && dataChannelReady()) {
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

/** Show the profile in force (GET /session/{id}), after a reload or a Refresh with carry. */
async function profileRestore(sessionId, known = undefined) {
  const data = known ?? (await api("GET", `/session/${encodeURIComponent(sessionId)}`)).data;
  if (!data?.profile) return;
  log("server", "profile restored", `v${data.profile.version}`);
  profileCard.show(data.profile.profile, data.profile.version);
  // Its instructions are in force already: renew (and create, with carry) applies them.
  state.appliedProfileVersion = data.profile.version;
}

function sessionForget() {
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

// --- Resume after a reload ---------------------------------------------------------------------

async function sessionResume() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (!saved) return;
  let session;
  try {
    ({ data: session } = await api("GET", `/session/${encodeURIComponent(saved)}`));
    if (session?.status && session.status !== "active") {
      localStorage.removeItem(STORAGE_KEY);
      return;
    }
    state.api = session?.api ?? "realtime";
    // Refresh starts from the pickers: they show the resumed session's API, model and voice.
    el.api.value = state.api;
    fillPickers();
    if (session?.model) el.model.value = session.model;
    if (session?.voice) el.voice.value = session.voice;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 400)) {
      localStorage.removeItem(STORAGE_KEY);
      return;
    }
    showAlert(errorMessage(error), { retry: sessionResume });
    return;
  }
  state.sessionId = saved;
  const created = Date.parse(session?.createdAt ?? "");
  state.startedAt = Number.isNaN(created) ? Date.now() : created;
  log("page", "resuming session", saved);
  await profileRestore(saved, session);
  liveOpen(saved);
  updateControls();
  await renew({ automatic: false });
}

// --- Wiring -----------------------------------------------------------------------------------

el.startForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStart({ reset: false });
});
el.refresh.addEventListener("click", async () => {
  const answer = await refreshDialog.ask({ hasProfile: profileCard.version !== null });
  if (answer === null) return;
  sessionStart({ reset: true, carryProfile: answer.carryProfile });
});
el.renew.addEventListener("click", () => renew({ automatic: false }));
el.extract.addEventListener("click", profileExtract);
el.mute.addEventListener("click", () => {
  state.muted = !state.muted;
  for (const track of state.mic?.getAudioTracks() ?? []) track.enabled = !state.muted;
  // The name stays "Mute"; aria-pressed says whether it is on ("Mute, pressed" = muted).
  el.mute.setAttribute("aria-pressed", String(state.muted));
  cues.setMuted(state.muted);
  micMeter.setMuted(state.muted);
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
  if (state.api === LIVE) {
    state.call.dc.send(JSON.stringify(liveClientEvents.userText(text)));
    log("client", "session.commentary.append");
  } else {
    state.call.dc.send(JSON.stringify(clientEvents.userText(text)));
    state.call.dc.send(JSON.stringify(clientEvents.responseCreate()));
    log("client", "conversation.item.create + response.create");
  }
  el.message.value = "";
  el.message.focus();
});

// Leaving or reloading the page: hang up now, so the upstream ends the call at once instead of
// waiting for the connection to time out (the session, and its transcript, stay).
window.addEventListener("pagehide", () => {
  state.live?.close();
  callClose();
});

fillApiPicker();
fillPickers();
updateControls();
setInterval(tick, 1000);
sessionResume();
