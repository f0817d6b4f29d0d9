// Publishing and receiving media: one call's RTCPeerConnection with Podium's SFU.

import { PodiumError } from "./errors.js";
import { SOURCE_CAPABILITY, SOURCES } from "./protocol.js";
import { deferred, within } from "./waiting.js";

export { SOURCE_CAPABILITY, SOURCES };

/** @typedef {keyof typeof SOURCES} Source A source a participant publishes. */
/** @typedef {"all" | string[]} Selection Whose tracks to receive: everyone's, or these users'. */

/**
 * A track the SFU forwards to this client, as `sfu.tracks` lists it.
 * @typedef {object} ForwardedTrack
 * @property {string} user_id
 * @property {Source} source
 * @property {string} [track_id]
 * @property {string | null} mid the m-line carrying it, null until negotiated
 */

/**
 * A media signalling frame (docs/api.md "Media signalling"): each type carries some of these.
 * @typedef {object} SfuFrame
 * @property {`sfu.${string}`} type
 * @property {string} [call_cid]
 * @property {Source} [source]
 * @property {string} [reason]
 * @property {string} [capability]
 * @property {string} [code]
 * @property {string} [message]
 * @property {string} [sdp]
 * @property {string} [candidate]
 * @property {string | null} [sdp_mid]
 * @property {number | null} [sdp_mline_index]
 * @property {Selection} [user_ids]
 * @property {ForwardedTrack[]} [tracks]
 */

/**
 * A remote track being received.
 * @typedef {object} RemoteTrack
 * @property {string} userId
 * @property {Source} source
 * @property {MediaStreamTrack} track
 * @property {string | null} mid
 */

/**
 * What the media session tells the call's handlers (`call.on("media.…")`).
 * @typedef {(
 *   | ({ type: "media.track_added", call_cid: string } & RemoteTrack)
 *   | ({ type: "media.track_removed", call_cid: string } & RemoteTrack)
 *   | { type: "media.source_stopped", call_cid: string, source: Source, reason: string, track: MediaStreamTrack | null }
 *   | { type: "media.source_resumed", call_cid: string, source: Source }
 *   | { type: "media.closed", call_cid: string, reason: string }
 * )} MediaEvent
 */

// A `sfu.stop_source` with one of these reasons means the server ended the whole media session.
// Not `left`: the server sends it for every way a session ends and then says which
// (`sfu.error` `replaced`, the participant leaving), so that reason is not lost.
const SESSION_ENDING = new Set(["blocked", "call_ended"]);

/** The SFU refused to take a source: the capability is missing. */
export class PublishDeniedError extends PodiumError {
  /**
   * @param {Source} source
   * @param {string} capability
   * @param {string} reason `not_granted`, `revoked` or `role_changed`
   */
  constructor(source, capability, reason) {
    super(`publishing ${source} needs ${capability} (${reason})`, {
      code: "publish_denied",
      details: { source, capability, reason },
    });
    this.name = "PublishDeniedError";
    this.source = source;
    this.capability = capability;
    this.reason = reason;
  }
}

/**
 * `source`, if it is one of `SOURCES`; else a TypeError.
 * @param {string} source
 * @returns {Source}
 */
export function checkSource(source) {
  if (!Object.hasOwn(SOURCES, source)) {
    throw new TypeError(`source must be one of ${Object.keys(SOURCES).join(", ")}, got ${source}`);
  }
  return /** @type {Source} */ (source);
}

/**
 * One call's RTCPeerConnection with the SFU. The client offers three sendrecv
 * m-lines (audio, video, video: microphone, camera, screen), which the SFU
 * also uses to send remote tracks back; further remote tracks arrive in the
 * server's offers, which the session answers. Publishing puts the track on
 * its m-line with `replaceTrack`, without renegotiating.
 */
