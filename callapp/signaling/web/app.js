// callapp browser client: joins a room on this server's /ws (protocol v1 plus
// callapp's room capacity) and calls every other member peer to peer, one
// RTCPeerConnection per remote peer (a mesh), trickling ICE candidates.
//
// Who offers: the earlier member in join order offers to the later one.
// - Rooms of 2 (protocol v1): "ready" is the cue, and starts a fresh call.
// - Group rooms (capacity above 2): each member already inside offers to a
//   newcomer on "peer-joined"; the newcomer waits for one offer from each.
// "peer-left" or a BYE ends only that peer's connection and tile.
//
// Call messages in signaling `data`: SDP, ICE, BYE (PROTOCOL.md), PRESENCE
// (name and badges), CHAT and VERIFY (docs/security.md). Chat prefers the
// offerer's "chat" data channel and falls back to signaling. Tests read and
// drive `window.callapp`.
//
// Security (docs/security.md): an invite link carries the room secret in the
// URL fragment (`#secret=...`), which never leaves the page: `join` carries
// only the room key derived from it, and the fingerprint-auth key stays here.
// Every remote SDP goes through pinRemoteSdp before setRemoteDescription, and
// each connection runs a Verifier (the offerer once the answer is applied, the
// answerer right after sending its answer) for the verification code and, in
// a keyed room, the fingerprint MACs: until the peer's MAC checks out its
// video stays hidden and its sound silent; a failed check, or none within
// VERIFY_TIMEOUT_MS of connecting, ends that call as intercepted.
//
// Care for people (issue 13): a call timer from the first media; camera,
// microphone and speaker pickers (switching swaps a live call's tracks with
// replaceTrack, without renegotiating); full screen (button, double-click on a
// tile, `f`; Escape leaves); keyboard shortcuts (SHORTCUTS, `?` lists them);
// reconnection when the signaling server goes away: connected calls go on
// peer to peer while the page retries with backoff for a bounded time
// (`?reconnect=SECONDS`, 30 by default) and rejoins the same room with the
// same key. Every problem is said in plain words with what to do next; the
// technical detail goes to the console only (note()).
//
// Back on the server the page has a new connection id, and so has everyone
// else: it tells each call's peer its new id over that call's own "chat" data
// channel (RELINK, as the desktop app does; never through signaling, where
// anyone could claim an id), and re-keys a call whose peer does the same. The
// call goes on untouched: the same RTCPeerConnection, no new offer. A peer that
// does not speak RELINK (an older page) is called afresh, as before, once
// RELINK_WAIT_MS have passed without its RELINK, and the old call is retired.
// (ES modules are always strict mode.)

import * as security from "./security.js";

const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const MIN_CAPACITY = 2;
const MAX_CAPACITY = 8;
const MAX_PEERS = MAX_CAPACITY - 1; // more connections than the largest room needs: refuse
const DEFAULT_NAME = "Guest";
const MAX_NAME = 64; // code points
const MAX_CHAT = 1000; // code points
const KEEP_CHAT = 200; // lines kept on screen
const KEEP_PRESENCE = 64; // senders whose presence we remember
const NAME_KEY = "callapp.name";
const STATS_INTERVAL_MS = 500;
const MAX_EARLY_CANDIDATES = 64;
const MAX_EARLY_VERIFY = 8; // VERIFY messages kept until the connection's Verifier exists
const VERIFY_TIMEOUT_MS = 5000; // keyed rooms: the peer must prove itself this soon after connecting
const KEEP_INSECURE = 64;
const VIDEO_SIZE = Object.freeze({ width: 640, height: 480 });
// Reconnection: the first retry soon, then doubling up to a few seconds, for
// a bounded time so a server that is gone for good is said so instead of
// spinning forever. `?reconnect=SECONDS` changes the bound (tests shorten it).
const RECONNECT_DEFAULT_S = 30;
const RECONNECT_MAX_S = 600;
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 1000; // a restarted server is rejoined within about a second of its return
const ICE_RESTART_RETRY_MS = 2500; // a restart offer that has not connected by then is made again
// After a lost server, how long a new call to a room member we do not know is
// held back while a call from before waits for its peer's new id (RELINK):
// the desktop app's _RELINK_WAIT (callapp/call/session.py), with the same meaning.
const RELINK_WAIT_MS = 5000;
const MAX_ID_CHARS = 128; // the longest id a RELINK may carry (callapp/call/wire.py)
const CONNECT_TIMEOUT_MS = 5000; // a server that never answers the handshake
const COUNTDOWN_TICK_MS = 250;
const DEVICE_KEY = { videoinput: "callapp.camera", audioinput: "callapp.microphone",
  audiooutput: "callapp.speaker" };
// Control characters, and the bidi overrides that could make a name read backwards.
const UNSHOWABLE = /[\p{Cc}\p{Cf}]/gu;

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("join-form"),
  room: $("room"),
  capacity: $("capacity"),
  join: $("join"),
  name: $("name"),
  status: $("status"),
  videos: $("videos"),
  localTile: $("local-tile"),
  tileTemplate: $("tile-template"),
  localVideo: $("local-video"),
  localCaption: $("local-caption"),
  localName: $("local-name"),
  mute: $("mute"),
  camera: $("camera"),
  screen: $("screen"),
  unmuteRemote: $("unmute-remote"),
  hangup: $("hangup"),
  chatLog: $("chat-log"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
  chatError: $("chat-error"),
  connectionId: $("connection-id"),
  stage: $("stage"),
  callTimer: $("call-timer"),
  fullscreen: $("fullscreen"),
  shortcutsButton: $("shortcuts-button"),
  shortcuts: $("shortcuts"),
  shortcutsList: $("shortcuts-list"),
  reconnect: $("reconnect"),
  reconnectText: $("reconnect-text"),
  reconnectCancel: $("reconnect-cancel"),
  reconnectRetry: $("reconnect-retry"),
  mediaProblem: $("media-problem"),
  mediaProblemText: $("media-problem-text"),
  mediaRetry: $("media-retry"),
  notice: $("notice"),
  noticeText: $("notice-text"),
  noticeClose: $("notice-close"),
  pickers: {
    videoinput: $("camera-select"),
    audioinput: $("microphone-select"),
    audiooutput: $("speaker-select"),
  },
};

const ERROR_TEXT = {
  "bad-room": "That room name is not allowed: use 1-64 letters, digits, '-', '_' or '.'.",
  "bad-capacity": `A room holds ${MIN_CAPACITY} to ${MAX_CAPACITY} people.`,
  busy: "The server is busy. Try again later.",
  "rate-limited": "Too many messages; the server dropped one.",
  "unknown-peer": "The peer is no longer connected.",
  "not-in-room": "You are not in a room.",
  "too-large": "A message was too large for the server.",
  unauthorized: "This room needs the invite link's secret: ask for the link again.",
};
const OPEN_ROOM_TEXT =
  "A room of that name was opened without a secret, so it is not your invite link's room: "
  + "ask for a new link.";
const INTERCEPTED_TEXT =
  "The connection was intercepted: someone may be listening. The call was ended.";
const FAILED_TEXT = "The connection to the peer failed. Something between you may block calls: "
  + "try another network, or ask them to join again.";
const BAD_SECRET_TEXT = "The invite link's secret is damaged: ask for the link again.";
const NOT_SECURE_TEXT =
  "This page was not opened over https (or on this computer), so it cannot use the invite "
  + "link's secret: open the link with https.";
// How the status tells why a connection ended (see endPeer).
const ENDED_TEXT = {
  left: "left",
  "hung up": "hung up",
  gone: "is no longer connected",
  failed: "could not be reached",
  insecure: "could not prove who they are",
};
// BYE reasons (docs/protocol.md): what the status says, in the app's own words.
const HOST_ENDED_TEXT = "The host ended the call. To talk again, ask them for a new invite link.";
const BUSY_TEXT = "The other person is in another call. Try again later.";
const NO_PRESENCE = Object.freeze({
  name: DEFAULT_NAME,
  muted: false,
  cameraOff: false,
  screen: false,
  recording: false,
});

let ws = null;
let welcome = null; // Promise resolved by the server's "welcome"
let leaving = false; // our own close of the socket, not a lost server
let inbox = Promise.resolve(); // server messages, handled one at a time
let localStream = null; // camera and microphone
let screenTrack = null; // while sharing the screen
const peers = new Map(); // connection id -> peer (see startPeer), in the order calls began
const presence = new Map(); // connection id -> {name, muted, cameraOff, screen, recording}
const early = new Map(); // sender id -> candidates that came before any call with them

// The invite link's secret, from the fragment: kept in this closure only (never
// logged, never on window.callapp, never sent). The pin is for the app: the
// browser checks the server's certificate itself.
const invite = readInvite();
let joining = null; // {room, authKey} of the join on its way
let roomAuthKey = null; // the fingerprint-auth key of the room we are in, if keyed
const insecurePeers = []; // ids of connections ended as intercepted
// The room the person asked for, kept to rejoin it after losing the server:
// {room, capacity, key, authKey}. In this closure only: it may hold the key.
let wanted = null;
let current = null; // the same for the room we are in now
const reconnectBoundMs = readReconnectBound();
const reconnect = {
  active: false, // retrying now
  gaveUp: false, // stopped (time ran out, or Cancel): "Try again" is offered
  deadline: 0, // performance.now() when retrying stops
  attempts: 0,
  retryTimer: null,
  ticker: null, // repaints the countdown
};
let callStartedAt = null; // performance.now() when media first flowed, for the timer
let callTicker = null;
let mediaErrors = {}; // "audio" | "video" -> why the last capture of that kind failed
let noticeTopic = null; // what the notice is about, so fixing that clears it
// Room cues held back while a call from before a lost server waits for its
// peer's RELINK (see holdForRelink): at most RELINK_WAIT_MS per reconnection.
const relinkHold = {
  deadline: null, // performance.now() when holding ends, once a cue was held
  timer: null,
  ready: false, // a "ready" (rooms of 2) to act on once the hold ends
  calls: new Set(), // newcomers to call (group rooms) once it ends
};

