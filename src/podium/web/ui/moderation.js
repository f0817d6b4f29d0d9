// Permission requests as this tab keeps track of them, apart from how they are drawn: our own
// (in flight, the cooldown after a refusal or a 429, what to do once answered), others' for
// moderators (being answered, known answered, who asked), and the moderator actions on a
// participant (revoke, mute).
import { SOURCE_BY_CAPABILITY } from "./media.js";
import { describeError } from "./messages.js";
import { capabilityWord, capabilityWords } from "./people.js";

const DEFAULT_COOLDOWN_S = 30;
const ALREADY_ANSWERED_GRACE_MS = 1500;

export class Moderation {
  /**
   * `session` gives: `call`, `userId`, `names`, `messages`, `media` (LocalMedia), `mode`,
   * `toggle(source)`, and `view.schedule()` (redraw soon).
   */
  constructor(session) {
    this.session = session;
    this.cooldowns = new Map(); // capability → ms timestamp when asking is allowed again
    this.requesting = new Set(); // capabilities with a request in flight
    this.answering = new Set(); // request ids this moderator is answering
    this.resolved = new Set(); // request ids known to be answered (hidden from the list)
    this.requesterNames = new Map(); // request id → name from the request event
  }

  /** Stop the cooldown countdown (the session is over). */
  dispose() {
    clearInterval(this.cooldownTimer);
  }

  // ---- our own requests -----------------------------------------------------------------------

  isRequesting(capability) {
    return this.requesting.has(capability);
  }

  cooldownLeft(capability) {
    const until = this.cooldowns.get(capability) || 0;
    return Math.max(0, Math.ceil((until - Date.now()) / 1000));
  }

  async request(capability) {
    if (this.requesting.has(capability)) return;
    const { call, messages, view } = this.session;
    this.requesting.add(capability);
    view.schedule();
    try {
      await call.permission(capability).request();
    } catch (error) {
      if (error.status === 429) {
        const wait = Number(error.details && error.details.retry_after_s) || this.cooldownSeconds();
        this.startCooldown([capability], wait);
        messages.warning(`You can ask again in ${Math.ceil(wait)} s.`);
      } else if (error.code !== "capability_held") {
        messages.error(describeError(error));
      }
    } finally {
      this.requesting.delete(capability);
      view.schedule();
    }
  }

  cooldownSeconds() {
    const { settings } = this.session.call.state;
    const value = Number(settings && settings.request_cooldown_s);
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
      this.session.view.schedule();
    }, 1000);
  }

  onOwnOutcome(request) {
    const { messages } = this.session;
    const what = capabilityWords(request.permissions);
    const reason = request.reason ? String(request.reason) : "";
    if (request.state === "accepted") {
      messages.success(`Your request to publish ${what} was accepted.`);
      this.publishGranted(request.permissions || []);
    } else if (request.state === "rejected") {
      messages.warning(`Your request to publish ${what} was rejected${reason ? `: ${reason}` : "."}`, {
        ttlMs: 30_000,
      });
      this.startCooldown(request.permissions || [], this.cooldownSeconds());
    } else if (request.state === "expired") {
      messages.info(`Your request to publish ${what} expired. You can ask again.`);
    } else if (request.state === "cancelled" && this.session.mode === "joined") {
      messages.info(`Your request to publish ${what} was cancelled${reason ? `: ${reason}` : "."}`);
    }
  }

  /** They asked in order to speak: start the microphone / camera as soon as it is allowed. */
  async publishGranted(capabilities) {
    for (const capability of ["send-audio", "send-video"]) {
      if (!capabilities.includes(capability)) continue;
      const { source } = SOURCE_BY_CAPABILITY[capability];
      if (this.session.media.isOn(source)) continue;
      if (!(await this.whenAllowed(capability))) continue;
      this.session.toggle(source);
    }
  }

  /** Resolves true once we hold `capability` (events may still be on their way), false after 5 s. */
  whenAllowed(capability, timeoutMs = 5000) {
    const { call } = this.session;
    if (call.hasPermission(capability)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const off = call.onStateChange(() => {
        if (call.hasPermission(capability)) done(true);
      });
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (value) => {
        off();
        clearTimeout(timer);
        resolve(value);
      };
    });
  }

  // ---- others' requests, for moderators ------------------------------------------------------

  requesterName(request) {
    return this.requesterNames.get(request.id) || this.session.names.of(request.user_id, this.session.call.state);
  }

  isResolved(requestId) {
    return this.resolved.has(requestId);
  }

  isAnswering(requestId) {
    return this.answering.has(requestId);
  }

  onRequest(event) {
    const { request, user } = event;
    if (user) this.session.names.remember(user.id, user.name);
    if (request && user && user.name) this.requesterNames.set(request.id, user.name);
    this.session.view.schedule();
  }

  async answer(request, verb) {
    if (this.answering.has(request.id)) return;
    const { call, messages, view } = this.session;
    this.answering.add(request.id);
    view.schedule();
    try {
      if (verb === "accept") await call.accept(request);
      else await call.reject(request);
    } catch (error) {
      if (error.status === 409) this.answeredElsewhere(request);
      else messages.error(describeError(error));
    } finally {
      this.answering.delete(request.id);
      view.schedule();
    }
  }

  /** 409: another moderator was first. Its resolved event tells how; say something if it does not come. */
  answeredElsewhere(request) {
    setTimeout(() => {
      if (this.resolved.has(request.id) || this.session.mode === "over") return;
      this.resolved.add(request.id);
      this.session.messages.info(`${this.requesterName(request)}'s request was already answered.`);
      this.session.view.schedule();
    }, ALREADY_ANSWERED_GRACE_MS);
  }

  /** A request was answered (or expired, or was cancelled): ours or, for moderators, someone's. */
  onResolved(request) {
    if (!request || !request.id || this.resolved.has(request.id)) return;
    this.resolved.add(request.id);
    if (request.user_id === this.session.userId) this.onOwnOutcome(request);
    else this.noteResolution(request);
    this.session.view.schedule();
  }

  /** "Alice's request was accepted by Bob": for moderators, who all saw the request. */
  noteResolution(request) {
    const { call, names, messages } = this.session;
    const name = this.requesterName(request);
    const by = request.resolved_by;
    // Always a name, never "you": the answer may come from this user's other tab.
    const byName = names.of(by, call.state);
    const text = {
      accepted: `${name}'s request was accepted${by ? ` by ${byName}` : ""}`,
      rejected: `${name}'s request was rejected${by ? ` by ${byName}` : ""}`,
      expired: `${name}'s request expired`,
      cancelled: `${name}'s request was cancelled`,
    }[request.state];
    if (text) messages.info(text);
  }

  // ---- moderator actions on a participant ----------------------------------------------------

  async revoke(userId, capability) {
    const { call, names, messages } = this.session;
    const name = names.of(userId, call.state);
    try {
      await call.revokePermissions(userId, [capability]);
      messages.info(`Revoked ${capabilityWord(capability)} from ${name}.`);
    } catch (error) {
      messages.error(describeError(error));
    }
  }

  async mute(userId) {
    const { call, names, messages } = this.session;
    const name = names.of(userId, call.state);
    try {
      await call.mute([userId]);
      messages.info(`Muted ${name}.`);
    } catch (error) {
      messages.error(describeError(error));
    }
  }
}
