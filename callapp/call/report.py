"""The ``--stats-json`` report: one builder for ``callapp call`` and the desktop app.

A report is a JSON object. Its top-level keys describe the most recent leg
that reached media (for a 1:1 call, *the* call), and ``peers`` holds one
object per leg that ever reached media, in the order they connected::

    {"connection_id": "...", "role": "caller", "first_frame_ms": 182.4,
     "frames_sent": 300, "frames_received": 298, "fps_received": 29.9, ...,
     "peers": [{"id": "...", "name": "Ana", "first_frame_ms": 182.4, ...}],
     "chat_received": [{"from_name": "Ana", "text": "hi"}]}

Views add what only they know (the window adds what it painted) on top.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from callapp.call import wire
from callapp.call.state import ChatMessage, EndReason, Role
from callapp.call.stats import CallStats


@dataclass(slots=True)
class LegRecord:
    """What is known about a leg for reports, kept after it ends."""

    peer_id: str
    role: Role
    created_at: float
    name: str = wire.DEFAULT_NAME
    connected_at: float | None = None
    ended_at: float | None = None
    end_reason: EndReason | None = None
    first_frame_at: float | None = None
    last_frame_at: float | None = None
    frames_received: int = 0
    audio_frames_received: int = 0
    peer_muted: bool = False
    peer_camera_off: bool = False
    peer_screen: bool = False
    peer_recording: bool = False
    security_code: str | None = None
    peer_verified: bool = False
    #: The last numbers sampled while the leg was live.
    stats: CallStats | None = None
    stats_at: float | None = None


def _ms(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier) * 1000, 1)


def leg_report(record: LegRecord, *, started_at: float | None = None) -> dict[str, Any]:
    """One leg's numbers; ``first_frame_ms`` counts from ``started_at`` (else the leg's start)."""
    stats = record.stats
    fps = 0.0
    if record.first_frame_at is not None and record.last_frame_at is not None:
        span = record.last_frame_at - record.first_frame_at
        if span > 0:
            fps = (record.frames_received - 1) / span
    media_s = (
        record.stats_at - record.connected_at
        if record.stats_at is not None and record.connected_at is not None
        else 0.0
    )

    def rate(total: int | None) -> float:
        return round(total * 8 / media_s, 1) if total is not None and media_s > 0 else 0.0

    return {
        "id": record.peer_id,
        "name": record.name,
        "role": record.role.value,
        "first_frame_ms": _ms(
            record.first_frame_at, started_at if started_at is not None else record.created_at
        ),
        "frames_sent": stats.frames_sent if stats else 0,
        "frames_received": record.frames_received,
        "audio_frames_sent": stats.audio_frames_sent if stats else 0,
        "audio_frames_received": record.audio_frames_received,
        "fps_received": round(fps, 2),
        "bitrate_sent": rate(stats.bytes_sent if stats else None),
        "bitrate_received": rate(stats.bytes_received if stats else None),
        "rtt_ms": round(stats.rtt_ms, 2) if stats and stats.rtt_ms is not None else None,
        "packet_loss": stats.packet_loss if stats else None,
        "codec": stats.codec if stats else None,
        "received_size": list(stats.received_size) if stats and stats.received_size else None,
        "peer_muted": record.peer_muted,
        "peer_camera_off": record.peer_camera_off,
        "peer_screen": record.peer_screen,
        "peer_recording": record.peer_recording,
        "security_code": record.security_code,
        "peer_verified": record.peer_verified,
        "end_reason": record.end_reason.name.lower() if record.end_reason else None,
        "duration_s": (
            round(record.ended_at - record.connected_at, 3)
            if record.ended_at is not None and record.connected_at is not None
            else None
        ),
    }


#: Top-level keys that describe the main leg (all of a leg's but its id and name).
_LEG_KEYS = (
    "role",
    "first_frame_ms",
    "frames_sent",
    "frames_received",
    "audio_frames_sent",
    "audio_frames_received",
    "fps_received",
    "bitrate_sent",
    "bitrate_received",
    "rtt_ms",
    "packet_loss",
    "codec",
    "received_size",
    "end_reason",
    "duration_s",
    "security_code",
    "peer_verified",
)


def session_report(
    connection_id: str | None,
    records: Sequence[LegRecord],
    *,
    started_at: float | None = None,
    chat: Iterable[ChatMessage] = (),
) -> dict[str, Any]:
    """The whole report (see the module docstring).

    ``started_at`` is when the user asked for the call (join or dial): the
    main leg's ``first_frame_ms`` counts from it. Without any leg that
    reached media, the leg keys are there with empty values.
    """
    peers = [leg_report(r) for r in records]
    main = records[-1] if records else None
    if main is not None:
        top = leg_report(main, started_at=started_at)
    else:
        top = leg_report(LegRecord(peer_id="", role=Role.CALLER, created_at=0.0)) | {"role": None}
    report: dict[str, Any] = {"connection_id": connection_id}
    report.update({key: top[key] for key in _LEG_KEYS})
    report["peers"] = peers
    report["chat_received"] = [
        {"from_name": line.sender_name, "text": line.text} for line in chat if not line.mine
    ]
    return report


__all__ = ["LegRecord", "leg_report", "session_report"]
