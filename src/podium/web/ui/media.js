// This tab's own microphone, camera and screen: capture, publish, unpublish, stop.
import { PublishDeniedError, SOURCE_CAPABILITY } from "../podium.js";

/** The three publishable sources, in control-bar order, with what each needs and is called. */
export const SOURCES = [
  {
    source: "microphone",
    capability: SOURCE_CAPABILITY.microphone,
    noun: "microphone",
    short: "audio",
    toggleLabel: "Microphone",
    acquire: () => firstTrack(navigator.mediaDevices.getUserMedia({ audio: true }), "audio"),
  },
  {
    source: "camera",
    capability: SOURCE_CAPABILITY.camera,
    noun: "camera",
    short: "video",
    toggleLabel: "Camera",
    acquire: () => firstTrack(navigator.mediaDevices.getUserMedia({ video: true }), "video"),
  },
  {
    source: "screen",
    capability: SOURCE_CAPABILITY.screen,
    noun: "screen share",
    short: "screen share",
    toggleLabel: "Share screen",
    acquire: () => firstTrack(navigator.mediaDevices.getDisplayMedia({ video: true }), "video"),
  },
];

export const SOURCE_BY_NAME = Object.fromEntries(SOURCES.map((s) => [s.source, s]));
export const SOURCE_BY_CAPABILITY = Object.fromEntries(SOURCES.map((s) => [s.capability, s]));

async function firstTrack(streamPromise, kind) {
  const stream = await streamPromise;
  const [track, ...extra] = kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks();
  // getDisplayMedia may add tab audio: we only publish the video.
  for (const other of [...extra, ...stream.getTracks().filter((t) => t.kind !== kind)]) other.stop();
  if (!track) throw new DOMException(`no ${kind} track`, "NotFoundError");
  return track;
}

export class LocalMedia {
  /** `onChange()` is called whenever a source starts, stops or becomes busy. */
  constructor(call, onChange) {
    this.call = call;
    this.onChange = onChange;
    this.tracks = {}; // source → MediaStreamTrack being sent (or about to be)
    this.busy = new Map(); // source → "starting" | "stopping" while in flight
    this.closed = false;
  }

  isOn(source) {
    return Boolean(this.tracks[source]);
  }

  isBusy(source) {
    return this.busy.has(source);
  }

  /** "starting", "stopping" or undefined. */
  busyPhase(source) {
    return this.busy.get(source);
  }

  /** Capture and publish `source`. Rejects with an Error whose message is for people. */
  async start(source) {
    if (this.isOn(source) || this.isBusy(source) || this.closed) return;
    const spec = SOURCE_BY_NAME[source];
    this.busy.set(source, "starting");
    this.onChange();
    let track = null;
    try {
      track = await spec.acquire().catch((error) => {
        throw captureError(spec, error);
      });
      if (this.closed) {
        track.stop();
        return;
      }
      this.tracks[source] = track;
      this.onChange();
      await this.call.publish(source, track);
    } catch (error) {
      if (track) track.stop();
      if (this.tracks[source] === track) delete this.tracks[source];
      throw publishError(spec, error);
    } finally {
      this.busy.delete(source);
      this.onChange();
    }
  }

  /** Stop sending `source` and release the device. */
  async stop(source) {
    const track = this.tracks[source];
    if (!track || this.isBusy(source)) return;
    this.busy.set(source, "stopping");
    this.onChange();
    try {
      await this.call.unpublish(source);
    } finally {
      track.stop();
      if (this.tracks[source] === track) delete this.tracks[source];
      this.busy.delete(source);
      this.onChange();
    }
  }

  /** The server (or the browser) stopped `source`: the library stopped the track; forget it. */
  dropped(source) {
    const track = this.tracks[source];
    if (!track) return;
    track.stop();
    delete this.tracks[source];
    this.onChange();
  }

  /** Release every device; `final` (leaving the call) also refuses any later start. */
  stopAll(final = true) {
    if (final) this.closed = true;
    for (const track of Object.values(this.tracks)) track.stop();
    this.tracks = {};
  }
}

function captureError(spec, error) {
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    if (spec.source === "screen") return quiet("Screen sharing was cancelled.");
    return new Error(
      `Your browser blocked the ${spec.noun}. Allow it for this site and try again.`,
    );
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return new Error(`No ${spec.noun} was found.`);
  }
  if (name === "NotReadableError") {
    return new Error(`The ${spec.noun} is in use by another application.`);
  }
  return new Error(`Could not start the ${spec.noun}: ${error && error.message ? error.message : error}`);
}

function publishError(spec, error) {
  if (error instanceof PublishDeniedError) {
    const reason = (error.reason || "not_granted").replaceAll("_", " ");
    return new Error(`Your ${spec.noun} was not published: ${reason}.`);
  }
  return error;
}

/** An error that is shown as information, not as a failure (e.g. a cancelled screen picker). */
function quiet(message) {
  const error = new Error(message);
  error.quiet = true;
  return error;
}
