// callapp browser client: joins a room on this server's /ws (protocol v1) and
// calls the other member peer to peer with WebRTC, trickling ICE candidates.
//
// Caller rule: on "ready", the first id in `peers` makes the offer. On
// "peer-left" or BYE the RTCPeerConnection is closed and we wait again; the
// next "ready" starts a fresh call. Tests read `window.callapp`.
// (ES modules are always strict mode.)

const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const STATS_INTERVAL_MS = 500;
const MAX_EARLY_CANDIDATES = 64;

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("join-form"),
  room: $("room"),
  join: $("join"),
  status: $("status"),
  remoteVideo: $("remote-video"),
  localVideo: $("local-video"),
  localCaption: $("local-caption"),
  mute: $("mute"),
  camera: $("camera"),
  unmuteRemote: $("unmute-remote"),
  hangup: $("hangup"),
  connectionId: $("connection-id"),
};

const ERROR_TEXT = {
  "bad-room": "That room name is not allowed: use 1-64 letters, digits, '-', '_' or '.'.",
  busy: "The server is busy. Try again later.",
  "rate-limited": "Too many messages; the server dropped one.",
  "unknown-peer": "The peer is no longer connected.",
  "not-in-room": "You are not in a room.",
  "too-large": "A message was too large for the server.",
};

// The test hooks, and the one place the page's state lives.
const app = {
  state: "idle", // idle | connecting | waiting | calling | connected | error
  status: "",
  errorCode: null, // last error: full, bad-room, server-lost, media, failed, ...
  connectionId: null,
  room: null,
  peerId: null,
  role: null, // caller | callee
  calls: 0, // peer connections created so far
  framesReceived: 0, // remote video frames decoded in this call (getStats)
  framesRendered: 0, // remote video frames painted in this call (requestVideoFrameCallback)
  framesSent: 0, // local video frames encoded in this call (getStats)
  iceServers: [],
  localCandidates: [],
  remoteCandidates: [],
  selectedPair: null,
  muted: false,
  cameraOff: false,
  log: [],
  join,
  hangUp,
  setMuted,
  setCameraOff,
};
window.callapp = app;

let ws = null;
let welcome = null; // Promise resolved by the server's "welcome"
let leaving = false; // our own close of the socket, not a lost server
let inbox = Promise.resolve(); // server messages, handled one at a time
let localStream = null;
let call = null; // {pc, peer, pending: [], remote: MediaStream, statsTimer, tracksAdded}
const early = new Map(); // sender id -> candidates that came before any call with them

function note(text) {
  app.log.push(text);
  if (app.log.length > 200) app.log.shift();
  console.log(`[callapp] ${text}`);
}

function setState(state, status, errorCode = null) {
  app.state = state;
  app.status = status;
  if (errorCode) app.errorCode = errorCode;
  ui.status.textContent = status;
  ui.status.dataset.state = state;
  const inRoom = app.room !== null;
  ui.hangup.disabled = !inRoom && call === null;
  ui.join.disabled = state === "connecting";
  note(`${state}: ${status}`);
}

// ---- signaling -------------------------------------------------------------

