// One joined (or waiting) call: its screen, its event handlers, and what the buttons do.
import { h, icon, setText } from "./dom.js";
import { Controls } from "./controls.js";
import { LocalMedia, SOURCE_BY_CAPABILITY, SOURCE_BY_NAME } from "./media.js";
import { describeError } from "./messages.js";
import { Names, capabilityWord, capabilityWords } from "./people.js";
import { RequestsPanel } from "./requests.js";
import { callPath } from "./session.js";
import { Stage } from "./stage.js";

const LEVEL_POLL_MS = 250;
const DEFAULT_COOLDOWN_S = 30;
const ALREADY_ANSWERED_GRACE_MS = 1500;
const MEDIA_RETRY_DELAYS_MS = [1000, 2000, 4000, 8000, 15000];
// media.closed reasons after which reconnecting makes no sense (we left, were removed, it ended).
const MEDIA_FINAL = new Set(["left", "blocked", "call_ended"]);
const SESSION_GONE = new Set(["left", "call_ended", "lost", "connection_failed", "replaced"]);
// Sources turned back on by themselves once media is back: the screen picker needs a click.
const RESTORABLE = new Set(["microphone", "camera"]);

export class CallSession {
  /**
   * `root`: the element the call's screen is drawn in; `messages`: the app's Messages;
   * `onExit(message?)`: called once when the session is over (left, ended, removed).
   */
  constructor({ client, call, root, messages, onExit }) {
    this.client = client;
    this.call = call;
    this.root = root;
    this.messages = messages;
    this.onExit = onExit;
    this.userId = client.userId;
    this.names = new Names();
    this.names.remember(client.userId, client.userName);
    this.media = new LocalMedia(call, () => this.schedule());
    this.mode = "starting"; // → "waiting" (backstage) → "joined" → "over"
    this.unsubscribe = [];
    this.cooldowns = new Map(); // capability → ms timestamp when asking is allowed again
    this.requesting = new Set(); // capabilities with a request in flight
    this.answering = new Set(); // request ids this moderator is answering
    this.resolved = new Set(); // request ids known to be answered (hidden from the list)
    this.requesterNames = new Map(); // request id → name from the request event
    this.renderQueued = false;
    this.offline = false; // the WebSocket dropped and podium.js is reconnecting it
    this.mediaDown = false; // our media session ended and is to be reconnected
    this.mediaElsewhere = false; // another tab of this user took the media session
    this.sourcesToRestore = new Set(); // sources that were on when the connection dropped
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /** Join, or wait for the host when the call is in backstage and we may not join it yet. */
  async start() {
    this.subscribe();
    const { call } = this;
    if (call.state.backstage && !call.hasPermission("join-backstage")) {
      await call.watch();
      if (call.state.live) await this.join();
      else this.showWaiting();
    } else {
      await this.join();
    }
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
    this.showCall();
    this.startLevelPolling();
    this.connectMedia(); // not awaited: the call is usable while media connects
  }

  /** Receive everyone's media (listeners too); publishing later reuses this session. */
  async connectMedia({ quiet = false } = {}) {
    try {
      await this.call.connectMedia();
      return true;
    } catch (error) {
      // A session that closed while connecting is reported (and retried) by onMediaClosed.
      if (!quiet && this.isIn() && error.code !== "media_closed") {
        this.messages.error(`Could not connect media: ${describeError(error)}`);
      }
      return false;
    }
  }

  isIn() {
    return this.mode === "joined" && !this.leaving;
  }

  /**
   * The media session ended without us leaving. The library stopped our tracks and does
   * not reopen media by itself. Moved to another tab: say so and wait for the user.
   * Lost with the WebSocket: reconnect once it is back. Failed: reconnect, bounded, so a
   * connection that keeps failing is reported rather than retried forever.
   */
  onMediaClosed(reason) {
    this.media.stopAll(false);
    this.schedule();
    if (!this.isIn() || MEDIA_FINAL.has(reason)) return;
    if (reason === "replaced") {
      this.sourcesToRestore.clear();
      this.mediaElsewhere = true;
      return;
    }
    this.mediaDown = true;
    if (reason !== "lost") {
      const now = Date.now();
      this.mediaLosses = (this.mediaLosses || []).filter((t) => now - t < 60_000).concat(now);
      if (this.mediaLosses.length > 3) {
        this.messages.error("The media connection keeps dropping. Leave and join again to hear the call.");
        return;
      }
      this.messages.warning("The media connection was lost. Reconnecting…");
    }
    if (this.client.connected) this.reconnectMedia();
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
    this.schedule();
    if (offline || !this.isIn()) return;
    if (this.mediaDown) this.reconnectMedia();
    else this.messages.success("Reconnected.");
  }

  /** Open media again, then turn back on what was on. Stops while offline: coming back restarts it. */
  async reconnectMedia() {
    if (this.reconnectingMedia) return;
    this.reconnectingMedia = true;
    try {
      for (const delay of [0, ...MEDIA_RETRY_DELAYS_MS]) {
        await sleep(delay);
        if (!this.isIn() || !this.mediaDown || !this.client.connected) return;
        if (await this.connectMedia({ quiet: true })) {
          this.mediaDown = false;
          await this.restoreSources();
          return;
        }
      }
      if (this.isIn()) this.messages.error("Could not reconnect media. Leave and join again to hear the call.");
    } finally {
      this.reconnectingMedia = false;
    }
  }

  /** Turn back on the microphone and camera that were on when the connection dropped, if still allowed. */
  async restoreSources() {
    const sources = [...this.sourcesToRestore];
    this.sourcesToRestore.clear();
    const restored = [];
    for (const source of sources) {
      const spec = SOURCE_BY_NAME[source];
      if (!RESTORABLE.has(source)) {
        this.messages.info(`Your ${spec.noun} stopped when the connection dropped. Start it again if you like.`);
      } else if (!this.call.hasPermission(spec.capability)) {
        this.messages.warning(`Your ${spec.noun} stayed off: you may no longer send ${spec.short}.`);
      } else if (!this.media.isOn(source)) {
        await this.toggle(source);
        if (this.media.isOn(source)) restored.push(spec.noun);
      }
    }
    const verb = restored.length > 1 ? "are" : "is";
    this.messages.success(`Reconnected.${restored.length ? ` Your ${restored.join(" and ")} ${verb} on again.` : ""}`);
  }

  /** "Use this tab": take the media session back from the other tab. */
  async takeMediaBack() {
    if (!this.mediaElsewhere) return;
    this.mediaElsewhere = false;
    this.schedule();
    if (!(await this.connectMedia()) && this.isIn()) this.mediaElsewhere = true;
    this.schedule();
  }

  /** Whether the media controls can be used now: connected, and media in this tab. */
  canUseMedia() {
    return !this.offline && !this.mediaElsewhere;
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
    clearInterval(this.levelTimer);
    clearInterval(this.cooldownTimer);
    this.media.stopAll();
    if (this.stage) this.stage.dispose();
    try {
      this.client.close();
    } catch {
      // closing twice or a socket already gone is fine
    }
    this.onExit(message);
  }

  subscribe() {
    const { call } = this;
    const on = (type, handler) => this.unsubscribe.push(call.on(type, (event) => this.guard(handler, event)));
    this.unsubscribe.push(call.onStateChange(() => this.onState()));
    this.unsubscribe.push(
      this.client.onConnectionStateChange((state) => this.guard((s) => this.onConnectionState(s), state)),
    );
    on("call.live_started", () => this.mode === "waiting" && this.joinFromWaiting());
    on("call.ended", () => this.exit("The call has ended."));
    on("call.blocked_user", (e) => e.user_id === this.userId && this.exit("You were removed from the call."));
    on("call.permission_request", (e) => this.onRequest(e));
    on("call.permission_request_resolved", (e) => this.onResolved(e.request));
    on("media.track_added", () => this.schedule());
    on("media.track_removed", () => this.schedule());
    on("media.source_stopped", (e) => this.onSourceStopped(e));
    on("media.source_resumed", (e) => {
      const spec = SOURCE_BY_NAME[e.source];
      if (spec) this.messages.info(`You may send your ${spec.noun} again.`);
    });
    on("media.closed", (e) => this.onMediaClosed(e.reason));
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
    this.schedule();
  }

  async joinFromWaiting() {
    try {
      await this.join();
    } catch (error) {
      this.exit(`Could not join the call: ${describeError(error)}`);
    }
  }

  // ---- rendering -------------------------------------------------------------------------------

  /** Coalesce bursts of state changes into one render. */
  schedule() {
    if (this.renderQueued || this.mode === "over") return;
    this.renderQueued = true;
    queueMicrotask(() => {
      this.renderQueued = false;
      if (this.mode === "waiting") this.renderConnection();
      if (this.mode !== "joined") return;
      try {
        this.render();
      } catch (error) {
        this.messages.error(`Display error: ${describeError(error)}`);
      }
    });
  }

  showWaiting() {
    this.mode = "waiting";
    const { call } = this;
    this.connectionNote = connectionNote();
    this.root.replaceChildren(
      h(
        "section",
        { class: "card waiting", "aria-labelledby": "waiting-title" },
        h("div", { class: "waiting-pulse", "aria-hidden": "true" }, icon("live")),
        h("h1", { id: "waiting-title", tabindex: "-1" }, "Waiting for the host to go live"),
        h(
          "p",
          { class: "lede" },
          "This call is in backstage. You will join automatically as soon as it goes live.",
        ),
        h("p", { class: "waiting-call" }, h("span", { class: "mono" }, call.id), ` · ${call.type}`),
        this.connectionNote,
        h("button", { type: "button", class: "btn btn-secondary", onclick: () => this.leave() }, "Leave"),
      ),
    );
    this.renderConnection();
    focusHeading(this.root);
  }

  showCall() {
    const { call } = this;
    this.stage = new Stage(this);
    this.controls = new Controls(this);
    this.requests = new RequestsPanel(this);
    this.phaseBadge = h("span", { class: "phase-badge" });
    this.goLiveButton = h(
      "button",
      { type: "button", class: "btn btn-live", hidden: true, onclick: () => this.setLive(true) },
      icon("live"),
      h("span", {}, "Go live"),
    );
    this.stopLiveButton = h(
      "button",
      { type: "button", class: "btn btn-secondary", hidden: true, onclick: () => this.setLive(false) },
      "Stop live",
    );
    this.backstageNote = h("p", { class: "banner", hidden: true });
    this.connectionNote = connectionNote();
    this.elsewhereNote = h(
      "div",
      { class: "banner banner-action", role: "status", hidden: true },
      h("p", {}, "This call is open in another tab; media moved there. This tab no longer plays or sends anything."),
      h(
        "button",
        { type: "button", class: "btn btn-secondary", onclick: () => this.takeMediaBack() },
        "Use this tab",
      ),
    );
    const copyButton = h(
      "button",
      { type: "button", class: "btn btn-secondary", onclick: () => this.copyInvite() },
      icon("link"),
      h("span", {}, "Copy invite link"),
    );
    this.root.replaceChildren(
      h(
        "div",
        { class: "call-view" },
        h(
          "div",
          { class: "call-bar" },
          h(
            "div",
            { class: "call-title" },
            h("h1", { tabindex: "-1" }, h("span", { class: "mono" }, call.id)),
            h("p", { class: "call-meta" }, this.phaseBadge, h("span", {}, call.type)),
          ),
          h("div", { class: "call-actions" }, this.goLiveButton, this.stopLiveButton, copyButton),
        ),
        this.connectionNote,
        this.elsewhereNote,
        this.backstageNote,
        h("div", { class: "call-body" }, this.requests.element, this.stage.element),
        this.controls.element,
        this.stage.audioSinks,
      ),
    );
    this.render();
    focusHeading(this.root);
  }

  render() {
    const state = this.call.state;
    this.names.learn(state);
    // Offline, the phase shown could be stale: say what we know instead.
    const phase = this.offline ? "reconnecting" : state.phase || (state.live ? "live" : "backstage");
    const badge = { live: "Live", backstage: "Backstage", ended: "Ended", reconnecting: "Reconnecting…" };
    setText(this.phaseBadge, badge[phase] || phase);
    this.phaseBadge.dataset.phase = phase;
    this.renderConnection();
    this.elsewhereNote.hidden = !this.mediaElsewhere;
    const host = this.call.hasPermission("go-live");
    this.goLiveButton.disabled = this.offline;
    this.stopLiveButton.disabled = this.offline;
    this.goLiveButton.hidden = !(host && state.backstage);
    this.stopLiveButton.hidden = !(host && state.live);
    this.backstageNote.hidden = !state.backstage;
    setText(
      this.backstageNote,
      host
        ? "You are in backstage: only hosts can join until you go live."
        : "The call is in backstage.",
    );
    this.stage.render(state);
    this.controls.render();
    this.requests.render(state);
  }

  /** The banner that says the server is unreachable, on the call and the waiting screen. */
  renderConnection() {
    this.connectionNote.hidden = !this.offline;
    setText(this.connectionNote, this.offline ? this.offlineText() : "");
  }

  offlineText() {
    const back = [...this.sourcesToRestore].filter((s) => RESTORABLE.has(s)).map((s) => SOURCE_BY_NAME[s].noun);
    const promise = back.length ? ` Your ${back.join(" and ")} will turn back on by itself.` : "";
    return `Lost the connection to the server. Reconnecting…${promise}`;
  }

  // ---- what the call screen's buttons do ---------------------------------------------------

  async toggle(source) {
    try {
      if (this.media.isOn(source)) await this.media.stop(source);
      else await this.media.start(source);
    } catch (error) {
      if (error.quiet) this.messages.info(error.message);
      else this.messages.error(describeError(error));
    }
  }

  isRequesting(capability) {
    return this.requesting.has(capability);
  }

  cooldownLeft(capability) {
    const until = this.cooldowns.get(capability) || 0;
    return Math.max(0, Math.ceil((until - Date.now()) / 1000));
  }

  async request(capability) {
    if (this.requesting.has(capability)) return;
    this.requesting.add(capability);
    this.schedule();
    try {
      await this.call.permission(capability).request();
    } catch (error) {
      if (error.status === 429) {
        const wait = Number(error.details && error.details.retry_after_s) || this.cooldownSeconds();
        this.startCooldown([capability], wait);
        this.messages.warning(`You can ask again in ${Math.ceil(wait)} s.`);
      } else if (error.code !== "capability_held") {
        this.messages.error(describeError(error));
      }
    } finally {
      this.requesting.delete(capability);
      this.schedule();
    }
  }

  cooldownSeconds() {
    const value = Number(this.call.state.settings && this.call.state.settings.request_cooldown_s);
    return Number.isFinite(value) && value >= 0 ? value : DEFAULT_COOLDOWN_S;
  }

  startCooldown(capabilities, seconds) {
    const until = Date.now() + seconds * 1000;
    for (const capability of capabilities) this.cooldowns.set(capability, until);
    // Tick once a second so the countdown shows and the button comes back by itself.
    clearInterval(this.cooldownTimer);
    this.cooldownTimer = setInterval(() => {
      const now = Date.now();
      for (const [capability, end] of this.cooldowns) if (end <= now) this.cooldowns.delete(capability);
      if (!this.cooldowns.size) clearInterval(this.cooldownTimer);
      this.schedule();
    }, 1000);
  }

  async setLive(live) {
    const button = live ? this.goLiveButton : this.stopLiveButton;
    button.disabled = true;
    try {
      if (live) await this.call.goLive();
      else await this.call.stopLive();
    } catch (error) {
      this.messages.error(describeError(error));
    } finally {
      button.disabled = false;
      this.schedule();
    }
  }

  async copyInvite() {
    const url = location.origin + callPath(this.call.type, this.call.id);
    try {
      await navigator.clipboard.writeText(url);
      this.messages.success("Invite link copied.");
    } catch {
      this.messages.info(`Share this link to invite people: ${url}`, { ttlMs: 30_000 });
    }
  }

  // ---- moderation ---------------------------------------------------------------------------

  requesterName(request) {
    return this.requesterNames.get(request.id) || this.names.of(request.user_id, this.call.state);
  }

  isResolved(requestId) {
    return this.resolved.has(requestId);
  }

  isAnswering(requestId) {
    return this.answering.has(requestId);
  }

  onRequest(event) {
    const { request, user } = event;
    if (user) this.names.remember(user.id, user.name);
    if (request && user && user.name) this.requesterNames.set(request.id, user.name);
    this.schedule();
  }

  async answer(request, verb) {
    if (this.answering.has(request.id)) return;
    this.answering.add(request.id);
    this.schedule();
    try {
      if (verb === "accept") await this.call.accept(request);
      else await this.call.reject(request);
    } catch (error) {
      if (error.status === 409) this.answeredElsewhere(request);
      else this.messages.error(describeError(error));
    } finally {
      this.answering.delete(request.id);
      this.schedule();
    }
  }

  /** 409: another moderator was first. Its resolved event tells how; say something if it does not come. */
  answeredElsewhere(request) {
    setTimeout(() => {
      if (this.resolved.has(request.id) || this.mode === "over") return;
      this.resolved.add(request.id);
      this.messages.info(`${this.requesterName(request)}'s request was already answered.`);
      this.schedule();
    }, ALREADY_ANSWERED_GRACE_MS);
  }

  onResolved(request) {
    if (!request || !request.id || this.resolved.has(request.id)) return;
    this.resolved.add(request.id);
    if (request.user_id === this.userId) this.onOwnOutcome(request);
    else this.noteResolution(request);
    this.schedule();
  }

  /** "Alice's request was accepted by Bob": for moderators, who all saw the request. */
  noteResolution(request) {
    const name = this.requesterName(request);
    const by = request.resolved_by;
    // Always a name, never "you": the answer may come from this user's other tab.
    const byName = this.names.of(by, this.call.state);
    const text = {
      accepted: `${name}'s request was accepted${by ? ` by ${byName}` : ""}`,
      rejected: `${name}'s request was rejected${by ? ` by ${byName}` : ""}`,
      expired: `${name}'s request expired`,
      cancelled: `${name}'s request was cancelled`,
    }[request.state];
    if (text) this.messages.info(text);
  }

  onOwnOutcome(request) {
    const what = capabilityWords(request.permissions);
    const reason = request.reason ? String(request.reason) : "";
    if (request.state === "accepted") {
      this.messages.success(`Your request to publish ${what} was accepted.`);
      this.publishGranted(request.permissions || []);
    } else if (request.state === "rejected") {
      this.messages.warning(`Your request to publish ${what} was rejected${reason ? `: ${reason}` : "."}`, {
        ttlMs: 30_000,
      });
      this.startCooldown(request.permissions || [], this.cooldownSeconds());
    } else if (request.state === "expired") {
      this.messages.info(`Your request to publish ${what} expired. You can ask again.`);
    } else if (request.state === "cancelled" && this.mode === "joined") {
      this.messages.info(`Your request to publish ${what} was cancelled${reason ? `: ${reason}` : "."}`);
    }
  }

  /** They asked in order to speak: start the microphone / camera as soon as it is allowed. */
  async publishGranted(capabilities) {
    for (const capability of ["send-audio", "send-video"]) {
      if (!capabilities.includes(capability)) continue;
      const { source } = SOURCE_BY_CAPABILITY[capability];
      if (this.media.isOn(source)) continue;
      if (!(await this.whenAllowed(capability))) continue;
      this.toggle(source);
    }
  }

  /** Resolves true once we hold `capability` (events may still be on their way), false after 5 s. */
  whenAllowed(capability, timeoutMs = 5000) {
    if (this.call.hasPermission(capability)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const off = this.call.onStateChange(() => {
        if (this.call.hasPermission(capability)) done(true);
      });
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (value) => {
        off();
        clearTimeout(timer);
        resolve(value);
      };
    });
  }

