// The controls and what they show for the page's state: which buttons can be used, the model
// and voice pickers (the chosen voice API's lists), the message box's hint, the download
// links, the session line, and the body's data attributes (`data-session-id`, `data-call-id`,
// `data-ready`: what the browser tests wait on).

import { ComposerGuide } from "./composer.js";
import { TranscriptDownloads } from "./download.js";
import { $, LIVE, config, el, state, superseded, voiceApis } from "./page.js";
import { clocksRender } from "./timers.js";

const downloads = new TranscriptDownloads({
  root: $("downloads"),
  markdown: $("download-md"),
  json: $("download-json"),
});
const composer = new ComposerGuide({
  hint: $("composer-hint"),
  skipLink: document.querySelector(".skip-link"),
});

export function dataChannelReady() {
  // A call taken over by another window is hung up: nothing sent on it would be recorded.
  return state.call !== null && state.call.dc.readyState === "open" && !superseded.shown;
}

export function updateControls() {
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

/** The voice API picker: the server's APIs, its default chosen. */
export function fillApiPicker() {
  el.api.replaceChildren(
    ...Object.entries(voiceApis.apis).map(([value, { label }]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      option.selected = value === voiceApis.default;
      return option;
    }),
  );
}

/** The model and voice pickers offer the chosen API's; Live always transcribes. */
export function fillPickers() {
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
