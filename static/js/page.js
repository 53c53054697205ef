// What every part of the page shares: the server's settings for it, the elements the script
// uses, the page's state, and the chrome each part reports to (the event log, the connection
// indicator, the alert, the "moved to another window" banner) and the transcript. Built once
// when the page loads; the page's other modules import it, it imports none of them.

import { SupersededBanner } from "./superseded.js";
import { Transcript } from "./transcript.js";
import { AlertBox, ConnectionIndicator, EventLog } from "./ui.js";

export const STORAGE_KEY = "realtime.sessionId";
export const LIVE = "live";

export const $ = (id) => document.getElementById(id);
export const config = JSON.parse($("page-config").textContent);
// OpenAI's two voice APIs: {default, apis: {realtime|live: {label, models, voices, sessionMaxS}}}.
export const voiceApis = JSON.parse($("voice-apis").textContent);

export const el = {
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

export const state = {
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

export const transcript = new Transcript($("transcript"), $("transcript-empty"));

const eventLog = new EventLog(el.log, el.logFilter);
export const log = (direction, type, detail = "", payload = undefined) =>
  eventLog.add(direction, type, detail, payload);
const indicator = new ConnectionIndicator(el.connection, el.connectionText);
export const setConnection = (name) => indicator.set(name);
export const alertBox = new AlertBox({
  root: el.alert,
  text: el.alertText,
  retry: el.retry,
  dismiss: el.dismiss,
});
export const showAlert = (message, options) => alertBox.show(message, options);
export const hideAlert = () => alertBox.hide();
// Shown when another window took the conversation over; app.js wires its "Continue here".
export const superseded = new SupersededBanner(el.alert);
