// What is happening right now, at a glance: who is speaking (from the call's own events), how
// loud the microphone is, how long the conversation has run against the upstream's cap, and
// when the page will reconnect for a fresh key.

/** `m:ss` (or `h:mm:ss`) of a duration in milliseconds. */
export function clockOf(ms) {
  const total = Math.max(0, Math.round(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

const YOU_TEXT = {
  off: "—",
  listening: "quiet",
  speaking: "speaking",
  muted: "muted",
};
const ASSISTANT_TEXT = {
  off: "—",
  listening: "listening",
  thinking: "thinking…",
  speaking: "speaking",
};

/**
 * Who is speaking, from the data channel's server events (`input_audio_buffer.speech_*` for
 * the person, `response.*` and `output_audio_buffer.*` for the assistant). Shown as two small
 * labelled states; not a live region (it changes several times a turn and would chatter).
 */
export class SpeakingCues {
  constructor({ you, assistant }) {
    this.you = you;
    this.assistant = assistant;
    this.muted = false;
    this.youState = "off";
    this.set("off", "off");
  }

  set(youState, assistantState) {
    if (youState !== null) this.youState = youState;
    const shownYou = this.muted && this.youState !== "off" ? "muted" : this.youState;
    this.you.dataset.state = shownYou;
    this.you.textContent = YOU_TEXT[shownYou];
    if (assistantState !== null) {
      this.assistant.dataset.state = assistantState;
      this.assistant.textContent = ASSISTANT_TEXT[assistantState];
    }
  }

  setMuted(muted) {
    this.muted = muted;
    this.set(null, null);
  }

  /** A server event from the data channel. */
  event(type) {
    switch (type) {
      case "session.created":
        this.set("listening", "listening");
        break;
      case "input_audio_buffer.speech_started":
        this.set("speaking", "listening");
        break;
      case "input_audio_buffer.speech_stopped":
        this.set("listening", null);
        break;
      case "response.created":
        this.set(null, "thinking");
        break;
      case "output_audio_buffer.started":
        this.set(null, "speaking");
        break;
      case "output_audio_buffer.stopped":
      case "output_audio_buffer.cleared":
        this.set(null, "listening");
        break;
      case "response.done":
        // A text-only answer has no audio buffer events; a spoken one ends when its audio does.
        if (this.assistant.dataset.state !== "speaking") this.set(null, "listening");
        break;
      default:
        break;
    }
  }

  off() {
    this.set("off", "off");
  }
}

/**
 * The microphone's level as a `<meter>` (0 to 1), read ~12 times a second from an
 * AnalyserNode; 0 when muted or without a microphone.
 */
export class MicMeter {
  constructor(meter) {
    this.meter = meter;
    this.context = null;
    this.analyser = null;
    this.source = null;
    this.timer = null;
    this.muted = false;
  }

  attach(stream) {
    this.detach();
    const track = stream?.getAudioTracks()[0];
    if (!track || typeof AudioContext === "undefined") return;
    this.context = new AudioContext();
    this.source = this.context.createMediaStreamSource(stream);
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 512;
    this.source.connect(this.analyser);
    const samples = new Float32Array(this.analyser.fftSize);
    this.meter.hidden = false;
    this.timer = setInterval(() => {
      if (this.muted) {
        this.show(0);
        return;
      }
      this.analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const value of samples) sum += value * value;
      const rms = Math.sqrt(sum / samples.length);
      // -60 dBFS (quiet room) → 0, -10 dBFS (close, loud speech) → 1.
      const db = 20 * Math.log10(rms || 1e-6);
      this.show(Math.min(1, Math.max(0, (db + 60) / 50)));
    }, 80);
  }

  show(level) {
    this.meter.value = level;
    this.meter.dataset.level = level > 0.05 ? "on" : "off";
  }

  setMuted(muted) {
    this.muted = muted;
  }

  detach() {
    clearInterval(this.timer);
    this.timer = null;
    this.source?.disconnect();
    this.context?.close().catch(() => undefined);
    this.context = null;
    this.analyser = null;
    this.source = null;
    this.show(0);
  }
}
