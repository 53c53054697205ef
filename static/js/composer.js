// The message box's guidance: why it is (not) usable, said next to it (and to screen readers
// through aria-describedby), and where the skip link goes (the box is disabled before Start,
// so the link leads to Start then).

/** The hint under the message box for the page's state. */
export function composerHint({ ready, busy, hasSession, lost, micRefused }) {
  if (!hasSession) return "Press Start, then speak or type here.";
  if (busy) return "Connecting… you can type once the call is ready.";
  if (lost) return "Not connected, so nothing can be sent: press Retry above to reconnect.";
  if (!ready) return "Not connected: press Reconnect to continue.";
  return micRefused ? "Type a message (no microphone)." : "Speak, or type a message.";
}

export class ComposerGuide {
  constructor({ hint, skipLink }) {
    this.hint = hint;
    this.skipLink = skipLink;
  }

  update(view) {
    this.hint.textContent = composerHint(view);
    this.skipLink.href = view.hasSession ? "#message" : "#start";
    this.skipLink.textContent = view.hasSession ? "Skip to the message box" : "Skip to Start";
  }
}