function connectSignaling() {
  if (ws && ws.readyState <= WebSocket.OPEN) return welcome;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`);
  ws = socket;
  leaving = false;
  welcome = new Promise((resolve, reject) => {
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return note("ignored a frame that is not JSON");
      }
      if (message.type === "welcome") resolve(message);
      inbox = inbox.then(() => onServerMessage(message)).catch(fail);
    };
    socket.onclose = () => {
      reject(new Error("cannot reach the signaling server"));
      if (ws === socket) onSignalingLost();
    };
  });
  welcome.catch(() => {}); // handled by whoever awaits it, or by onclose
  return welcome;
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function sendToPeer(peer, data) {
  send({ type: "message", to: peer, data });
}

function onSignalingLost() {
  ws = null;
  if (leaving) return;
  app.room = null;
  if (call && app.state === "connected") {
    setState("connected", "Lost the signaling server; the call goes on.", "server-lost");
  } else {
    closeCall();
    setState("error", "Lost the connection to the signaling server.", "server-lost");
  }
}

async function onServerMessage(message) {
  switch (message.type) {
    case "welcome":
      app.connectionId = message.connectionId;
      app.iceServers = Array.isArray(message.iceServers) ? message.iceServers : [];
      ui.connectionId.textContent = message.connectionId;
      break;
    case "created":
      app.room = message.room;
      setState("waiting", `Waiting for a peer to join “${message.room}”…`);
      break;
    case "joined":
      app.room = message.room;
      if (!call) setState("waiting", `Joined “${message.room}”; waiting for a peer…`);
      break;
    case "peer-joined":
      if (!call) setState("waiting", "A peer joined; setting up the call…");
      break;
    case "ready":
      await onReady(message.peers || []);
      break;
    case "full":
      setState("error", `Room “${message.room}” is full.`, "full");
      break;
    case "peer-left":
      early.delete(message.connectionId);
      // After a BYE the call is already over and the status says so.
      if (app.peerId === message.connectionId) {
        closeCall();
        setState("waiting", `Peer left. Waiting for a peer to join “${app.room}”…`);
      }
      break;
    case "message":
      await onPeerMessage(message.from, message.data);
      break;
    case "error":
      onServerError(message);
      break;
    default:
      break; // unknown types are ignored, so the protocol can grow
  }
}

function onServerError(message) {
  const text = ERROR_TEXT[message.code] || message.message || "The server reported an error.";
  if (message.code === "unknown-peer" && call) {
    closeCall();
    setState("waiting", `${text} Waiting for a peer…`, message.code);
  } else if (message.code === "bad-room" || message.code === "busy") {
    setState("error", text, message.code);
  } else {
    note(`server error ${message.code}: ${message.message}`);
  }
}

// ---- the call ----------------------------------------------------------------

async function onReady(peers) {
  const others = peers.filter((id) => id !== app.connectionId);
  if (others.length === 0) return;
  closeCall();
  if (peers[0] === app.connectionId) {
    const pc = newCall(others[0], "caller");
    setState("calling", "Calling…");
    addLocalMedia(pc);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    sendToPeer(call.peer, { type: "SDP", payload: { type: offer.type, sdp: offer.sdp } });
  } else {
    app.peerId = peers[0];
    setState("calling", "Peer found; waiting for their call…");
  }
}

function peerConnection() {
  try {
    return new RTCPeerConnection({ iceServers: app.iceServers });
  } catch (error) {
    // A server entry this browser rejects must not stop calls on the same network.
    note(`ignoring the server's ICE servers (${error.message})`);
    return new RTCPeerConnection();
  }
}

function newCall(peer, role) {
  const pc = peerConnection();
  const remote = new MediaStream();
  const pending = early.get(peer) || [];
  early.clear();
  call = { pc, peer, pending, remote, statsTimer: null, tracksAdded: false };
  app.calls += 1;
  app.peerId = peer;
  app.role = role;
  app.framesReceived = 0;
  app.framesRendered = 0;
  app.framesSent = 0;
  app.localCandidates = [];
  app.remoteCandidates = pending.map((init) => init.candidate);
  app.selectedPair = null;
  const current = () => call !== null && call.pc === pc;

  pc.onicecandidate = ({ candidate }) => {
    if (!current() || !candidate || !candidate.candidate) return;
    app.localCandidates.push(candidate.candidate);
    sendToPeer(peer, {
      type: "ICE",
      payload: {
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid,
        sdpMLineIndex: candidate.sdpMLineIndex,
      },
    });
  };
  pc.ontrack = ({ track }) => {
    if (!current()) return;
    remote.addTrack(track);
    note(`receiving ${track.kind}`);
  };
  pc.onconnectionstatechange = () => {
    if (!current()) return;
    const state = pc.connectionState;
    note(`peer connection ${state}`);
    if (state === "connected") setState("connected", `In a call in “${app.room}”.`);
    else if (state === "disconnected") setState("calling", "Connection lost; reconnecting…");
    else if (state === "failed") setState("error", "The connection to the peer failed.", "failed");
  };

  ui.remoteVideo.srcObject = remote;
  playRemote();
  watchFrames(pc);
  call.statsTimer = setInterval(() => pollStats(pc).catch(() => {}), STATS_INTERVAL_MS);
  return pc;
}

