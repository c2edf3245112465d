"""StatsMeter: numbers from aiortc's report plus our own counters."""

from __future__ import annotations

import datetime
from typing import Any

from aiortc.stats import (
    RTCInboundRtpStreamStats,
    RTCOutboundRtpStreamStats,
    RTCRemoteInboundRtpStreamStats,
    RTCTransportStats,
)

from callapp.call.stats import FrameCounters, StatsMeter, negotiated_codec

NOW = datetime.datetime.now(datetime.UTC)


def report(sent: int, received: int, lost: int, got: int) -> dict[str, Any]:
    common = {"timestamp": NOW, "ssrc": 1, "kind": "video", "transportId": "t"}
    return {
        "t": RTCTransportStats(
            timestamp=NOW,
            type="transport",
            id="t",
            packetsSent=0,
            packetsReceived=got,
            bytesSent=sent + 100,
            bytesReceived=received,
            iceRole="controlling",
            dtlsState="connected",
        ),
        "o": RTCOutboundRtpStreamStats(
            type="outbound-rtp", id="o", packetsSent=1, bytesSent=sent, trackId="x", **common
        ),
        "i": RTCInboundRtpStreamStats(
            type="inbound-rtp", id="i", packetsReceived=got, packetsLost=lost, jitter=0, **common
        ),
        "r": RTCRemoteInboundRtpStreamStats(
            type="remote-inbound-rtp",
            id="r",
            packetsReceived=1,
            packetsLost=0,
            jitter=0,
            roundTripTime=0.012,
            fractionLost=0.25,
            **common,
        ),
    }


def test_rates_cover_the_window_since_the_previous_sample() -> None:
    meter = StatsMeter(started_at=100.0)
    first = meter.sample(
        report(sent=125_000, received=250_000, lost=0, got=100),
        FrameCounters(time=101.0, frames_sent=30, frames_received=29, received_size=(640, 480)),
        "VP8",
    )
    assert first.window == 1.0
    assert first.bitrate_sent == 1_000_000
    assert first.bitrate_received == 2_000_000
    assert first.fps_sent == 30
    assert first.fps_received == 29
    assert first.rtt_ms == 12.0
    assert first.remote_packet_loss == 0.25
    assert first.packet_loss == 0.0
    assert first.received_size == (640, 480)
    assert first.codec == "VP8"

    second = meter.sample(
        report(sent=250_000, received=250_000, lost=10, got=190),
        FrameCounters(time=103.0, frames_sent=90, frames_received=29),
        "VP8",
    )
    assert second.window == 2.0
    assert second.bitrate_sent == 500_000
    assert second.bitrate_received == 0
    assert second.fps_sent == 30
    assert second.fps_received == 0
    assert second.packet_loss == 10 / 200


def test_an_empty_report_gives_unknowns_not_errors() -> None:
    stats = StatsMeter(0.0).sample({}, FrameCounters(time=1.0), None)
    assert stats.rtt_ms is None
    assert stats.packet_loss is None
    assert stats.bitrate_sent == 0


def test_negotiated_codec_is_the_first_video_payload() -> None:
    sdp = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=rtpmap:111 opus/48000/2",
            "m=video 9 UDP/TLS/RTP/SAVPF 102 97",
            "a=rtpmap:97 VP8/90000",
            "a=rtpmap:102 H264/90000",
        ]
    )
    assert negotiated_codec(sdp) == "H264"
    assert negotiated_codec(None) is None
    assert negotiated_codec("v=0\r\nm=audio 9 X 0\r\n") is None


def test_a_receiver_report_without_round_trip_time_leaves_rtt_unknown() -> None:
    early = report(sent=1000, received=1000, lost=0, got=10)
    remote = early["r"]
    remote.roundTripTime = None  # aiortc's value before the first report with a DLSR
    remote.fractionLost = None
    stats = StatsMeter(0.0).sample(early, FrameCounters(time=1.0), "VP8")
    assert stats.rtt_ms is None
    assert stats.remote_packet_loss is None
    assert stats.bitrate_received == 8000
