// One joined (or waiting) call's life, apart from how it is drawn: start (join, or wait for the
// host while the call is in backstage), the call's events wired to who handles them, the server
// connection dropping and coming back, and leaving. The screens are call-view.js's, permission
// requests moderation.js's, keeping media up media-connection.js's.
import { CallView } from "./call-view.js";
import { LocalMedia, SOURCE_BY_NAME } from "./media.js";
import { MediaConnection } from "./media-connection.js";
import { describeError } from "./messages.js";
import { Moderation } from "./moderation.js";
import { Names } from "./people.js";

export class CallSession {
  /**
   * `root`: the element the call's screen is drawn in; `messages`: the app's Messages;
   * `onExit(message?)`: called once when the session is over (left, ended, removed).
   */
  constructor({ client, call, root, messages, onExit }) {
    this.client = client;
    this.call = call;
    this.messages = messages;
    this.onExit = onExit;
    this.userId = client.userId;
    this.names = new Names();
    this.names.remember(client.userId, client.userName);
    this.view = new CallView(this, root);
    this.media = new LocalMedia(call, () => this.view.schedule());
    this.mediaConnection = new MediaConnection(this);
    this.moderation = new Moderation(this);
    this.mode = "starting"; // → "waiting" (backstage) → "joined" → "over"
    this.unsubscribe = [];
    this.offline = false; // the WebSocket dropped and podium.js is reconnecting it
  }

  /** Join, or wait for the host when the call is in backstage and we may not join it yet. */
  async start() {
    this.subscribe();
    const { call } = this;
    if (call.state.backstage && !call.hasPermission("join-backstage")) {
      await call.watch();
      if (call.state.live) await this.join();
      else this.wait();
    } else {
      await this.join();
    }
  }

  /** Show the waiting screen; onState and call.live_started join once the call goes live. */
  wait() {
    this.mode = "waiting";
    this.view.showWaiting();
  }

  async join() {
    if (this.mode === "joined" || this.joining) return;
    this.joining = true;
    try {
      await this.call.join();
    } finally {
      this.joining = false;
    }
    if (this.mode === "over") return;
    this.mode = "joined";
    this.view.showCall();
    this.mediaConnection.connect(); // not awaited: the call is usable while media connects
  }

  isIn() {
    return this.mode === "joined" && !this.leaving;
  }

  /** Whether the media controls can be used now: connected, and media in this tab. */
  canUseMedia() {
    return !this.offline && !this.mediaConnection.elsewhere;
  }

  /** The WebSocket dropped, came back, or was closed for good (the token was refused). */
  onConnectionState(state) {
    if (state === "closed" && this.isIn()) {
      this.exit("The server closed the connection: your access may have expired. Join again.");
      return;
    }
    const offline = state === "reconnecting";
    if (offline === this.offline) return;
    this.offline = offline;
    this.view.schedule();
    if (offline || !this.isIn()) return;
    this.mediaConnection.onlineAgain();
  }

  /** The Leave button: leave the call, release the devices, back to the lobby. */
  async leave() {
    if (this.mode === "over" || this.leaving) return;
    this.leaving = true;
    this.media.stopAll();
    try {
      await this.call.leave();
    } catch {
      // Already out (ended, removed, offline): leaving locally is all that is left to do.
    }
    this.exit(null);
  }

  /** Tear everything down once and hand back to the app. */
  exit(message) {
    if (this.mode === "over") return;
    this.mode = "over";
    for (const off of this.unsubscribe) off();
    this.moderation.dispose();
    this.media.stopAll();
    this.view.dispose();
    try {
      this.client.close();
    } catch {
      // closing twice or a socket already gone is fine
    }
    this.onExit(message);
  }

  subscribe() {
    const { call, moderation, mediaConnection, view } = this;
    const on = (type, handler) => this.unsubscribe.push(call.on(type, (event) => this.guard(handler, event)));
    this.unsubscribe.push(call.onStateChange(() => this.onState()));
    this.unsubscribe.push(
      this.client.onConnectionStateChange((state) => this.guard((s) => this.onConnectionState(s), state)),
    );
    on("call.live_started", () => this.mode === "waiting" && this.joinFromWaiting());
    on("call.ended", () => this.exit("The call has ended."));
    on("call.blocked_user", (e) => e.user_id === this.userId && this.exit("You were removed from the call."));
    on("call.permission_request", (e) => moderation.onRequest(e));
    on("call.permission_request_resolved", (e) => moderation.onResolved(e.request));
    on("media.track_added", () => view.schedule());
    on("media.track_removed", () => view.schedule());
    on("media.source_stopped", (e) => mediaConnection.onSourceStopped(e));
    on("media.source_resumed", (e) => {
      const spec = SOURCE_BY_NAME[e.source];
      if (spec) this.messages.info(`You may send your ${spec.noun} again.`);
    });
    on("media.closed", (e) => mediaConnection.onClosed(e.reason));
  }

  /** Run an event handler; a bug in one must not break the others or go unseen. */
  guard(handler, event) {
    try {
      const result = handler(event);
      if (result && typeof result.catch === "function") {
        result.catch((error) => this.messages.error(describeError(error)));
      }
    } catch (error) {
      this.messages.error(describeError(error));
    }
  }

  onState() {
    const state = this.call.state;
    this.names.learn(state);
    if (state.ended && this.mode !== "starting") return this.exit("The call has ended.");
    if (this.mode === "waiting" && state.live) this.joinFromWaiting();
    this.view.schedule();
  }

  async joinFromWaiting() {
    try {
      await this.join();
    } catch (error) {
      this.exit(`Could not join the call: ${describeError(error)}`);
    }
  }

  /** A source's button (or a restore): turn it on or off, telling the user what went wrong. */
  async toggle(source) {
    try {
      if (this.media.isOn(source)) await this.media.stop(source);
      else await this.media.start(source);
    } catch (error) {
      if (error.quiet) this.messages.info(error.message);
      else this.messages.error(describeError(error));
    }
  }
}
