// What the user may do, or request, with one capability in one call.

import { checkCapability } from "./state.js";

/** What the user may do with one capability in one call. */
export class PermissionHandle {
  /**
   * @param {import("./call.js").Call} call
   * @param {import("./state.js").Capability} capability
   */
  constructor(call, capability) {
    this.call = call;
    this.capability = checkCapability(capability);
  }

  get hasPermission() {
    return this.call.state.ownCapabilities.has(this.capability);
  }

  /**
   * Your pending request that asks for this capability, if any.
   * @returns {import("./state.js").PermissionRequest | null}
   */
  get pendingRequest() {
    const userId = this.call.client.userId;
    if (!userId) return null;
    const requests = this.call.state.pendingOf(userId);
    return requests.find((r) => (r.permissions || []).includes(this.capability)) ?? null;
  }

  get isAwaitingPermission() {
    return this.pendingRequest !== null;
  }

  /** Requestable in the call type, not held, not awaiting, and you are in the call. */
  get canRequestPermission() {
    const state = this.call.state;
    const userId = this.call.client.userId;
    return (
      Boolean(userId) &&
      state.requestable.has(this.capability) &&
      !this.hasPermission &&
      !this.isAwaitingPermission &&
      state.isMemberOrParticipant(/** @type {string} */ (userId))
    );
  }

  /**
   * Ask for the capability; resolves to the (new or already pending) request.
   * @returns {Promise<import("./state.js").PermissionRequest>}
   */
  request() {
    return this.call.requestPermissions([this.capability]);
  }
}
