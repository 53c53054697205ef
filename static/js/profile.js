// The extracted profile on the page: asking the server for it (`POST /extract-profile`), the
// card (profile_card.js) with what a new session carried from earlier ones, the profile in
// force after a reload, and its instructions applied to the live call once per version.

import { ApiError, api } from "./api.js";
import { dataChannelReady, updateControls } from "./controls.js";
import { $, LIVE, el, log, showAlert, state, transcript } from "./page.js";
import { ProfileCard } from "./profile_card.js";
import { clientEvents } from "./rtc.js";
import { errorMessage } from "./ui.js";

const POLL_MS = 1000;
const POLL_LIMIT_MS = 60000;

/**
 * `POST /extract-profile`: the profile `{profile, instructions, version}`, waiting for a slow
 * extraction by polling its status URL; null if it is still running after a minute (it will
 * also arrive on the live socket).
 */
async function profileFetch(sessionId) {
  let { status, data } = await api("POST", "/extract-profile", { sessionId });
  if (status !== 202) return data;
  const url = data.statusUrl;
  const deadline = Date.now() + POLL_LIMIT_MS;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    ({ data } = await api("GET", url));
    if (data?.status === "failed") {
      throw new ApiError(
        "The profile could not be extracted this time; nothing was changed. Press Retry.",
        { kind: "upstream" },
      );
    }
    if (data?.profile) return data;
  }
  return null;
}

export const profileCard = new ProfileCard($("profile"), $("profile-fields"), $("profile-version"), transcript);

// What the new session carried from earlier ones (`memory` of POST /session): its profile as
// version 1, and how many recent turns its instructions recap.
export function memoryShow(memory) {
  el.memoryNote.hidden = !memory?.carried;
  if (!memory?.carried) return;
  const turns = memory.recapTurns.length;
  el.memoryNote.textContent =
    `Carried from earlier sessions: ${memory.profile ? "this profile" : "no profile"}` +
    `${turns ? ` and the last ${turns} turn${turns === 1 ? "" : "s"}` : ""}.`;
  if (memory.profile) profileCard.show(memory.profile, 1);
  log("server", "memory carried", memory.fromSessionId ?? `${turns} turns`);
}

export function profileShow({ profile, instructions, version }) {
  if (profileCard.version !== null && version !== undefined && version < profileCard.version) return;
  profileCard.show(profile, version);
  // A Live session's instructions are fixed once it started: the next renew carries them.
  if (instructions && state.api !== LIVE && version !== state.appliedProfileVersion && dataChannelReady()) {
    state.call.dc.send(JSON.stringify(clientEvents.sessionUpdate(instructions)));
    state.appliedProfileVersion = version;
    log("client", "session.update", `profile v${version} instructions`);
  }
}

export async function profileExtract() {
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
export async function profileRestore(sessionId, known = undefined) {
  const data = known ?? (await api("GET", `/session/${encodeURIComponent(sessionId)}`)).data;
  if (!data?.profile) return;
  log("server", "profile restored", `v${data.profile.version}`);
  profileCard.show(data.profile.profile, data.profile.version);
  // Its instructions are in force already: renew (and create, with carry) applies them.
  state.appliedProfileVersion = data.profile.version;
}
