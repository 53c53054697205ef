// Back after a reload: the session id kept in localStorage (`realtime.sessionId`) is read back
// with `GET /session/{id}`. Still active and this browser's: the pickers show its API, model
// and voice, the card its profile in force, the socket's snapshot the transcript, and a renew
// makes a new call. Gone (404) or closed: the stored id is forgotten.

import { ApiError, api } from "./api.js";
import { fillPickers, updateControls } from "./controls.js";
import { liveOpen } from "./live.js";
import { STORAGE_KEY, el, log, showAlert, state } from "./page.js";
import { profileRestore } from "./profile.js";
import { renew, sessionForget } from "./session.js";
import { errorMessage } from "./ui.js";

export async function sessionResume() {
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
  liveOpen(saved, { renew, forget: sessionForget });
  updateControls();
  await renew({ automatic: false });
}
