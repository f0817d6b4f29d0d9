// HTTP to the API: one JSON request, its error object turned into a PodiumError.

import { PodiumError } from "./errors.js";

/** @typedef {Record<string, any>} JsonObject A decoded JSON object, as the API answers. */

/**
 * The server's origin: `baseUrl` (the page's own by default) without trailing slashes.
 * @param {string | URL} [baseUrl]
 * @returns {string}
 */
export function origin(baseUrl) {
  return String(baseUrl ?? globalThis.location.origin).replace(/\/+$/, "");
}

/**
 * One request; resolves to the JSON body (`{}` when empty), rejects with `PodiumError`.
 * @param {typeof fetch} fetchImpl
 * @param {string} url
 * @param {RequestInit} init
 * @returns {Promise<JsonObject>}
 */
export async function fetchJson(fetchImpl, url, init) {
  let response;
  try {
    response = await fetchImpl(url, init);
  } catch (error) {
    throw new PodiumError(`cannot reach ${url}: ${/** @type {Error} */ (error).message}`, { code: "network_error" });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw PodiumError.fromBody(response.status, data);
  return data ?? {};
}
