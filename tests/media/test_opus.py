"""Opus made on the loop (callapp.media.opus): aiortc decodes it, timing kept, frames untouched."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame
from av import AudioFrame
from av.packet import Packet

from callapp.media.opus import OpusEncoder, OpusTrack
from callapp.media.pcm import (
    AUDIO_TIME_BASE,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    frame_to_pcm,
    pcm_to_frame,
)
from callapp.media.tone import SilenceTrack, ToneTrack
from tests.media.conftest import FeedTrack, dominant_hz


def still() -> float:
    return 0.0  # a clock that never moves: a paced track hands out its first frame at once


def tone_frames(hz: float, count: int) -> FeedTrack:
    """A track holding ``count`` 20 ms frames of a tone, pts counting samples."""
    tone, feed = ToneTrack(hz), FeedTrack("audio")
    for index in range(count):
        feed.push(pcm_to_frame(tone.generate(FRAME_SAMPLES, 0), index * FRAME_SAMPLES))
    return feed


def decode(packets: list[Packet]) -> np.ndarray:
    """What aiortc's own receiver makes of the packets (stereo s16)."""
    decoder = OpusDecoder()
    out = []
    for packet in packets:
        assert packet.pts is not None
        for frame in decoder.decode(JitterFrame(bytes(packet), packet.pts)):
            out.append(frame_to_pcm(frame))
    return np.concatenate(out)


async def test_a_tone_comes_out_of_aiortcs_decoder_as_the_same_tone() -> None:
    track = OpusTrack(tone_frames(440, 50))
    packets = [await track.recv() for _ in range(50)]
    assert all(isinstance(p, Packet) for p in packets)
    assert track.packets == 50
    # One 20 ms packet per 20 ms frame, pts counting samples from 0, in 1/48000 s.
    assert [p.pts for p in packets] == [i * FRAME_SAMPLES for i in range(50)]
    assert all(p.time_base == AUDIO_TIME_BASE for p in packets)
    # Mono in, mono Opus out (the TOC byte's stereo flag is clear): half the encoder's work.
    assert all(not bytes(p)[0] & 0x04 for p in packets)
    heard = decode(packets)
    assert heard.shape == (50 * FRAME_SAMPLES, 2)
    assert dominant_hz(heard[-SAMPLE_RATE // 2 :, 0]) == pytest.approx(440, abs=3)
    track.stop()


async def test_encoding_changes_nothing_in_a_shared_frame() -> None:
    tone = tone_frames(660, 5)
    encoder = OpusEncoder()
    for _ in range(5):
        frame = await tone.recv()
        assert isinstance(frame, AudioFrame)
        before = (frame.pts, frame.time_base, frame_to_pcm(frame).copy())
        encoder.encode(frame)
        assert (frame.pts, frame.time_base) == before[:2]
        assert np.array_equal(frame_to_pcm(frame), before[2])
    assert encoder.frames == 5


def test_a_gap_in_the_frames_stays_a_gap_in_the_packets() -> None:
    encoder = OpusEncoder()
    pts = [0, 960, 1920, 48_000 + 1920, 48_000 + 2880]  # a stall of one second
    packets = []
    for at in pts:
        frame = AudioFrame.from_ndarray(
            np.zeros((1, FRAME_SAMPLES), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts, frame.time_base = at, Fraction(1, SAMPLE_RATE)
        packets += encoder.encode(frame)
    assert [p.pts for p in packets] == pts


async def test_other_codecs_get_the_frames_themselves() -> None:
    feed = FeedTrack("audio")
    track = OpusTrack(feed, sends_opus=lambda: False)
    frame = await SilenceTrack(clock=still).recv()
    feed.push(frame)
    assert await track.recv() is frame  # for aiortc to encode, untouched
    assert track.packets == 0
    track.stop()
    assert feed.readyState == "ended", "the leg's consumer track stops with it"


async def test_a_frame_without_pts_is_stamped_on_a_copy() -> None:
    feed = FeedTrack("audio")
    track = OpusTrack(feed)
    frames = []
    for _ in range(3):
        frame = AudioFrame.from_ndarray(
            np.zeros((1, FRAME_SAMPLES), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frames.append(frame)
        feed.push(frame)
    packets = [await track.recv() for _ in range(3)]
    assert [p.pts for p in packets] == [0, 960, 1920]
    assert all(f.pts is None for f in frames)
    track.stop()


def test_stereo_and_odd_sizes_go_through_the_codecs_own_resampling() -> None:
    encoder = OpusEncoder()
    packets = []
    for index in range(10):  # 10 ms stereo frames at 48 kHz: two make a packet
        frame = AudioFrame.from_ndarray(np.zeros((1, 960), np.int16), format="s16", layout="stereo")
        frame.sample_rate = SAMPLE_RATE
        frame.pts, frame.time_base = index * 480, Fraction(1, SAMPLE_RATE)
        packets += encoder.encode(frame)
    assert len(packets) in (4, 5)  # the encoder holds a little back
    assert all(bytes(p)[0] & 0x04 for p in packets), "stereo in, stereo Opus out"
