"""What the window says about a call: status words, duration and the stats line.

Pure functions of a :class:`~callapp.call.state.CallSnapshot` (and the
engine's stats object), so the wording is unit-testable without a window.
"""

from __future__ import annotations

import math

from callapp.call.state import CallPhase, CallSnapshot
from callapp.call.stats import CallStats


def status_text(snap: CallSnapshot) -> str:
    """One sentence on where the call is, e.g. "Connected to ab12… (caller)"."""
    peer = short_id(snap.peer_id) if snap.peer_id else "the other person"
    match snap.phase:
        case CallPhase.IDLE:
            if snap.end_reason is not None:
                return f"Not connected. The last call ended: {snap.end_reason.value}."
            return "Not connected. Host a call, or join one."
        case CallPhase.CONNECTING:
            where = f" at {snap.server_url}" if snap.server_url else ""
            return f"Connecting to the server{where}…"
        case CallPhase.WAITING:
            ended = f"Call ended: {snap.end_reason.value}. " if snap.end_reason else ""
            if snap.room:
                return f"{ended}Waiting for someone to join room “{snap.room}”…"
            return f"{ended}Waiting for a call…"
        case CallPhase.RINGING:
            return f"Incoming call from {peer}."
        case CallPhase.CALLING:
            return f"Calling {peer}…"
        case CallPhase.CONNECTED:
            return f"Connected to {peer}."
        case CallPhase.RECONNECTING:
            return "Lost the server; reconnecting…"
        case CallPhase.CLOSED:
            if snap.end_reason is not None:
                return f"Call ended: {snap.end_reason.value}."
            return "Call closed."


def short_id(connection_id: str, keep: int = 8) -> str:
    """A connection id shortened for a status line."""
    return connection_id if len(connection_id) <= keep else connection_id[:keep] + "…"


def format_duration(seconds: float) -> str:
    """``m:ss`` below an hour, ``h:mm:ss`` above; negative counts as zero."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def call_duration(snap: CallSnapshot, now: float) -> str:
    """The running duration of a connected call, or "" when there is none."""
    if snap.phase is not CallPhase.CONNECTED or snap.connected_at is None:
        return ""
    return format_duration(now - snap.connected_at)


def format_bitrate(bits_per_second: float) -> str:
    """``850 kbit/s`` or ``1.2 Mbit/s``."""
    if bits_per_second >= 1_000_000:
        return f"{bits_per_second / 1_000_000:.1f} Mbit/s"
    return f"{bits_per_second / 1000:.0f} kbit/s"


def stats_text(stats: CallStats | None) -> str:
    """The stats line: received resolution and fps, bitrate in/out, RTT, loss, codec."""
    if stats is None:
        return ""
    parts: list[str] = []
    if stats.received_size is not None:
        width, height = stats.received_size
        parts.append(f"{width}×{height}")
    parts.append(f"{stats.fps_received:.0f} fps")
    parts.append(f"↓ {format_bitrate(stats.bitrate_received)}")
    parts.append(f"↑ {format_bitrate(stats.bitrate_sent)}")
    if stats.rtt_ms is not None and math.isfinite(stats.rtt_ms):
        parts.append(f"RTT {stats.rtt_ms:.0f} ms")
    if stats.packet_loss:
        parts.append(f"loss {stats.packet_loss * 100:.1f}%")
    if stats.codec:
        parts.append(stats.codec.split("/")[-1].upper())
    return " · ".join(parts)


def placeholder_text(snap: CallSnapshot) -> str:
    """What the empty remote-video area says (calm, and true to the phase)."""
    match snap.phase:
        case CallPhase.CONNECTING:
            return "Connecting…"
        case CallPhase.WAITING:
            return "Waiting for the other person"
        case CallPhase.RINGING:
            return "Incoming call"
        case CallPhase.CALLING:
            return "Setting up the call…"
        case CallPhase.CONNECTED:
            return "Waiting for the other person's video…"
        case CallPhase.RECONNECTING:
            return "Reconnecting…"
        case _:
            return "No call"


def audio_state_text(muted: bool) -> str:
    """What the status area says about the microphone ("" when it is simply on)."""
    return "Microphone muted: the other person hears silence." if muted else ""


def mute_button_text(muted: bool) -> str:
    """The Mute button says what pressing it does."""
    return "Unmute" if muted else "Mute"


def notice_text(notice: str | None) -> str:
    """The engine's notice (one problem per line), each line a sentence with a full stop."""
    if not notice:
        return ""
    lines = [line.strip() for line in notice.splitlines() if line.strip()]
    return "\n".join(line if line[-1] in ".!?" else line + "." for line in lines)
