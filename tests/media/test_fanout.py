"""TrackFanout: one read of the source, every consumer served, bounded, ending together."""

from __future__ import annotations

import asyncio
import itertools
from fractions import Fraction

import numpy as np
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from callapp.media.audio_sources import MutableAudioTrack
from callapp.media.fanout import TrackFanout
from callapp.media.frames import VIDEO_TIME_BASE, luma_view
from callapp.media.pcm import FRAME_SAMPLES, frame_to_pcm, silent_frame
from callapp.media.switcher import SwitchableVideoTrack
from callapp.media.tone import ToneTrack

from .conftest import FeedTrack, FlatTrack, flat_frame, grey_level, is_black, settle


def fed_fanout(kind: str = "video") -> tuple[FeedTrack, TrackFanout]:
    """A fan-out of a source the test feeds, with the queue a call uses for ``kind``."""
    source = FeedTrack(kind)
    return source, TrackFanout(source, max_queue=1 if kind == "video" else 5)


async def test_every_consumer_gets_every_frame_from_one_read() -> None:
    source, fanout = fed_fanout()
    a, b = fanout.subscribe(), fanout.subscribe()
    assert a.kind == b.kind == "video"
    got: dict[str, list[VideoFrame]] = {"a": [], "b": []}
    frames = [flat_frame(10 * (i + 1), pts=3000 * i) for i in range(4)]
    for frame in frames:
        source.push(frame)
        got["a"].append(await a.recv())
        got["b"].append(await b.recv())
    assert [grey_level(f) for f in got["a"]] == [10, 20, 30, 40]
    assert [grey_level(f) for f in got["b"]] == [10, 20, 30, 40]
    assert [f.pts for f in got["b"]] == [0, 3000, 6000, 9000]
    await settle(lambda: source.waiting)
    assert source.reads == 5, "one recv() of the source per frame, for both consumers"
    assert fanout.frames == 4
    assert (a.frames, b.frames, a.size) == (4, 4, (32, 32))
    # Shared, never copied: the same pixels, but a header each.
    for mine, theirs, original in zip(got["a"], got["b"], frames, strict=True):
        assert mine is not theirs
        assert np.shares_memory(luma_view(mine), luma_view(original))
        assert np.shares_memory(luma_view(mine), luma_view(theirs))
    fanout.stop()


async def test_an_encoder_restamping_its_frame_does_not_touch_the_other_legs() -> None:
    """aiortc's H.264 encoder rescales pts to 1/30 s on the frame it is given, in place."""
    source, fanout = fed_fanout()
    h264_leg, other_leg = fanout.subscribe(), fanout.subscribe()
    source.push(flat_frame(80, pts=90_000, size=(64, 48)))
    mine, theirs = await h264_leg.recv(), await other_leg.recv()
    H264Encoder().encode(mine)
    assert mine.time_base == Fraction(1, 30), "the encoder did not restamp: the test shows nothing"
    assert (theirs.pts, theirs.time_base) == (90_000, VIDEO_TIME_BASE)
    fanout.stop()


async def test_a_full_queue_drops_the_oldest() -> None:
    video = FeedTrack("video")
    fanout = TrackFanout(video, max_queue=1)
    slow, fast = fanout.subscribe(), fanout.subscribe()
    for i in range(3):
        video.push(flat_frame(50 + i, pts=i))
        assert grey_level(await fast.recv()) == 50 + i
    assert grey_level(await slow.recv()) == 52, "video: the latest frame wins"
    assert slow.dropped == 2
    assert fast.dropped == 0
    fanout.stop()

    audio = FeedTrack("audio")
    fanout = TrackFanout(audio, max_queue=5)
    late = fanout.subscribe()
    audio.push(*(silent_frame(pts=i * FRAME_SAMPLES) for i in range(7)))
    await settle(lambda: fanout.frames == 7)
    kept = [(await late.recv()).pts for _ in range(5)]
    assert kept == [i * FRAME_SAMPLES for i in range(2, 7)], "audio: the newest five, in order"
    assert late.dropped == 2
    fanout.stop()


