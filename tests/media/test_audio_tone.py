"""Generated audio: the tone's frequency, phase continuity, pacing and pts; PCM helpers."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from callapp.media.pcm import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SILENCE_DBFS,
    frame_to_pcm,
    level_dbfs,
    pcm_to_frame,
    ramp,
    to_channels,
)
from callapp.media.tone import SilenceTrack, ToneTrack
from tests.media.conftest import dominant_hz


async def collect(track: ToneTrack | SilenceTrack, frames: int) -> list[AudioFrame]:
    return [await track.recv() for _ in range(frames)]


@pytest.mark.parametrize("hz", [220.0, 440.0, 880.0, 1234.5])
async def test_tone_has_its_frequency(hz: float) -> None:
    track = ToneTrack(hz, frame_samples=4800)  # 100 ms frames: a second in 10 recvs
    frames = await collect(track, 10)
    samples = np.concatenate([frame_to_pcm(f)[:, 0] for f in frames])
    assert len(samples) == SAMPLE_RATE
    assert dominant_hz(samples) == pytest.approx(hz, abs=1.5)
    peak = np.abs(samples).max() / 32767
    assert peak == pytest.approx(track.amplitude, rel=0.01)


async def test_tone_is_phase_continuous_across_frames() -> None:
    track = ToneTrack(997.0, amplitude=0.5)
    frames = await collect(track, 20)
    samples = np.concatenate([frame_to_pcm(f)[:, 0] for f in frames]).astype(np.int32)
    # The largest step a 997 Hz sine at half scale can take between two samples:
    step = 0.5 * 32767 * 2 * np.pi * 997 / SAMPLE_RATE
    assert np.abs(np.diff(samples)).max() <= step + 2
    # ...and it matches one unbroken sine, across frame boundaries too.
    t = np.arange(len(samples)) / SAMPLE_RATE
    ideal = np.rint(0.5 * 32767 * np.sin(2 * np.pi * 997 * t))
    assert np.abs(samples - ideal).max() <= 1


async def test_frames_are_20ms_s16_mono_48k_with_sample_pts_in_real_time() -> None:
    track = ToneTrack(440)
    start = time.monotonic()
    frames = await collect(track, 26)
    elapsed = time.monotonic() - start
    assert elapsed == pytest.approx(25 * 0.020, abs=0.08)
    for i, frame in enumerate(frames):
        assert frame.format.name == "s16"
        assert frame.layout.name == "mono"
        assert frame.sample_rate == SAMPLE_RATE
        assert frame.samples == FRAME_SAMPLES
        assert frame.pts == i * FRAME_SAMPLES
        assert frame.time_base == pytest.approx(1 / SAMPLE_RATE)


async def test_after_a_stall_the_tone_skips_ahead_in_time_and_phase() -> None:
    now = [0.0]
    track = ToneTrack(440, clock=lambda: now[0])
    first = await track.recv()
    now[0] = 2.0  # the consumer stalled for two seconds
    later = await track.recv()
    assert first.pts == 0
    assert later.pts is not None
    assert later.pts >= int(1.4 * SAMPLE_RATE), "missed frames were sent in a burst"
    t = (later.pts + np.arange(FRAME_SAMPLES)) / SAMPLE_RATE
    ideal = np.rint(track.amplitude * 32767 * np.sin(2 * np.pi * 440 * t))
    assert np.abs(frame_to_pcm(later)[:, 0] - ideal).max() <= 1, "phase does not match pts"


async def test_silence_is_digital_zero_and_stops() -> None:
    track = SilenceTrack()
    frame = await track.recv()
    assert not frame_to_pcm(frame).any()
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_stop_wakes_a_waiting_recv() -> None:
    track = ToneTrack(440, frame_samples=SAMPLE_RATE)  # one frame a second
    await track.recv()
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.05)
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(waiting, 2.0)


@pytest.mark.parametrize("hz", [0.0, -5.0, 24_000.0, float("nan")])
def test_bad_frequencies_are_refused(hz: float) -> None:
    with pytest.raises(ValueError, match="frequency"):
        ToneTrack(hz)


def test_pcm_round_trips_through_frames_mono_and_stereo() -> None:
    rng = np.random.default_rng(1)
    for channels in (1, 2):
        pcm = rng.integers(-32768, 32767, size=(960, channels), dtype=np.int16)
        frame = pcm_to_frame(pcm, pts=1920)
        assert frame.pts == 1920
        assert len(frame.layout.channels) == channels
        assert np.array_equal(frame_to_pcm(frame), pcm)


def test_planar_float_frames_convert_to_int16() -> None:
    data = np.array([[0.5, -1.0, 2.0], [0.0, 0.25, -2.0]], dtype=np.float32)
    frame = AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
    pcm = frame_to_pcm(frame)
    assert pcm.shape == (3, 2)
    assert pcm[:, 0].tolist() == [16383, -32767, 32767]
    assert pcm[:, 1].tolist() == [0, 8191, -32767]


def test_levels_channels_and_ramps() -> None:
    silent = np.zeros((480, 1), dtype=np.int16)
    full = np.full((480, 1), 32767, dtype=np.int16)
    assert level_dbfs(silent) == SILENCE_DBFS
    assert level_dbfs(full) == pytest.approx(0.0, abs=0.01)
    stereo = to_channels(full, 2)
    assert stereo.shape == (480, 2)
    assert to_channels(np.array([[100, 300]], dtype=np.int16), 1).tolist() == [[200]]
    faded = ramp(full, 1.0, 0.0)[:, 0]
    assert faded[0] == 32767
    assert faded[-1] < 100
    assert np.all(np.diff(faded.astype(np.int32)) <= 0)
