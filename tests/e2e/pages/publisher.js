// A minimal Podium client for tests: publishes camera and microphone, plays what it subscribes to.
//
// Query string: `token` (a user token) and `call_cid`. The user must already
// have joined the call over HTTP. Progress is exposed on `window.publisher`
// for the test to poll; anything unexpected sets `window.publisher.error` and
// goes to console.error, which the test treats as a failure.
"use strict";

// Sources in m-line order: the server reads audio as the microphone, the first video as the camera.
const SOURCES = ["microphone", "camera"];

const params = new URLSearchParams(location.search);
const callCid = params.get("call_cid");
const token = params.get("token");

let ws = null;
let pc = null;
const senders = {};
const localTracks = {};
let offerSent = false;
const pendingCandidates = [];
// Frames are handled one at a time: negotiation steps must not interleave.
let inbox = Promise.resolve();
let onAnswer;
const answered = new Promise((resolve) => {
  onAnswer = resolve;
});

const publisher = {
  state: "starting",
  error: null,
  connection: "new",
  settings: {},
  published: [],
  stopped: [],
  tracks: [],
  remoteTracks: [],
  events: [],
  serverOffers: 0,
  // Per kind: outbound-rtp packetsSent, inbound-rtp packetsReceived; decoded audio samples and
  // their energy (zero for silence).
  async rtpStats() {
    const totals = {
      sent: { audio: 0, video: 0 },
      received: { audio: 0, video: 0 },
      samples: 0,
      energy: 0,
    };
    (await pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp") totals.sent[s.kind] += s.packetsSent;
      if (s.type === "inbound-rtp") {
        totals.received[s.kind] += s.packetsReceived;
        if (s.kind === "audio") {
          totals.samples += s.totalSamplesReceived;
          totals.energy += s.totalAudioEnergy || 0;
        }
      }
    });
    return totals;
  },
  // Per kind: the payload type and codec the page sends with.
  async sendCodecs() {
    const codecs = {};
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === "outbound-rtp" && s.codecId) {
        const codec = report.get(s.codecId);
        codecs[s.kind] = [codec.payloadType, codec.mimeType];
      }
    });
    return codecs;
  },
  // The addresses of the candidate pair ICE selected, as the browser sees them.
  async selectedPair() {
    const report = await pc.getStats();
    let pair = null;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) {
        pair = report.get(s.selectedCandidatePairId);
      }
    });
    if (!pair) return null;
    return {
      local: report.get(pair.localCandidateId).address,
      remote: report.get(pair.remoteCandidateId).address,
    };
  },
  remoteCandidates() {
    return pc.remoteDescription.sdp.split("\r\n").filter((line) => line.startsWith("a=candidate:"));
  },
  trackState(source) {
    return localTracks[source].readyState;
  },
};
window.publisher = publisher;

function show(state) {
  publisher.state = state;
  document.getElementById("status").textContent =
    `${state}\nconnection: ${publisher.connection}\n` +
    `published: ${publisher.published.join(", ")}\n` +
    `stopped: ${publisher.stopped.map((s) => `${s.source} (${s.reason})`).join(", ")}\n` +
    `receiving: ${publisher.remoteTracks.join(", ")}`;
}

function fail(error) {
  publisher.error = String(error);
  show("failed");
  console.error(`publisher: ${error && error.stack ? error.stack : error}`);
}

function send(message) {
  ws.send(JSON.stringify({ ...message, call_cid: callCid }));
}

// Candidates go out only after the offer (the server refuses them before) and
// only for 127.0.0.1: tests never let media leave the loopback interface. With
// the launcher's IP handling policy Chromium reports none (its one socket is
// bound to the any-address): the SFU learns it from its first connectivity check.
function sendCandidate(candidate) {
  if (!offerSent) {
    pendingCandidates.push(candidate);
    return;
  }
  if (!candidate || !candidate.candidate) {
    send({ type: "sfu.candidate", candidate: "" });
    return;
  }
  if (candidate.address !== "127.0.0.1") return;
  send({
    type: "sfu.candidate",
    candidate: candidate.candidate,
    sdp_mid: candidate.sdpMid,
    sdp_mline_index: candidate.sdpMLineIndex,
  });
}

