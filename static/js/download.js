// The transcript to take away: links to the server's own record of the conversation
// (`GET /session/{id}/transcript.md|.json`, with times and typed/spoken), not what this page
// happens to show. A plain link: the browser sends the ownership cookie and saves the file.

export class TranscriptDownloads {
  constructor({ root, markdown, json }) {
    this.root = root;
    this.markdown = markdown;
    this.json = json;
  }

  show(sessionId) {
    this.root.hidden = sessionId === null;
    if (sessionId === null) return;
    const base = `/session/${encodeURIComponent(sessionId)}/transcript`;
    this.markdown.href = `${base}.md`;
    this.json.href = `${base}.json`;
  }
}
