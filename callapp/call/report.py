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
    #: The peer's camera was off at some time: its frame rate says nothing then.
    peer_camera_was_off: bool = False
    peer_screen: bool = False
    peer_recording: bool = False
    security_code: str | None = None
    peer_verified: bool = False
    #: Times the media path died and a fresh ICE session was negotiated.
    ice_restarts: int = 0
    #: Relay-only and the TURN relay gave no address: why, in words.
    relay_problem: str | None = None
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
        "ice_restarts": record.ice_restarts,
        "relay_problem": record.relay_problem,
        "end_reason": record.end_reason.name.lower() if record.end_reason else None,
        "duration_s": (
            round(record.ended_at - record.connected_at, 3)
            if record.ended_at is not None and record.connected_at is not None
            else None
        ),
        "freeze_max_ms": round(stats.freeze_max * 1000, 1) if stats else None,
        "freezes": stats.freezes if stats else 0,
        "frozen_ms": round(stats.frozen * 1000, 1) if stats else 0.0,
        "local_candidate_type": stats.local_candidate_type if stats else None,
        "remote_candidate_type": stats.remote_candidate_type if stats else None,
        "video_target_bitrate": stats.video_target_bitrate if stats else None,
        "audio_bitrate": stats.audio_bitrate if stats else None,
    } | quality(record, fps)


#: Below these a call is judged (over its whole media time, at least QUALITY_MIN_S).
QUALITY_MIN_S = 4.0
COLLAPSED_FPS = 5.0
COLLAPSED_FROZEN_SHARE = 0.5
COLLAPSED_LOSS = 0.3
POOR_FPS = 15.0
POOR_FREEZE_S = 1.0
POOR_LOSS = 0.1
POOR_RTT_MS = 400.0


def quality(record: LegRecord, fps: float) -> dict[str, Any]:
    """``quality`` ("good", "poor", "collapsed"; None: too short to say) and its reasons.

    Judged over the leg's whole media time from what the receiver saw: frame
    rate, time frozen (gaps over 200 ms between decoded frames), the peer's
    packets lost on the way (before retransmission) and the round trip. A
    collapse is a call nobody could follow: under 5 fps, frozen half the
    time, or a third of the packets gone.
    """
    stats = record.stats
    end = record.ended_at if record.ended_at is not None else record.stats_at
    media_s = end - record.connected_at if end is not None and record.connected_at else 0.0
    if stats is None or media_s < QUALITY_MIN_S:
        return {"quality": None, "quality_reasons": []}
    loss = stats.packet_loss or 0.0
    frozen_share = stats.frozen / media_s
    # A peer that sends no video at all (a browser without a camera) is judged on
    # loss; one whose camera was off sent black frames at its own slow pace.
    video = record.frames_received > 0
    judge_fps = video and not record.peer_camera_was_off
    collapsed = [
        why
        for why, bad in (
            (f"{fps:.1f} fps received", judge_fps and fps < COLLAPSED_FPS),
            (
                f"frozen {frozen_share:.0%} of the time",
                video and frozen_share > COLLAPSED_FROZEN_SHARE,
            ),
            (f"{loss:.0%} of the packets lost", loss > COLLAPSED_LOSS),
        )
        if bad
    ]
    if collapsed:
        return {"quality": "collapsed", "quality_reasons": collapsed}
    poor = [
        why
        for why, bad in (
            (f"{fps:.1f} fps received", judge_fps and fps < POOR_FPS),
            (f"froze for {stats.freeze_max:.1f} s", stats.freeze_max > POOR_FREEZE_S),
            (f"{loss:.0%} of the packets lost", loss > POOR_LOSS),
            (
                f"round trip {stats.rtt_ms or 0:.0f} ms",
                stats.rtt_ms is not None and stats.rtt_ms > POOR_RTT_MS,
            ),
        )
        if bad
    ]
    if poor:
        return {"quality": "poor", "quality_reasons": poor}
    return {"quality": "good", "quality_reasons": []}


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
    "ice_restarts",
    "freeze_max_ms",
    "freezes",
    "frozen_ms",
    "local_candidate_type",
    "remote_candidate_type",
    "video_target_bitrate",
    "audio_bitrate",
    "quality",
    "quality_reasons",
)


def session_report(
    connection_id: str | None,
    records: Sequence[LegRecord],
    *,
    started_at: float | None = None,
    chat: Iterable[ChatMessage] = (),
    signaling_reconnects: int = 0,
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
    report["signaling_reconnects"] = signaling_reconnects
    report["peers"] = peers
    report["chat_received"] = [
        {"from_name": line.sender_name, "text": line.text} for line in chat if not line.mine
    ]
    return report


__all__ = ["LegRecord", "leg_report", "quality", "session_report"]
