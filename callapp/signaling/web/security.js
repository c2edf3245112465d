// callapp security v1 on WebCrypto: room secrets, authenticated DTLS
// fingerprints and verification codes. The same derivations, byte for byte,
// as callapp/call/security.py (docs/security.md writes them out):
//
//   secret      = 16 random bytes, base64url (22 characters)
//   room key    = b64u(HKDF(ikm=secret, salt="callapp/v1/room-key", info=room, L=32))
//   auth key    = HKDF(ikm=secret, salt="callapp/v1/fingerprint-mac", info=room, L=32)
//   fp MAC      = b64u(HMAC-SHA256(auth key, "callapp/v1/fp|" + sender + "|" + receiver + "|" + fp))
//   commitment  = b64u(SHA-256("callapp/v1/sas-commit|" + b64u(nonce_o)))
//   code bytes  = HKDF(ikm=nonce_o || nonce_a, salt="callapp/v1/sas",
//                      info=offerer id + "|" + answerer id + "|" + offerer fp + "|" + answerer fp, L=5)
//   code        = three 13-bit numbers (MSB first) + 1000, "1234 5678 9012"
//
// base64url is RFC 4648's URL-safe alphabet without padding; strings are
// UTF-8; fingerprints are normalized to "sha-256 AB:01:..." first.
//
// An ES module, imported by app.js (`import * as security from "./security.js"`).
// WebCrypto needs a secure context: https, or http://127.0.0.1 / localhost.
//
// One leg's exchange is a Verifier; its messages ride in signaling `data`:
//   {"type": "VERIFY", "payload": {"step": "commit", "commitment": C}}  offerer -> answerer
//   {"type": "VERIFY", "payload": {"step": "nonce", "nonce": NA}}       answerer -> offerer
//   {"type": "VERIFY", "payload": {"step": "reveal", "nonce": NO}}      offerer -> answerer
//   {"type": "VERIFY", "payload": {"step": "mac", "mac": M}}            both, rooms with a secret

export const SECRET_BYTES = 16;
export const NONCE_BYTES = 32;
export const KEY_BYTES = 32;
export const CODE_BYTES = 5;
export const VERIFY = "VERIFY";
export const CODE_PATTERN = /^[1-9][0-9]{3} [1-9][0-9]{3} [1-9][0-9]{3}$/;

const ROOM_KEY_SALT = "callapp/v1/room-key";
const FINGERPRINT_MAC_SALT = "callapp/v1/fingerprint-mac";
const SAS_SALT = "callapp/v1/sas";
const FINGERPRINT_MAC_LABEL = "callapp/v1/fp|";
const COMMITMENT_LABEL = "callapp/v1/sas-commit|";

/** A secret, fingerprint, nonce or SDP that is not what it must be; `message` says why. */
export class SecurityError extends Error {
  constructor(message) {
    super(message);
    this.name = "SecurityError";
  }
}

function subtle() {
  if (!globalThis.crypto || !globalThis.crypto.subtle) {
    throw new SecurityError(
      "This page is not a secure context (https or localhost), so it cannot check call security.");
  }
  return globalThis.crypto.subtle;
}

// -- encodings -----------------------------------------------------------------

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const encoder = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function utf8(text, what) {
  if (typeof text !== "string") throw new SecurityError(`${what} must be text, not ${typeof text}.`);
  // Python refuses lone surrogates; so must we, or the two would hash different bytes.
  if (LONE_SURROGATE.test(text)) throw new SecurityError(`${what} is not valid Unicode text.`);
  return encoder.encode(text);
}

