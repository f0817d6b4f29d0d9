/** What the user may do with one capability in one call. */
export class PermissionHandle {
    /**
     * @param {import("./call.js").Call} call
     * @param {import("./state.js").Capability} capability
     */
    constructor(call: import("./call.js").Call, capability: import("./state.js").Capability);
    call: import("./call.js").Call;
    capability: "read-call" | "create-call" | "join-call" | "join-backstage" | "send-audio" | "send-video" | "screenshare" | "update-call-permissions" | "update-call-member" | "mute-users" | "go-live" | "update-call" | "end-call" | "block-users";
    get hasPermission(): boolean;
    /**
     * Your pending request that asks for this capability, if any.
     * @returns {import("./state.js").PermissionRequest | null}
     */
    get pendingRequest(): import("./state.js").PermissionRequest | null;
    get isAwaitingPermission(): boolean;
    /** Requestable in the call type, not held, not awaiting, and you are in the call. */
    get canRequestPermission(): boolean;
    /**
     * Ask for the capability; resolves to the (new or already pending) request.
     * @returns {Promise<import("./state.js").PermissionRequest>}
     */
    request(): Promise<import("./state.js").PermissionRequest>;
}
