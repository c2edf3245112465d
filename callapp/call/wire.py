"""Call messages as values: what two peers say inside signaling ``data``.

PROTOCOL.md's shapes, shared with the browser client::

    {"type": "SDP", "payload": {"type": "offer" | "answer", "sdp": "..."}}
    {"type": "ICE", "payload": {"candidate": "...", "sdpMid": "0", "sdpMLineIndex": 0}}
    {"type": "BYE"}

:func:`parse` turns relayed ``data`` into a value, or ``None`` for anything a
receiver must ignore (unknown ``type``, malformed payloads): peers grow
independently, so nothing here raises on input from the other side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias


@dataclass(frozen=True, slots=True)
class Sdp:
    """An offer or an answer."""

    type: str  # "offer" | "answer"
    sdp: str


@dataclass(frozen=True, slots=True)
class Ice:
    """One trickled remote candidate; ``candidate == ""`` ends the candidates."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None

    @property
    def is_end(self) -> bool:
        return not self.candidate.strip()


@dataclass(frozen=True, slots=True)
class Bye:
    """Hang up (or decline, before an answer)."""


CallMessage: TypeAlias = Sdp | Ice | Bye


def parse(data: Any) -> CallMessage | None:
    """The call message in relayed ``data``, or ``None`` to ignore it."""
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    payload = data.get("payload")
    if kind == "BYE":
        return Bye()
    if kind == "SDP" and isinstance(payload, dict):
        sdp_type, sdp = payload.get("type"), payload.get("sdp")
        if sdp_type in ("offer", "answer") and isinstance(sdp, str):
            return Sdp(type=sdp_type, sdp=sdp)
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
        case Sdp():
            return {"type": "SDP", "payload": {"type": message.type, "sdp": message.sdp}}
        case Ice():
            return {
                "type": "ICE",
                "payload": {
                    "candidate": message.candidate,
                    "sdpMid": message.sdp_mid,
                    "sdpMLineIndex": message.sdp_mline_index,
                },
            }
        case Bye():
            return {"type": "BYE"}
    raise TypeError(f"not a call message: {message!r}")
