// HTTP to the API: one JSON request, its error object turned into a PodiumError.

import { PodiumError } from "./errors.js";

export function origin(baseUrl) {
  return String(baseUrl ?? globalThis.location.origin).replace(/\/+$/, "");
}

export async function fetchJson(fetchImpl, url, init) {
  let response;
  try {
    response = await fetchImpl(url, init);
  } catch (error) {
    throw new PodiumError(`cannot reach ${url}: ${error.message}`, { code: "network_error" });
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
