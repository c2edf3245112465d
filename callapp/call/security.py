"""Room secrets, authenticated DTLS fingerprints and verification codes (security v1).

The pure cryptographic core of docs/security.md, shared byte for byte with the
browser client (``callapp/signaling/web/security.js``). Standard library only;
no I/O: the call engine and the signaling client call these functions and
carry the messages.

Derivations (HKDF is RFC 5869 HKDF-SHA256; base64url is RFC 4648's URL-safe
alphabet without padding; every string is UTF-8)::

    secret       = 16 random bytes, written base64url (22 characters)
    room key     = b64u(HKDF(ikm=secret, salt="callapp/v1/room-key", info=room, L=32))
    auth key     = HKDF(ikm=secret, salt="callapp/v1/fingerprint-mac", info=room, L=32)
    fp MAC       = b64u(HMAC-SHA256(auth key,
                        "callapp/v1/fp|" + sender id + "|" + receiver id + "|" + fingerprint))
    commitment   = b64u(SHA-256("callapp/v1/sas-commit|" + b64u(nonce_o)))
    code bytes   = HKDF(ikm=nonce_o || nonce_a, salt="callapp/v1/sas",
                        info=offerer id + "|" + answerer id + "|" + offerer fp + "|" + answerer fp,
                        L=5)
    code         = three 13-bit numbers of the code bytes (MSB first) + 1000: "1234 5678 9012"

A fingerprint is always normalized first: ``"sha-256 "`` and the 32 bytes in
upper-case hex separated by colons.

One leg's verification exchange is a :class:`Verifier`; its messages travel
inside signaling ``data`` like every other call message::

    {"type": "VERIFY", "payload": {"step": "commit", "commitment": C}}   offerer -> answerer
    {"type": "VERIFY", "payload": {"step": "nonce", "nonce": NA}}        answerer -> offerer
    {"type": "VERIFY", "payload": {"step": "reveal", "nonce": NO}}       offerer -> answerer
    {"type": "VERIFY", "payload": {"step": "mac", "mac": M}}             both, rooms with a secret

Every function that reads something a person typed or a peer sent raises
:exc:`SecurityError` (a :exc:`ValueError`) with a sentence people can read;
the ``check_*`` functions return ``False`` for a malformed value from the peer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias

#: Bytes of a room secret (128 bits).
SECRET_BYTES: Final = 16
#: Bytes of each verification nonce.
NONCE_BYTES: Final = 32
#: Bytes of the room key, the fingerprint-auth key, a MAC and a commitment.
KEY_BYTES: Final = 32
#: Bytes of the verification code (40 bits, 39 of them shown).
CODE_BYTES: Final = 5

ROOM_KEY_SALT: Final = b"callapp/v1/room-key"
FINGERPRINT_MAC_SALT: Final = b"callapp/v1/fingerprint-mac"
SAS_SALT: Final = b"callapp/v1/sas"
FINGERPRINT_MAC_LABEL: Final = "callapp/v1/fp|"
COMMITMENT_LABEL: Final = "callapp/v1/sas-commit|"

#: ``type`` of the call messages a :class:`Verifier` sends and reads.
VERIFY: Final = "VERIFY"

#: A verification code: three numbers 1000-9191.
CODE_PATTERN: Final = re.compile(r"[1-9][0-9]{3} [1-9][0-9]{3} [1-9][0-9]{3}")

Role: TypeAlias = Literal["offerer", "answerer"]
VerifierState: TypeAlias = Literal["running", "done", "failed"]
#: Why a verification failed: ``mac`` (the peer's fingerprint is not the one the
#: secret vouches for), ``commitment`` (the revealed nonce is not the committed
#: one), ``protocol`` (a malformed or out-of-order message), ``timeout``.
FailReason: TypeAlias = Literal["mac", "commitment", "protocol", "timeout"]
Message: TypeAlias = dict[str, Any]


class SecurityError(ValueError):
    """A secret, fingerprint, nonce or SDP that is not what it must be; ``str()`` says why."""


# -- encodings ---------------------------------------------------------------

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """``data`` in base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, length: int, what: str) -> bytes:
    """Exactly ``length`` bytes from their canonical unpadded base64url text.

    ``what`` names the value in the error ("A room secret", "A nonce", ...).
    """
    chars = (length * 8 + 5) // 6
    if not isinstance(text, str):
        raise SecurityError(f"{what} must be text, not {type(text).__name__}.")
    if not _BASE64URL.fullmatch(text):
        raise SecurityError(
            f"{what} may only contain letters, digits, '-' and '_' (base64url without '=')."
        )
    if len(text) != chars:
        raise SecurityError(f"{what} is {chars} characters long; this one has {len(text)}.")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:  # spare low bits set: another spelling of the same bytes
        raise SecurityError(f"{what} is not a valid encoding (its last character is wrong).")
    return data