// The test hooks, and the page's state. The single-peer fields (peerId, role,
// frames...) describe the first connection: the only one in a call of two.
const app = {
  state: "idle", // idle | connecting | waiting | calling | connected | error
  status: "",
  errorCode: null, // last error: full, bad-room, server-lost, media, failed, ...
  connectionId: null,
  room: null,
  capacity: MIN_CAPACITY, // the room's, from created/joined (absent: 2)
  members: [], // the room's members in join order, us included
  name: DEFAULT_NAME,
  muted: false,
  cameraOff: false,
  sharing: false,
  calls: 0, // peer connections created so far
  iceServers: [],
  chat: [], // {from, name, text, via: "channel" | "signaling" | "self", paths}
  chatError: "",
  log: [],
  get keyed() {
    return roomAuthKey !== null; // in a room opened with the invite link's secret
  },
  get insecurePeers() {
    return [...insecurePeers];
  },
  get peers() {
    return [...peers.values()].map(describePeer);
  },
  get peerId() {
    return first()?.id ?? null;
  },
  get role() {
    return first()?.role ?? null; // caller | callee
  },
  get framesReceived() {
    return first()?.framesReceived ?? 0; // remote video frames decoded (getStats)
  },
  get framesRendered() {
    return first()?.framesRendered ?? 0; // remote frames painted (requestVideoFrameCallback)
  },
  get framesSent() {
    return first()?.framesSent ?? 0; // local video frames encoded (getStats)
  },
  get localCandidates() {
    return first()?.localCandidates ?? [];
  },
  get remoteCandidates() {
    return first()?.remoteCandidates ?? [];
  },
  get selectedPair() {
    return first()?.selectedPair ?? null;
  },
  get screenTrack() {
    return screenTrack;
  },
  get callTime() {
    return ui.callTimer.hidden ? null : ui.callTimer.textContent; // "m:ss", null outside a call
  },
  get reconnecting() {
    return reconnect.active;
  },
  get reconnectGaveUp() {
    return reconnect.gaveUp;
  },
  get fullscreen() {
    return document.fullscreenElement !== null;
  },
  get devices() {
    return currentDevices();
  },
  get mediaProblem() {
    return ui.mediaProblem.hidden ? "" : ui.mediaProblemText.textContent;
  },
  get notice() {
    return ui.notice.hidden ? "" : ui.noticeText.textContent;
  },
  join,
  hangUp,
  setMuted,
  setCameraOff,
  setSharing,
  setName,
  sendChat,
  chooseDevice,
  setFullscreen,
  retryMedia,
  cancelReconnect,
  retryReconnect,
  // Restart ICE with the first peer now, as after a dead media path (tests).
  restartIce() {
    const peer = first();
    if (peer) afterInbox(() => restartIce(peer, true));
    return Boolean(peer);
  },
};
window.callapp = app;

function first() {
  return peers.values().next().value;
}

function describePeer(peer) {
  const sender = videoSender(peer);
  return {
    id: peer.id,
    role: peer.role,
    state: peer.pc.connectionState,
    ...presenceOf(peer.id),
    channel: peer.channel ? peer.channel.readyState : "none",
    framesReceived: peer.framesReceived,
    framesRendered: peer.framesRendered,
    framesSent: peer.framesSent,
    frameWidth: peer.frameWidth,
    frameHeight: peer.frameHeight,
    sendingVideo: sender && sender.track ? sender.track.label : null,
    sendingAudio: transceiverOf(peer, "audio")?.sender.track?.label ?? null,
    negotiations: peer.negotiations,
    iceRestarts: peer.iceRestarts,
    serial: peer.serial, // which RTCPeerConnection: 1 for the page's first, and so on
    previousIds: [...peer.previousIds], // the peer's ids before its RELINKs, oldest first
    keyed: peer.authKey !== null,
    verification: peer.verifier ? peer.verifier.state : peer.noCode ? "unavailable" : "none",
    securityCode: securityCode(peer),
    peerVerified: peerVerified(peer),
    mediaShown: peer.mediaShown,
    insecure: peer.insecure,
  };
}

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
  // Hang up works in every state, reconnecting included: it is how to stop.
  ui.hangup.disabled = wanted === null && app.room === null && peers.size === 0;
  ui.join.disabled = state === "connecting";
  // Nobody left to talk to: the call is over, and so is its timer.
  if (peers.size === 0 && ["idle", "waiting", "error"].includes(state)) stopCallTimer();
  note(`${state}: ${status}`);
}

const inRoom = () => (app.room ? ` in “${app.room}”` : "");
const isGroup = () => app.capacity > 2;
const nameOf = (id) => presenceOf(id).name;

// ---- signaling -------------------------------------------------------------

