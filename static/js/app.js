// The page: start a session, hold the WebRTC call, show the server's transcript, renew before
// the key expires, refresh, extract the profile. Plain ES modules, no build step; this one
// wires the controls to what they do and starts the page (docs/page.md lists the modules).

import { callClose, muteToggle, textSend } from "./call.js";
import { fillApiPicker, fillPickers, updateControls } from "./controls.js";
import { el, state, superseded } from "./page.js";
import { profileExtract } from "./profile.js";
import { sessionResume } from "./resume.js";
import { renew, sessionRefresh, sessionStart, tick } from "./session.js";

el.api.addEventListener("change", fillPickers);
el.startForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStart({ reset: false });
});
el.refresh.addEventListener("click", sessionRefresh);
el.renew.addEventListener("click", () => renew({ automatic: false }));
superseded.onTakeBack(() => renew({ automatic: false }));
el.extract.addEventListener("click", profileExtract);
el.mute.addEventListener("click", muteToggle);
el.messageForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = el.message.value.trim();
  if (!text || !textSend(text, renew)) return;
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