def _utf8(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise SecurityError(f"{what} must be text, not {type(text).__name__}.")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise SecurityError(f"{what} is not valid Unicode text.") from None


# -- HKDF (RFC 5869) -----------------------------------------------------------

_HASH_LEN: Final = 32


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """PRK = HMAC-SHA256(salt, IKM); an empty salt is HashLen zero bytes."""
    return hmac.new(salt or bytes(_HASH_LEN), ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """OKM = T(1) | T(2) | ... cut to ``length``; T(i) = HMAC(PRK, T(i-1) | info | i)."""
    if not 0 < length <= 255 * _HASH_LEN:
        raise ValueError(f"HKDF-SHA256 gives 1-{255 * _HASH_LEN} bytes, not {length}")
    okm, block = b"", b""
    for counter in range(1, -(-length // _HASH_LEN) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256: expand(extract(salt, ikm), info, length)."""
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


# -- room secrets ----------------------------------------------------------------


def new_room_secret() -> str:
    """A fresh room secret: 16 bytes from the OS CSPRNG, as 22 base64url characters."""
    return b64url_encode(secrets.token_bytes(SECRET_BYTES))


def decode_secret(text: str) -> bytes:
    """The 16 bytes of a room secret, or :exc:`SecurityError` saying what is wrong."""
    return b64url_decode(text, SECRET_BYTES, "A room secret")


def room_key(secret: str, room: str) -> str:
    """The proof of the secret sent in ``join`` as ``"key"``: all the server ever sees."""
    ikm = decode_secret(secret)
    return b64url_encode(hkdf(ikm, ROOM_KEY_SALT, _utf8(room, "The room name"), KEY_BYTES))


def fingerprint_auth_key(secret: str, room: str) -> bytes:
    """The key of the fingerprint MACs: derived apart from the room key, never sent."""
    ikm = decode_secret(secret)
    return hkdf(ikm, FINGERPRINT_MAC_SALT, _utf8(room, "The room name"), KEY_BYTES)


# -- fingerprints ----------------------------------------------------------------

_HEX_BYTES = r"(?:[0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}"
_FINGERPRINT = re.compile(rf"[ \t]*[Ss][Hh][Aa]-256[ \t]+({_HEX_BYTES})[ \t]*")
_ALGORITHM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,19}")
_ATTRIBUTE = "a=fingerprint:"
# Python's str.splitlines() separators: a superset of what any SDP parser
# splits on, so no fingerprint line can hide inside another line from us.
_LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def normalize_fingerprint(text: str) -> str:
    """``"sha-256 AB:01:..."`` from any spelling of a sha-256 fingerprint.

    The algorithm name and hex digits may be in either case, with spaces or
    tabs around; anything else (another hash, a wrong length, stray
    characters) raises :exc:`SecurityError`.
    """
    if not isinstance(text, str):
        raise SecurityError(f"A fingerprint must be text, not {type(text).__name__}.")
    match = _FINGERPRINT.fullmatch(text)
    if match is not None:
        return "sha-256 " + match.group(1).upper()
    words = text.split()
    if len(words) == 2 and _ALGORITHM_NAME.fullmatch(words[0]) and words[0].lower() != "sha-256":
        raise SecurityError(f"Only sha-256 fingerprints are supported, not '{words[0]}'.")
    raise SecurityError(
        "A fingerprint is 'sha-256' and 32 bytes in hex separated by colons "
        "('sha-256 AB:01:...:EF')."
    )


def _sdp_lines(sdp: str) -> list[str]:
    if not isinstance(sdp, str):
        raise SecurityError(f"An SDP must be text, not {type(sdp).__name__}.")
    return _LINE_BREAK.split(sdp)


def _algorithm(line: str) -> str:
    words = line[len(_ATTRIBUTE) :].split()
    return words[0].lower() if words else ""


def sdp_fingerprint(sdp: str) -> str:
    """The normalized sha-256 fingerprint of an SDP (session- or media-level).

    The first ``a=fingerprint:sha-256`` line gives it; every other sha-256
    line must name the same certificate, or :exc:`SecurityError`: a second
    certificate is exactly what an interceptor would slip in. Lines of other
    hash algorithms are not read (see :func:`pin_remote_sdp`).
    """
    found: str | None = None
    for line in _sdp_lines(sdp):
        if line.startswith(_ATTRIBUTE) and _algorithm(line) == "sha-256":
            fingerprint = normalize_fingerprint(line[len(_ATTRIBUTE) :])
            if found is None:
                found = fingerprint
            elif fingerprint != found:
                raise SecurityError("The session description names two different certificates.")
    if found is None:
        raise SecurityError("The session description has no sha-256 fingerprint.")
    return found


def local_fingerprint(sdp: str) -> str:
    """Our own fingerprint, from the local description: :func:`sdp_fingerprint`."""
    return sdp_fingerprint(sdp)


def remote_fingerprint(sdp: str) -> str:
    """The peer's fingerprint, from its description: :func:`sdp_fingerprint`.

    Read it from the text given to :func:`pin_remote_sdp`, and apply what that
    returns, so the DTLS stack checks the very certificate verified here.
    """
    return sdp_fingerprint(sdp)


def pin_remote_sdp(sdp: str) -> str:
    """The remote SDP to apply: only its sha-256 fingerprint lines left.

    A DTLS stack may check the certificate against another line than the one
    the MAC and the code cover (libwebrtc keeps the *last* ``a=fingerprint``
    of a section, so an added ``sha-512`` line of another certificate would
    win), so every line of another algorithm goes. Lines are rejoined with
    CRLF. Raises :exc:`SecurityError` as :func:`sdp_fingerprint` does.
    """
    sdp_fingerprint(sdp)
    lines = _sdp_lines(sdp)
    ends_with_break = lines[-1] == ""
    if ends_with_break:
        lines.pop()
    kept = [
        line
        for line in lines
        if not (line.startswith(_ATTRIBUTE) and _algorithm(line) != "sha-256")
    ]
    return "\r\n".join(kept) + ("\r\n" if ends_with_break else "")


# -- fingerprint MACs --------------------------------------------------------------


def _mac_input(sender: str, receiver: str, fingerprint: str) -> bytes:
    text = (
        FINGERPRINT_MAC_LABEL + sender + "|" + receiver + "|" + normalize_fingerprint(fingerprint)
    )
    return _utf8(text, "A connection id")


def _check_key(auth_key: bytes) -> bytes:
    if not isinstance(auth_key, bytes | bytearray) or len(auth_key) != KEY_BYTES:
        raise SecurityError(f"A fingerprint-auth key is {KEY_BYTES} bytes.")
    return bytes(auth_key)


def fingerprint_mac(auth_key: bytes, sender: str, receiver: str, fingerprint: str) -> str:
    """Proof from ``sender`` to ``receiver`` that ``fingerprint`` is its own."""
    digest = hmac.new(
        _check_key(auth_key), _mac_input(sender, receiver, fingerprint), hashlib.sha256
    ).digest()
    return b64url_encode(digest)


def check_fingerprint_mac(
    auth_key: bytes, sender: str, receiver: str, fingerprint: str, mac: object
) -> bool:
    """Whether ``mac`` is :func:`fingerprint_mac` of these values (constant time).

    ``fingerprint`` is the one read from the sender's SDP, never one it sent
    alongside; ``mac`` may be anything the peer sent (non-text is ``False``).
    """
    expected = fingerprint_mac(auth_key, sender, receiver, fingerprint)
    if not isinstance(mac, str):
        return False
    return hmac.compare_digest(expected.encode("ascii"), mac.encode("utf-8", "replace"))


# -- verification code ---------------------------------------------------------------


def new_nonce() -> str:
    """32 fresh random bytes, base64url (43 characters)."""
    return b64url_encode(secrets.token_bytes(NONCE_BYTES))


def _nonce(text: str, what: str) -> bytes:
    return b64url_decode(text, NONCE_BYTES, what)


def sas_commitment(nonce_o: str) -> str:
    """The offerer's commitment to its nonce, sent before it sees the answerer's."""
    _nonce(nonce_o, "The offerer's nonce")
    digest = hashlib.sha256((COMMITMENT_LABEL + nonce_o).encode("ascii")).digest()
    return b64url_encode(digest)


def check_commitment(commitment: object, nonce_o: object) -> bool:
    """Whether the revealed ``nonce_o`` is the one ``commitment`` bound (constant time)."""
    if not isinstance(commitment, str) or not isinstance(nonce_o, str):
        return False
    try:
        expected = sas_commitment(nonce_o)
    except SecurityError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), commitment.encode("utf-8", "replace"))


def code_text(code_bytes: bytes) -> str:
    """Matrix's decimal SAS: three 13-bit numbers (MSB first) + 1000, space-separated."""
    if len(code_bytes) != CODE_BYTES:
        raise ValueError(f"a code is made of {CODE_BYTES} bytes, not {len(code_bytes)}")
    b = code_bytes
    numbers = (
        (b[0] << 5 | b[1] >> 3) + 1000,
        ((b[1] & 0x07) << 10 | b[2] << 2 | b[3] >> 6) + 1000,
        ((b[3] & 0x3F) << 7 | b[4] >> 1) + 1000,
    )
    return " ".join(str(n) for n in numbers)


def sas_code(
    nonce_o: str,
    nonce_a: str,
    offerer_id: str,
    answerer_id: str,
    offerer_fp: str,
    answerer_fp: str,
) -> str:
    """The verification code both sides of a leg show, ``"1234 5678 9012"``."""
    ikm = _nonce(nonce_o, "The offerer's nonce") + _nonce(nonce_a, "The answerer's nonce")
    info = "|".join(
        (
            offerer_id,
            answerer_id,
            normalize_fingerprint(offerer_fp),
            normalize_fingerprint(answerer_fp),
        )
    )
    return code_text(hkdf(ikm, SAS_SALT, _utf8(info, "A connection id"), CODE_BYTES))


# -- one leg's exchange -----------------------------------------------------------------

_FAILURES: Final[dict[FailReason, str]] = {
    "mac": (
        "The other side's connection is not the one the room secret vouches for: "
        "the call is being intercepted."
    ),
    "commitment": (
        "The other side's verification nonce does not match what it committed to: "
        "the call may be intercepted."
    ),
    "protocol": "The other side broke the verification exchange",
    "timeout": "The other side did not finish the verification exchange in time.",
}


def verify_message(step: str, **fields: str) -> Message:
    """``{"type": "VERIFY", "payload": {"step": step, **fields}}``."""
    return {"type": VERIFY, "payload": {"step": step, **fields}}


class Verifier:
    """One leg's verification, sans-I/O: feed it the peer's VERIFY messages.

    Make it once both fingerprints are known and fixed (the offerer once the
    answer is applied, the answerer before its answer goes out), call
    :meth:`start` and send what it returns, then pass every VERIFY message of
    that peer to :meth:`receive` and send what that returns. With an
    ``auth_key`` (a room with a secret) each side also proves its fingerprint
    with a MAC, and the exchange only ends ``done`` once the peer's MAC checks
    out (``peer_verified``).

    ``state`` is ``"running"``, then ``"done"`` (``code`` is set) or
    ``"failed"`` (``reason`` and ``message`` say why). An unexpected or
    malformed message fails the exchange; after that, input is ignored.
    """

    def __init__(
        self,
        role: Role,
        *,
        local_id: str,
        remote_id: str,
        local_fingerprint: str,
        remote_fingerprint: str,
        auth_key: bytes | None = None,
    ) -> None:
        if role not in ("offerer", "answerer"):
            raise ValueError(f"role must be 'offerer' or 'answerer', not {role!r}")
        self.role: Role = role
        self.local_id = local_id
        self.remote_id = remote_id
        self.local_fingerprint = normalize_fingerprint(local_fingerprint)
        self.remote_fingerprint = normalize_fingerprint(remote_fingerprint)
        self._auth_key = None if auth_key is None else _check_key(auth_key)
        self._nonce = new_nonce()
        self._started = False
        self._peer_commitment: str | None = None  # answerer: what the offerer committed to
        self._peer_nonce_seen = False
        self._mac_seen = False
        self.state: VerifierState = "running"
        self.code: str | None = None
        self.peer_verified = False
        self.reason: FailReason | None = None
        self.message: str | None = None

    @property
    def authenticated(self) -> bool:
        """Whether this exchange checks fingerprint MACs (the room has a secret)."""
        return self._auth_key is not None

    def start(self) -> list[Message]:
        """The first messages to send: the commitment (offerer) and our MAC (with a secret)."""
        if self._started:
            raise RuntimeError("Verifier.start() was already called")
        self._started = True
        out: list[Message] = []
        if self.role == "offerer":
            out.append(verify_message("commit", commitment=sas_commitment(self._nonce)))
        if self._auth_key is not None:
            mac = fingerprint_mac(
                self._auth_key, self.local_id, self.remote_id, self.local_fingerprint
            )
            out.append(verify_message("mac", mac=mac))
        return out

    def receive(self, message: Mapping[str, Any]) -> list[Message]:
        """Take one VERIFY message from the peer; the messages to send in reply."""
        if not self._started:
            raise RuntimeError("call Verifier.start() before Verifier.receive()")
        if self.state == "failed":
            return []
        if not isinstance(message, Mapping) or message.get("type") != VERIFY:
            return self._fail("protocol", "a message that is not VERIFY")
        payload = message.get("payload")
        if not isinstance(payload, Mapping):
            return self._fail("protocol", "a VERIFY message without a payload")
        step = payload.get("step")
        if self.state == "done":
            return self._fail("protocol", f"{_describe(step)} after the exchange ended")
        if step == "mac":
            return self._on_mac(payload.get("mac"))
        if self.role == "offerer" and step == "nonce":
            return self._on_nonce(payload.get("nonce"))
        if self.role == "answerer" and step == "commit":
            return self._on_commit(payload.get("commitment"))
        if self.role == "answerer" and step == "reveal":
            return self._on_reveal(payload.get("nonce"))
        return self._fail("protocol", f"an unexpected step {_describe(step)}")

    def timed_out(self) -> None:
        """The engine's deadline passed: fail unless the exchange is over."""
        if self.state == "running":
            self._fail("timeout")

    # The steps.

    def _on_mac(self, mac: object) -> list[Message]:
        if self._mac_seen:
            return self._fail("protocol", "a second MAC")
        self._mac_seen = True
        if self._auth_key is None:
            return []  # the peer thinks the room has a secret; we cannot check it
        if not check_fingerprint_mac(
            self._auth_key, self.remote_id, self.local_id, self.remote_fingerprint, mac
        ):
            return self._fail("mac")
        self.peer_verified = True
        self._finish_if_complete()
        return []

    def _on_nonce(self, nonce_a: object) -> list[Message]:
        if self._peer_nonce_seen:
            return self._fail("protocol", "a second nonce")
        self._peer_nonce_seen = True
        if not self._valid_nonce(nonce_a):
            return self._fail("protocol", "a malformed nonce")
        assert isinstance(nonce_a, str)
        self.code = self._code(self._nonce, nonce_a)
        self._finish_if_complete()
        return [verify_message("reveal", nonce=self._nonce)]

    def _on_commit(self, commitment: object) -> list[Message]:
        if self._peer_commitment is not None:
            return self._fail("protocol", "a second commitment")
        if not isinstance(commitment, str) or not _valid_b64(commitment, KEY_BYTES):
            return self._fail("protocol", "a malformed commitment")
        self._peer_commitment = commitment
        return [verify_message("nonce", nonce=self._nonce)]

    def _on_reveal(self, nonce_o: object) -> list[Message]:
        if self._peer_commitment is None:
            return self._fail("protocol", "a reveal before the commitment")
        if self._peer_nonce_seen:
            return self._fail("protocol", "a second reveal")
        self._peer_nonce_seen = True
        if not check_commitment(self._peer_commitment, nonce_o):
            return self._fail("commitment")
        assert isinstance(nonce_o, str)
        self.code = self._code(nonce_o, self._nonce)
        self._finish_if_complete()
        return []

    # Helpers.

    def _code(self, nonce_o: str, nonce_a: str) -> str:
        if self.role == "offerer":
            ids = (self.local_id, self.remote_id)
            fps = (self.local_fingerprint, self.remote_fingerprint)
        else:
            ids = (self.remote_id, self.local_id)
            fps = (self.remote_fingerprint, self.local_fingerprint)
        return sas_code(nonce_o, nonce_a, ids[0], ids[1], fps[0], fps[1])

    @staticmethod
    def _valid_nonce(value: object) -> bool:
        return isinstance(value, str) and _valid_b64(value, NONCE_BYTES)

    def _finish_if_complete(self) -> None:
        if self.code is not None and (self._auth_key is None or self.peer_verified):
            self.state = "done"

    def _fail(self, reason: FailReason, detail: str = "") -> list[Message]:
        self.state = "failed"
        self.reason = reason
        self.code = None
        self.message = _FAILURES[reason] + (f" ({detail})." if detail else "")
        return []


def _describe(step: object) -> str:
    """A step name for an error message, the same words as security.js."""
    if isinstance(step, str):
        return f"'{step[:20]}'"
    return "(none)" if step is None else "(not text)"


def _valid_b64(text: str, length: int) -> bool:
    try:
        b64url_decode(text, length, "A value")
    except SecurityError:
        return False
    return True