/** `bytes` (a Uint8Array) in base64url without padding. */
export function b64urlEncode(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Exactly `length` bytes from their canonical unpadded base64url text, or SecurityError. */
export function b64urlDecode(text, length, what) {
  const chars = Math.floor((length * 8 + 5) / 6);
  if (typeof text !== "string") throw new SecurityError(`${what} must be text, not ${typeof text}.`);
  if (!BASE64URL.test(text)) {
    throw new SecurityError(
      `${what} may only contain letters, digits, '-' and '_' (base64url without '=').`);
  }
  if (text.length !== chars) {
    throw new SecurityError(`${what} is ${chars} characters long; this one has ${text.length}.`);
  }
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  if (b64urlEncode(bytes) !== text) {
    throw new SecurityError(`${what} is not a valid encoding (its last character is wrong).`);
  }
  return bytes;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

// -- HKDF, HMAC, SHA-256 -------------------------------------------------------

/** RFC 5869 HKDF-SHA256 of Uint8Arrays; resolves to `length` bytes. */
export async function hkdf(ikm, salt, info, length) {
  const key = await subtle().importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await subtle().deriveBits(
    { name: "HKDF", hash: "SHA-256", salt, info }, key, length * 8);
  return new Uint8Array(bits);
}

function hmacKey(raw, usage) {
  return subtle().importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

async function sha256(bytes) {
  return new Uint8Array(await subtle().digest("SHA-256", bytes));
}

// -- room secrets ----------------------------------------------------------------

/** A fresh room secret: 16 bytes from the CSPRNG, as 22 base64url characters. */
export function newRoomSecret() {
  return b64urlEncode(randomBytes(SECRET_BYTES));
}

/** The 16 bytes of a room secret, or SecurityError saying what is wrong. */
export function decodeSecret(text) {
  return b64urlDecode(text, SECRET_BYTES, "A room secret");
}

/** The proof of the secret sent in `join` as `"key"`: all the server ever sees. */
export async function roomKey(secret, room) {
  const ikm = decodeSecret(secret);
  return b64urlEncode(
    await hkdf(ikm, encoder.encode(ROOM_KEY_SALT), utf8(room, "The room name"), KEY_BYTES));
}

/** The key of the fingerprint MACs (32 bytes): derived apart from the room key, never sent. */
export async function fingerprintAuthKey(secret, room) {
  const ikm = decodeSecret(secret);
  return hkdf(ikm, encoder.encode(FINGERPRINT_MAC_SALT), utf8(room, "The room name"), KEY_BYTES);
}

// -- fingerprints ----------------------------------------------------------------

const FINGERPRINT = /^[ \t]*[Ss][Hh][Aa]-256[ \t]+((?:[0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2})[ \t]*$/;
const ALGORITHM_NAME = /^[A-Za-z][A-Za-z0-9-]{0,19}$/;
const ATTRIBUTE = "a=fingerprint:";
// Python's str.splitlines() separators, as in security.py: a superset of what
// any SDP parser splits on, so no fingerprint line can hide inside another.
const LINE_BREAK = /\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]/;
// Python's str.split() whitespace (ASCII and Unicode), for naming an algorithm.
const WORDS = /[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

function words(text) {
  return text.split(WORDS).filter((word) => word !== "");
}

/** "sha-256 AB:01:..." from any spelling of a sha-256 fingerprint, or SecurityError. */
export function normalizeFingerprint(text) {
  if (typeof text !== "string") {
    throw new SecurityError(`A fingerprint must be text, not ${typeof text}.`);
  }
  const match = FINGERPRINT.exec(text);
  if (match) return "sha-256 " + match[1].toUpperCase();
  const found = words(text);
  if (found.length === 2 && ALGORITHM_NAME.test(found[0]) && found[0].toLowerCase() !== "sha-256") {
    throw new SecurityError(`Only sha-256 fingerprints are supported, not '${found[0]}'.`);
  }
  throw new SecurityError(
    "A fingerprint is 'sha-256' and 32 bytes in hex separated by colons ('sha-256 AB:01:...:EF').");
}

function sdpLines(sdp) {
  if (typeof sdp !== "string") throw new SecurityError(`An SDP must be text, not ${typeof sdp}.`);
  return sdp.split(LINE_BREAK);
}

function algorithm(line) {
  const found = words(line.slice(ATTRIBUTE.length));
  return found.length ? found[0].toLowerCase() : "";
}

/**
 * The normalized sha-256 fingerprint of an SDP (session- or media-level): the
 * first a=fingerprint:sha-256 line; any other sha-256 line must name the same
 * certificate, or SecurityError.
 */
export function sdpFingerprint(sdp) {
  let found = null;
  for (const line of sdpLines(sdp)) {
    if (line.startsWith(ATTRIBUTE) && algorithm(line) === "sha-256") {
      const fingerprint = normalizeFingerprint(line.slice(ATTRIBUTE.length));
      if (found === null) found = fingerprint;
      else if (fingerprint !== found) {
        throw new SecurityError("The session description names two different certificates.");
      }
    }
  }
  if (found === null) throw new SecurityError("The session description has no sha-256 fingerprint.");
  return found;
}

/** Our own fingerprint, from pc.localDescription.sdp. */
export function localFingerprint(sdp) {
  return sdpFingerprint(sdp);
}

/** The peer's fingerprint, from the SDP it sent (read it from the text given to pinRemoteSdp). */
export function remoteFingerprint(sdp) {
  return sdpFingerprint(sdp);
}

/**
 * The remote SDP to give setRemoteDescription: only its sha-256 fingerprint
 * lines left. Chrome keeps the *last* a=fingerprint of a section, so an added
 * sha-512 line of another certificate would otherwise be the one DTLS checks.
 */
export function pinRemoteSdp(sdp) {
  sdpFingerprint(sdp);
  const lines = sdpLines(sdp);
  const endsWithBreak = lines[lines.length - 1] === "";
  if (endsWithBreak) lines.pop();
  const kept = lines.filter((line) => !(line.startsWith(ATTRIBUTE) && algorithm(line) !== "sha-256"));
  return kept.join("\r\n") + (endsWithBreak ? "\r\n" : "");
}

// -- fingerprint MACs --------------------------------------------------------------

function checkKey(authKey) {
  if (!(authKey instanceof Uint8Array) || authKey.length !== KEY_BYTES) {
    throw new SecurityError(`A fingerprint-auth key is ${KEY_BYTES} bytes.`);
  }
  return authKey;
}

function macInput(sender, receiver, fingerprint) {
  const text = FINGERPRINT_MAC_LABEL + sender + "|" + receiver + "|" + normalizeFingerprint(fingerprint);
  return utf8(text, "A connection id");
}

/** Proof from `sender` to `receiver` that `fingerprint` is its own (base64url). */
export async function fingerprintMac(authKey, sender, receiver, fingerprint) {
  const data = macInput(sender, receiver, fingerprint);
  const key = await hmacKey(checkKey(authKey), "sign");
  return b64urlEncode(new Uint8Array(await subtle().sign("HMAC", key, data)));
}

/**
 * Whether `mac` (anything the peer sent) is fingerprintMac of these values;
 * `fingerprint` is the one read from the sender's SDP. WebCrypto's verify
 * compares in constant time.
 */
export async function checkFingerprintMac(authKey, sender, receiver, fingerprint, mac) {
  const data = macInput(sender, receiver, fingerprint);
  const key = await hmacKey(checkKey(authKey), "verify");
  let signature;
  try {
    signature = b64urlDecode(mac, KEY_BYTES, "A MAC");
  } catch {
    return false;
  }
  return subtle().verify("HMAC", key, signature, data);
}

// -- verification code ---------------------------------------------------------------

/** 32 fresh random bytes, base64url (43 characters). */
export function newNonce() {
  return b64urlEncode(randomBytes(NONCE_BYTES));
}

/** The offerer's commitment to its nonce, sent before it sees the answerer's. */
export async function sasCommitment(nonceO) {
  b64urlDecode(nonceO, NONCE_BYTES, "The offerer's nonce");
  return b64urlEncode(await sha256(encoder.encode(COMMITMENT_LABEL + nonceO)));
}

function equalConstantTime(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Whether the revealed `nonceO` is the one `commitment` bound. */
export async function checkCommitment(commitment, nonceO) {
  if (typeof commitment !== "string" || typeof nonceO !== "string") return false;
  let expected;
  try {
    expected = await sasCommitment(nonceO);
  } catch (error) {
    if (error instanceof SecurityError) return false;
    throw error;
  }
  return equalConstantTime(expected, commitment);
}

/** Matrix's decimal SAS of 5 bytes: three 13-bit numbers (MSB first) + 1000. */
export function codeText(b) {
  if (b.length !== CODE_BYTES) throw new RangeError(`a code is made of ${CODE_BYTES} bytes`);
  return [
    ((b[0] << 5) | (b[1] >> 3)) + 1000,
    (((b[1] & 0x07) << 10) | (b[2] << 2) | (b[3] >> 6)) + 1000,
    (((b[3] & 0x3f) << 7) | (b[4] >> 1)) + 1000,
  ].join(" ");
}

/** The verification code both sides of a leg show, "1234 5678 9012". */
export async function sasCode(nonceO, nonceA, offererId, answererId, offererFp, answererFp) {
  const ikm = concat(
    b64urlDecode(nonceO, NONCE_BYTES, "The offerer's nonce"),
    b64urlDecode(nonceA, NONCE_BYTES, "The answerer's nonce"));
  const info = [offererId, answererId, normalizeFingerprint(offererFp), normalizeFingerprint(answererFp)]
    .join("|");
  return codeText(await hkdf(ikm, encoder.encode(SAS_SALT), utf8(info, "A connection id"), CODE_BYTES));
}

// -- one leg's exchange -----------------------------------------------------------------

const FAILURES = {
  mac: "The other side's connection is not the one the room secret vouches for: "
    + "the call is being intercepted.",
  commitment: "The other side's verification nonce does not match what it committed to: "
    + "the call may be intercepted.",
  protocol: "The other side broke the verification exchange",
  timeout: "The other side did not finish the verification exchange in time.",
};

/** {"type": "VERIFY", "payload": {"step": step, ...fields}}. */
export function verifyMessage(step, fields = {}) {
  return { type: VERIFY, payload: { step, ...fields } };
}

function validB64(value, length) {
  try {
    b64urlDecode(value, length, "A value");
    return true;
  } catch {
    return false;
  }
}

// A step name for an error message, the same words as security.py.
function describe(step) {
  if (typeof step === "string") return `'${Array.from(step).slice(0, 20).join("")}'`;
  return step === null || step === undefined ? "(none)" : "(not text)";
}

function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * One leg's verification, as security.py's Verifier: make it once both
 * fingerprints are fixed (the offerer after applying the answer, the answerer
 * before sending its answer), send what `await start()` gives, then give every
 * VERIFY message of that peer to `await receive(message)` and send what it
 * gives. `state` is "running", then "done" (`code` set; `peerVerified` true
 * when the room secret authenticated the peer's fingerprint) or "failed"
 * (`reason`: "mac" | "commitment" | "protocol" | "timeout", and `message`).
 * Calls are queued, so messages are handled one at a time, in order.
 */
export class Verifier {
  constructor(role, { localId, remoteId, localFingerprint, remoteFingerprint, authKey = null }) {
    if (role !== "offerer" && role !== "answerer") {
      throw new RangeError(`role must be "offerer" or "answerer", not ${JSON.stringify(role)}`);
    }
    this.role = role;
    this.localId = localId;
    this.remoteId = remoteId;
    this.localFingerprint = normalizeFingerprint(localFingerprint);
    this.remoteFingerprint = normalizeFingerprint(remoteFingerprint);
    this.authKey = authKey === null ? null : checkKey(authKey);
    this.state = "running";
    this.code = null;
    this.peerVerified = false;
    this.reason = null;
    this.message = null;
    this._nonce = newNonce();
    this._started = false;
    this._peerCommitment = null;
    this._peerNonceSeen = false;
    this._macSeen = false;
    this._queue = Promise.resolve();
  }

  /** Whether this exchange checks fingerprint MACs (the room has a secret). */
  get authenticated() {
    return this.authKey !== null;
  }

  /** The first messages to send: the commitment (offerer) and our MAC (with a secret). */
  start() {
    if (this._started) throw new Error("Verifier.start() was already called");
    this._started = true;
    return this._enqueue(async () => {
      const out = [];
      if (this.role === "offerer") {
        out.push(verifyMessage("commit", { commitment: await sasCommitment(this._nonce) }));
      }
      if (this.authKey !== null) {
        const mac = await fingerprintMac(this.authKey, this.localId, this.remoteId, this.localFingerprint);
        out.push(verifyMessage("mac", { mac }));
      }
      return out;
    });
  }

  /** Take one VERIFY message from the peer; resolves to the messages to send in reply. */
  receive(message) {
    if (!this._started) throw new Error("call Verifier.start() before Verifier.receive()");
    return this._enqueue(() => this._receive(message));
  }

  /** The engine's deadline passed: fail unless the exchange is over. */
  timedOut() {
    if (this.state === "running") this._fail("timeout");
  }

  _enqueue(work) {
    const result = this._queue.then(work);
    this._queue = result.catch(() => {});
    return result;
  }

  async _receive(message) {
    if (this.state === "failed") return [];
    if (!isObject(message) || message.type !== VERIFY) {
      return this._fail("protocol", "a message that is not VERIFY");
    }
    const payload = message.payload;
    if (!isObject(payload)) return this._fail("protocol", "a VERIFY message without a payload");
    const step = payload.step;
    if (this.state === "done") return this._fail("protocol", `${describe(step)} after the exchange ended`);
    if (step === "mac") return this._onMac(payload.mac);
    if (this.role === "offerer" && step === "nonce") return this._onNonce(payload.nonce);
    if (this.role === "answerer" && step === "commit") return this._onCommit(payload.commitment);
    if (this.role === "answerer" && step === "reveal") return this._onReveal(payload.nonce);
    return this._fail("protocol", `an unexpected step ${describe(step)}`);
  }

  async _onMac(mac) {
    if (this._macSeen) return this._fail("protocol", "a second MAC");
    this._macSeen = true;
    if (this.authKey === null) return []; // the peer thinks the room has a secret; we cannot check it
    const ok = await checkFingerprintMac(
      this.authKey, this.remoteId, this.localId, this.remoteFingerprint, mac);
    if (this.state === "failed") return [];
    if (!ok) return this._fail("mac");
    this.peerVerified = true;
    this._finishIfComplete();
    return [];
  }

  async _onNonce(nonceA) {
    if (this._peerNonceSeen) return this._fail("protocol", "a second nonce");
    this._peerNonceSeen = true;
    if (typeof nonceA !== "string" || !validB64(nonceA, NONCE_BYTES)) {
      return this._fail("protocol", "a malformed nonce");
    }
    const code = await this._code(this._nonce, nonceA);
    if (this.state === "failed") return [];
    this.code = code;
    this._finishIfComplete();
    return [verifyMessage("reveal", { nonce: this._nonce })];
  }

  _onCommit(commitment) {
    if (this._peerCommitment !== null) return this._fail("protocol", "a second commitment");
    if (typeof commitment !== "string" || !validB64(commitment, KEY_BYTES)) {
      return this._fail("protocol", "a malformed commitment");
    }
    this._peerCommitment = commitment;
    return [verifyMessage("nonce", { nonce: this._nonce })];
  }

  async _onReveal(nonceO) {
    if (this._peerCommitment === null) return this._fail("protocol", "a reveal before the commitment");
    if (this._peerNonceSeen) return this._fail("protocol", "a second reveal");
    this._peerNonceSeen = true;
    if (!(await checkCommitment(this._peerCommitment, nonceO))) return this._fail("commitment");
    const code = await this._code(nonceO, this._nonce);
    if (this.state === "failed") return [];
    this.code = code;
    this._finishIfComplete();
    return [];
  }

  _code(nonceO, nonceA) {
    return this.role === "offerer"
      ? sasCode(nonceO, nonceA, this.localId, this.remoteId, this.localFingerprint, this.remoteFingerprint)
      : sasCode(nonceO, nonceA, this.remoteId, this.localId, this.remoteFingerprint, this.localFingerprint);
  }

  _finishIfComplete() {
    if (this.code !== null && (this.authKey === null || this.peerVerified)) this.state = "done";
  }

  _fail(reason, detail = "") {
    this.state = "failed";
    this.reason = reason;
    this.code = null;
    this.message = FAILURES[reason] + (detail ? ` (${detail}).` : "");
    return [];
  }
}
