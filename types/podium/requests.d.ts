/**
 * `value`, if it is a valid id (1-64 of A-Z a-z 0-9 _ -); else a TypeError naming `what`.
 * @param {unknown} value
 * @param {string} what
 * @returns {string}
 */
export function checkId(value: unknown, what: string): string;
/**
 * The id of `request` (an object or its id), checked and escaped for a path.
 * @param {import("./state.js").PermissionRequest | string} request
 */
export function requestId(request: import("./state.js").PermissionRequest | string): string;
/**
 * The query string (with its `?`, or empty) of a participants page; a TypeError for an unknown tier.
 * @param {{ tier?: string, limit?: number, cursor?: string, q?: string }} options
 */
export function participantsQuery(options: {
    tier?: string;
    limit?: number;
    cursor?: string;
    q?: string;
}): string;
/**
 * The body of a mute: the checked user ids and only the kinds given (none: every kind).
 * @param {readonly string[]} userIds
 * @param {{ audio?: boolean, video?: boolean, screenshare?: boolean }} kinds
 */
export function muteBody(userIds: readonly string[], { audio, video, screenshare }: {
    audio?: boolean;
    video?: boolean;
    screenshare?: boolean;
}): {
    user_ids: string[];
    audio?: boolean;
    video?: boolean;
    screenshare?: boolean;
};