function addLocalMedia(pc) {
  if (call.tracksAdded) return;
  call.tracksAdded = true;
  const kinds = new Set();
  for (const track of localStream ? localStream.getTracks() : []) {
    pc.addTrack(track, localStream);
    kinds.add(track.kind);
  }
  // Without a camera or microphone, still ask to receive the peer's.
  for (const kind of ["audio", "video"]) {
    if (!kinds.has(kind) && pc.signalingState === "stable") {
      pc.addTransceiver(kind, { direction: "recvonly" });
    }
  }
}

async function onPeerMessage(from, data) {
  if (!data || typeof data !== "object") return;
  switch (data.type) {
    case "SDP":
      await onDescription(from, data.payload || {});
      break;
    case "ICE":
      await onCandidate(from, data.payload || {});
      break;
    case "BYE":
      if (call && call.peer === from) {
        closeCall();
        setState("waiting", "Peer hung up. Waiting for a peer…");
      }
      break;
    default:
      break;
  }
}

async function onDescription(from, description) {
  if (description.type === "offer") {
    if (!call || call.peer !== from) {
      closeCall();
      newCall(from, "callee");
      setState("calling", "Answering…");
    }
    const pc = call.pc;
    await pc.setRemoteDescription({ type: "offer", sdp: description.sdp });
    addLocalMedia(pc);
    await flushCandidates();
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    sendToPeer(from, { type: "SDP", payload: { type: answer.type, sdp: answer.sdp } });
  } else if (description.type === "answer") {
    if (!call || call.peer !== from || call.pc.signalingState !== "have-local-offer") {
      return note("ignored an answer we did not ask for");
    }
    await call.pc.setRemoteDescription({ type: "answer", sdp: description.sdp });
    await flushCandidates();
  }
}

async function onCandidate(from, payload) {
  if (typeof payload.candidate !== "string") return;
  const init = {
    candidate: payload.candidate,
    sdpMid: payload.sdpMid ?? null,
    sdpMLineIndex: payload.sdpMLineIndex ?? null,
  };
  if (!call || call.peer !== from) {
    // Ahead of its offer: keep it for the call that offer will start.
    const kept = early.get(from) || [];
    if (kept.length < MAX_EARLY_CANDIDATES) early.set(from, [...kept, init]);
    return;
  }
  app.remoteCandidates.push(init.candidate);
  if (call.pc.remoteDescription) await addCandidate(call.pc, init);
  else call.pending.push(init);
}

async function flushCandidates() {
  const { pc, pending } = call;
  call.pending = [];
  for (const init of pending) await addCandidate(pc, init);
}

async function addCandidate(pc, init) {
  try {
    await pc.addIceCandidate(init);
  } catch (error) {
    note(`could not add candidate ${init.candidate}: ${error.message}`);
  }
}

function closeCall() {
  app.peerId = null;
  app.role = null;
  if (!call) return;
  clearInterval(call.statsTimer);
  call.pc.close();
  for (const track of call.remote.getTracks()) track.stop();
  call = null;
  ui.remoteVideo.srcObject = null;
  ui.unmuteRemote.hidden = true;
}

// ---- frames and stats ---------------------------------------------------------