export class MediaSession {
  /**
   * @param {import("./call.js").Call} call
   * @param {{ subscribe: Selection }} options
   */
  constructor(call, { subscribe }) {
    this.call = call;
    this.closed = false;
    /** @type {Partial<Record<Source, MediaStreamTrack>>} */
    this.published = {};
    /** @type {Map<string, RemoteTrack>} By `userId/source`. */
    this.remoteTracks = new Map();
    this.selection = subscribe;
    const iceServers = call.mediaInfo?.ice_servers ?? [];
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    /** @type {Record<Source, RTCRtpTransceiver>} */
    this.transceivers = {
      microphone: this.pc.addTransceiver(SOURCES.microphone, { direction: "sendrecv" }),
      camera: this.pc.addTransceiver(SOURCES.camera, { direction: "sendrecv" }),
      screen: this.pc.addTransceiver(SOURCES.screen, { direction: "sendrecv" }),
    };
    /** @type {ForwardedTrack[]} */
    this._trackList = [];
    /** @type {Promise<void>} */
    this._inbox = Promise.resolve();
    /** @type {Promise<void> | null} */
    this._started = null;
    this._offerSent = false;
    /** @type {(RTCIceCandidate | null)[]} */
    this._pendingCandidates = [];
    /** @type {import("./waiting.js").Deferred} */
    this._answered = deferred();
    /** @type {import("./waiting.js").Deferred} */
    this._connected = deferred();
    /** @type {Record<Source, import("./waiting.js").Deferred[]>} */
    this._publishing = { microphone: [], camera: [], screen: [] };
    /** @type {Record<Source, Promise<void>>} */
    this._locks = { microphone: Promise.resolve(), camera: Promise.resolve(), screen: Promise.resolve() };
    this.pc.onicecandidate = (event) => this.#sendCandidate(event.candidate);
    this.pc.onconnectionstatechange = () => this.#onConnectionState();
    this.pc.ontrack = () => this.#reconcile();
  }

  /** @returns {Promise<void>} */
  start() {
    if (!this._started) this._started = this.#start();
    return this._started;
  }

