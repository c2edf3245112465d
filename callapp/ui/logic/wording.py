"""Every sentence the window shows: status lines, call endings, errors.

Pure functions of snapshots, numbers and exceptions, so the wording is
tested without a window. Rule: never an exception's repr, a socket tuple or
a traceback on screen. :func:`explain` turns any failure into a sentence that
says what happened and what to do (details go to the log), and
:func:`looks_technical` is the check a test runs over every text shown.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import re
from collections.abc import Sequence

from callapp.call.state import CallPhase, EndReason, LegSnapshot, LegState, SessionSnapshot
from callapp.call.stats import CallStats

log = logging.getLogger(__name__)

#: Phases in which a call screen has something going on.
IN_CALL = frozenset({CallPhase.RINGING, CallPhase.CALLING, CallPhase.CONNECTED})

_TECHNICAL = [
    re.compile(r"\(\s*'[^']*'\s*,\s*\d+\s*(,[^)]*)?\)"),  # ('1.2.3.4', 5) socket tuples
    re.compile(r"Traceback|File \"[^\"]+\", line \d+"),
    re.compile(r"\b[A-Z][A-Za-z0-9]*(Error|Exception|Warning)\b\s*[:(]"),  # OSError: / Error(
    re.compile(r"\[Errno -?\d+\]|\berrno\b"),
    re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>"),
    re.compile(r"\bNoneType\b|\bself\._|__\w+__"),
    re.compile(r"\b\w+\(\)"),  # TimeoutError()
]


def looks_technical(text: str) -> bool:
    """Whether ``text`` reads like a program talking to itself, not to a person."""
    return any(pattern.search(text) for pattern in _TECHNICAL)


# -- names and numbers -----------------------------------------------------------


def short_id(connection_id: str, keep: int = 8) -> str:
    """A connection id shortened for a line of text."""
    return connection_id if len(connection_id) <= keep else connection_id[:keep] + "…"


def leg_name(leg: LegSnapshot) -> str:
    """The peer's display name, or a short form of its id until it says one."""
    if leg.presence is not None:
        return leg.presence.name
    return f"Guest {short_id(leg.peer_id, 4)}"


def names_text(names: Sequence[str]) -> str:
    """ "Ana", "Ana and Bo", "Ana, Bo and Cy"."""
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def format_duration(seconds: float) -> str:
    """``m:ss`` below an hour, ``h:mm:ss`` above; negative counts as zero."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def call_duration(snap: SessionSnapshot, now: float) -> str:
    """The running length of the call, or "" when nobody is connected."""
    if snap.connected_at is None or not snap.in_call:
        return ""
    return format_duration(now - snap.connected_at)


def format_bitrate(bits_per_second: float) -> str:
    """``850 kbit/s`` or ``1.2 Mbit/s``."""
    if bits_per_second >= 1_000_000:
        return f"{bits_per_second / 1_000_000:.1f} Mbit/s"
    return f"{bits_per_second / 1000:.0f} kbit/s"


def stats_text(stats: CallStats | None) -> str:
    """One line of numbers: received size and fps, bitrate in/out, RTT, loss, codec."""
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


def notice_text(notice: str | None) -> str:
    """The engine's notice (one problem per line), each line a sentence with a full stop."""
    if not notice:
        return ""
    lines = [line.strip() for line in notice.splitlines() if line.strip()]
    return "\n".join(line if line[-1] in ".!?" else line + "." for line in lines)


# -- the call screen ----------------------------------------------------------------


def status_line(snap: SessionSnapshot) -> str:
    """One sentence at the top of the call screen."""
    live = [leg for leg in snap.legs if leg.state is not LegState.ENDED]
    connected = [leg_name(leg) for leg in live if leg.state is LegState.CONNECTED]
    match snap.phase:
        case CallPhase.IDLE | CallPhase.CLOSED:
            return "Not in a call."
        case CallPhase.CONNECTING:
            return "Connecting to the server…"
        case CallPhase.RECONNECTING:
            if connected:
                return f"In a call with {names_text(connected)}. Lost the server; reconnecting…"
            return "Lost the server; reconnecting…"
        case CallPhase.RINGING:
            ringing = [leg_name(leg) for leg in live if leg.state is LegState.RINGING]
            return f"{names_text(ringing) or 'Someone'} is calling you."
        case CallPhase.CONNECTED:
            # A leg renegotiating its media path (LegState.RECONNECTING) is in the call.
            back = [leg_name(leg) for leg in live if leg.state is LegState.RECONNECTING]
            joining = [
                leg_name(leg)
                for leg in live
                if leg.state not in (LegState.CONNECTED, LegState.RECONNECTING)
            ]
            line = f"In a call with {names_text(connected + back)}."
            if back:
                line += f" Lost the connection to {names_text(back)}; reconnecting…"
            if joining:
                line += f" {names_text(joining)} {'is' if len(joining) == 1 else 'are'} joining…"
            return line
        case CallPhase.CALLING:
            others = [leg_name(leg) for leg in live]
            if any(not leg.in_room for leg in live):
                return f"Calling {names_text(others)}…"
            return f"Connecting to {names_text(others)}…"
        case CallPhase.WAITING:
            if snap.room:
                return "Waiting for others to join."
            return "Waiting for a call."


