// The server's session API: fetch wrappers that turn failures into sentences a person can act on.

export class ApiError extends Error {
  /**
   * @param {string} message  what to show the person, including what to do next
   * @param {{status?: number, kind?: string, field?: string|null, retryAfter?: number|null}} info
   */
  constructor(message, { status = 0, kind = "server", field = null, retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.kind = kind;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

const FIELD_NAMES = {
  model: "model",
  voice: "voice",
  enableTranscription: "transcription setting",
  sessionId: "session id",
  callId: "call id",
  reset: "reset flag",
  body: "request",
};

/** The first field error of a DRF 400 body: {"field": ["message"]} or {"detail": "..."}. */
function fieldError(data) {
  if (!data || typeof data !== "object") return { field: null, message: "" };
  if (typeof data.detail === "string") return { field: data.field ?? null, message: data.detail };
  for (const [field, value] of Object.entries(data)) {
    const message = Array.isArray(value) ? value.join(" ") : String(value);
    return { field, message };
  }
  return { field: null, message: "" };
}

function retryAfterSeconds(response) {
  const raw = response.headers.get("Retry-After");
  const seconds = raw === null ? NaN : Number.parseInt(raw, 10);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : null;
}

/** A person-readable error for a failed response of our own server. */
export function apiErrorFrom(response, data) {
  const status = response.status;
  const detail = data && typeof data.detail === "string" ? data.detail : "";
  if (status === 400) {
    const { field, message } = fieldError(data);
    const name = FIELD_NAMES[field] ?? field;
    const what = name ? `The server did not accept the ${name}` : "The server did not accept the request";
    return new ApiError(`${what}${message ? `: ${message}` : "."} Check the form and try again.`, {
      status,
      kind: "invalid",
      field,
    });
  }
  if (status === 403) {
    return new ApiError(
      "Your browser's security token is missing or out of date. Reload the page, then try again.",
      { status, kind: "forbidden" },
    );
  }
  if (status === 404) {
    return new ApiError(
      "This conversation is no longer available to this browser. Press Start to begin a new one.",
      { status, kind: "not_found" },
    );
  }
  if (status === 409) {
    return new ApiError(
      `${detail || "This session has ended."} Press Refresh to start a new conversation.`,
      { status, kind: "conflict" },
    );
  }
  if (status === 413) {
    return new ApiError("That message is too long for the server. Shorten it and try again.", {
      status,
      kind: "too_large",
    });
  }
  if (status === 429 && data?.code === "open_sessions_limit") {
    return new ApiError(
      "This browser already has too many open conversations. Use Refresh on the current one instead of starting another.",
      { status, kind: "rate_limited" },
    );
  }
  if (status === 429) {
    const retryAfter = retryAfterSeconds(response);
    const wait = retryAfter ? `Wait ${retryAfter} seconds` : "Wait a minute";
    return new ApiError(`Too many requests from this browser. ${wait}, then press Retry.`, {
      status,
      kind: "rate_limited",
      retryAfter,
    });
  }
  if (status === 502 || status === 503 || status === 504) {
    const retryAfter = retryAfterSeconds(response);
    const why = detail || "The voice service is not answering.";
    const wait = retryAfter ? `Wait ${retryAfter} seconds` : "Wait a moment";
    return new ApiError(`${why} ${wait}, then press Retry.`, {
      status,
      kind: "upstream",
      retryAfter,
    });
  }
  return new ApiError(
    `Something went wrong on the server (error ${status}). Press Retry; if it keeps happening, reload the page.`,
    { status, kind: "server" },
  );
}

/**
 * Call our server. JSON in and out; the CSRF token from the `csrftoken` cookie rides along.
 * @returns {Promise<{status: number, data: any}>}
 */
export async function api(method, path, body = undefined) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRFToken"] = cookie("csrftoken");
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError("The server cannot be reached. Check your connection, then press Retry.", {
      kind: "network",
    });
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw apiErrorFrom(response, data);
  return { status: response.status, data };
}