  /**
   * @param {Source} source
   * @param {MediaStreamTrack} track
   */
  async publish(source, track) {
    await this.start();
    return this.#serially(source, async () => {
      this.#checkOpen();
      const accepted = deferred();
      this._publishing[source].push(accepted);
      this.#send({ type: "sfu.publish", source });
      await within(accepted.promise, this.call.client.timeoutMs, `sfu.publish_ok for ${source}`);
      this.#checkOpen();
      await this.transceivers[source].sender.replaceTrack(track);
      this.published[source] = track;
      track.addEventListener("ended", () => this.#endedByItself(source, track), { once: true });
    });
  }

  /** @param {Source} source */
  unpublish(source) {
    return this.#serially(source, async () => {
      const track = this.published[source];
      delete this.published[source];
      if (!this.closed) {
        await this.transceivers[source].sender.replaceTrack(null);
        if (track && this._started) this.#send({ type: "sfu.unpublish", source });
      }
    });
  }

  /** @param {Selection} selection */
  async subscribe(selection) {
    this.selection = selection;
    if (this._offerSent && !this.closed) this.#send({ type: "sfu.subscribe", user_ids: selection });
  }

  /**
   * @param {string} [reason] the `media.closed` reason
   * @param {{ tellServer?: boolean }} [options] `tellServer`: send `sfu.leave` (false when the server ended it)
   */
  async close(reason = "left", { tellServer = true } = {}) {
    if (this.closed) return;
    if (tellServer && this._offerSent && this.call.client.connected) this.#send({ type: "sfu.leave" });
    for (const source of /** @type {Source[]} */ (Object.keys(this.published))) this.#stopSource(source, reason);
    this.closed = true;
    this.fail(new PodiumError(`the media session of ${this.call.cid} closed (${reason})`, { code: "media_closed" }));
    this._trackList = [];
    this.#reconcile();
    this.pc.close();
    this.call._emit({ type: "media.closed", call_cid: this.call.cid, reason });
  }

  /**
   * Fail everything waiting on the server (a refused frame, or the session closing).
   * @param {unknown} error
   */
  fail(error) {
    this._answered.reject(error);
    this._connected.reject(error);
    for (const waiting of Object.values(this._publishing)) {
      for (const waiter of waiting.splice(0)) waiter.reject(error);
    }
  }

  /** @param {SfuFrame} frame */
  handle(frame) {
    if (this.closed) return;
    const { type } = frame;
    const source = /** @type {Source} */ (frame.source);
    if (type === "sfu.offer" || type === "sfu.answer" || type === "sfu.candidate" || type === "sfu.tracks") {
      // In order: a track's mid exists only once the offer that adds it is applied.
      this._inbox = this._inbox.then(() => this.#negotiate(frame)).catch((error) => {
        console.error(`podium.js: media negotiation of ${this.call.cid} failed`, error);
        this.close("connection_failed");
      });
    } else if (type === "sfu.publish_ok") {
      this._publishing[source]?.shift()?.resolve();
    } else if (type === "sfu.publish_denied") {
      this._publishing[source]?.shift()?.reject(new PublishDeniedError(source, /** @type {string} */ (frame.capability), /** @type {string} */ (frame.reason)));
    } else if (type === "sfu.stop_source") {
      const reason = /** @type {string} */ (frame.reason);
      this.#stopSource(source, reason);
      if (SESSION_ENDING.has(reason)) this.close(reason, { tellServer: false });
    } else if (type === "sfu.source_resumed") {
      this.call._emit({ type: "media.source_resumed", call_cid: this.call.cid, source });
    } else if (type === "sfu.error") {
      if (frame.code === "offer_required") {
        this.close("lost", { tellServer: false });
      } else if (frame.code === "replaced") {
        // Another tab or connection of this user offered: the session is theirs now.
        this.close("replaced", { tellServer: false });
      } else {
        this.fail(new PodiumError(`sfu.error ${frame.code}: ${frame.message}`, { code: frame.code }));
      }
    }
  }

  /** @returns {Promise<Map<string | null, number>>} */
  async audioLevels() {
    /** @type {Map<string | null, number>} */
    const levels = new Map();
    const report = await this.pc.getStats();
    const byMid = new Map(this._trackList.filter((t) => t.source === "microphone").map((t) => [t.mid, t.user_id]));
    report.forEach((stats) => {
      if (stats.type === "inbound-rtp" && stats.kind === "audio" && byMid.has(stats.mid)) {
        levels.set(/** @type {string} */ (byMid.get(stats.mid)), stats.audioLevel ?? 0);
      } else if (stats.type === "media-source" && stats.kind === "audio" && this.published.microphone) {
        if (stats.trackIdentifier === this.published.microphone.id) {
          levels.set(this.call.client.userId, stats.audioLevel ?? 0);
        }
      }
    });
    return levels;
  }

  async #start() {
    try {
      await this.pc.setLocalDescription();
      this.#send({ type: "sfu.offer", sdp: /** @type {RTCSessionDescription} */ (this.pc.localDescription).sdp });
      this._offerSent = true;
      this._pendingCandidates.splice(0).forEach((c) => this.#sendCandidate(c));
      const timeout = this.call.client.timeoutMs;
      await within(this._answered.promise, timeout, "the SFU's sfu.answer");
      this.#send({ type: "sfu.subscribe", user_ids: this.selection });
      await within(this._connected.promise, timeout, "a media connection");
    } catch (error) {
      await this.close("connection_failed");
      throw error;
    }
  }

  /** @param {SfuFrame} frame */
  async #negotiate(frame) {
    if (frame.type === "sfu.tracks") {
      this._trackList = Array.isArray(frame.tracks) ? frame.tracks : [];
    } else if (frame.type === "sfu.answer") {
      await this.pc.setRemoteDescription({ type: "answer", sdp: frame.sdp });
      this._answered.resolve();
    } else if (frame.type === "sfu.offer") {
      await this.pc.setRemoteDescription({ type: "offer", sdp: frame.sdp });
      await this.pc.setLocalDescription();
      this.#send({ type: "sfu.answer", sdp: /** @type {RTCSessionDescription} */ (this.pc.localDescription).sdp });
    } else if (frame.type === "sfu.candidate" && frame.candidate) {
      await this.pc.addIceCandidate({
        candidate: frame.candidate,
        sdpMid: frame.sdp_mid,
        sdpMLineIndex: frame.sdp_mline_index,
      });
    }
    this.#reconcile();
  }

  /** Map the announced tracks to receivers by mid; emit what was removed, then what was added. */
  #reconcile() {
    const byMid = new Map(this.pc.getTransceivers().filter((t) => t.mid !== null).map((t) => [t.mid, t]));
    /** @type {Map<string, RemoteTrack>} */
    const current = new Map();
    for (const entry of this._trackList) {
      const transceiver = byMid.get(entry.mid);
      if (!transceiver || this.closed) continue;
      const key = `${entry.user_id}/${entry.source}`;
      current.set(key, { userId: entry.user_id, source: entry.source, track: transceiver.receiver.track, mid: entry.mid });
    }
    const previous = this.remoteTracks;
    this.remoteTracks = current;
    for (const [key, entry] of previous) {
      if (current.get(key)?.track !== entry.track) this.#emitTrack("media.track_removed", entry);
    }
    for (const [key, entry] of current) {
      if (previous.get(key)?.track !== entry.track) this.#emitTrack("media.track_added", entry);
    }
  }

  /**
   * @param {"media.track_added" | "media.track_removed"} type
   * @param {RemoteTrack} entry
   */
  #emitTrack(type, entry) {
    this.call._emit({ type, call_cid: this.call.cid, ...entry });
  }

  /** The server stopped `source` (forwarding already has): stop sending and stop the track. */
  /**
   * @param {Source} source
   * @param {string} reason
   */
  #stopSource(source, reason) {
    const track = this.published[source];
    delete this.published[source];
    if (!this.closed) this.transceivers[source]?.sender.replaceTrack(null).catch(() => {});
    if (track) track.stop();
    this.call._emit({ type: "media.source_stopped", call_cid: this.call.cid, source, reason, track: track ?? null });
  }

  /**
   * @param {Source} source
   * @param {MediaStreamTrack} track
   */
  #endedByItself(source, track) {
    if (this.published[source] !== track) return;
    this.unpublish(source).catch(() => {});
    this.call._emit({ type: "media.source_stopped", call_cid: this.call.cid, source, reason: "ended", track });
  }

  /** @param {RTCIceCandidate | null} candidate null: the end of candidates */
  #sendCandidate(candidate) {
    if (this.closed) return;
    if (!this._offerSent) {
      this._pendingCandidates.push(candidate);
      return;
    }
    if (!candidate || !candidate.candidate) {
      this.#send({ type: "sfu.candidate", candidate: "" });
      return;
    }
    if (this.call.client.loopbackOnly && candidate.address !== "127.0.0.1") return;
    this.#send({
      type: "sfu.candidate",
      candidate: candidate.candidate,
      sdp_mid: candidate.sdpMid,
      sdp_mline_index: candidate.sdpMLineIndex,
    });
  }

  #onConnectionState() {
    const state = this.pc.connectionState;
    if (state === "connected") this._connected.resolve();
    if (state === "failed" && !this.closed) this.close("connection_failed");
  }

  /**
   * Run `work` after the earlier work on `source` settled.
   * @param {Source} source
   * @param {() => Promise<void>} work
   */
  #serially(source, work) {
    const run = this._locks[source].then(work);
    this._locks[source] = run.catch(() => {});
    return run;
  }

  #checkOpen() {
    if (this.closed) throw new PodiumError(`the media session of ${this.call.cid} is closed`, { code: "media_closed" });
  }

  /** @param {SfuFrame} frame */
  #send(frame) {
    this.call.client.send({ ...frame, call_cid: this.call.cid }).catch((error) => this.fail(error));
  }
}
