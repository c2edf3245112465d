"""Call messages as values: what two peers say inside signaling ``data``.

PROTOCOL.md's shapes, shared with the browser client::

    {"type": "SDP", "payload": {"type": "offer" | "answer", "sdp": "..."}}
    {"type": "SDP", "payload": {"type": "offer", "sdp": "...", "restart": true}}  (callapp)
    {"type": "RELINK", "payload": {"id": "NEW-ID"}}    (callapp, data channel only)
    {"type": "ICE", "payload": {"candidate": "...", "sdpMid": "0", "sdpMLineIndex": 0}}
    {"type": "BYE"}
    {"type": "BYE", "payload": {"reason": "host-ended" | "busy"}}   (callapp)
    {"type": "CHAT", "payload": {"text": "..."}}
    {"type": "PRESENCE", "payload": {"name": "Ana", "muted": false, "cameraOff": false,
                                     "screen": false, "recording": false}}

``CHAT`` travels over the leg's ``chat`` data channel, or through signaling
when none is open; ``PRESENCE`` goes through signaling to each peer when its
leg starts and on every change (docs/protocol.md, callapp's extensions).

:func:`parse` turns relayed ``data`` into a value, or ``None`` for anything a
receiver must ignore (unknown ``type``, malformed payloads): peers grow
independently, so nothing here raises on input from the other side.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any, TypeAlias

from callapp.call.state import Presence

#: Longest chat line, in code points after trimming (the browser counts the same way).
MAX_CHAT_CHARS = 1000
#: Longest display name, in code points after trimming.
MAX_NAME_CHARS = 64
DEFAULT_NAME = "Guest"


@dataclass(frozen=True, slots=True)
class Sdp:
    """An offer or an answer.

    ``restart`` (callapp, offers only) says the offer comes from a *fresh*
    peer connection for the same call, whose media path died: the receiver
    drops its own and answers with a fresh one too (aiortc cannot restart
    ICE inside a connection). A v1 peer ignores the key.
    """

    type: str  # "offer" | "answer"
    sdp: str
    restart: bool = False


@dataclass(frozen=True, slots=True)
class Relink:
    """The sender's new connection id after its signaling link came back.

    Sent over the leg's data channel, never through signaling: the channel is
    the peer's own DTLS session, so nobody on the server can claim to be it.
    """

    id: str


@dataclass(frozen=True, slots=True)
class Ice:
    """One trickled remote candidate; ``candidate == ""`` ends the candidates."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None

    @property
    def is_end(self) -> bool:
        return not self.candidate.strip()


#: BYE reasons (callapp): the sender hosts the signaling server and is closing it.
HOST_ENDED = "host-ended"
#: BYE reasons (callapp): the sender is in another call and turns this one away.
BUSY = "busy"
BYE_REASONS: frozenset[str] = frozenset({HOST_ENDED, BUSY})


@dataclass(frozen=True, slots=True)
class Bye:
    """Hang up (or decline, before an answer).

    ``reason`` (callapp extension, in ``payload``) says why, when it is one
    the receiver should tell apart: :data:`HOST_ENDED` or :data:`BUSY`. A
    reason the receiver does not know reads as a plain BYE, and a v1 peer
    ignores the payload.
    """

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Chat:
    """One chat line (already checked by :func:`clean_chat_text`)."""

    text: str


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    """What the sender says about itself now."""

    presence: Presence


@dataclass(frozen=True, slots=True)
class Verify:
    """One step of the verification exchange; ``callapp.call.security.Verifier`` reads it."""

    payload: dict[str, Any]


CallMessage: TypeAlias = Sdp | Ice | Bye | Chat | PresenceUpdate | Verify | Relink

#: Longest connection id a RELINK may carry (the server's are 16 characters).
_MAX_ID_CHARS = 128


def _strip_controls(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))


def clean_name(name: object) -> str:
    """A display name as sent and shown: trimmed, no control characters, 1-64
    code points (longer is cut); anything else becomes ``"Guest"``."""
    if not isinstance(name, str):
        return DEFAULT_NAME
    cleaned = " ".join(_strip_controls(name).split())[:MAX_NAME_CHARS].strip()
    return cleaned or DEFAULT_NAME