def placeholder_text(leg: LegSnapshot) -> str:
    """What a peer's tile says while it has no picture."""
    if leg.state is LegState.CONNECTED:
        if leg.presence is not None and leg.presence.camera_off:
            return f"{leg_name(leg)} turned the camera off"
        return f"Waiting for {leg_name(leg)}'s video…"
    if leg.state is LegState.RINGING:
        return f"{leg_name(leg)} is calling"
    if leg.state is LegState.RECONNECTING:
        return f"Reconnecting to {leg_name(leg)}…"
    return f"Connecting to {leg_name(leg)}…"


def badges(leg: LegSnapshot) -> list[str]:
    """What a peer's tile says about it: muted, camera off, sharing, recording."""
    presence = leg.presence
    if presence is None:
        return []
    found: list[str] = []
    if presence.muted:
        found.append("Muted")
    if presence.camera_off:
        found.append("Camera off")
    if presence.screen:
        found.append("Sharing the screen")
    if presence.recording:
        found.append("Recording")
    return found


def code_text(leg: LegSnapshot) -> str:
    """The verification code line on a tile."""
    if not leg.security_code:
        return "Verification code: not agreed yet"
    verified = " · checked by the invite's secret" if leg.peer_verified else ""
    return f"Code {leg.security_code}{verified}"


def reconnect_text(seconds_left: float | None) -> str:
    """The banner while the server is lost: a countdown when the engine says when it gives up."""
    if seconds_left is None:
        return "Lost the server. Trying to reconnect…"
    return f"Lost the server. Trying to reconnect for {max(0, math.ceil(seconds_left))} s more…"


def mute_label(muted: bool) -> str:
    """The mute button says what pressing it does."""
    return "Unmute" if muted else "Mute"


def camera_label(enabled: bool) -> str:
    return "Start camera" if not enabled else "Stop camera"


def share_label(sharing: bool) -> str:
    return "Stop sharing" if sharing else "Share screen"


def chat_label(unread: int) -> str:
    return f"Chat ({unread})" if unread else "Chat"


def record_label(recording: bool) -> str:
    return "Stop recording" if recording else "Record"


#: What the call screen shows while we record (its accessible name says more).
RECORDING_INDICATOR = "● Recording"
RECORDING_INDICATOR_NAME = "Recording this call: the others are told"


def recording_saved(path: str) -> str:
    """The banner after a recording is finished."""
    return f"The recording is saved as {_file_name(path)}."


NOTHING_RECORDED = "Nothing was recorded: no picture or sound came in while recording."
RECORD_NEEDS_CALL = "Recording starts once someone else is in the call."


def recording_problem(exc: BaseException, *, starting: bool) -> str:
    """Why a recording could not start, or stopped, in plain words (the call goes on)."""
    log.info("recording failed: %s", exc, exc_info=(type(exc), exc, exc.__traceback__))
    why = _recording_why(exc)
    if starting:
        return f"The recording could not start: {why}. Choose another place to save it."
    return f"The recording stopped: {why}. The call goes on."