function watchFrames(pc) {
  const video = ui.remoteVideo;
  if (!("requestVideoFrameCallback" in video)) return;
  const onFrame = () => {
    if (!call || call.pc !== pc) return;
    app.framesRendered += 1;
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

async function pollStats(pc) {
  if (!call || call.pc !== pc) return;
  const report = await pc.getStats();
  const pairs = {};
  let selected = null;
  report.forEach((stat) => {
    if (stat.type === "inbound-rtp" && stat.kind === "video") {
      app.framesReceived = stat.framesDecoded || 0;
    } else if (stat.type === "outbound-rtp" && stat.kind === "video") {
      app.framesSent = stat.framesEncoded || 0;
    } else if (stat.type === "candidate-pair") {
      pairs[stat.id] = stat;
    } else if (stat.type === "transport" && stat.selectedCandidatePairId) {
      selected = stat.selectedCandidatePairId;
    }
  });
  const pair = selected && pairs[selected];
  if (pair) {
    const describe = (id) => {
      const c = report.get(id);
      return c ? `${c.candidateType} ${c.protocol} ${c.address}:${c.port}` : id;
    };
    app.selectedPair = {
      local: describe(pair.localCandidateId),
      remote: describe(pair.remoteCandidateId),
    };
  }
}

function playRemote() {
  ui.remoteVideo.play().catch(() => {
    // Autoplay with sound refused until the user interacts: play muted, offer sound.
    ui.remoteVideo.muted = true;
    ui.unmuteRemote.hidden = false;
    ui.remoteVideo.play().catch(() => {});
  });
}

// ---- local media ----------------------------------------------------------------

async function startLocalMedia() {
  if (localStream) return;
  const attempts = [
    { audio: true, video: { width: 640, height: 480 } },
    { video: { width: 640, height: 480 } },
    { audio: true },
  ];
  for (const constraints of attempts) {
    try {
      localStream = await navigator.mediaDevices.getUserMedia(constraints);
      break;
    } catch (error) {
      note(`getUserMedia ${JSON.stringify(constraints)} failed: ${error.name}`);
    }
  }
  if (!localStream) {
    app.errorCode = "media";
    ui.localCaption.textContent = "You (no camera or microphone allowed: receiving only)";
    note("no camera or microphone: receiving only");
    return;
  }
  ui.localCaption.textContent = "You";
  ui.localVideo.srcObject = localStream;
  applyTrackSwitches();
  ui.mute.disabled = localStream.getAudioTracks().length === 0;
  ui.camera.disabled = localStream.getVideoTracks().length === 0;
}

function stopLocalMedia() {
  if (!localStream) return;
  for (const track of localStream.getTracks()) track.stop();
  localStream = null;
  ui.localVideo.srcObject = null;
  ui.mute.disabled = true;
  ui.camera.disabled = true;
}

function applyTrackSwitches() {
  if (localStream) {
    for (const track of localStream.getAudioTracks()) track.enabled = !app.muted;
    for (const track of localStream.getVideoTracks()) track.enabled = !app.cameraOff;
  }
  ui.mute.textContent = app.muted ? "Unmute" : "Mute";
  ui.mute.setAttribute("aria-pressed", String(app.muted));
  ui.camera.textContent = app.cameraOff ? "Camera on" : "Camera off";
  ui.camera.setAttribute("aria-pressed", String(app.cameraOff));
}

function setMuted(muted) {
  app.muted = Boolean(muted);
  applyTrackSwitches();
}

function setCameraOff(off) {
  app.cameraOff = Boolean(off);
  applyTrackSwitches();
}

// ---- user actions -------------------------------------------------------------

async function join(room) {
  room = String(room).trim();
  ui.room.value = room;
  if (!ROOM_NAME.test(room)) {
    setState("error", ERROR_TEXT["bad-room"], "bad-room");
    return;
  }
  if (room === app.room && ws) return; // already there
  const url = new URL(location.href);
  url.searchParams.set("room", room);
  history.replaceState(null, "", url);
  app.errorCode = null;
  if (call && app.room !== room) {
    sendToPeer(call.peer, { type: "BYE" }); // moving to another room ends this call
    closeCall();
  }
  setState("connecting", "Connecting…");
  await startLocalMedia();
  try {
    await connectSignaling();
  } catch {
    return; // onSignalingLost has said so
  }
  send({ type: "join", room });
}

function hangUp() {
  if (call) sendToPeer(call.peer, { type: "BYE" });
  closeCall();
  if (app.room !== null) send({ type: "leave" });
  app.room = null;
  stopLocalMedia();
  setState("idle", "You left the call. Join a room to call again.");
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  join(ui.room.value).catch(fail);
});
ui.hangup.addEventListener("click", hangUp);
ui.mute.addEventListener("click", () => setMuted(!app.muted));
ui.camera.addEventListener("click", () => setCameraOff(!app.cameraOff));
ui.unmuteRemote.addEventListener("click", () => {
  ui.remoteVideo.muted = false;
  ui.unmuteRemote.hidden = true;
  playRemote();
});
window.addEventListener("pagehide", () => {
  leaving = true;
  if (call) sendToPeer(call.peer, { type: "BYE" });
});

function fail(error) {
  console.error(error);
  setState("error", `Something went wrong: ${error.message || error}`, "internal");
}

const initialRoom = new URLSearchParams(location.search).get("room");
if (initialRoom !== null) {
  join(initialRoom).catch(fail);
} else {
  setState("idle", "Enter a room name to join.");
}
