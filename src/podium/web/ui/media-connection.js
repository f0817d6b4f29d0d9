// Keeping this tab's media session up: the first connect, noticing it closed, reconnecting with
// bounded retries, turning back on what was on, and taking it back from another tab. podium.js
// opens the session (call.connectMedia) and never reopens it by itself; this decides when to and
// what to tell the user, apart from the call's lifecycle and its screen.
import { SOURCE_BY_NAME } from "./media.js";
import { describeError } from "./messages.js";

const RETRY_DELAYS_MS = [1000, 2000, 4000, 8000, 15000];
// media.closed reasons after which reconnecting makes no sense (we left, were removed, it ended).
const FINAL = new Set(["left", "blocked", "call_ended"]);
const SESSION_GONE = new Set(["left", "call_ended", "lost", "connection_failed", "replaced"]);
// Sources turned back on by themselves once media is back: the screen picker needs a click.
const RESTORABLE = new Set(["microphone", "camera"]);

export class MediaConnection {
  /**
   * `session` gives: `call`, `client`, `messages`, `media` (LocalMedia), `isIn()`, `leaving`,
   * `toggle(source)` (a promise), and `view.schedule()` (redraw soon).
   */
  constructor(session) {
    this.session = session;
    this.down = false; // our media session ended and is to be reconnected
    this.elsewhere = false; // another tab of this user took the media session
    this.toRestore = new Set(); // sources that were on when the connection dropped
    this.losses = []; // ms timestamps of the session failing, over the last minute
    this.reconnecting = false;
  }

  /** Receive everyone's media (listeners too); publishing later reuses this session. */
  async connect({ quiet = false } = {}) {
    const { session } = this;
    try {
      await session.call.connectMedia();
      return true;
    } catch (error) {
      // A session that closed while connecting is reported (and retried) by onClosed.
      if (!quiet && session.isIn() && error.code !== "media_closed") {
        session.messages.error(`Could not connect media: ${describeError(error)}`);
      }
      return false;
    }
  }

  /**
   * The media session ended without us leaving. The library stopped our tracks and does
   * not reopen media by itself. Moved to another tab: say so and wait for the user.
   * Lost with the WebSocket: reconnect once it is back. Failed: reconnect, bounded, so a
   * connection that keeps failing is reported rather than retried forever.
   */
  onClosed(reason) {
    const { session } = this;
    session.media.stopAll(false);
    session.view.schedule();
    if (!session.isIn() || FINAL.has(reason)) return;
    if (reason === "replaced") {
      this.toRestore.clear();
      this.elsewhere = true;
      return;
    }
    this.down = true;
    if (reason !== "lost") {
      const now = Date.now();
      this.losses = this.losses.filter((t) => now - t < 60_000).concat(now);
      if (this.losses.length > 3) {
        session.messages.error("The media connection keeps dropping. Leave and join again to hear the call.");
        return;
      }
      session.messages.warning("The media connection was lost. Reconnecting…");
    }
    if (session.client.connected) this.reconnect();
  }

  /** The server is reachable again: reopen media if it went down meanwhile (that says "Reconnected." once back). */
  onlineAgain() {
    if (this.down) this.reconnect();
    else this.session.messages.success("Reconnected.");
  }

  /** Open media again, then turn back on what was on. Stops while offline: coming back restarts it. */
  async reconnect() {
    if (this.reconnecting) return;
    const { session } = this;
    this.reconnecting = true;
    try {
      for (const delay of [0, ...RETRY_DELAYS_MS]) {
        await sleep(delay);
        if (!session.isIn() || !this.down || !session.client.connected) return;
        if (await this.connect({ quiet: true })) {
          this.down = false;
          await this.restoreSources();
          return;
        }
      }
      if (session.isIn()) session.messages.error("Could not reconnect media. Leave and join again to hear the call.");
    } finally {
      this.reconnecting = false;
    }
  }

  /** Turn back on the microphone and camera that were on when the connection dropped, if still allowed. */
  async restoreSources() {
    const { call, media, messages } = this.session;
    const sources = [...this.toRestore];
    this.toRestore.clear();
    const restored = [];
    for (const source of sources) {
      const spec = SOURCE_BY_NAME[source];
      if (!RESTORABLE.has(source)) {
        messages.info(`Your ${spec.noun} stopped when the connection dropped. Start it again if you like.`);
      } else if (!call.hasPermission(spec.capability)) {
        messages.warning(`Your ${spec.noun} stayed off: you may no longer send ${spec.short}.`);
      } else if (!media.isOn(source)) {
        await this.session.toggle(source);
        if (media.isOn(source)) restored.push(spec.noun);
      }
    }
    const verb = restored.length > 1 ? "are" : "is";
    messages.success(`Reconnected.${restored.length ? ` Your ${restored.join(" and ")} ${verb} on again.` : ""}`);
  }

  /** "Use this tab": take the media session back from the other tab. */
  async takeBack() {
    if (!this.elsewhere) return;
    const { session } = this;
    this.elsewhere = false;
    session.view.schedule();
    if (!(await this.connect()) && session.isIn()) this.elsewhere = true;
    session.view.schedule();
  }

  /** The nouns of the sources that will turn back on by themselves once media is back. */
  sourcesComingBack() {
    return [...this.toRestore].filter((s) => RESTORABLE.has(s)).map((s) => SOURCE_BY_NAME[s].noun);
  }

  /** One of our sources stopped: remember it if the connection took it, and say why unless that is obvious. */
  onSourceStopped(event) {
    const { media, messages } = this.session;
    const had = media.isOn(event.source) || Boolean(event.track);
    media.dropped(event.source);
    if (had && event.reason === "lost") this.toRestore.add(event.source);
    const spec = SOURCE_BY_NAME[event.source];
    // Sources that stop because the whole session went are covered by the media-closed message.
    if (!spec || !had || this.session.leaving || SESSION_GONE.has(event.reason)) return;
    if (event.reason === "ended") messages.info(`Your ${spec.noun} stopped.`);
    else messages.warning(`Your ${spec.noun} was stopped: ${String(event.reason).replaceAll("_", " ")}`);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
