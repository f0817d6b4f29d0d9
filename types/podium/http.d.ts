/** @typedef {Record<string, any>} JsonObject A decoded JSON object, as the API answers. */
/**
 * The server's origin: `baseUrl` (the page's own by default) without trailing slashes.
 * @param {string | URL} [baseUrl]
 * @returns {string}
 */
export function origin(baseUrl?: string | URL): string;
/**
 * One request; resolves to the JSON body (`{}` when empty), rejects with `PodiumError`.
 * @param {typeof fetch} fetchImpl
 * @param {string} url
 * @param {RequestInit} init
 * @returns {Promise<JsonObject>}
 */
export function fetchJson(fetchImpl: typeof fetch, url: string, init: RequestInit): Promise<JsonObject>;
/**
 * A decoded JSON object, as the API answers.
 */
export type JsonObject = Record<string, any>;