def clean_chat_text(text: str) -> str:
    """``text`` trimmed, if it is a chat line we may send; raises ValueError why not.

    The message is a sentence for people ("A chat message can be at most
    1000 characters; this one has 1203.").
    """
    cleaned = text.strip()
    if not cleaned:
        raise ValueError("An empty chat message cannot be sent.")
    if len(cleaned) > MAX_CHAT_CHARS:
        raise ValueError(
            f"A chat message can be at most {MAX_CHAT_CHARS} characters;"
            f" this one has {len(cleaned)}."
        )
    return cleaned


def _flag(payload: dict[str, Any], key: str) -> bool:
    return payload.get(key) is True


def parse(data: Any) -> CallMessage | None:
    """The call message in relayed ``data``, or ``None`` to ignore it."""
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    payload = data.get("payload")
    if kind == "BYE":
        reason = payload.get("reason") if isinstance(payload, dict) else None
        return Bye(reason if isinstance(reason, str) and reason in BYE_REASONS else None)
    if kind == "CHAT" and isinstance(payload, dict):
        text = payload.get("text")
        if not isinstance(text, str):
            return None
        try:
            return Chat(text=clean_chat_text(text))
        except ValueError:
            return None
    if kind == "VERIFY" and isinstance(payload, dict):
        return Verify(payload)
    if kind == "PRESENCE" and isinstance(payload, dict):
        return PresenceUpdate(
            Presence(
                name=clean_name(payload.get("name")),
                muted=_flag(payload, "muted"),
                camera_off=_flag(payload, "cameraOff"),
                screen=_flag(payload, "screen"),
                recording=_flag(payload, "recording"),
            )
        )
    if kind == "SDP" and isinstance(payload, dict):
        sdp_type, sdp = payload.get("type"), payload.get("sdp")
        if sdp_type in ("offer", "answer") and isinstance(sdp, str):
            restart = sdp_type == "offer" and payload.get("restart") is True
            return Sdp(type=sdp_type, sdp=sdp, restart=restart)
        return None
    if kind == "RELINK" and isinstance(payload, dict):
        new_id = payload.get("id")
        if isinstance(new_id, str) and 0 < len(new_id) <= _MAX_ID_CHARS:
            return Relink(new_id)
        return None
    if kind == "ICE":
        if payload is None:  # some clients send a null candidate to end
            return Ice(candidate="")
        if not isinstance(payload, dict):
            return None
        candidate = payload.get("candidate")
        mid = payload.get("sdpMid")
        index = payload.get("sdpMLineIndex")
        if candidate is None:
            candidate = ""
        if not isinstance(candidate, str):
            return None
        return Ice(
            candidate=candidate,
            sdp_mid=mid if isinstance(mid, str) else None,
            sdp_mline_index=index if isinstance(index, int) and index >= 0 else None,
        )
    return None


def encode(message: CallMessage) -> dict[str, Any]:
    """The ``data`` object that carries ``message``."""
    match message:
        case Sdp(restart=True):
            return {
                "type": "SDP",
                "payload": {"type": message.type, "sdp": message.sdp, "restart": True},
            }
        case Sdp():
            return {"type": "SDP", "payload": {"type": message.type, "sdp": message.sdp}}
        case Relink(id=new_id):
            return {"type": "RELINK", "payload": {"id": new_id}}
        case Ice():
            return {
                "type": "ICE",
                "payload": {
                    "candidate": message.candidate,
                    "sdpMid": message.sdp_mid,
                    "sdpMLineIndex": message.sdp_mline_index,
                },
            }
        case Bye(reason=None):
            return {"type": "BYE"}
        case Bye(reason=reason):
            return {"type": "BYE", "payload": {"reason": reason}}
        case Chat(text=text):
            return {"type": "CHAT", "payload": {"text": text}}
        case Verify(payload=payload):
            return {"type": "VERIFY", "payload": payload}
        case PresenceUpdate(presence=p):
            return {
                "type": "PRESENCE",
                "payload": {
                    "name": p.name,
                    "muted": p.muted,
                    "cameraOff": p.camera_off,
                    "screen": p.screen,
                    "recording": p.recording,
                },
            }
    raise TypeError(f"not a call message: {message!r}")


def encode_json(message: CallMessage) -> str:
    """``message`` as the JSON text a data channel carries (compact, UTF-8 safe)."""
    return json.dumps(encode(message), ensure_ascii=False, separators=(",", ":"))


def parse_json(text: str) -> CallMessage | None:
    """The call message in data-channel ``text``, or ``None`` to ignore it."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return parse(data)