  async revoke(userId, capability) {
    const name = this.names.of(userId, this.call.state);
    try {
      await this.call.revokePermissions(userId, [capability]);
      this.messages.info(`Revoked ${capabilityWord(capability)} from ${name}.`);
    } catch (error) {
      this.messages.error(describeError(error));
    }
  }

  async mute(userId) {
    const name = this.names.of(userId, this.call.state);
    try {
      await this.call.mute([userId]);
      this.messages.info(`Muted ${name}.`);
    } catch (error) {
      this.messages.error(describeError(error));
    }
  }

  // ---- media events ---------------------------------------------------------------------------

  onSourceStopped(event) {
    const had = this.media.isOn(event.source) || Boolean(event.track);
    this.media.dropped(event.source);
    if (had && event.reason === "lost") this.sourcesToRestore.add(event.source);
    const spec = SOURCE_BY_NAME[event.source];
    // Sources that stop because the whole session went are covered by the media-closed message.
    if (!spec || !had || this.leaving || SESSION_GONE.has(event.reason)) return;
    if (event.reason === "ended") this.messages.info(`Your ${spec.noun} stopped.`);
    else this.messages.warning(`Your ${spec.noun} was stopped: ${String(event.reason).replaceAll("_", " ")}`);
  }

  startLevelPolling() {
    clearInterval(this.levelTimer);
    let busy = false;
    this.levelTimer = setInterval(async () => {
      if (busy || this.mode !== "joined") return;
      busy = true;
      try {
        this.stage.setLevels(await this.call.audioLevels());
      } catch {
        // No media session yet, or it is closing: no levels this time.
      } finally {
        busy = false;
      }
    }, LEVEL_POLL_MS);
  }
}

function connectionNote() {
  return h("p", { class: "banner banner-alert", role: "status", hidden: true });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Move focus to a new screen's heading, so keyboard and screen-reader users start there. */
function focusHeading(root) {
  const heading = root.querySelector("h1");
  if (heading) heading.focus({ preventScroll: true });
}