function openSocket() {
  return new Promise((resolve, reject) => {
    const url = `ws://${location.host}/v1/ws?token=${encodeURIComponent(token)}`;
    const socket = new WebSocket(url);
    socket.onerror = () => reject(new Error(`WebSocket to ${url} failed`));
    socket.onclose = (event) => fail(new Error(`WebSocket closed: ${event.code} ${event.reason}`));
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "health.check") {
        socket.send(JSON.stringify({ type: "pong" }));
      } else if (frame.type === "connection.ok") {
        resolve(socket);
      } else {
        inbox = inbox.then(() => handle(frame)).catch(fail);
      }
    };
  });
}

async function handle(frame) {
  if (frame.call_cid !== callCid) return;
  if (frame.type.startsWith("call.")) {
    publisher.events.push(frame.type); // the user's own call events, e.g. permissions_updated
    return;
  }
  switch (frame.type) {
    case "sfu.answer":
      await pc.setRemoteDescription({ type: "answer", sdp: frame.sdp });
      show("answered");
      onAnswer();
      break;
    case "sfu.offer":
      // The server adds m-lines to send us more tracks; the client always answers.
      publisher.serverOffers += 1;
      await pc.setRemoteDescription({ type: "offer", sdp: frame.sdp });
      await pc.setLocalDescription();
      send({ type: "sfu.answer", sdp: pc.localDescription.sdp });
      break;
    case "sfu.candidate":
      if (frame.candidate) {
        await pc.addIceCandidate({
          candidate: frame.candidate,
          sdpMid: frame.sdp_mid,
          sdpMLineIndex: frame.sdp_mline_index,
        });
      }
      break;
    case "sfu.publish_ok":
      publisher.published.push(frame.source);
      show("publishing");
      break;
    case "sfu.stop_source":
      await stopSource(frame.source, frame.reason);
      break;
    case "sfu.tracks":
      publisher.tracks = frame.tracks;
      break;
    default:
      // sfu.publish_denied, sfu.error, error, ...: never expected by the test.
      throw new Error(`unexpected ${JSON.stringify(frame)}`);
  }
}

// Forwarding already stopped on the server: stop capturing and sending, without renegotiating.
async function stopSource(source, reason) {
  const track = localTracks[source];
  track.stop();
  await senders[source].replaceTrack(null);
  publisher.stopped.push({ source, reason, readyState: track.readyState });
  show(publisher.state);
}

function play(event) {
  publisher.remoteTracks.push(event.track.kind);
  const element = document.createElement(event.track.kind);
  element.autoplay = true;
  element.srcObject = new MediaStream([event.track]);
  document.getElementById("remote").append(element);
  show(publisher.state);
}

function within(promise, timeoutMs, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  if (!token || !callCid) throw new Error("the query string needs token and call_cid");
  ws = await openSocket();
  show("capturing");
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  document.getElementById("preview").srcObject = stream;
  localTracks.microphone = stream.getAudioTracks()[0];
  localTracks.camera = stream.getVideoTracks()[0];
  publisher.settings = {
    audio: localTracks.microphone.getSettings(),
    video: localTracks.camera.getSettings(),
  };

  pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  pc.onicecandidate = (event) => sendCandidate(event.candidate);
  pc.onconnectionstatechange = () => {
    publisher.connection = pc.connectionState;
    show(publisher.state);
    if (pc.connectionState === "failed") fail(new Error("peer connection failed"));
  };
  pc.ontrack = play;
  // One encoding per track: aiortc routes by SSRC and has no simulcast.
  for (const source of SOURCES) {
    const transceiver = pc.addTransceiver(localTracks[source], {
      direction: "sendonly",
      streams: [stream],
    });
    senders[source] = transceiver.sender;
  }
  await pc.setLocalDescription();
  send({ type: "sfu.offer", sdp: pc.localDescription.sdp });
  offerSent = true;
  pendingCandidates.splice(0).forEach(sendCandidate);
  show("offered");

  await within(answered, 10000, "sfu.answer");
  for (const source of SOURCES) send({ type: "sfu.publish", source });
}

// Receive what others publish: the server offers new m-lines, which the page answers.
publisher.subscribe = (userIds) => send({ type: "sfu.subscribe", user_ids: userIds });

main().catch(fail);