async def test_audio_consumers_get_the_very_same_frame() -> None:
    source, fanout = fed_fanout("audio")
    a, b = fanout.subscribe(), fanout.subscribe()
    frame = silent_frame(pts=0)
    source.push(frame)
    assert await a.recv() is frame
    assert await b.recv() is frame
    assert a.size is None
    fanout.stop()


async def test_nothing_reads_the_source_without_a_consumer() -> None:
    source, fanout = fed_fanout()
    await settle()
    assert source.reads == 0
    assert not fanout.running

    first = fanout.subscribe()
    await settle(lambda: source.waiting)
    assert fanout.running
    assert source.reads == 1
    first.stop()  # the last consumer: the pending read is cancelled
    await settle(lambda: source.cancelled == 1)
    assert source.cancelled == 1
    assert not fanout.running
    assert fanout.consumers == 0
    source.push(flat_frame(1, pts=0))
    await settle()
    assert source.reads == 1, "a frame came, but nobody consumes: it was not read"

    again = fanout.subscribe()  # a new pump for a new consumer
    assert grey_level(await again.recv()) == 1
    with pytest.raises(MediaStreamError):
        await first.recv()
    fanout.stop()


async def test_a_stopped_consumer_leaves_the_others_alone() -> None:
    source, fanout = fed_fanout()
    leaving, staying = fanout.subscribe(), fanout.subscribe()
    source.push(flat_frame(5, pts=0))
    await settle(lambda: fanout.frames == 1)
    leaving.stop()
    assert leaving.readyState == "ended"
    assert fanout.consumers == 1
    assert grey_level(await staying.recv()) == 5
    source.push(flat_frame(6, pts=1))
    assert grey_level(await staying.recv()) == 6
    with pytest.raises(MediaStreamError):
        await leaving.recv()
    fanout.stop()


async def test_a_source_that_ends_ends_every_consumer_after_what_was_queued() -> None:
    source, fanout = fed_fanout("audio")
    a, b = fanout.subscribe(), fanout.subscribe()
    source.push(silent_frame(pts=0), silent_frame(pts=FRAME_SAMPLES))
    source.end()
    await settle(lambda: fanout.ended)
    assert fanout.ended
    assert fanout.error is None
    for consumer in (a, b):
        assert [(await consumer.recv()).pts for _ in range(2)] == [0, FRAME_SAMPLES]
        with pytest.raises(MediaStreamError):
            await consumer.recv()
        assert consumer.readyState == "ended"
    late = fanout.subscribe()
    assert late.readyState == "live"
    with pytest.raises(MediaStreamError):
        await late.recv()
    assert source.readyState == "live", "the fan-out never stops its source"


async def test_a_failing_source_ends_the_consumers_and_is_kept() -> None:
    source, fanout = fed_fanout()
    consumer = fanout.subscribe()
    boom = RuntimeError("driver bug")
    source.end(boom)
    with pytest.raises(MediaStreamError):
        await consumer.recv()
    assert fanout.error is boom


async def test_stop_ends_every_consumer_at_once_but_not_the_source() -> None:
    source, fanout = fed_fanout()
    waiting, queued = fanout.subscribe(), fanout.subscribe()
    source.push(flat_frame(9, pts=0))
    await settle(lambda: fanout.frames == 1)
    assert grey_level(await waiting.recv()) == 9
    reader = asyncio.ensure_future(waiting.recv())
    await settle(lambda: source.waiting)
    fanout.stop()
    with pytest.raises(MediaStreamError):
        await reader  # woken, not left waiting
    with pytest.raises(MediaStreamError):
        await queued.recv()  # its queued frame is dropped
    assert not fanout.running
    assert source.readyState == "live"
    with pytest.raises(RuntimeError):
        fanout.subscribe()


def test_subscribing_without_a_running_loop_starts_at_the_first_recv() -> None:
    source, fanout = fed_fanout("audio")
    consumer = fanout.subscribe()  # e.g. while a peer connection is set up
    assert not fanout.running

    async def read() -> AudioFrame:
        source.push(silent_frame(pts=0))
        frame = await consumer.recv()
        assert isinstance(frame, AudioFrame)
        return frame

    assert asyncio.run(read()).pts == 0


