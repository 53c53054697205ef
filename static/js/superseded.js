// "This conversation moved to another window": what a page shows once another window (or tab,
// or device) of the same browser took its conversation over. The server ended this page's call
// as `superseded` and hung it up upstream, so nothing said or typed here could be recorded:
// input stays disabled until the person takes the conversation back, which renews it here (and
// moves it away from the other window in turn).

export const MOVED_TEXT = "This conversation moved to another window.";

export class SupersededBanner {
  /** @param {HTMLElement} after the element the banner is placed after (the page's alert) */
  constructor(after) {
    const root = document.createElement("div");
    root.id = "superseded";
    root.className = "alert superseded";
    root.setAttribute("role", "alert");
    root.dataset.level = "info";
    root.hidden = true;
    const text = document.createElement("p");
    text.className = "alert-text";
    text.textContent = `${MOVED_TEXT} It continues there; what you say here is not heard.`;
    const actions = document.createElement("div");
    actions.className = "alert-actions";
    const takeBack = document.createElement("button");
    takeBack.type = "button";
    takeBack.className = "button primary";
    takeBack.textContent = "Continue here";
    actions.append(takeBack);
    root.append(text, actions);
    after.after(root);
    this.root = root;
    this.takeBack = takeBack;
  }

  /** "Continue here" hides the banner, then calls `handler` (a renew that brings the call back). */
  onTakeBack(handler) {
    this.takeBack.addEventListener("click", () => {
      this.hide();
      handler();
    });
  }

  /** True while this page's conversation lives in another window. */
  get shown() {
    return !this.root.hidden;
  }

  show() {
    this.root.hidden = false;
    document.body.dataset.superseded = "true";
  }

  hide() {
    this.root.hidden = true;
    document.body.dataset.superseded = "false";
  }
}
