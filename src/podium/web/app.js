// Podium's web app: the lobby, then one call at a time. Built only on podium.js.
import { Client } from "./podium.js";
import { CallSession } from "./ui/call-session.js";
import { renderLobby } from "./ui/lobby.js";
import { Messages, describeError } from "./ui/messages.js";
import {
  callFromPath,
  clearActiveCall,
  isValidId,
  loadActiveCall,
  loadIdentity,
  saveActiveCall,
  saveIdentity,
  showCallInUrl,
  takeTokenFromFragment,
  userIdFor,
} from "./ui/session.js";

const CONNECT_TIMEOUT_MS = 15_000;
const NAME_KEY = "podium.name";

const view = document.getElementById("view");
const whoami = document.getElementById("whoami");
const messages = new Messages(document.getElementById("messages"));

// For tests and debugging: the current client and call (null in the lobby).
const podiumApp = { client: null, call: null };
window.podiumApp = podiumApp;

let server = { dev: false, version: "" };
let session = null;

async function boot() {
  const urlToken = takeTokenFromFragment(); // strip it from the address bar before anything else
  try {
    server = await Client.serverInfo();
  } catch (error) {
    messages.error(`Could not reach the Podium server: ${describeError(error)}`);
  }
  const target = callFromPath();
  if (target && urlToken) return enterOrShowLobby({ token: urlToken, ...target });
  if (target && isValidId(target.id)) {
    // A reload of a tab that was in this call goes straight back in, as the same user.
    const active = loadActiveCall();
    const identity = loadIdentity(target.type, target.id);
    const same = active && active.type === target.type && active.id === target.id;
    if (same && identity && (identity.token || (server.dev && identity.name))) {
      return enterOrShowLobby({ ...identity, ...target });
    }
  }
  showLobby();
}

async function enterOrShowLobby(values) {
  try {
    await enter(values);
  } catch (error) {
    showLobby({ error: describeError(error) });
  }
}

/** The lobby for the address bar's call (or an empty one), with an optional error. */
function showLobby({ error } = {}) {
  const target = callFromPath();
  const identity = target ? loadIdentity(target.type, target.id) : null;
  setWhoami(null);
  document.title = "Podium";
  const lobby = renderLobby(view, {
    dev: Boolean(server.dev),
    call: target,
    name: (identity && identity.name) || readName(),
    version: server.version,
    error,
    onJoin: async (values) => {
      try {
        await enter(values);
      } catch (failure) {
        const tokenProblem = ["invalid_token", "token_expired"].includes(failure.code);
        lobby.showError(describeError(failure), tokenProblem && !server.dev ? "token" : null);
      }
    },
  });
}

/** Get a token, create or read the call, connect, then join it (or wait in backstage). */
async function enter({ name, token, userId, type, id }) {
  if (!token) {
    if (!server.dev) throw new Error("Paste an access token to join.");
    const stored = loadIdentity(type, id);
    const uid = userId || (stored && stored.name === name && stored.userId) || userIdFor(name);
    token = await Client.devToken({ userId: uid, name });
    saveIdentity(type, id, { userId: uid, name });
    rememberName(name);
  }
  let client;
  try {
    // When the SFU offers only 127.0.0.1 candidates, the page offers only its own too.
    client = new Client({ token, loopbackOnly: Boolean(server.media_loopback) });
  } catch {
    throw tokenError("invalid_token");
  }
  // Refuse what is plainly unusable before asking the server (which would answer 401).
  if (!client.userId) throw tokenError("invalid_token");
  const exp = client.claims && client.claims.exp;
  if (typeof exp === "number" && exp * 1000 < Date.now()) throw tokenError("token_expired");
  const call = client.call(type, id);
  let started = null;
  try {
    await getOrCreate(call); // the first person in a new call becomes its host
    await withTimeout(client.connect(), CONNECT_TIMEOUT_MS, "Could not connect to the server.");
    started = new CallSession({ client, call, root: view, messages, onExit: onSessionOver });
    session = started;
    expose(client, call);
    await started.start();
  } catch (error) {
    if (started) {
      started.onExit = () => {}; // a failed start goes back to the lobby with the error, once
      started.exit(null);
    } else {
      client.close();
    }
    session = null;
    expose(null, null);
    throw error;
  }
  if (!server.dev || name === undefined) saveIdentity(type, id, { ...loadIdentity(type, id), token });
  saveActiveCall(type, id);
  showCallInUrl(type, id);
  setWhoami(client.userName || name || client.userId);
  document.title = `${id} · Podium`;
}

function tokenError(code) {
  const error = new Error(code === "token_expired" ? "This access token has expired." : "This access token is not valid.");
  error.code = code;
  return error;
}

async function getOrCreate(call) {
  try {
    await call.getOrCreate();
  } catch (error) {
    if (error.status !== 403 || error.code !== "permission_denied") throw error;
    // A type that does not let this user create calls may still let them read an existing one.
    try {
      await call.get();
    } catch (readError) {
      if (readError.code === "call_not_found") throw mayNotCreate(call.type);
      throw readError;
    }
  }
}

function mayNotCreate(type) {
  return new Error(
    `This call has not been created yet, and you may not create calls of type ${type}. ` +
      "Ask the organiser to create it first.",
  );
}

function onSessionOver(message) {
  session = null;
  expose(null, null);
  clearActiveCall();
  showLobby();
  if (message) messages.info(message, { ttlMs: 30_000 });
}

function expose(client, call) {
  podiumApp.client = client;
  podiumApp.call = call;
}

function setWhoami(name) {
  whoami.textContent = name ? `Signed in as ${name}` : "";
  whoami.hidden = !name;
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function readName() {
  try {
    return localStorage.getItem(NAME_KEY) || "";
  } catch {
    return "";
  }
}

function rememberName(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // storage disabled: the name is simply not prefilled next time
  }
}

// Back/forward while in a call leaves it; elsewhere it redraws the lobby for the new address.
window.addEventListener("popstate", () => {
  if (session) session.leave();
  else showLobby();
});

window.addEventListener("unhandledrejection", (event) => {
  // Anything that slipped through is shown rather than lost in the console.
  event.preventDefault();
  messages.error(describeError(event.reason));
});

boot();