def _recording_why(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            if seen.errno in (errno.ENOSPC, errno.EDQUOT):
                return "the disk is full"
            if seen.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return "that place cannot be written to"
            if seen.errno == errno.ENOENT:
                return "that folder does not exist"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "no writable folder" in text:
        return "that folder does not exist or cannot be written to"
    if "No space" in text:
        return "the disk is full"
    if "Permission denied" in text or "Read-only" in text:
        return "that place cannot be written to"
    if "format" in text.lower() or "Invalid argument" in text:
        return "that kind of file cannot be made (end the name in .mp4, .mkv or .webm)"
    return "the file could not be written"


def _file_name(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return f"“{name}”" if name else "a file"


# -- endings ---------------------------------------------------------------------------


def ending_text(reason: EndReason | None, name: str = "The other person") -> str:
    """A sentence for why a call (or one person's part of it) ended."""
    if reason is None:
        return "The call ended."
    if reason.name == "HOST_LEFT":  # EndReason.HOST_LEFT (added by the engine)
        return "The host ended the call."
    words = {
        EndReason.HUNG_UP: "You left the call.",
        EndReason.PEER_HUNG_UP: f"{name} hung up.",
        EndReason.PEER_LEFT: f"{name} left the call.",
        EndReason.PEER_UNREACHABLE: f"The connection to {name} was lost.",
        EndReason.DECLINED: f"{name} declined the call.",
        EndReason.NO_ANSWER: f"{name} did not answer.",
        EndReason.FAILED: (
            f"The call with {name} could not be connected. Check your network and try again."
        ),
        EndReason.SERVER_LOST: (
            "The server went away, so the call ended. Join again when it is back."
        ),
        EndReason.CLOSED: "The call was closed.",
        EndReason.INSECURE: (
            f"The call with {name} was stopped: someone may be listening in (the other side"
            " could not prove who it is). Make a new invite and call again."
        ),
    }
    return words.get(reason, f"The call ended: {reason.value}.")


#: Endings that are news to the person (they did not cause them).
NEWS = frozenset(
    {
        EndReason.PEER_HUNG_UP,
        EndReason.PEER_LEFT,
        EndReason.PEER_UNREACHABLE,
        EndReason.DECLINED,
        EndReason.NO_ANSWER,
        EndReason.FAILED,
        EndReason.SERVER_LOST,
        EndReason.INSECURE,
    }
)


def is_news(reason: EndReason | None) -> bool:
    return reason is not None and (reason in NEWS or reason.name == "HOST_LEFT")


# -- errors ------------------------------------------------------------------------------


def explain(exc: BaseException, *, server_url: str | None = None) -> str:
    """Any failure as one plain sentence for the banner (the details go to the log)."""
    where = f" at {_host_of(server_url)}" if server_url else ""
    kind = type(exc).__name__
    text = str(exc).strip()
    if _is(exc, "callapp.signaling.tls", "TlsError"):
        return f"Cannot host with TLS: {text} Check the certificate and key in Preferences."
    if isinstance(exc, ValueError) and kind in (
        "AddressError",
        "InviteError",
        "JoinError",
        "InputError",
    ):
        return text if not looks_technical(text) else "That address cannot be used."
    if _is(exc, "callapp.call.errors", "CallError"):
        return _call_error(exc, kind, text, where)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"The server{where} did not answer in time. Check the address and your network."
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"Could not reach the server{where}: nothing is listening there. "
            "Check the address, and that the host is still hosting."
        )
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"Could not reach the server{where}: the network is unreachable."
        if exc.errno == errno.EADDRINUSE:
            return (
                "Could not start the call: the port is already in use. Pick another in Preferences."
            )
        return f"Could not reach the server{where}. Check the address and your network."
    log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    return "Something went wrong. Try again; if it keeps happening, restart the app."


def _call_error(exc: BaseException, kind: str, text: str, where: str) -> str:
    log.info("call error %s: %s", kind, text)
    if kind == "RoomFullError":
        return "This call is full. Ask the host to make room, or start a new call."
    if kind == "RoomLockedError":
        return (
            "This call needs its invite link: ask the host to send you the whole link"
            " and paste it again."
        )
    if kind == "ServerUnavailable" and (not text or looks_technical(text)):
        return (
            f"Could not reach the server{where}. Check the address, and that the host"
            " is still hosting."
        )
    if kind == "PeerUnknown" and (not text or looks_technical(text)):
        return "Nobody with that id is connected to the server. Check the id and try again."
    if not text or looks_technical(text):
        return "The call could not go on. Try again."
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0]


def _is(exc: BaseException, module: str, name: str) -> bool:
    try:
        mod = __import__(module, fromlist=[name])
    except ImportError:  # pragma: no cover - part of the package
        return False
    cls = getattr(mod, name, None)
    return isinstance(cls, type) and isinstance(exc, cls)