def test_only_video_or_audio_and_a_real_queue() -> None:
    with pytest.raises(ValueError, match="max_queue"):
        TrackFanout(FeedTrack("video"), max_queue=0)
    with pytest.raises(ValueError, match="video or audio"):
        TrackFanout(FeedTrack("data"), max_queue=1)


# -- with the session's sources -----------------------------------------------------


async def test_the_switcher_feeds_every_leg_and_previews_with_no_leg_at_all() -> None:
    previews: list[VideoFrame | None] = []
    wanted = asyncio.Event()
    need = [3]

    def on_preview(frame: VideoFrame | None) -> None:
        previews.append(frame)
        if len(previews) >= need[0]:
            wanted.set()

    switcher = SwitchableVideoTrack(FlatTrack(120), idle_fps=100, on_preview=on_preview)
    switcher.start()  # the self-view before any call
    await wanted.wait()
    assert switcher.frames_sent == 0

    fanout = TrackFanout(switcher, max_queue=1)
    legs = [fanout.subscribe(), fanout.subscribe()]
    sent = [[await leg.recv() for _ in range(3)] for leg in legs]
    switcher.enabled = False
    black = [await leg.recv() for leg in legs for _ in range(2)]
    switcher.enabled = True
    for frames in sent:
        assert [grey_level(f) for f in frames] == [120] * 3
        assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))
    assert all(is_black(f) for f in black[1:2] + black[3:]), "disabled: black on every leg"

    for leg in legs:  # the call ends: nothing consumes
        leg.stop()
    await settle(lambda: not fanout.running)
    assert not fanout.running
    sent_then = switcher.frames_sent
    need[0] = len(previews) + 3
    wanted.clear()
    await wanted.wait()  # the self-view goes on between calls
    assert all(f is not None and grey_level(f) == 120 for f in previews[-3:])
    assert switcher.frames_sent == sent_then, "nobody consumes: nothing sent"
    fanout.stop()
    assert switcher.readyState == "live", "the session owns the switcher"
    switcher.stop()


async def test_one_mute_silences_every_leg_with_the_timing_kept() -> None:
    tone = ToneTrack(440)
    mute = MutableAudioTrack(tone)
    fanout = TrackFanout(mute, max_queue=5)
    legs = [fanout.subscribe() for _ in range(3)]

    async def take(count: int) -> list[list[AudioFrame]]:
        return [[await leg.recv() for _ in range(count)] for leg in legs]

    loud = await take(2)
    mute.muted = True
    # A frame may be queued already; two later, every leg hears digital silence.
    after = await take(4)
    mute.muted = False
    fanout.stop()
    tone.stop()

    for frames in loud:
        assert all(frame_to_pcm(f).any() for f in frames)
    for frames in after:
        assert not frame_to_pcm(frames[-1]).any()
        assert not frame_to_pcm(frames[-2]).any()
    for before, later in zip(loud, after, strict=True):
        pts = [f.pts for f in before + later]
        assert pts == [pts[0] + i * FRAME_SAMPLES for i in range(6)], "muting changed the timing"
    assert mute.frames == fanout.frames == 6, "one read of the mute switch per frame, for 3 legs"


async def test_a_source_that_swallows_cancellation_is_still_left_alone() -> None:
    class Stubborn(FeedTrack):
        """Carries on when first cancelled, as ``asyncio.wait_for`` can on Python 3.11."""

        async def recv(self) -> VideoFrame | AudioFrame:
            try:
                return await super().recv()
            except asyncio.CancelledError:
                if self.cancelled > 1:
                    raise
                return flat_frame(3, pts=0)

    source = Stubborn("video")
    fanout = TrackFanout(source, max_queue=1)
    consumer = fanout.subscribe()
    await settle(lambda: source.waiting)
    consumer.stop()
    await settle()
    assert source.cancelled == 1
    assert source.reads == 1, "the cancelled pump went on reading"
    assert not source.waiting
