"""A call's numbers at one moment: from ``getStats()`` and frame counters.

aiortc's ``RTCPeerConnection.getStats()`` reports ``outbound-rtp`` (packets
and bytes sent), ``inbound-rtp`` (packets received and lost, no bytes),
``remote-inbound-rtp`` (the peer's receiver report: round-trip time and
fraction lost) and ``transport`` (bytes both ways). It has no frame counts,
resolutions or codec, so :class:`StatsMeter` combines the report with the
session's own frame counters and the negotiated SDP. Rates (fps, bit/s) are
averaged over the time since the previous sample, or since media started for
the first one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FrameCounters:
    """What the session counted itself, at ``time`` (``time.monotonic()``)."""

    time: float
    frames_sent: int = 0
    frames_received: int = 0
    sent_size: tuple[int, int] | None = None
    received_size: tuple[int, int] | None = None
    #: 20 ms audio frames sent / received so far.
    audio_frames_sent: int = 0
    audio_frames_received: int = 0
    #: Longest gap between two decoded remote video frames so far (s), by arrival.
    freeze_max: float = 0.0
    #: Gaps over 200 ms (sinks.FREEZE_GAP) between decoded frames, and their summed length (s).
    freezes: int = 0
    frozen: float = 0.0
    #: The selected ICE pair's candidate types: "host", "srflx", "prflx" or "relay".
    local_candidate_type: str | None = None
    remote_candidate_type: str | None = None
    #: What our video encoder aims for now (bit/s), and our Opus bitrate (None: unknown).
    video_target_bitrate: int | None = None
    audio_bitrate: int | None = None


@dataclass(frozen=True, slots=True)
class CallStats:
    """One snapshot of a call's numbers; ``None`` where nothing is known yet."""

    codec: str | None
    frames_sent: int
    frames_received: int
    #: (width, height) of the last frame sent / received.
    sent_size: tuple[int, int] | None
    received_size: tuple[int, int] | None
    fps_sent: float
    fps_received: float
    bytes_sent: int
    bytes_received: int
    #: bit/s over the sample window.
    bitrate_sent: float
    bitrate_received: float
    rtt_ms: float | None
    #: Fraction (0-1) of the peer's packets lost on the way to us.
    packet_loss: float | None
    #: Fraction (0-1) of our packets the peer reports lost.
    remote_packet_loss: float | None
    packets_received: int
    packets_lost: int
    #: Seconds covered by the rates above.
    window: float
    #: 20 ms audio frames sent / received so far.
    audio_frames_sent: int = 0
    audio_frames_received: int = 0
    #: Longest gap between two decoded remote frames so far (s); freezes over 200 ms.
    freeze_max: float = 0.0
    freezes: int = 0
    frozen: float = 0.0
    #: The selected ICE candidate pair's types (host, srflx, prflx, relay).
    local_candidate_type: str | None = None
    remote_candidate_type: str | None = None
    #: Our video encoder's target (bit/s) and Opus bitrate, where known.
    video_target_bitrate: int | None = None
    audio_bitrate: int | None = None


@dataclass(frozen=True, slots=True)
class _Totals:
    time: float
    frames_sent: int
    frames_received: int
    bytes_sent: int
    bytes_received: int


def _kind(stat: Any) -> str:
    return str(getattr(stat, "type", ""))


class StatsMeter:
    """Turns successive reports into :class:`CallStats` with windowed rates."""

    def __init__(self, started_at: float) -> None:
        self._previous = _Totals(started_at, 0, 0, 0, 0)

    def sample(
        self, report: Mapping[str, Any], counters: FrameCounters, codec: str | None
    ) -> CallStats:
        bytes_sent = bytes_received = 0
        packets_received = packets_lost = 0
        rtt_ms: float | None = None
        remote_loss: float | None = None
        rtp_bytes_sent = 0
        for stat in report.values():
            kind = _kind(stat)
            if kind == "transport":
                bytes_received += int(stat.bytesReceived)
                bytes_sent += int(stat.bytesSent)
            elif kind == "outbound-rtp":
                rtp_bytes_sent += int(stat.bytesSent)
            elif kind == "inbound-rtp":
                packets_received += int(stat.packetsReceived)
                packets_lost += max(0, int(stat.packetsLost))
            elif kind == "remote-inbound-rtp":
                # aiortc reports None until the first receiver report with a DLSR.
                if stat.roundTripTime is not None:
                    rtt_ms = float(stat.roundTripTime) * 1000.0
                if stat.fractionLost is not None:
                    remote_loss = float(stat.fractionLost)
        if rtp_bytes_sent:
            bytes_sent = rtp_bytes_sent
        expected = packets_received + packets_lost
        loss = packets_lost / expected if expected else None

        now = _Totals(
            counters.time,
            counters.frames_sent,
            counters.frames_received,
            bytes_sent,
            bytes_received,
        )
        before = self._previous
        window = max(now.time - before.time, 1e-6)
        self._previous = now
        return CallStats(
            codec=codec,
            frames_sent=now.frames_sent,
            frames_received=now.frames_received,
            sent_size=counters.sent_size,
            received_size=counters.received_size,
            fps_sent=max(0, now.frames_sent - before.frames_sent) / window,
            fps_received=max(0, now.frames_received - before.frames_received) / window,
            bytes_sent=bytes_sent,
            bytes_received=bytes_received,
            bitrate_sent=max(0, now.bytes_sent - before.bytes_sent) * 8 / window,
            bitrate_received=max(0, now.bytes_received - before.bytes_received) * 8 / window,
            rtt_ms=rtt_ms,
            packet_loss=loss,
            remote_packet_loss=remote_loss,
            packets_received=packets_received,
            packets_lost=packets_lost,
            window=window,
            audio_frames_sent=counters.audio_frames_sent,
            audio_frames_received=counters.audio_frames_received,
            freeze_max=counters.freeze_max,
            freezes=counters.freezes,
            frozen=counters.frozen,
            local_candidate_type=counters.local_candidate_type,
            remote_candidate_type=counters.remote_candidate_type,
            video_target_bitrate=counters.video_target_bitrate,
            audio_bitrate=counters.audio_bitrate,
        )


def negotiated_codec(sdp: str | None) -> str | None:
    """The first video codec of an answer SDP (the one in use), e.g. ``"VP8"``."""
    if not sdp:
        return None
    in_video = False
    first_pt: str | None = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video")
            parts = line.split()
            first_pt = parts[3] if in_video and len(parts) > 3 else None
        elif in_video and first_pt and line.startswith(f"a=rtpmap:{first_pt} "):
            return line.split(" ", 1)[1].split("/", 1)[0]
    return None
