"""The adjustments to aiortc for lossy and narrow links, on aiortc's own parts."""

from __future__ import annotations

import asyncio
import itertools
from fractions import Fraction

import numpy as np
import pytest
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket
from av import VideoFrame

from callapp.call.report import LegRecord, leg_report
from callapp.call.state import Role
from callapp.call.stats import CallStats
from callapp.media import resilience
from callapp.media.resilience import (
    AdaptiveVp8Encoder,
    AudioJitterBuffer,
    OriginalsOnly,
    VideoJitterBuffer,
    adopt_vp8,
    audio_bitrate_for,
)


def packet(seq: int, timestamp: int, *, keyframe: bool = False) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=timestamp)
    # What the receiver sets after depayloading: a VP8 frame's first byte, P bit set
    # for an inter frame.
    p._data = b"\x00" if keyframe else b"\x01"  # type: ignore[attr-defined]
    return p


def test_the_aiortc_internals_relied_on_are_there() -> None:
    assert resilience.check_aiortc() == []


def test_audio_skips_a_lost_packet_where_aiortc_waits_for_16() -> None:
    ours, stock = AudioJitterBuffer(), JitterBuffer(capacity=16, prefetch=4)
    out: dict[str, list[int]] = {"ours": [], "stock": []}
    for seq in range(0, 12):
        if seq == 3:
            continue  # lost
        for name, buffer in (("ours", ours), ("stock", stock)):
            _, frame = buffer.add(packet(seq, seq * 960))
            if frame is not None:
                out[name].append(frame.timestamp // 960)
    # Stock aiortc is stuck behind packet 3 (until 16 packets have arrived).
    assert out["stock"] == []
    # Ours gives 3 up once 4 packets stand behind it, and plays on without delay.
    assert out["ours"] == [0, 1, 2, 4, 5, 6, 7]
    assert ours.skipped == 1


def test_video_gives_up_a_hole_after_its_timeout_and_asks_for_a_keyframe() -> None:
    now = [0.0]
    ours = VideoJitterBuffer(clock=lambda: now[0])
    ours.hole_timeout = 0.3
    stock = JitterBuffer(capacity=512, is_video=True)
    frames: dict[str, list[int]] = {"ours": [], "stock": []}
    plis = 0
    # Frames of 3 packets; packet 4 (in frame 1) is lost and never retransmitted.
    for seq in range(0, 60):
        now[0] = seq * 0.011
        if seq == 4:
            continue
        for name, buffer in (("ours", ours), ("stock", stock)):
            pli, frame = buffer.add(packet(seq, (seq // 3) * 3000))
            if name == "ours":
                plis += pli
            if frame is not None:
                frames[name].append(frame.timestamp // 3000)
    assert frames["stock"] == [0]  # waits until 512 packets have arrived (~5 s here)
    assert frames["ours"][0] == 0
    assert 1 not in frames["ours"]  # the broken frame is never decoded
    assert frames["ours"][1] == 2  # the next whole frame is
    assert ours.skips == 1
    assert plis >= 1
    # It waited for the retransmission for its timeout first.
    assert len(frames["ours"]) >= 15


def test_holes_behind_a_lossy_stretch_are_given_up_together() -> None:
    # Frames of 2 packets; a packet lost in every third frame (never resent),
    # then the link is quiet for 0.4 s and clean again. Each hole is old by the
    # time it reaches the head: it is not waited out again there (0.3 s each,
    # 1.5 s for the five: the freeze outlived the loss).
    now = [0.0]
    ours = VideoJitterBuffer(clock=lambda: now[0])
    ours.hole_timeout = 0.3
    lost = {4, 10, 16, 22, 28}
    frames = []
    for seq in [*range(40), *range(40, 50)]:
        now[0] = seq * 0.01 + (0.4 if seq >= 40 else 0.0)
        if seq in lost:
            continue
        _, frame = ours.add(packet(seq, (seq // 2) * 3000))
        if frame is not None:
            frames.append(frame.timestamp // 3000)
    assert ours.skips == len(lost)
    assert not {seq // 2 for seq in lost} & set(frames), "no broken frame decoded"
    assert 19 in frames, f"caught up with the frames sent after the loss: {frames}"


def test_a_keyframe_is_waited_for_longer() -> None:
    now = [0.0]
    ours = VideoJitterBuffer(clock=lambda: now[0])
    ours.hole_timeout = 0.3
    for seq in range(0, 50):  # 0.55 s: past the timeout, not past twice it
        now[0] = seq * 0.011
        if seq != 1:
            ours.add(packet(seq, (seq // 3) * 3000, keyframe=seq < 3))
    assert ours.skips == 0
    # But not for long: past twice the timeout the PLI is the faster way back.
    for seq in range(50, 70):  # to 0.77 s
        now[0] = seq * 0.011
        ours.add(packet(seq, (seq // 3) * 3000))
    assert ours.skips == 1


def test_video_waits_while_the_retransmission_can_still_come() -> None:
    now = [0.0]
    ours = VideoJitterBuffer(clock=lambda: now[0])
    ours.hole_timeout = 0.3
    got = []
    for seq in [0, 1, 2, 3, 5, 6, 7, 8, 4]:  # 4 comes back, 0.1 s late
        now[0] += 0.0125
        _, frame = ours.add(packet(seq, (seq // 3) * 3000))
        if frame is not None:
            got.append(frame.timestamp // 3000)
    assert ours.skips == 0
    assert got == [0, 1]


def test_the_estimator_sees_first_transmissions_only() -> None:
    calls: list[int] = []

    class Estimator:
        def add(self, **kwargs: int) -> None:
            calls.append(kwargs["ssrc"])

    rtx = {222: 111}
    wrapped = OriginalsOnly(Estimator(), rtx)
    wrapped.add(abs_send_time=1, arrival_time_ms=1, payload_size=1000, ssrc=111)
    wrapped.add(abs_send_time=1, arrival_time_ms=90, payload_size=1000, ssrc=222)
    assert calls == [111]
    assert wrapped.ignored == 1


def frame(width: int, height: int, index: int) -> VideoFrame:
    array = np.full((height * 3 // 2, width), index % 255, dtype=np.uint8)
    f = VideoFrame.from_ndarray(array, format="yuv420p")
    f.pts, f.time_base = index * 3000, Fraction(1, 90000)
    return f


def test_vp8_goes_below_aiortcs_floor_and_scales_down() -> None:
    encoder = adopt_vp8(Vp8Encoder())
    assert isinstance(encoder, AdaptiveVp8Encoder)
    encoder.encode(frame(640, 480, 0))
    for remb in (250_000, 125_000, 100_000):
        encoder.target_bitrate = remb  # what aiortc does with each REMB
        encoder.steer(queueing=True, loss=0.0, now=1.0)
    sent = [bool(encoder.encode(frame(640, 480, i))[0]) for i in range(1, 9)]
    assert encoder.target_bitrate == 100_000  # stock aiortc: never below 250_000
    assert encoder.codec is not None
    assert (encoder.codec.width, encoder.codec.height) == (320, 240)
    assert sent.count(True) == 4  # half the frame rate below 120 kbit/s
    stock = Vp8Encoder()
    stock.target_bitrate = 100_000
    assert stock.target_bitrate == 250_000


def test_a_lower_remb_is_believed_only_while_a_queue_builds() -> None:
    encoder = adopt_vp8(Vp8Encoder())
    assert encoder is not None
    encoder.target_bitrate = 90_000  # a busy CPU looked like congestion
    encoder.steer(queueing=False, loss=0.0, now=1.0)
    assert encoder.wanted == 500_000
    encoder.target_bitrate = 90_000
    encoder.steer(queueing=True, loss=0.0, now=2.0)
    assert encoder.wanted == 250_000  # halving at most per REMB
    encoder.target_bitrate = 400_000  # room again: followed at once
    encoder.steer(queueing=False, loss=0.0, now=3.0)
    assert encoder.wanted == 400_000
    encoder.steer(queueing=False, loss=0.3, now=5.0)  # a narrow link's loss
    assert encoder.wanted == 340_000
    encoder.steer(queueing=False, loss=0.3, now=5.5)  # once a second
    assert encoder.wanted == 340_000


def test_opus_takes_a_voice_bitrate_on_narrow_links() -> None:
    assert audio_bitrate_for(None) == 40_000
    assert audio_bitrate_for(400_000) == 24_000
    assert audio_bitrate_for(150_000) == 16_000


def test_stock_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(resilience.STOCK_ENV, "1")
    assert resilience.stock()
    monkeypatch.setenv(resilience.STOCK_ENV, "0")
    assert not resilience.stock()


def stats(**changes: object) -> CallStats:
    base: dict[str, object] = {
        "codec": "VP8",
        "frames_sent": 300,
        "frames_received": 300,
        "sent_size": (640, 480),
        "received_size": (640, 480),
        "fps_sent": 30.0,
        "fps_received": 30.0,
        "bytes_sent": 1,
        "bytes_received": 1,
        "bitrate_sent": 1.0,
        "bitrate_received": 1.0,
        "rtt_ms": 100.0,
        "packet_loss": 0.05,
        "remote_packet_loss": 0.05,
        "packets_received": 1000,
        "packets_lost": 50,
        "window": 0.5,
    }
    return CallStats(**(base | changes))  # type: ignore[arg-type]


def record(frames: int, seconds: float, call_stats: CallStats) -> LegRecord:
    return LegRecord(
        peer_id="p",
        role=Role.CALLER,
        created_at=0.0,
        connected_at=1.0,
        first_frame_at=1.0,
        last_frame_at=1.0 + seconds,
        frames_received=frames,
        stats=call_stats,
        stats_at=1.0 + seconds,
    )


def test_quality_verdicts() -> None:
    good = leg_report(record(301, 10.0, stats(freeze_max=0.3)))
    assert good["quality"] == "good"
    assert good["freeze_max_ms"] == 300.0
    # Measured with stock aiortc at 200 kbit/s: 1.5 fps, 85 % lost.
    collapsed = leg_report(record(16, 10.0, stats(packet_loss=0.85, frozen=8.0)))
    assert collapsed["quality"] == "collapsed"
    assert any("fps" in why for why in collapsed["quality_reasons"])
    poor = leg_report(record(201, 10.0, stats(freeze_max=1.6, freezes=2, frozen=2.2)))
    assert poor["quality"] == "poor"
    assert leg_report(record(60, 2.0, stats()))["quality"] is None  # too short to say


def test_the_tuner_stays_out_in_stock_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiortc import RTCPeerConnection

    monkeypatch.setenv(resilience.STOCK_ENV, "1")

    async def main() -> None:
        pc = RTCPeerConnection()
        pc.addTransceiver("video")
        tuner = resilience.LinkTuner(pc)
        tuner.start()
        receiver = pc.getTransceivers()[0].receiver
        buffer = receiver._RTCRtpReceiver__jitter_buffer
        assert not isinstance(buffer, VideoJitterBuffer)
        monkeypatch.setenv(resilience.STOCK_ENV, "0")
        tuned = resilience.LinkTuner(pc)
        tuned.adopt_receivers()
        assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, VideoJitterBuffer)
        await tuner.stop()
        await pc.close()

    asyncio.run(main())


def test_a_peer_whose_camera_was_off_is_not_judged_on_its_frame_rate() -> None:
    # Black frames now and then from a camera that is off: 1 fps, no freezes counted.
    leg = record(11, 10.0, stats(packet_loss=0.01))
    assert leg_report(leg)["quality"] == "collapsed"
    leg.peer_camera_was_off = True
    assert leg_report(leg)["quality"] == "good"


class FakeStream:
    def __init__(self) -> None:
        self.max_seq = 0
        self.packets_expected = 0
        self.packets_received = 0


class FakeNacks:
    def __init__(self) -> None:
        self.missing: set[int] = set()


class FakeReceiver:
    """What LinkTuner reads of aiortc's RTCRtpReceiver, and the NACKs it sends."""

    def __init__(self) -> None:
        self._RTCRtpReceiver__nack_generator = FakeNacks()
        self.stream = FakeStream()
        self._RTCRtpReceiver__remote_streams = {1234: self.stream}
        self._RTCRtpReceiver__rtx_ssrc: dict[int, int] = {}
        self.nacks: list[list[int]] = []

    async def _send_rtcp_nack(self, ssrc: int, sequence_numbers: list[int]) -> None:
        assert ssrc == 1234
        self.nacks.append(sequence_numbers)

    def arrived(self, expected: int, received: int) -> None:
        self.stream.packets_expected, self.stream.packets_received = expected, received


def tuner_for(receiver: FakeReceiver) -> resilience.LinkTuner:
    from aiortc import RTCPeerConnection

    tuner = resilience.LinkTuner(RTCPeerConnection())
    tuner._buffers[id(receiver)] = VideoJitterBuffer()
    return tuner


async def nacks_over(receiver: FakeReceiver, times: list[float], rtt: float = 0.1) -> list[float]:
    """When (of ``times``) the tuner sent a NACK for the one missing packet, 7."""
    tuner = tuner_for(receiver)
    receiver._RTCRtpReceiver__nack_generator.missing.add(7)
    sent_at = []
    for now in times:
        before = len(receiver.nacks)
        await tuner._renack(receiver, rtt, now)
        if len(receiver.nacks) > before:
            assert receiver.nacks[-1] == [7]
            sent_at.append(now)
    return sent_at


async def test_each_nack_is_repeated_on_a_randomly_lossy_link() -> None:
    receiver = FakeReceiver()
    receiver.arrived(100, 95)
    # aiortc asked at 0; the echo follows 20 ms later, the next ask after a
    # round trip (1.2 RTT + 20 ms) and its echo, and so on up to NACK_RETRIES.
    ticks = [round(0.01 * n, 2) for n in range(120)]
    sent = await nacks_over(receiver, ticks)
    assert len(sent) == 1 + 2 * resilience.NACK_RETRIES, sent
    assert sent[0] == pytest.approx(0.02, abs=0.011), "the echo of aiortc's own ask"
    asks, echoes = [0.0, *sent[1::2]], sent[0::2]
    assert all(e - a == pytest.approx(0.02, abs=0.011) for a, e in zip(asks, echoes, strict=True))
    assert all(0.135 < b - a < 0.17 for a, b in itertools.pairwise(asks)), asks


async def test_no_repeat_when_the_loss_looks_like_congestion() -> None:
    receiver = FakeReceiver()
    tuner = tuner_for(receiver)
    receiver.arrived(100, 100)
    await tuner._renack(receiver, 0.1, 0.0)  # the loss window starts
    receiver.arrived(200, 185)  # 15 % of the last second's packets lost
    receiver._RTCRtpReceiver__nack_generator.missing.add(7)
    for now in (1.0, 1.03, 1.06):
        await tuner._renack(receiver, 0.1, now)
    assert receiver.nacks == [], "the first ask is aiortc's; no echo of it"
    await tuner._renack(receiver, 0.1, 1.2)
    assert receiver.nacks == [[7]], "asked again after a round trip, once"
    await tuner._renack(receiver, 0.1, 1.25)
    assert receiver.nacks == [[7]]


async def test_a_gap_is_asked_for_by_aiortc_once_and_by_the_tuner_until_it_arrives() -> None:
    receiver = FakeReceiver()
    receiver.arrived(100, 95)
    tuner = tuner_for(receiver)
    missing = receiver._RTCRtpReceiver__nack_generator.missing
    missing.update({7, 8})
    await tuner._renack(receiver, 0.1, 0.0)
    # Taken over: aiortc's next NACK (at its next gap) carries only new gaps.
    assert missing == set()
    await tuner._renack(receiver, 0.1, 0.03)
    assert receiver.nacks == [[7, 8]], "the echo"
    # 8 comes back; 7 does not, and is asked for again a round trip later.
    buffer = tuner._buffers[id(receiver)]
    assert isinstance(buffer, VideoJitterBuffer)
    buffer.add(packet(6, 3000))
    buffer.add(packet(8, 3000))
    await tuner._renack(receiver, 0.1, 0.16)
    assert receiver.nacks[-1] == [7]


def test_a_small_picture_keeps_its_size_where_a_large_one_halves() -> None:
    # 150 kbit/s: 640x480 goes to 320x240, 320x240 stays (160x120 would lose more).
    for size, expected in (((640, 480), (320, 240)), ((320, 240), (320, 240))):
        encoder = adopt_vp8(Vp8Encoder())
        assert isinstance(encoder, AdaptiveVp8Encoder)
        encoder.encode(frame(*size, 0))
        for _ in range(3):  # a lower REMB is followed halving at most per REMB
            encoder.target_bitrate = 150_000
            encoder.steer(queueing=True, loss=0.0, now=1.0)
        encoder.encode(frame(*size, 1))
        assert encoder.target_bitrate == 150_000
        assert encoder.codec is not None
        assert (encoder.codec.width, encoder.codec.height) == expected, size
