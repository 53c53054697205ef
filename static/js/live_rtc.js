// The browser's side of a Live (GPT-Live) session: the same peer connection and data channel
// as a Realtime call, but the SDP offer goes to OUR server, which creates the session upstream
// with the project key and answers with OpenAI's SDP answer and the session id. There is no
// client secret; the server registers the call itself.

import { iceGatheringComplete, peerConnectionNew } from "./rtc.js";

/**
 * Open a Live session: `request(sdp)` sends the offer to our server (create, renew or
 * refresh) and resolves to its JSON answer (`callId`, `sdp`, ...). Resolves once the answer is
 * applied, with the server's answer; the data channel may still be opening.
 */
export async function liveCallOpen({ request, micStream, onTrack, onEvent, onState }) {
  const { pc, dc } = peerConnectionNew({ micStream, onTrack, onEvent, onState });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const data = await request(pc.localDescription.sdp);
    await pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
    return { pc, dc, callId: data.callId, data };
  } catch (error) {
    pc.close();
    throw error;
  }
}

/** Client events on a Live data channel. A typed line is context for the model to answer
 * (Live has no user-text message; the sideband reports no text for it). */
export const liveClientEvents = {
  userText(text) {
    return { type: "session.commentary.append", delegation_id: null, content: text };
  },
};