function connectSignaling() {
  if (ws && ws.readyState <= WebSocket.OPEN) return welcome;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`);
  ws = socket;
  leaving = false;
  // A host that never answers would keep the socket "connecting" for minutes.
  const timeout = setTimeout(() => {
    if (socket.readyState === WebSocket.CONNECTING) socket.close();
  }, CONNECT_TIMEOUT_MS);
  socket.addEventListener("open", () => clearTimeout(timeout));
  socket.addEventListener("close", () => clearTimeout(timeout));
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

// The peer's id doubles as the request id, so an "unknown-peer" error says who is gone.
// A call from before a lost server has an id that server forgot: nothing goes
// to it through signaling (the answer would be "unknown-peer", ending it).
function sendToPeer(peer, data) {
  if (peers.get(peer)?.orphan) return;
  send({ type: "message", to: peer, data, id: peer });
}

// Everyone we talk to through signaling: the room's other members, and anyone
// in a call with us (but calls from before a lost server: see sendToPeer).
function everyone() {
  const ids = new Set(app.members.filter((id) => id !== app.connectionId));
  for (const [id, peer] of peers) if (!peer.orphan) ids.add(id);
  return ids;
}

function onSignalingLost() {
  ws = null;
  app.members = [];
  joining = null;
  resetRelinkHold(); // the cues were the lost server's
  if (leaving) return;
  const wasInRoom = app.room !== null;
  app.room = null;
  current = null;
  roomAuthKey = null; // calls going on keep their own key
  // Whoever we are in a call with had an id on the server we lost.
  for (const peer of peers.values()) peer.orphan = true;
  if (!anyConnected()) closeAllPeers(); // a call being set up cannot finish without it
  if (wanted === null) {
    // Not in a room, nor trying to be: nothing to bring back, nothing to say.
    if (peers.size === 0) return note("lost the signaling server while in no room");
    return setState("connected", "Lost the signaling server; the call goes on.", "server-lost");
  }
  if (reconnect.active) return scheduleRetry(); // one more attempt failed
  beginReconnect();
  if (anyConnected()) {
    setState("connected", "Lost the signaling server; the call goes on while this page reconnects.",
      "server-lost");
  } else if (wasInRoom) {
    setState("error", "Lost the connection to the signaling server; reconnecting.", "server-lost");
  } else {
    setState("error", "Cannot reach the signaling server; trying again.", "server-lost");
  }
}

// ---- reconnection --------------------------------------------------------------

// `?reconnect=SECONDS`: how long to keep trying, 1 to 600 (30 when absent or bad).
function readReconnectBound() {
  const asked = Number(new URLSearchParams(location.search).get("reconnect"));
  const seconds = Number.isFinite(asked) && asked >= 1 ? Math.min(asked, RECONNECT_MAX_S)
    : RECONNECT_DEFAULT_S;
  return seconds * 1000;
}

function beginReconnect() {
  stopReconnectTimers();
  reconnect.active = true;
  reconnect.gaveUp = false;
  reconnect.attempts = 0;
  reconnect.deadline = performance.now() + reconnectBoundMs;
  reconnect.ticker = setInterval(tickReconnect, COUNTDOWN_TICK_MS);
  renderReconnect();
  scheduleRetry();
}

// 0.5 s, then every 1 s, with a little jitter so that everyone who
// lost the same server does not knock at the same instant.
function retryDelay(attempts) {
  const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempts);
  return base * (0.8 + Math.random() * 0.4);
}

function scheduleRetry() {
  if (!reconnect.active) return;
  const left = reconnect.deadline - performance.now();
  if (left <= 0) return giveUp(false);
  clearTimeout(reconnect.retryTimer);
  reconnect.retryTimer = setTimeout(() => tryReconnect().catch(fail),
    Math.min(retryDelay(reconnect.attempts), left));
}

async function tryReconnect() {
  reconnect.retryTimer = null;
  if (!reconnect.active || wanted === null) return;
  reconnect.attempts += 1;
  note(`reconnecting to the signaling server, attempt ${reconnect.attempts}`);
  try {
    await connectSignaling();
  } catch {
    return; // the socket's close scheduled the next attempt (onSignalingLost)
  }
  if (reconnect.active && wanted !== null) sendJoin(wanted);
}

function tickReconnect() {
  if (reconnect.active && performance.now() >= reconnect.deadline) giveUp(false);
  else renderReconnect();
}

function stopReconnectTimers() {
  clearTimeout(reconnect.retryTimer);
  clearInterval(reconnect.ticker);
  reconnect.retryTimer = null;
  reconnect.ticker = null;
}

// Back in the room (or the person went elsewhere): no more retries, no panel.
function endReconnect() {
  stopReconnectTimers();
  reconnect.active = false;
  reconnect.gaveUp = false;
  renderReconnect();
}

// Time ran out, or the person pressed Cancel: say so, and offer "Try again".
function giveUp(cancelled) {
  stopReconnectTimers();
  reconnect.active = false;
  reconnect.gaveUp = true;
  if (ws && ws.readyState === WebSocket.CONNECTING) {
    const attempt = ws;
    ws = null; // so that its close is not taken as one more lost server
    attempt.close();
  }
  renderReconnect();
  const seconds = Math.round(reconnectBoundMs / 1000);
  const what = cancelled
    ? "Stopped reconnecting to the signaling server."
    : `The signaling server did not come back within ${seconds} seconds.`;
  if (anyConnected()) {
    setState("connected", `${what} The call goes on, but nobody new can join. `
      + "Press Try again to reconnect.", "server-gone");
  } else {
    closeAllPeers();
    setState("error", `${what} Check that the host is still running, then press Try again.`,
      "server-gone");
  }
}

function cancelReconnect() {
  if (reconnect.active) giveUp(true);
}

function retryReconnect() {
  if (wanted === null || reconnect.active) return;
  if (ws && ws.readyState === WebSocket.OPEN) return sendJoin(wanted); // socket is fine: rejoin
  beginReconnect();
  setState(anyConnected() ? "connected" : "connecting", "Reconnecting to the signaling server…");
}

function renderReconnect() {
  ui.reconnect.hidden = !reconnect.active && !reconnect.gaveUp;
  ui.reconnectCancel.hidden = !reconnect.active;
  ui.reconnectRetry.hidden = !reconnect.gaveUp;
  if (reconnect.active) {
    const left = Math.max(0, Math.ceil((reconnect.deadline - performance.now()) / 1000));
    ui.reconnectText.textContent = `Reconnecting to the server… giving up in ${left} s.`;
  } else if (reconnect.gaveUp) {
    ui.reconnectText.textContent = "Not connected to the server.";
  }
}

// The join request for `target` ({room, capacity, key, authKey}).
function sendJoin(target) {
  const request = { type: "join", room: target.room, id: "join" };
  if (target.capacity !== null) request.capacity = target.capacity;
  if (target.key !== null) request.key = target.key;
  joining = { room: target.room, authKey: target.authKey, target };
  send(request); // (never logged: it may carry the key)
}

async function onServerMessage(message) {
  switch (message.type) {
    case "welcome": {
      const before = app.connectionId;
      app.connectionId = message.connectionId;
      app.iceServers = Array.isArray(message.iceServers) ? message.iceServers : [];
      ui.connectionId.textContent = message.connectionId;
      if (before !== null && before !== message.connectionId) relinkAll(message.connectionId);
      break;
    }
    case "created":
      enterRoom(message, [app.connectionId]);
      if (peers.size > 0) refreshCallState("Back on the server.");
      else setState("waiting", `Waiting for a peer to join “${message.room}”…`);
      break;
    case "joined":
      enterRoom(message, message.peers);
      if (peers.size > 0) {
        if (backFromLoss) refreshCallState("Back on the server.");
        break;
      }
      if (isGroup() && app.members.length > 1) {
        setState("calling", `Joined “${message.room}”; waiting for the others to call…`);
      } else {
        setState("waiting", `Joined “${message.room}”; waiting for a peer…`);
      }
      break;
    case "peer-joined":
      addMember(message.connectionId);
      if (isGroup()) await onNewcomer(message.connectionId); // we were here first
      else if (peers.size === 0) setState("waiting", "A peer joined; setting up the call…");
      break;
    case "ready":
      if (Array.isArray(message.peers)) app.members = [...message.peers];
      adoptMembers();
      if (!isGroup()) await onReady(app.members); // group calls began on peer-joined
      break;
    case "full":
      refused();
      setState("error", `Room “${message.room}” is full. Ask for another room, or try again `
        + "when someone has left.", "full");
      break;
    case "peer-left":
      onPeerLeft(message.connectionId);
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

let backFromLoss = false; // the room we just entered is a rejoin after a lost server

function enterRoom(message, members) {
  // Keyed if this is the room our join carried a key for (the server checked it).
  const ours = joining && joining.room === message.room;
  roomAuthKey = ours ? joining.authKey : null;
  if (ours) current = wanted = joining.target;
  joining = null;
  backFromLoss = reconnect.active || reconnect.gaveUp;
  endReconnect();
  app.room = message.room;
  app.members = Array.isArray(members) ? [...members] : [app.connectionId];
  adoptMembers();
  // A server without the capacity extension has rooms of 2.
  const capacity = message.capacity;
  app.capacity = Number.isInteger(capacity) && capacity >= MIN_CAPACITY ? capacity : MIN_CAPACITY;
  // If we come back first after a restart, we re-create the room: with its size.
  if (current && current.capacity === null && isGroup()) current.capacity = app.capacity;
}

function addMember(id) {
  if (!app.members.includes(id)) app.members.push(id);
  adoptMembers();
}

// A call whose peer id the room lists is reachable through this server, even
// if it was relinked (RELINK) before this page noticed it had lost the old one.
function adoptMembers() {
  for (const peer of peers.values()) {
    if (peer.orphan && app.members.includes(peer.id)) peer.orphan = false;
  }
}

function onPeerLeft(id) {
  app.members = app.members.filter((member) => member !== id);
  early.delete(id);
  if (peers.has(id)) {
    endPeer(id, "left");
  } else if (peers.size === 0 && app.state === "calling") {
    // We were waiting for their offer. (After a BYE the status already says so.)
    setState("waiting", `Peer left. Waiting for a peer to join “${app.room}”…`);
  }
  presence.delete(id);
}

// A join was refused: we are where we were (in no room, or the old one), and
// that is the room to come back to after a lost server.
function refused() {
  wanted = current;
  endReconnect();
}

function onServerError(message) {
  const ref = message.ref;
  if (message.code === "unknown-peer" && typeof ref === "string" && peers.has(ref)) {
    endPeer(ref, "gone");
  } else if (message.code === "bad-message" && ref === "join") {
    refused();
    const text = "The server cannot make a room of that size; choose fewer people.";
    setState("error", text, "bad-capacity");
  } else if (message.code === "bad-room" || message.code === "busy") {
    refused();
    setState("error", ERROR_TEXT[message.code], message.code);
  } else if (message.code === "unauthorized") {
    // We stay where we were (in no room, or the old one).
    const keyless = !joining || joining.authKey === null;
    const opened = typeof message.message === "string" && message.message.includes("without a secret");
    joining = null;
    refused();
    setState("error", !keyless && opened ? OPEN_ROOM_TEXT : ERROR_TEXT.unauthorized, "unauthorized");
  } else {
    note(`server error ${message.code}: ${message.message}`);
  }
}

// ---- the calls ---------------------------------------------------------------

// Rooms of 2: every "ready" starts a fresh call; the earlier member offers.
// A call that went on through a lost server, relinked to the member's new id
// (RELINK), is that call already: it is kept.
async function onReady(members) {
  const mine = members.indexOf(app.connectionId);
  if (mine < 0 || members.length < 2) return;
  const others = members.filter((id) => id !== app.connectionId);
  if (others.some((id) => !peers.has(id)) && holdForRelink()) {
    relinkHold.ready = true; // runHeldCues acts on it
    return;
  }
  for (const peer of [...peers.values()]) {
    const over = ["failed", "closed"].includes(peer.pc.connectionState);
    if (peer.orphan || over || !others.includes(peer.id)) closePeer(peer);
  }
  for (const id of members.slice(mine + 1)) await callPeer(id);
  if (mine > 0 && peers.size === 0) setState("calling", "Peer found; waiting for their call…");
}

// Group rooms: a newcomer is called by each member already in the room.
async function onNewcomer(id) {
  if (!peers.has(id) && holdForRelink()) {
    relinkHold.calls.add(id); // runHeldCues calls them
    return;
  }
  await callPeer(id);
}

// ---- RELINK: a call going on through a lost signaling server (docs/protocol.md) ----

// Back on the server with a new id: tell everyone in a call with us, over each
// call's own data channel. Their page (or app) re-keys the call to that id.
function relinkAll(newId) {
  resetRelinkHold();
  const message = JSON.stringify({ type: "RELINK", payload: { id: newId } });
  for (const peer of peers.values()) {
    const { channel } = peer;
    const open = channel !== null && channel.readyState === "open";
    if (peer.pc.connectionState !== "connected" || !open) continue;
    try {
      channel.send(message);
      note(`told ${peer.id} our new id ${newId} (RELINK)`);
    } catch (error) {
      note(`could not send RELINK to ${peer.id}: ${error.name}: ${error.message}`);
    }
  }
}

// After a lost server, the peer of a call from before comes back with a new
// id and says so over the call's data channel. Until it has, a room member we
// do not know is probably that person: a new call with them waits, for
// RELINK_WAIT_MS at most from the first cue held since we came back, then goes
// ahead as before this extension (a new call; the old one is retired).
function holdForRelink() {
  const waiting = [...peers.values()].some((peer) => peer.orphan
    && peer.pc.connectionState === "connected" && peer.channel?.readyState === "open");
  if (!waiting) return false;
  const now = performance.now();
  if (relinkHold.deadline === null) {
    relinkHold.deadline = now + RELINK_WAIT_MS;
    relinkHold.timer = setTimeout(() => afterInbox(runHeldCues), RELINK_WAIT_MS + 50);
    note(`a new call waits up to ${RELINK_WAIT_MS / 1000} s for a RELINK`);
  }
  return now < relinkHold.deadline;
}

function resetRelinkHold() {
  clearTimeout(relinkHold.timer);
  relinkHold.timer = null;
  relinkHold.deadline = null;
  relinkHold.ready = false;
  relinkHold.calls.clear();
}

// The cues held back, after a RELINK or once the wait is over: each is held
// again while a call still waits (and the wait is not over).
async function runHeldCues() {
  if (!ws || ws.readyState !== WebSocket.OPEN || app.room === null) return;
  const { ready } = relinkHold;
  const calls = [...relinkHold.calls];
  relinkHold.ready = false;
  relinkHold.calls.clear();
  if (ready && !isGroup()) await onReady(app.members);
  for (const id of calls) if (app.members.includes(id)) await onNewcomer(id);
}

// `peer` says, over its data channel, that it is back on the server as
// payload.id. Only the peer can send there (the call's own DTLS session),
// while anyone on the server could claim an id: a RELINK through signaling is
// never believed. The same call (connection, media, chat, verification) goes
// on under the new id.
async function onRelink(peer, payload) {
  if (!isCurrent(peer)) return;
  const newId = payload && typeof payload === "object" ? payload.id : undefined;
  const oldId = peer.id;
  if (typeof newId !== "string" || newId.length === 0 || newId.length > MAX_ID_CHARS
    || newId === app.connectionId) {
    return note(`ignored a RELINK from ${oldId} without a usable id`);
  }
  if (newId === oldId) return;
  const other = peers.get(newId);
  if (other) {
    if (other.previousIds.length > 0) {
      return note(`ignored a RELINK from ${oldId}: ${newId} is the id of another relinked call`);
    }
    // A call with that id begun since the server came back: the same person,
    // whose call goes on in `peer`. No BYE: it would reach them.
    note(`closing the second connection with ${newId}: the call with ${oldId} is theirs`);
    closePeer(other);
  }
  // Re-keyed in place: the order of the calls (the first is app.peerId) stays.
  const entries = [...peers].map(([id, each]) => [id === oldId ? newId : id, each]);
  peers.clear();
  for (const [id, each] of entries) peers.set(id, each);
  peer.previousIds.push(oldId);
  peer.id = newId;
  peer.orphan = false;
  peer.tile.dataset.peer = newId;
  // What they said about themselves: the newest, under the new id.
  if (presence.has(oldId) && !presence.has(newId)) presence.set(newId, presence.get(oldId));
  presence.delete(oldId);
  early.delete(newId); // candidates for a call with that id that will not be
  app.members = app.members.filter((id) => id !== oldId);
  note(`peer relinked: ${oldId} is now ${newId} (${nameOf(newId)}); the call goes on`);
  renderTile(peer);
  refreshCallState();
  await runHeldCues(); // calls held back for this RELINK need not be made
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

// A new connection with `id`; presence goes out first, so our name reaches
// them before the offer or answer does.
function startPeer(id, role) {
  if (peers.size >= MAX_PEERS) {
    note(`refused a call with ${id}: already in ${peers.size} calls`);
    return null;
  }
  const pc = peerConnection();
  const pending = early.get(id) || [];
  early.delete(id);
  const peer = {
    id,
    role, // caller | callee
    pc,
    pending, // remote candidates waiting for the remote description
    remote: new MediaStream(),
    channel: null, // the "chat" RTCDataChannel
    tile: null,
    statsTimer: null,
    framesReceived: 0,
    framesRendered: 0,
    framesSent: 0,
    frameWidth: 0,
    frameHeight: 0,
    localCandidates: [],
    iceRestarts: 0, // media paths renegotiated (restartIce, or the app's fresh connection)
    restartTimer: null,
    remoteCandidates: pending.map((init) => init.candidate),
    selectedPair: null,
    tracksAdded: false,
    negotiations: 0, // local descriptions set: screen sharing must not add any
    authKey: roomAuthKey, // the room's fingerprint-auth key when keyed, else null
    verifier: null, // security.Verifier, once both fingerprints are fixed
    remoteFingerprint: null, // from the pinned remote SDP
    earlyVerify: [], // VERIFY messages that came before the Verifier
    verifyTimer: null,
    noCode: false, // no WebCrypto here (not a secure context): no code to show
    mediaShown: false, // the remote video shown and its sound played
    insecure: false,
    orphan: false, // set up through a signaling server we lost since (see onSignalingLost)
    serial: app.calls + 1, // this page's how-manieth RTCPeerConnection
    previousIds: [], // the peer's ids before its RELINKs (peer.id changes then)
  };
  peers.set(id, peer);
  app.calls += 1;
  sendToPeer(id, presenceMessage());

  pc.onicecandidate = ({ candidate }) => {
    if (!isCurrent(peer) || !candidate || !candidate.candidate) return;
    peer.localCandidates.push(candidate.candidate);
    sendToPeer(peer.id, {
      type: "ICE",
      payload: {
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid,
        sdpMLineIndex: candidate.sdpMLineIndex,
      },
    });
  };
  pc.ontrack = ({ track }) => {
    if (!isCurrent(peer)) return;
    peer.remote.addTrack(track);
    note(`receiving ${track.kind} from ${peer.id}`);
  };
  pc.ondatachannel = ({ channel }) => {
    if (isCurrent(peer) && channel.label === "chat") openChat(peer, channel);
  };
  pc.onconnectionstatechange = () => {
    if (!isCurrent(peer)) return;
    note(`peer connection with ${peer.id} ${pc.connectionState}`);
    if (pc.connectionState === "connected") armVerifyDeadline(peer);
    // These closes wait their turn in the inbox, like every other change to
    // the calls, so they never land between another call's offer/answer steps.
    if (peer.orphan && ["failed", "closed"].includes(pc.connectionState)) {
      // No server to set it up again through. (By then the id may be a newer call's.)
      return afterInbox(() => isCurrent(peer) && endPeer(peer.id, "gone"));
    }
    if (pc.connectionState === "connected" && !peer.orphan) afterInbox(() => retireOrphanOf(peer));
    // The media path died while signaling works: the caller restarts ICE.
    if (["disconnected", "failed"].includes(pc.connectionState) && !peer.orphan) {
      afterInbox(() => restartIce(peer));
    }
    renderTile(peer);
    refreshCallState();
  };

  addTile(peer);
  watchFrames(peer);
  peer.statsTimer = setInterval(() => pollStats(peer).catch(() => {}), STATS_INTERVAL_MS);
  return peer;
}

const isCurrent = (peer) => peers.get(peer.id) === peer;

// Run `action` after the server messages being handled (and their negotiations).
function afterInbox(action) {
  inbox = inbox.then(action).catch(fail);
}

// After a lost server everyone comes back with a new id, so a call from before
// (an orphan) and a new one can be with the same person. Once the new one is
// up, the old one goes; the same name tells which. (In rooms of 2, "ready"
// starts the new call and closes the old one anyway.)
function retireOrphanOf(peer) {
  if (!isCurrent(peer)) return;
  const name = nameOf(peer.id);
  const old = [...peers.values()].find((other) => other.orphan && nameOf(other.id) === name);
  if (old) {
    note(`the call with ${old.id} is replaced by the one with ${peer.id}`);
    closePeer(old);
    refreshCallState();
  }
}
const anyConnected = () => [...peers.values()].some((p) => p.pc.connectionState === "connected");

// We are the earlier member: make the data channel and the offer.
async function callPeer(id) {
  if (id === app.connectionId || peers.has(id)) return;
  const peer = startPeer(id, "caller");
  if (!peer) return;
  if (!anyConnected()) setState("calling", "Calling…");
  await step(peer, async () => {
    openChat(peer, peer.pc.createDataChannel("chat")); // ordered, the default
    addLocalMedia(peer);
    const offer = await peer.pc.createOffer();
    await peer.pc.setLocalDescription(offer);
    peer.negotiations += 1;
    sendToPeer(peer.id, { type: "SDP", payload: { type: offer.type, sdp: offer.sdp } });
  });
}

// One negotiation step. If the peer was closed meanwhile (a hang-up), its
// failure does not matter; otherwise that one call ends, not the others.
async function step(peer, action) {
  try {
    await action();
  } catch (error) {
    if (!isCurrent(peer)) return;
    if (error instanceof security.SecurityError) return endInsecure(peer, error.message);
    note(`call with ${peer.id} failed: ${error.name}: ${error.message}`);
    endPeer(peer.id, "failed");
  }
}

function addLocalMedia(peer) {
  if (peer.tracksAdded) return;
  peer.tracksAdded = true;
  const { pc } = peer;
  const kinds = new Set();
  for (const track of localStream ? localStream.getAudioTracks() : []) {
    pc.addTrack(track, localStream);
    kinds.add("audio");
  }
  const video = outgoingVideo(); // the screen, if we are sharing it
  if (video) {
    pc.addTrack(video, localStream);
    kinds.add("video");
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
      onBye(from, data.payload);
      break;
    case "PRESENCE":
      onPresence(from, data.payload);
      break;
    case "CHAT":
      // Only from people in our room or in a call with us: anyone may know our id.
      if (everyone().has(from)) onChat(from, data.payload, "signaling");
      break;
    case security.VERIFY:
      await onVerify(from, data);
      break;
    default:
      break; // unknown call messages are ignored, so both sides can grow
  }
}

async function onDescription(from, description) {
  if (typeof description.sdp !== "string") return;
  if (description.type === "offer") {
    let peer = peers.get(from);
    let restarts = 0;
    let role = "callee";
    if (peer && secondCallAfterRelink(peer, description)) {
      // They called our new id before our RELINK reached them; once it does,
      // they close that call themselves, and ours goes on.
      return note(`ignored a second call from ${from}: the relinked call with them goes on`);
    }
    if (peer && (peer.pc.signalingState !== "stable" || peer.orphan || description.restart === true)) {
      // Offers crossed: start over as the answerer. Or a call from before a
      // lost server: theirs is a new connection, with a new certificate. Or
      // the desktop app restarting a dead media path ("restart": a fresh
      // connection, since aiortc cannot restart ICE inside one): a fresh one here too.
      const fresh = description.restart === true && peer.pc.signalingState === "stable";
      restarts = description.restart === true ? peer.iceRestarts + (fresh ? 1 : 0) : 0;
      if (description.restart === true) role = peer.role; // the same call: who restarts stays
      closePeer(peer);
      peer = null;
    }
    if (!peer) {
      peer = startPeer(from, role);
      if (!peer) return;
      peer.iceRestarts = restarts; // the same call, on a fresh connection
      if (!anyConnected()) setState("calling", "Answering…");
    }
    const { pc } = peer;
    await step(peer, async () => {
      const sdp = pinnedSdp(peer, description.sdp);
      await pc.setRemoteDescription({ type: "offer", sdp });
      addLocalMedia(peer);
      await flushCandidates(peer);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      peer.negotiations += 1;
      sendToPeer(from, { type: "SDP", payload: { type: answer.type, sdp: answer.sdp } });
      // Both fingerprints are fixed; the answer went first, so the offerer
      // has its Verifier before our first VERIFY reaches it.
      if (!peer.verifier) await startVerifier(peer, pc.localDescription.sdp, sdp);
    });
  } else if (description.type === "answer") {
    const peer = peers.get(from);
    if (!peer || peer.pc.signalingState !== "have-local-offer") {
      return note("ignored an answer we did not ask for");
    }
    await step(peer, async () => {
      const sdp = pinnedSdp(peer, description.sdp);
      await peer.pc.setRemoteDescription({ type: "answer", sdp });
      await flushCandidates(peer);
      if (!peer.verifier) await startVerifier(peer, peer.pc.localDescription.sdp, sdp);
    });
  }
}

// A plain offer (no "restart") with another certificate than the call's, from
// a peer whose call was relinked: a new connection of theirs, made to our new
// id before they read our RELINK, not a renegotiation of this one.
function secondCallAfterRelink(peer, description) {
  if (peer.previousIds.length === 0 || peer.orphan || description.restart === true) return false;
  if (peer.pc.signalingState !== "stable" || peer.remoteFingerprint === null) return false;
  try {
    const fingerprint = security.remoteFingerprint(security.pinRemoteSdp(description.sdp));
    return fingerprint !== peer.remoteFingerprint;
  } catch {
    return false; // not an SDP we take: the negotiation step says so
  }
}

// ---- verification (docs/security.md) ------------------------------------------

// The text to give setRemoteDescription: only its sha-256 fingerprint lines, the
// ones the code and the MAC cover (Chrome's DTLS would check the last line of
// any algorithm). Throws SecurityError for an SDP naming two certificates, or
// none, and for a renegotiation that swaps the certificate the Verifier checked.
function pinnedSdp(peer, sdp) {
  const pinned = security.pinRemoteSdp(sdp);
  const fingerprint = security.remoteFingerprint(pinned);
  if (peer.remoteFingerprint !== null && fingerprint !== peer.remoteFingerprint) {
    throw new security.SecurityError("The other side changed its certificate during the call.");
  }
  peer.remoteFingerprint = fingerprint;
  return pinned;
}

const canVerify = () => Boolean(globalThis.crypto && globalThis.crypto.subtle);

async function startVerifier(peer, localSdp, remoteSdp) {
  if (!canVerify()) {
    // No WebCrypto (plain http to another computer). A keyed room has no
    // such page in it: join() refused to derive the key.
    peer.noCode = true;
    note(`no verification code with ${peer.id}: this page is not a secure context`);
    renderTile(peer);
    return;
  }
  const verifier = new security.Verifier(peer.role === "caller" ? "offerer" : "answerer", {
    localId: app.connectionId,
    remoteId: peer.id,
    localFingerprint: security.localFingerprint(localSdp),
    remoteFingerprint: security.remoteFingerprint(remoteSdp),
    authKey: peer.authKey,
  });
  peer.verifier = verifier;
  const first = await verifier.start();
  if (!isCurrent(peer)) return;
  sendVerify(peer, first);
  const kept = peer.earlyVerify;
  peer.earlyVerify = [];
  for (const message of kept) await receiveVerify(peer, message);
  verificationChanged(peer);
}

function sendVerify(peer, messages) {
  for (const message of messages) sendToPeer(peer.id, message);
}

async function onVerify(from, message) {
  const peer = peers.get(from);
  if (!peer) return note(`ignored a VERIFY from ${from}, with whom there is no call`);
  if (!peer.verifier) {
    if (peer.earlyVerify.length < MAX_EARLY_VERIFY) peer.earlyVerify.push(message);
    return;
  }
  await step(peer, () => receiveVerify(peer, message));
}

async function receiveVerify(peer, message) {
  const replies = await peer.verifier.receive(message);
  if (!isCurrent(peer)) return;
  sendVerify(peer, replies);
  verificationChanged(peer);
}

const securityCode = (peer) =>
  peer.verifier && peer.verifier.state === "done" ? peer.verifier.code : null;
const peerVerified = (peer) =>
  Boolean(peer.verifier && peer.verifier.state === "done" && peer.verifier.peerVerified);
// The peer's media may be shown and played: in a keyed room only once its MAC checked out.
const mediaAllowed = (peer) => !peer.insecure && (peer.authKey === null || peerVerified(peer));

function verificationChanged(peer) {
  if (!isCurrent(peer)) return;
  const { verifier } = peer;
  if (verifier && verifier.state === "failed") {
    note(`verification with ${peer.id} failed (${verifier.reason}): ${verifier.message}`);
    if (verifier.authenticated || verifier.reason === "commitment") {
      return endInsecure(peer, verifier.message);
    }
  }
  if (peerVerified(peer) && peer.verifyTimer !== null) {
    clearTimeout(peer.verifyTimer);
    peer.verifyTimer = null;
  }
  if (verifier && verifier.state === "done") {
    note(`verification code with ${peer.id}: ${verifier.code}${peerVerified(peer) ? " (verified by the invite)" : ""}`);
  }
  showMediaIfAllowed(peer);
  renderTile(peer);
}

// Keyed rooms: a peer that has not proved its fingerprint this soon after
// connecting is not who the invite vouches for.
function armVerifyDeadline(peer) {
  if (peer.authKey === null || peerVerified(peer) || peer.verifyTimer !== null) return;
  peer.verifyTimer = setTimeout(() => {
    inbox = inbox
      .then(() => {
        peer.verifyTimer = null;
        if (!isCurrent(peer) || peerVerified(peer)) return;
        if (peer.verifier) peer.verifier.timedOut();
        endInsecure(peer, "no verification within the time allowed");
      })
      .catch(fail);
  }, VERIFY_TIMEOUT_MS);
}

// The call with `peer` is intercepted (or cannot be proved not to be): never
// show it, tell the other side, end it.
function endInsecure(peer, why) {
  if (!isCurrent(peer)) return;
  note(`the call with ${peer.id} was ended as intercepted: ${why}`);
  peer.insecure = true;
  insecurePeers.push(peer.id);
  if (insecurePeers.length > KEEP_INSECURE) insecurePeers.shift();
  sendToPeer(peer.id, { type: "BYE" });
  endPeer(peer.id, "insecure");
}

async function onCandidate(from, payload) {
  if (typeof payload.candidate !== "string") return;
  const init = {
    candidate: payload.candidate,
    sdpMid: payload.sdpMid ?? null,
    sdpMLineIndex: payload.sdpMLineIndex ?? null,
  };
  const peer = peers.get(from);
  if (!peer) {
    // Ahead of its offer: keep it for the call that offer will start.
    const kept = early.get(from) || [];
    if (kept.length < MAX_EARLY_CANDIDATES) early.set(from, [...kept, init]);
    return;
  }
  peer.remoteCandidates.push(init.candidate);
  if (peer.pc.remoteDescription) await addCandidate(peer.pc, init);
  else peer.pending.push(init);
}

async function flushCandidates(peer) {
  const { pc, pending } = peer;
  peer.pending = [];
  for (const init of pending) await addCandidate(pc, init);
}

async function addCandidate(pc, init) {
  try {
    await pc.addIceCandidate(init);
  } catch (error) {
    note(`could not add candidate ${init.candidate}: ${error.message}`);
  }
}

// A dead media path with signaling alive: the caller offers an ICE restart
// (between browsers, restartIce() inside the same connection; the desktop app
// answers it with a fresh connection of its own, offered with "restart"), and
// offers again every ICE_RESTART_RETRY_MS until the path is back.
async function restartIce(peer, force = false) {
  if (!isCurrent(peer) || peer.role !== "caller" || peer.orphan) return;
  if (!ws || ws.readyState !== WebSocket.OPEN || peer.pc.signalingState !== "stable") return;
  if (peer.pc.connectionState === "connected" && !force) return;
  if (peer.restartTimer === null) peer.iceRestarts += 1; // a new loss, not a retry
  note(`media path to ${peer.id} lost: restarting ICE`);
  clearTimeout(peer.restartTimer);
  peer.restartTimer = setTimeout(() => {
    peer.restartTimer = null;
    if (isCurrent(peer) && peer.pc.connectionState !== "connected") {
      peer.restartTimer = -1; // still the same loss
      afterInbox(() => restartIce(peer));
    }
  }, ICE_RESTART_RETRY_MS);
  await step(peer, async () => {
    peer.pc.restartIce();
    const offer = await peer.pc.createOffer({ iceRestart: true });
    await peer.pc.setLocalDescription(offer);
    sendToPeer(peer.id, { type: "SDP", payload: { type: offer.type, sdp: offer.sdp } });
  });
}

function closePeer(peer) {
  if (!isCurrent(peer)) return;
  peers.delete(peer.id);
  clearInterval(peer.statsTimer);
  clearTimeout(peer.restartTimer);
  if (peer.verifyTimer !== null) clearTimeout(peer.verifyTimer);
  peer.verifyTimer = null;
  if (peer.channel) peer.channel.onmessage = null;
  peer.pc.close();
  for (const track of peer.remote.getTracks()) track.stop();
  if (peer.tile.classList.contains("spotlight")) markSpotlight(null); // show the others
  peer.tile.remove();
  markFirstTile();
  if (peers.size === 0) ui.unmuteRemote.hidden = true;
}

function closeAllPeers() {
  for (const peer of [...peers.values()]) closePeer(peer);
}

function byeToAll() {
  for (const id of peers.keys()) sendToPeer(id, { type: "BYE" });
}

// A BYE's reason, when it has one this page knows ("" otherwise: a plain hang-up).
function byeReason(payload) {
  const reason = payload && typeof payload === "object" ? payload.reason : undefined;
  return reason === "host-ended" || reason === "busy" ? reason : "";
}

function onBye(from, payload) {
  const reason = byeReason(payload);
  const peer = peers.get(from);
  if (reason === "host-ended") {
    // Only from someone we call with or share the room with: anyone may know our id.
    if (everyone().has(from)) hostEnded();
    return;
  }
  // Busy counts only before the call was answered; later it is a plain hang-up.
  if (reason === "busy" && peer && !peer.pc.remoteDescription) {
    closePeer(peer);
    if (peers.size > 0) return refreshCallState(BUSY_TEXT);
    return setState("waiting", BUSY_TEXT, "busy");
  }
  endPeer(from, "hung up");
}

// The host closed its app, and its server goes with it: the call is over for
// everyone, so the page stops trying to get back to that server.
function hostEnded() {
  wanted = null;
  endReconnect();
  closeAllPeers();
  setState("idle", HOST_ENDED_TEXT, "host-ended");
}

// One call is over; the others go on.
function endPeer(id, why) {
  const peer = peers.get(id);
  if (!peer) return;
  const ended = `${nameOf(id)} ${ENDED_TEXT[why]}.`;
  closePeer(peer);
  if (why === "insecure") {
    if (peers.size > 0) {
      app.errorCode = "insecure";
      return refreshCallState(`${INTERCEPTED_TEXT} (${ended})`);
    }
    return setState("error", INTERCEPTED_TEXT, "insecure");
  }
  if (peers.size > 0) return refreshCallState(ended);
  if (wanted !== null && app.room === null && (reconnect.active || reconnect.gaveUp)) {
    // Not back on the server yet: the panel under the status says what happens next.
    return setState("error", `${ended} This page is not connected to the signaling server.`,
      "server-lost");
  }
  if (why === "failed") return setState("error", FAILED_TEXT, "failed");
  const code = why === "gone" ? "unknown-peer" : null;
  setState("waiting", `${ended} Waiting for a peer to join${inRoom()}…`, code);
}

// The page's state from all its connections: connected if any is.
function refreshCallState(lead = "") {
  const states = [...peers.values()].map((peer) => peer.pc.connectionState);
  const say = (text) => (lead ? `${lead} ${text}` : text);
  const connected = states.filter((state) => state === "connected").length;
  if (connected > 1) setState("connected", say(`In a call with ${connected} people${inRoom()}.`));
  else if (connected === 1) setState("connected", say(`In a call${inRoom()}.`));
  else if (states.includes("disconnected")) {
    setState("calling", say("Connection lost; reconnecting…"));
  } else if (states.length && states.every((state) => state === "failed")) {
    setState("error", say(FAILED_TEXT), "failed");
  } else if (lead) setState(app.state, say(app.status));
}

// ---- tiles, frames and stats ------------------------------------------------

function addTile(peer) {
  const tile = ui.tileTemplate.content.firstElementChild.cloneNode(true);
  tile.dataset.peer = peer.id;
  const video = tile.querySelector("video");
  // Held back (no stream, hidden, silent) until the peer may be seen and heard.
  video.hidden = true;
  video.muted = true;
  ui.videos.insertBefore(tile, ui.localTile);
  peer.tile = tile;
  applySpeaker(video);
  showMediaIfAllowed(peer);
  renderTile(peer);
  markFirstTile();
}

function showMediaIfAllowed(peer) {
  if (peer.mediaShown || !peer.tile || !mediaAllowed(peer)) return;
  peer.mediaShown = true;
  const video = peer.tile.querySelector("video");
  video.srcObject = peer.remote;
  video.hidden = false;
  video.muted = false;
  playRemote(video);
}

// The first remote tile keeps the id the two-person page had, for scripts that use it.
function markFirstTile() {
  const videos = ui.videos.querySelectorAll(".remote video");
  videos.forEach((video, index) => {
    if (index === 0) video.id = "remote-video";
    else video.removeAttribute("id");
  });
}

function renderTile(peer) {
  if (!peer.tile) return;
  const shown = presenceOf(peer.id);
  peer.tile.dataset.state = peer.pc.connectionState;
  peer.tile.querySelector(".name").textContent = shown.name;
  const badges = [
    shown.muted && "muted",
    shown.cameraOff && "camera off",
    shown.screen && "sharing screen",
    shown.recording && "recording",
  ].filter(Boolean);
  const spans = badges.map((text) =>
    Object.assign(document.createElement("span"), { className: "badge", textContent: text }),
  );
  peer.tile.querySelector(".badges").replaceChildren(...spans);
  peer.tile.dataset.media = peer.mediaShown ? "shown" : "held";
  peer.tile.querySelector(".held").hidden = peer.mediaShown;
  const { text, verified } = securityText(peer);
  peer.tile.querySelector(".code").textContent = text;
  peer.tile.querySelector(".verified").hidden = !verified;
}

// What the tile says about the call's security.
function securityText(peer) {
  const code = securityCode(peer);
  if (code !== null) return { text: `Code ${code}`, verified: peerVerified(peer) };
  if (peer.noCode) return { text: "No verification code: open this page over https", verified: false };
  const { verifier } = peer;
  if (verifier && verifier.state === "failed") {
    return { text: "No verification code: the exchange failed", verified: false };
  }
  return {
    text: peer.authKey !== null ? "Checking the invite's secret…" : "Working out the code…",
    verified: false,
  };
}

function watchFrames(peer) {
  const video = peer.tile.querySelector("video");
  if (!("requestVideoFrameCallback" in video)) return;
  const onFrame = () => {
    if (!isCurrent(peer)) return;
    peer.framesRendered += 1;
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

async function pollStats(peer) {
  if (!isCurrent(peer)) return;
  const report = await peer.pc.getStats();
  if (!isCurrent(peer)) return; // ended meanwhile: its numbers must not restart the timer
  const pairs = {};
  let selected = null;
  report.forEach((stat) => {
    if (stat.type === "inbound-rtp" && stat.packetsReceived > 0) startCallTimer();
    if (stat.type === "inbound-rtp" && stat.kind === "video") {
      peer.framesReceived = stat.framesDecoded || 0;
      peer.frameWidth = stat.frameWidth || 0;
      peer.frameHeight = stat.frameHeight || 0;
    } else if (stat.type === "outbound-rtp" && stat.kind === "video") {
      peer.framesSent = stat.framesEncoded || 0;
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
    peer.selectedPair = {
      local: describe(pair.localCandidateId),
      remote: describe(pair.remoteCandidateId),
    };
  }
}

function playRemote(video) {
  video.play().catch(() => {
    // Autoplay with sound refused until the user interacts: play muted, offer sound.
    video.muted = true;
    ui.unmuteRemote.hidden = false;
    video.play().catch(() => {});
  });
}

// ---- presence ---------------------------------------------------------------

// Names are shown to others: no invisible characters, runs of spaces folded,
// cut to 64 code points; nothing left is "Guest" (the desktop app's rule too).
function cleanName(value) {
  if (typeof value !== "string") return DEFAULT_NAME;
  const folded = value.replace(UNSHOWABLE, "").split(/\s+/u).filter(Boolean).join(" ");
  const name = [...folded].slice(0, MAX_NAME).join("").trim();
  return name || DEFAULT_NAME;
}

const presenceOf = (id) => presence.get(id) || NO_PRESENCE;

function presenceMessage() {
  return {
    type: "PRESENCE",
    payload: {
      name: app.name,
      muted: app.muted,
      cameraOff: app.cameraOff,
      screen: app.sharing,
      recording: false,
    },
  };
}

function sendPresence() {
  const message = presenceMessage();
  for (const id of everyone()) sendToPeer(id, message);
}

function onPresence(from, payload) {
  if (!payload || typeof payload !== "object") return;
  // Anyone may send one before calling us by id, so keep a bounded number.
  if (!presence.has(from) && presence.size >= KEEP_PRESENCE) {
    presence.delete(presence.keys().next().value);
  }
  presence.set(from, {
    name: cleanName(payload.name),
    muted: payload.muted === true,
    cameraOff: payload.cameraOff === true,
    screen: payload.screen === true,
    recording: payload.recording === true,
  });
  const peer = peers.get(from);
  if (peer) renderTile(peer);
}

function setName(value) {
  app.name = cleanName(value);
  ui.name.value = app.name;
  ui.localName.textContent = `(${app.name})`;
  try {
    localStorage.setItem(NAME_KEY, app.name);
  } catch {
    // Storage may be off (private mode); the name still holds for this page.
  }
  sendPresence();
}

function storedName() {
  try {
    return localStorage.getItem(NAME_KEY);
  } catch {
    return null;
  }
}

// ---- chat ---------------------------------------------------------------------

function openChat(peer, channel) {
  peer.channel = channel;
  channel.onmessage = ({ data }) => {
    if (!isCurrent(peer) || typeof data !== "string") return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return note("ignored a chat frame that is not JSON");
    }
    if (!message || typeof message !== "object") return;
    if (message.type === "CHAT") onChat(peer.id, message.payload, "channel");
    else if (message.type === "RELINK") afterInbox(() => onRelink(peer, message.payload));
    // Anything else is ignored, so both sides can grow.
  };
}

// Send to every peer: over its data channel when open, else through the server.
function sendChat(value) {
  const text = String(value ?? "").trim();
  const length = [...text].length;
  if (length === 0) return showChatError("Type a message first.");
  if (length > MAX_CHAT) {
    const error = `A message can be at most ${MAX_CHAT} characters; this one has ${length}.`;
    return showChatError(error);
  }
  const targets = everyone();
  // Calls from before a lost server still chat over their data channels.
  for (const [id, peer] of peers) {
    if (peer.orphan && peer.channel && peer.channel.readyState === "open") targets.add(id);
  }
  if (targets.size === 0) return showChatError("There is nobody in the call to send to yet.");
  const message = { type: "CHAT", payload: { text } };
  const paths = {};
  for (const id of targets) {
    const channel = peers.get(id)?.channel;
    if (channel && channel.readyState === "open") {
      channel.send(JSON.stringify(message));
      paths[id] = "channel";
    } else {
      sendToPeer(id, message);
      paths[id] = "signaling";
    }
  }
  showChatError("");
  addChatLine({ from: null, name: "You", text, via: "self", paths });
  return true;
}

function onChat(from, payload, via) {
  if (!payload || typeof payload.text !== "string") return;
  const text = payload.text.trim();
  const length = [...text].length;
  if (length === 0 || length > MAX_CHAT) {
    return note(`ignored a chat message of ${length} characters`);
  }
  addChatLine({ from, name: nameOf(from), text, via });
}

function addChatLine(entry) {
  app.chat.push(entry);
  if (app.chat.length > KEEP_CHAT) app.chat.shift();
  const line = document.createElement("li");
  line.textContent = `${entry.name}: ${entry.text}`; // untrusted: text, never HTML
  if (entry.from === null) line.className = "mine";
  ui.chatLog.append(line);
  while (ui.chatLog.children.length > KEEP_CHAT) ui.chatLog.firstElementChild.remove();
  ui.chatLog.scrollTop = ui.chatLog.scrollHeight; // the panel, not the page
}

function showChatError(text) {
  app.chatError = text;
  ui.chatError.textContent = text;
  ui.chatError.hidden = text === "";
  return false;
}

// ---- local media and screen sharing -------------------------------------------

async function startLocalMedia() {
  if (localStream) return;
  const { stream, errors } = await captureMedia(["audio", "video"]);
  localStream = stream;
  showMediaProblem(errors);
  if (!localStream) {
    ui.localCaption.textContent = "You (receiving only)";
    note("no camera or microphone: receiving only");
    return;
  }
  ui.localCaption.textContent = "You";
  ui.localVideo.srcObject = localStream;
  applyTrackSwitches();
  await refreshDevices();
}

// The constraints for one kind: the device chosen last time, if it is still there.
function constraintsFor(kind) {
  const chosen = storedDevice(kind === "video" ? "videoinput" : "audioinput");
  const base = kind === "video" ? { ...VIDEO_SIZE } : {};
  if (chosen) base.deviceId = { ideal: chosen };
  return Object.keys(base).length ? base : true;
}

// Camera and microphone in one request (one prompt); if that fails, each alone,
// since one may be refused or missing while the other works. Returns the
// tracks got as one stream (or null) and, per kind that failed, the reason.
async function captureMedia(kinds) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { stream: null, errors: Object.fromEntries(kinds.map((k) => [k, "insecure"])) };
  }
  const all = Object.fromEntries(kinds.map((kind) => [kind, constraintsFor(kind)]));
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(all), errors: {} };
  } catch (error) {
    note(`getUserMedia ${kinds.join("+")} failed: ${error.name}: ${error.message}`);
    if (kinds.length === 1) return { stream: null, errors: { [kinds[0]]: error.name } };
  }
  const tracks = [];
  const errors = {};
  for (const kind of kinds) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ [kind]: constraintsFor(kind) });
      tracks.push(...stream.getTracks());
    } catch (error) {
      note(`getUserMedia ${kind} failed: ${error.name}: ${error.message}`);
      errors[kind] = error.name;
    }
  }
  return { stream: tracks.length ? new MediaStream(tracks) : null, errors };
}

// What to tell the person about kinds that could not be captured, one
// sentence per reason, each saying what to do. Error names stay in the console.
function mediaProblemText(errors) {
  const byReason = new Map();
  for (const [kind, name] of Object.entries(errors)) {
    const reason = mediaReason(name);
    byReason.set(reason, [...(byReason.get(reason) || []), kind]);
  }
  const sentences = [];
  for (const [reason, kinds] of byReason) {
    const both = kinds.length > 1;
    const what = both ? "the camera and microphone" : kinds[0] === "video" ? "the camera" : "the microphone";
    const What = what[0].toUpperCase() + what.slice(1);
    const them = both ? "them" : "it";
    sentences.push({
      insecure: "This page was not opened over https, so the browser gives it no camera or "
        + "microphone. Open the link with https.",
      denied: `The browser did not allow ${what}. Allow ${them} in the site settings, then press Try again.`,
      missing: `No ${both ? "camera or microphone" : what.replace("the ", "")} was found. Connect ${them}, `
        + "then press Try again.",
      busy: `${What} could not be started: another app may be using ${them}. Close that app, `
        + "then press Try again.",
      other: `${What} could not be started. Press Try again.`,
    }[reason]);
  }
  if (sentences.length && !localStream) {
    sentences.push("Until then you can see and hear the others, but they cannot see or hear you.");
  }
  return sentences.join(" ");
}

function mediaReason(name) {
  if (name === "insecure") return "insecure";
  if (name === "NotAllowedError" || name === "SecurityError") return "denied";
  if (name === "NotFoundError" || name === "OverconstrainedError") return "missing";
  if (name === "NotReadableError" || name === "AbortError") return "busy";
  return "other";
}

function showMediaProblem(errors) {
  mediaErrors = errors;
  const text = mediaProblemText(errors);
  if (text) app.errorCode = "media";
  ui.mediaProblemText.textContent = text;
  ui.mediaProblem.hidden = text === "";
  // "Try again" cannot help a page without https.
  ui.mediaRetry.hidden = Object.values(errors).every((name) => name === "insecure");
}

// "Try again" after a refused or missing camera/microphone: capture what is
// missing and send it on every call. A call that was set up without it only
// has a receiving slot for it, so that call is renegotiated once.
async function retryMedia() {
  const have = new Set((localStream ? localStream.getTracks() : []).map((t) => t.kind));
  const missing = ["audio", "video"].filter((kind) => !have.has(kind));
  if (missing.length === 0) return showMediaProblem({});
  ui.mediaRetry.disabled = true;
  try {
    const { stream, errors } = await captureMedia(missing);
    if (stream) {
      if (!localStream) localStream = new MediaStream();
      for (const track of stream.getTracks()) localStream.addTrack(track);
      ui.localCaption.textContent = "You";
      ui.localVideo.srcObject = localStream;
      applyTrackSwitches();
      for (const peer of [...peers.values()]) await sendNewTracks(peer, stream.getTracks());
      await refreshDevices();
    }
    showMediaProblem(errors);
  } finally {
    ui.mediaRetry.disabled = false;
  }
}

async function sendNewTracks(peer, tracks) {
  let needsOffer = false;
  for (const track of tracks) {
    const transceiver = transceiverOf(peer, track.kind);
    if (!transceiver || transceiver.sender.track) continue;
    const sent = track.kind === "video" ? outgoingVideo() : track;
    await step(peer, async () => {
      await transceiver.sender.replaceTrack(sent);
      if (transceiver.sender.setStreams) transceiver.sender.setStreams(localStream);
      if (!transceiver.direction.startsWith("send")) {
        transceiver.direction = "sendrecv";
        needsOffer = true;
      }
    });
  }
  if (needsOffer && isCurrent(peer)) await renegotiate(peer);
}

// A new offer on a call that is up: the other side answers it as any offer
// (the same certificate, so verification stands).
async function renegotiate(peer) {
  if (peer.pc.signalingState !== "stable" || peer.orphan) return;
  await step(peer, async () => {
    const offer = await peer.pc.createOffer();
    await peer.pc.setLocalDescription(offer);
    peer.negotiations += 1;
    sendToPeer(peer.id, { type: "SDP", payload: { type: offer.type, sdp: offer.sdp } });
  });
}

// ---- devices: camera, microphone and speaker pickers -------------------------

function storedDevice(kind) {
  try {
    return localStorage.getItem(DEVICE_KEY[kind]);
  } catch {
    return null;
  }
}

function storeDevice(kind, id) {
  try {
    localStorage.setItem(DEVICE_KEY[kind], id);
  } catch {
    // Storage may be off (private mode): the choice holds for this page.
  }
}

let speakerId = storedDevice("audiooutput") || "";
const canChooseSpeaker = () => "setSinkId" in HTMLMediaElement.prototype;

// The device a picker should show as chosen: the one in use, else the stored one.
function deviceInUse(kind) {
  if (kind === "audiooutput") return speakerId;
  const track = kind === "videoinput" ? cameraTrack() : microphoneTrack();
  return track ? track.getSettings().deviceId || "" : "";
}

function currentDevices() {
  const lists = {};
  for (const [kind, picker] of Object.entries(ui.pickers)) {
    lists[kind] = {
      chosen: picker.value,
      disabled: picker.disabled,
      options: [...picker.options].map((o) => ({ id: o.value, label: o.textContent })),
    };
  }
  return lists;
}

// Fill the pickers from enumerateDevices. Browsers give names (and usable ids)
// only once the page may use a camera or microphone, so until then a picker
// says what to do instead of listing nameless devices.
async function refreshDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) {
    for (const kind of Object.keys(ui.pickers)) fillPicker(kind, [], "Not available on this page");
    return;
  }
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch (error) {
    note(`enumerateDevices failed: ${error.name}: ${error.message}`);
  }
  const named = (kind) => devices.filter((d) => d.kind === kind && d.deviceId);
  const wait = {
    videoinput: "Allow the camera to choose one",
    audioinput: "Allow the microphone to choose one",
    audiooutput: "Allow the microphone to choose one",
  };
  fillPicker("videoinput", named("videoinput"), wait.videoinput);
  fillPicker("audioinput", named("audioinput"), wait.audioinput);
  if (canChooseSpeaker()) fillPicker("audiooutput", named("audiooutput"), wait.audiooutput);
  else fillPicker("audiooutput", [], "The browser's default (it cannot choose)");
}

function fillPicker(kind, devices, emptyText) {
  const picker = ui.pickers[kind];
  const generic = { videoinput: "Camera", audioinput: "Microphone", audiooutput: "Speaker" }[kind];
  const options = devices.map((device, index) =>
    Object.assign(document.createElement("option"), {
      value: device.deviceId,
      textContent: device.label || `${generic} ${index + 1}`, // a name is text, never HTML
    }),
  );
  if (options.length === 0) {
    options.push(Object.assign(document.createElement("option"), { value: "", textContent: emptyText }));
  }
  picker.replaceChildren(...options);
  const inUse = deviceInUse(kind);
  if (devices.some((d) => d.deviceId === inUse)) picker.value = inUse;
  picker.disabled = devices.length === 0;
}

// Switch to another camera or microphone: capture it, then give the new track
// to every call's existing sender (replaceTrack: no renegotiation, the call
// stays up), and only then stop the old one. The speaker is setSinkId on
// every remote video (which plays the sound).
async function chooseDevice(kind, deviceId) {
  if (kind === "audiooutput") return chooseSpeaker(deviceId);
  const media = kind === "videoinput" ? "video" : "audio";
  const old = media === "video" ? cameraTrack() : microphoneTrack();
  if (old && old.getSettings().deviceId === deviceId) return true;
  const constraints = media === "video"
    ? { video: { ...VIDEO_SIZE, deviceId: { exact: deviceId } } }
    : { audio: { deviceId: { exact: deviceId } } };
  let track;
  try {
    track = (await navigator.mediaDevices.getUserMedia(constraints)).getTracks()[0];
  } catch (error) {
    note(`switching ${media} to ${deviceId} failed: ${error.name}: ${error.message}`);
    const what = media === "video" ? "camera" : "microphone";
    showNotice("device", `That ${what} could not be started: another app may be using it, or it `
      + `was unplugged. Choose another ${what}, or close the other app and choose it again.`);
    await refreshDevices(); // the picker goes back to the one in use
    return false;
  }
  if (!localStream) localStream = new MediaStream();
  if (old) localStream.removeTrack(old);
  localStream.addTrack(track);
  applyTrackSwitches(); // a muted microphone or a camera turned off stays so
  for (const peer of peers.values()) {
    // While sharing, the screen goes on; the new camera comes back after.
    const sent = media === "video" ? outgoingVideo() : track;
    const sender = transceiverOf(peer, media)?.sender;
    if (sender && sender.track !== sent) {
      await sender.replaceTrack(sent).catch((error) =>
        note(`could not switch the ${media} sent to ${peer.id}: ${error.name}`));
    }
  }
  if (old) old.stop();
  ui.localVideo.srcObject = localStream;
  storeDevice(kind, deviceId);
  clearNotice("device");
  if (mediaErrors[media]) showMediaProblem(withoutKey(mediaErrors, media));
  await refreshDevices();
  return true;
}

const withoutKey = (object, key) => Object.fromEntries(Object.entries(object).filter(([k]) => k !== key));

async function chooseSpeaker(deviceId) {
  if (!canChooseSpeaker()) return false;
  try {
    for (const video of ui.videos.querySelectorAll(".remote video")) await video.setSinkId(deviceId);
  } catch (error) {
    note(`setSinkId ${deviceId} failed: ${error.name}: ${error.message}`);
    showNotice("device", "That speaker could not be used. Choose another one.");
    return false;
  }
  speakerId = deviceId;
  storeDevice("audiooutput", deviceId);
  clearNotice("device");
  return true;
}

// A new tile plays on the chosen speaker too.
function applySpeaker(video) {
  if (!speakerId || !canChooseSpeaker()) return;
  video.setSinkId(speakerId).catch((error) => note(`setSinkId on a new tile failed: ${error.name}`));
}

// ---- notices: a problem with what to do, until it is fixed or dismissed --------

function showNotice(topic, text) {
  noticeTopic = topic;
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
}

function clearNotice(topic = noticeTopic) {
  if (topic !== noticeTopic) return;
  noticeTopic = null;
  ui.noticeText.textContent = "";
  ui.notice.hidden = true;
}

function stopLocalMedia() {
  if (!localStream) return;
  for (const track of localStream.getTracks()) track.stop();
  localStream = null;
  ui.localVideo.srcObject = null;
  applyTrackSwitches();
}

const cameraTrack = () => (localStream ? localStream.getVideoTracks()[0] || null : null);
const microphoneTrack = () => (localStream ? localStream.getAudioTracks()[0] || null : null);
const outgoingVideo = () => screenTrack || cameraTrack();

function applyTrackSwitches() {
  if (localStream) {
    for (const track of localStream.getAudioTracks()) track.enabled = !app.muted;
    for (const track of localStream.getVideoTracks()) track.enabled = !app.cameraOff;
  }
  const label = (button, on, text) => {
    button.textContent = text;
    button.setAttribute("aria-pressed", String(on));
  };
  label(ui.mute, app.muted, app.muted ? "Unmute" : "Mute");
  label(ui.camera, app.cameraOff, app.cameraOff ? "Camera on" : "Camera off");
  label(ui.screen, app.sharing, app.sharing ? "Stop sharing" : "Share screen");
  ui.mute.disabled = !localStream || localStream.getAudioTracks().length === 0;
  ui.camera.disabled = cameraTrack() === null;
  // Sharing swaps the camera's track on each connection, so it needs a camera track.
  ui.screen.disabled = cameraTrack() === null || !navigator.mediaDevices?.getDisplayMedia;
}

function setMuted(muted) {
  app.muted = Boolean(muted);
  applyTrackSwitches();
  sendPresence();
}

function setCameraOff(off) {
  app.cameraOff = Boolean(off);
  applyTrackSwitches();
  sendPresence();
}

// The screen replaces the camera's track on every connection, without
// renegotiating; stopping (here, or the browser's own "Stop sharing", which
// ends the track) puts the camera back.
async function setSharing(on) {
  if (Boolean(on) === app.sharing) return app.sharing;
  if (on) {
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
    } catch (error) {
      note(`getDisplayMedia failed: ${error.name}: ${error.message}`);
      app.errorCode = "screen";
      showNotice("screen", error.name === "NotAllowedError"
        ? "Screen sharing did not start: it was cancelled or not allowed. "
          + "Press Share screen to try again."
        : "Screen sharing could not start in this browser. Press Share screen to try again, "
          + "or use another browser.");
      return false;
    }
    clearNotice("screen");
    screenTrack = stream.getVideoTracks()[0];
    screenTrack.addEventListener("ended", () => setSharing(false).catch(fail));
    app.sharing = true;
  } else {
    const track = screenTrack;
    screenTrack = null;
    app.sharing = false;
    if (track) track.stop();
  }
  await sendVideo(outgoingVideo());
  applyTrackSwitches();
  sendPresence();
  return app.sharing;
}

async function sendVideo(track) {
  for (const peer of peers.values()) {
    const sender = videoSender(peer);
    if (!sender) continue;
    try {
      await sender.replaceTrack(track);
    } catch (error) {
      note(`could not switch the video sent to ${peer.id}: ${error.name}`);
    }
  }
}

function videoSender(peer) {
  const transceiver = transceiverOf(peer, "video");
  return transceiver ? transceiver.sender : null;
}

function transceiverOf(peer, kind) {
  // receiver.track always has the m-line's kind, even when the sender has no track.
  return peer.pc.getTransceivers().find((t) => t.receiver.track.kind === kind) || null;
}

// ---- user actions -------------------------------------------------------------

function parseCapacity(value) {
  if (value === null || value === undefined || value === "") return null;
  const capacity = Number(value);
  return Number.isInteger(capacity) && capacity >= MIN_CAPACITY && capacity <= MAX_CAPACITY
    ? capacity
    : NaN;
}

// `capacity` (2-8) is asked for only when given: it sizes a room we create.
async function join(room, capacity = ui.capacity.value) {
  room = String(room).trim();
  ui.room.value = room;
  if (!ROOM_NAME.test(room)) {
    setState("error", ERROR_TEXT["bad-room"], "bad-room");
    return;
  }
  const asked = parseCapacity(capacity);
  if (Number.isNaN(asked)) {
    setState("error", ERROR_TEXT["bad-capacity"], "bad-capacity");
    return;
  }
  ui.capacity.value = asked === null ? "" : String(asked);
  if (room === app.room && ws) return; // already there
  // The invite's secret opens the invite's room: only the room key is sent.
  let key = null;
  let authKey = null;
  if (invite.secret !== null && (invite.room === null || invite.room === room)) {
    if (!canVerify()) {
      setState("error", NOT_SECURE_TEXT, "not-secure");
      return;
    }
    try {
      key = await security.roomKey(invite.secret, room);
      authKey = await security.fingerprintAuthKey(invite.secret, room);
    } catch (error) {
      if (!(error instanceof security.SecurityError)) throw error;
      setState("error", BAD_SECRET_TEXT, "bad-secret");
      return;
    }
  }
  const url = new URL(location.href);
  url.searchParams.set("room", room);
  if (asked === null) url.searchParams.delete("capacity");
  else url.searchParams.set("capacity", String(asked));
  history.replaceState(null, "", url);
  app.errorCode = null;
  if (peers.size > 0 && app.room !== room) {
    byeToAll(); // moving to another room ends these calls
    closeAllPeers();
    stopCallTimer();
  }
  // A join of its own replaces any reconnection under way, and the cues it held.
  endReconnect();
  resetRelinkHold();
  const target = { room, capacity: asked, key, authKey };
  wanted = target;
  setState("connecting", "Connecting…");
  await startLocalMedia();
  try {
    await connectSignaling();
  } catch {
    return; // onSignalingLost has said so, and retries
  }
  if (wanted === target) sendJoin(target);
}

function hangUp() {
  byeToAll();
  closeAllPeers();
  if (app.room !== null) send({ type: "leave" });
  app.room = null;
  app.members = [];
  roomAuthKey = null;
  joining = null;
  wanted = null;
  current = null;
  endReconnect();
  resetRelinkHold();
  if (screenTrack) screenTrack.stop();
  screenTrack = null;
  app.sharing = false;
  stopLocalMedia();
  stopCallTimer();
  clearNotice();
  showMediaProblem({}); // asked again at the next join
  setState("idle", "You left the call. Join a room to call again.");
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  join(ui.room.value).catch(fail);
});
ui.name.addEventListener("change", () => setName(ui.name.value));
ui.hangup.addEventListener("click", hangUp);
ui.mute.addEventListener("click", () => setMuted(!app.muted));
ui.camera.addEventListener("click", () => setCameraOff(!app.cameraOff));
ui.screen.addEventListener("click", async () => {
  ui.screen.disabled = true; // one screen picker at a time
  await setSharing(!app.sharing).catch(fail);
  applyTrackSwitches();
});
ui.unmuteRemote.addEventListener("click", () => {
  ui.unmuteRemote.hidden = true;
  for (const peer of peers.values()) {
    if (!peer.mediaShown) continue; // not verified yet: stays silent
    const video = peer.tile.querySelector("video");
    video.muted = false;
    playRemote(video);
  }
});
ui.chatForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (sendChat(ui.chatInput.value)) ui.chatInput.value = "";
});
window.addEventListener("pagehide", () => {
  leaving = true;
  byeToAll();
});
ui.reconnectCancel.addEventListener("click", cancelReconnect);
ui.reconnectRetry.addEventListener("click", retryReconnect);
ui.mediaRetry.addEventListener("click", () => retryMedia().catch(fail));
ui.noticeClose.addEventListener("click", () => clearNotice());
for (const [kind, picker] of Object.entries(ui.pickers)) {
  picker.addEventListener("change", () => chooseDevice(kind, picker.value).catch(fail));
}
if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
  navigator.mediaDevices.addEventListener("devicechange", () => refreshDevices().catch(fail));
}
ui.fullscreen.addEventListener("click", () => toggleFullscreen());
ui.videos.addEventListener("dblclick", (event) => {
  const tile = event.target.closest("figure");
  if (tile) toggleFullscreen(tile);
});
document.addEventListener("fullscreenchange", renderFullscreen);
ui.shortcutsButton.addEventListener("click", () => toggleShortcuts());
document.addEventListener("keydown", onShortcut);

// ---- the call timer ---------------------------------------------------------------

// Runs from the first media packet of a call until nobody is left in it. A call
// re-formed after a lost server is the same call: the timer goes on.
function startCallTimer() {
  if (callStartedAt !== null) return;
  callStartedAt = performance.now();
  ui.callTimer.hidden = false;
  renderCallTimer();
  callTicker = setInterval(renderCallTimer, 1000);
}

function stopCallTimer() {
  clearInterval(callTicker);
  callTicker = null;
  callStartedAt = null;
  ui.callTimer.hidden = true;
  ui.callTimer.textContent = "0:00";
}

function renderCallTimer() {
  if (callStartedAt === null) return;
  const text = formatDuration(performance.now() - callStartedAt);
  ui.callTimer.textContent = text;
  ui.callTimer.setAttribute("aria-label", `Call length ${text}`);
}

// m:ss, or h:mm:ss from an hour on.
function formatDuration(ms) {
  const total = Math.floor(ms / 1000);
  const [hours, minutes, seconds] = [Math.floor(total / 3600), Math.floor(total / 60) % 60, total % 60];
  const pad = (n) => String(n).padStart(2, "0");
  return hours > 0 ? `${hours}:${pad(minutes)}:${pad(seconds)}` : `${minutes}:${pad(seconds)}`;
}

// ---- full screen ------------------------------------------------------------------

// The stage (videos and call controls) goes full screen; from a double-click,
// with that tile large ("spotlight"). Escape leaves: browsers do that
// themselves, and the key handler does it where a page sees the key first.
async function setFullscreen(on, tile = null) {
  if (!document.fullscreenEnabled) {
    showNotice("fullscreen", "This browser cannot show the call full screen here.");
    return false;
  }
  try {
    if (on) {
      markSpotlight(tile);
      if (!document.fullscreenElement) await ui.stage.requestFullscreen();
    } else if (document.fullscreenElement) {
      await document.exitFullscreen();
    }
  } catch (error) {
    note(`full screen ${on ? "request" : "exit"} failed: ${error.name}: ${error.message}`);
    if (on) {
      markSpotlight(null);
      showNotice("fullscreen", "Full screen did not start. Press Full screen again, or press F.");
    }
    return false;
  }
  clearNotice("fullscreen");
  return true;
}

function toggleFullscreen(tile = null) {
  return setFullscreen(!document.fullscreenElement, tile).catch(fail);
}

function markSpotlight(tile) {
  for (const figure of ui.videos.querySelectorAll("figure.spotlight")) figure.classList.remove("spotlight");
  if (tile) tile.classList.add("spotlight");
  ui.stage.classList.toggle("has-spotlight", tile !== null);
}

function renderFullscreen() {
  const on = document.fullscreenElement !== null;
  ui.fullscreen.textContent = on ? "Leave full screen" : "Full screen";
  ui.fullscreen.setAttribute("aria-pressed", String(on));
  if (!on) markSpotlight(null);
}

// ---- keyboard shortcuts -------------------------------------------------------------

// One table for the keys, their help text and the aria-keyshortcuts of the
// buttons they press, so the list shown with `?` is always the keys that work.
const SHORTCUTS = [
  { key: "m", text: "Mute or unmute your microphone", button: ui.mute },
  { key: "v", text: "Turn your camera off or on", button: ui.camera },
  { key: "s", text: "Share your screen, or stop sharing", button: ui.screen },
  { key: "c", text: "Write in the chat", run: () => ui.chatInput.focus() },
  { key: "f", text: "Full screen, or leave it", run: () => toggleFullscreen(), button: ui.fullscreen },
  { key: "h", text: "Hang up", button: ui.hangup },
  { key: "?", text: "Show or hide this list", run: () => toggleShortcuts(), button: ui.shortcutsButton },
  { key: "Escape", text: "Leave full screen, or close this list" },
];

function renderShortcuts() {
  const rows = [];
  for (const { key, text, button } of SHORTCUTS) {
    const term = document.createElement("dt");
    term.append(Object.assign(document.createElement("kbd"), { textContent: key === "Escape" ? "Esc" : key }));
    rows.push(term, Object.assign(document.createElement("dd"), { textContent: text }));
    if (button) button.setAttribute("aria-keyshortcuts", key === "?" ? "?" : key.toUpperCase());
  }
  ui.shortcutsList.replaceChildren(...rows);
}

function toggleShortcuts(open = !ui.shortcuts.open) {
  if (open && !ui.shortcuts.open) ui.shortcuts.showModal();
  else if (!open && ui.shortcuts.open) ui.shortcuts.close();
}

// Keys act only when no field has the keyboard (typing "m" in the chat must
// type an "m") and without Ctrl/Alt/Meta (the browser's own shortcuts).
function onShortcut(event) {
  if (event.ctrlKey || event.altKey || event.metaKey || event.isComposing) return;
  if (event.key === "Escape") {
    if (document.fullscreenElement) setFullscreen(false).catch(fail);
    return; // an open shortcut list closes by itself (it is a modal <dialog>)
  }
  const typing = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
  if (typing) return;
  const shortcut = SHORTCUTS.find(({ key }) => key === event.key.toLowerCase() || key === event.key);
  if (!shortcut) return;
  if (ui.shortcuts.open && shortcut.key !== "?") return; // the list is on top: only ? or Esc
  event.preventDefault(); // "c" must not also type a "c" into the chat it focuses
  if (shortcut.run) shortcut.run();
  else if (!shortcut.button.disabled) shortcut.button.click();
}

// Errors reach the screen in plain words; the details go to the console.
function fail(error) {
  console.error(error);
  note(`internal error: ${error && error.message}`);
  setState("error", "Something went wrong in this page. Reload it to join again.", "internal");
}

// `#secret=...&pin=...` of an invite link, read once. A fragment without a
// secret (or none) means an open room, as in protocol v1.
function readInvite() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const secret = fragment.get("secret");
  const room = new URLSearchParams(location.search).get("room");
  return { secret: secret === null ? null : secret.trim(), room: room === null ? null : room.trim() };
}

const params = new URLSearchParams(location.search);
app.name = cleanName(params.get("name") ?? storedName());
ui.name.value = app.name;
ui.localName.textContent = `(${app.name})`;
applyTrackSwitches();
renderShortcuts();
renderFullscreen();
refreshDevices().catch(fail);
if (params.get("room") !== null) {
  join(params.get("room"), params.get("capacity")).catch(fail);
} else {
  setState("idle", "Enter a room name to join.");
}
