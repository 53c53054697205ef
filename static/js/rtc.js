// The browser's side of the Realtime call: the peer connection, the `oai-events` data channel
// and the SDP exchange with the upstream (OpenAI or the emulator), straight from the browser.

import { ApiError } from "./api.js";

const ICE_GATHERING_TIMEOUT_MS = 3000;
const DATA_CHANNEL_OPEN_TIMEOUT_MS = 15000;

/** Ask for the microphone; the error says in words what went wrong and what to do. */
export async function microphoneOpen() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new ApiError(
      "This browser cannot use a microphone here (the page needs HTTPS or localhost). You can still type messages.",
      { kind: "microphone" },
    );
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    if (error?.name === "NotAllowedError" || error?.name === "SecurityError") {
      throw new ApiError(
        "Microphone access was refused. Allow the microphone for this site in the browser's address bar, then press Retry — or type your messages below.",
        { kind: "microphone" },
      );
    }
    if (error?.name === "NotFoundError" || error?.name === "OverconstrainedError") {
      throw new ApiError(
        "No microphone was found. Plug one in and press Retry — or type your messages below.",
        { kind: "microphone" },
      );
    }
    throw new ApiError(
      "The microphone could not be started (another app may be using it). Close it and press Retry — or type your messages below.",
      { kind: "microphone" },
    );
  }
}

/** The offer with its ICE candidates: the upstream gets one SDP, no trickle. */
export function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ICE_GATHERING_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function upstreamErrorFrom(status) {
  if (status === 401 || status === 403) {
    return new ApiError(
      "The connection key expired before the call could start. Press Retry to get a new one.",
      { status, kind: "expired" },
    );
  }
  if (status === 429) {
    return new ApiError("The voice service is rate-limiting calls. Wait a minute, then press Retry.", {
      status,
      kind: "rate_limited",
    });
  }
  if (status >= 500) {
    return new ApiError("The voice service is down or overloaded. Wait a moment, then press Retry.", {
      status,
      kind: "upstream",
    });
  }
  return new ApiError(`The voice service refused the call (error ${status}). Press Retry.`, {
    status,
    kind: "upstream",
  });
}

/** `Location: /v1/realtime/calls/rtc_...` → `rtc_...`. */
export function callIdFromLocation(location) {
  if (!location) return null;
  const last = location.split("?")[0].replace(/\/+$/, "").split("/").pop();
  return last || null;
}

/**
 * A peer connection with the mic track (receive-only without a mic) and the `oai-events` data
 * channel, its events parsed for `onEvent`: the same for a Realtime call and a Live session.
 */
export function peerConnectionNew({ micStream, onTrack, onEvent, onState }) {
  const pc = new RTCPeerConnection();
  pc.addEventListener("track", (event) => onTrack(event.streams[0] ?? new MediaStream([event.track])));
  pc.addEventListener("connectionstatechange", () => onState(pc.connectionState));
  const track = micStream?.getAudioTracks()[0];
  if (track) pc.addTrack(track, micStream);
  else pc.addTransceiver("audio", { direction: "recvonly" });

  const dc = pc.createDataChannel("oai-events");
  dc.addEventListener("message", (event) => {
    let parsed;
    try {
      parsed = JSON.parse(event.data);
    } catch {
      return;
    }
    onEvent(parsed);
  });
  return { pc, dc };
}

/**
 * Open a call: peer connection with the mic track (receive-only without a mic), the
 * `oai-events` data channel, the SDP offer POSTed with the client secret as Bearer.
 * Resolves once the upstream answered; the data channel may still be opening.
 */
export async function callOpen({ baseUrl, clientSecret, micStream, onTrack, onEvent, onState }) {
  const { pc, dc } = peerConnectionNew({ micStream, onTrack, onEvent, onState });

  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    let response;
    try {
      response = await fetch(`${baseUrl.replace(/\/+$/, "")}/realtime/calls`, {
        method: "POST",
        body: pc.localDescription.sdp,
        headers: { Authorization: `Bearer ${clientSecret}`, "Content-Type": "application/sdp" },
      });
    } catch {
      throw new ApiError(
        "The voice service cannot be reached from this browser. Check your connection, then press Retry.",
        { kind: "upstream" },
      );
    }
    if (!response.ok) throw upstreamErrorFrom(response.status);
    const callId = callIdFromLocation(response.headers.get("Location"));
    if (!callId) {
      throw new ApiError("The voice service answered without a call id. Press Retry.", {
        kind: "upstream",
      });
    }
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    return { pc, dc, callId };
  } catch (error) {
    pc.close();
    throw error;
  }
}

/** Resolves when the data channel is open (or rejects after a bound). */
export function dataChannelOpen(dc) {
  if (dc.readyState === "open") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(
        new ApiError("The call connected but its control channel did not open. Press Retry.", {
          kind: "upstream",
        }),
      );
    }, DATA_CHANNEL_OPEN_TIMEOUT_MS);
    function cleanup() {
      clearTimeout(timer);
      dc.removeEventListener("open", opened);
      dc.removeEventListener("close", closed);
    }
    function opened() {
      cleanup();
      resolve();
    }
    function closed() {
      cleanup();
      reject(new ApiError("The call closed before it was ready. Press Retry.", { kind: "upstream" }));
    }
    dc.addEventListener("open", opened);
    dc.addEventListener("close", closed);
  });
}

/** Client events on the data channel (the browser's outgoing side of the Realtime API). */
export const clientEvents = {
  userText(text) {
    return {
      type: "conversation.item.create",
      item: { type: "message", role: "user", content: [{ type: "input_text", text }] },
    };
  },
  responseCreate() {
    return { type: "response.create" };
  },
  sessionUpdate(instructions) {
    return { type: "session.update", session: { type: "realtime", instructions } };
  },
};
