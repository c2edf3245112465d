"""Audio sources: mute sends silence, the spec factory, files, and microphones with and
without a device (ALSA's null device stands in for a real one; see ``audio_null``)."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from callapp.media.audio_sources import (
    AudioFileTrack,
    MicrophoneTrack,
    MutableAudioTrack,
    open_audio_source,
)
from callapp.media.devices import AudioDevice, AudioState, AudioStatus
from callapp.media.pcm import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SILENCE_DBFS,
    frame_samples,
    frame_to_pcm,
    level_dbfs,
    pcm_to_frame,
)
from callapp.media.tone import SilenceTrack, ToneTrack
from tests.media.audio_null import NULL_DEVICE
from tests.media.conftest import dominant_hz


def write_tone_wav(path: Path, hz: float, seconds: float, rate: int = 44_100) -> None:
    t = np.arange(int(seconds * rate)) / rate
    samples = np.rint(10_000 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


# -- mute ---------------------------------------------------------------------------


async def test_muting_sends_digital_silence_with_the_same_timing() -> None:
    sender = MutableAudioTrack(ToneTrack(440))
    loud = [await sender.recv() for _ in range(3)]
    assert all(frame_to_pcm(f).any() for f in loud)
    assert sender.level > -20
    sender.muted = True
    fading = await sender.recv()  # one frame fades out...
    muted = [await sender.recv() for _ in range(5)]  # ...then nothing but zeros
    fade = frame_to_pcm(fading)[:, 0].astype(np.int32)
    assert np.abs(fade[-48:]).max() < np.abs(fade[:48]).max() or not fade[:48].any()
    assert all(not frame_to_pcm(f).any() for f in muted)
    assert sender.level == SILENCE_DBFS
    pts = [f.pts for f in (*loud, fading, *muted)]
    assert pts == [i * FRAME_SAMPLES for i in range(len(pts))], "muting changed the timing"
    sender.muted = False
    back = [await sender.recv() for _ in range(2)]
    assert frame_to_pcm(back[1]).any()
    assert abs(int(frame_to_pcm(back[0])[0, 0])) < 200, "unmute did not fade in"


async def test_a_mute_switch_can_swap_its_source_and_leaves_it_running() -> None:
    tone, silence = ToneTrack(440), SilenceTrack()
    sender = MutableAudioTrack(tone)
    assert frame_to_pcm(await sender.recv()).any()
    assert sender.replace_source(silence) is tone
    assert not frame_to_pcm(await sender.recv()).any()
    sender.stop()
    assert tone.readyState == "live"
    with pytest.raises(MediaStreamError):
        await sender.recv()


# -- the factory --------------------------------------------------------------------


def test_specs_open_the_right_sources(tmp_path: Path) -> None:
    assert isinstance(open_audio_source("none"), SilenceTrack)
    tone = open_audio_source("tone:880")
    assert isinstance(tone, ToneTrack)
    assert tone.frequency == 880
    assert isinstance(open_audio_source("tone"), ToneTrack)
    mic = open_audio_source("mic:3")
    assert isinstance(mic, MicrophoneTrack)
    assert mic.device == 3
    named = open_audio_source("mic:USB Audio")
    assert isinstance(named, MicrophoneTrack)
    assert named.device == "USB Audio"
    default = open_audio_source(" mic ")
    assert isinstance(default, MicrophoneTrack)
    assert default.device is None
    path = tmp_path / "a.wav"
    write_tone_wav(path, 1000, 0.2)
    track = open_audio_source(str(path))
    assert isinstance(track, AudioFileTrack)
    track.stop()


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("", ValueError, "empty audio source"),
        ("tone:loud", ValueError, "bad tone frequency"),
        ("tone:30000", ValueError, "between 0 and 24000"),
        ("/no/such/file.wav", FileNotFoundError, "not a file that exists"),
    ],
)
def test_bad_specs_say_what_was_expected(spec: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        open_audio_source(spec)


def test_a_folder_or_a_file_without_audio_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="folder"):
        open_audio_source(str(tmp_path))
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    with pytest.raises(ValueError, match=r"cannot open|no audio"):
        open_audio_source(str(text))


async def test_a_file_plays_at_48k_mono_in_real_time_and_loops(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    write_tone_wav(path, 1000, 0.3)  # 44.1 kHz: resampled on the way
    track = AudioFileTrack(path)
    try:
        frames = [await track.recv() for _ in range(25)]  # 0.5 s: wraps around once
    finally:
        track.stop()
    assert track.loops >= 1
    assert all(f.samples == FRAME_SAMPLES and f.sample_rate == SAMPLE_RATE for f in frames)
    assert [f.pts for f in frames] == [i * FRAME_SAMPLES for i in range(25)]
    samples = np.concatenate([frame_to_pcm(f)[:, 0] for f in frames[:12]])
    assert dominant_hz(samples) == pytest.approx(1000, abs=5)


# -- microphones --------------------------------------------------------------------


async def started(streams: list[FakeInput]) -> None:
    for _ in range(500):
        if streams and streams[0].started:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the microphone stream never started")


class FakeInput:
    """A stream that calls back with ``blocks`` of samples from a thread-free pump."""

    def __init__(
        self, callback: Callable[[Any, int, Any, Any], None], finished: Callable[[], None]
    ):
        self.callback = callback
        self.finished = finished
        self.started = False
        self.closed = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def feed(self, samples: np.ndarray) -> None:
        self.callback(samples.reshape(-1, 1), samples.shape[0], None, None)


async def test_no_microphone_sends_silence_and_says_so(no_audio_devices: None) -> None:
    statuses: list[AudioStatus] = []
    mic = MicrophoneTrack(on_status=statuses.append)
    try:
        frames = [await asyncio.wait_for(mic.recv(), 2.0) for _ in range(5)]
    finally:
        mic.stop()
    assert all(not frame_to_pcm(f).any() for f in frames)
    fallback = [s for s in statuses if s.state is AudioState.FALLBACK]
    assert fallback
    assert fallback[0].message == "No microphone found: the other person will hear silence"
    assert statuses[-1].state is AudioState.STOPPED


async def test_a_microphone_that_fails_to_open_falls_back(null_audio: Path) -> None:
    def broken(device: AudioDevice, callback: Any, finished: Any) -> FakeInput:
        raise OSError("Device unavailable [PaErrorCode -9985]")

    statuses: list[AudioStatus] = []
    mic = MicrophoneTrack(NULL_DEVICE, on_status=statuses.append, stream_factory=broken)
    frame = await asyncio.wait_for(mic.recv(), 2.0)
    mic.stop()
    assert not frame_to_pcm(frame).any()
    assert mic.status.state is AudioState.STOPPED
    messages = [s.message for s in statuses if s.state is AudioState.FALLBACK]
    assert messages
    assert "could not be opened (Device unavailable" in messages[0]
    assert messages[0].endswith("the other person will hear silence")


async def test_an_unknown_microphone_name_falls_back_with_its_name(null_audio: Path) -> None:
    mic = MicrophoneTrack("Studio Condenser")
    await asyncio.wait_for(mic.recv(), 2.0)
    try:
        assert mic.status.state is AudioState.FALLBACK
        assert "'Studio Condenser'" in mic.status.message
    finally:
        mic.stop()


async def test_a_microphone_delivers_its_samples_in_20ms_frames(null_audio: Path) -> None:
    streams: list[FakeInput] = []

    def fake(device: AudioDevice, callback: Any, finished: Any) -> FakeInput:
        assert device.name == NULL_DEVICE
        streams.append(FakeInput(callback, finished))
        return streams[-1]

    mic = MicrophoneTrack(NULL_DEVICE, stream_factory=fake)
    mic.start()
    await started(streams)
    ramp_samples = np.arange(3000, dtype=np.int16)
    for block in np.array_split(ramp_samples, 7):  # odd block sizes, as devices give
        streams[0].feed(block)
    frames = [await asyncio.wait_for(mic.recv(), 1.0) for _ in range(3)]
    got = np.concatenate([frame_to_pcm(f)[:, 0] for f in frames])
    assert np.array_equal(got, ramp_samples[: 3 * FRAME_SAMPLES])
    assert [f.pts for f in frames] == [0, 960, 1920]
    assert mic.status.state is AudioState.LIVE
    # The device goes away: silence follows, and the status says why.
    streams[0].finished()
    frame = await asyncio.wait_for(mic.recv(), 1.0)
    assert not frame_to_pcm(frame)[FRAME_SAMPLES // 2 :].any()
    assert mic.status.state is AudioState.FALLBACK
    assert "went away" in mic.status.message
    mic.stop()
    assert streams[0].closed


async def test_between_calls_the_microphone_is_closed_and_opens_again(null_audio: Path) -> None:
    streams: list[FakeInput] = []

    def fake(device: AudioDevice, callback: Any, finished: Any) -> FakeInput:
        streams.append(FakeInput(callback, finished))
        return streams[-1]

    mic = MicrophoneTrack(NULL_DEVICE, stream_factory=fake, idle_timeout=0.2)
    mic.start()
    await started(streams)
    streams[0].feed(np.ones(FRAME_SAMPLES, dtype=np.int16))
    assert frame_to_pcm(await asyncio.wait_for(mic.recv(), 1.0)).all()
    # A call ends: nobody reads. The device closes, and that is no "device lost".
    for _ in range(100):
        if streams[0].closed:
            break
        await asyncio.sleep(0.02)
    assert streams[0].closed, "the microphone stayed open with nobody reading"
    assert mic.idle_closes == 1
    streams[0].finished()  # PortAudio reports the stream it was asked to close
    await asyncio.sleep(0.05)
    assert mic.status.state is not AudioState.FALLBACK
    # The next call reads again: a fresh stream, and its samples (not stale ones).
    reading = asyncio.ensure_future(mic.recv())
    for _ in range(100):
        if len(streams) == 2 and streams[1].started:
            break
        await asyncio.sleep(0.02)
    assert len(streams) == 2, "the microphone did not open again"
    streams[1].feed(np.full(FRAME_SAMPLES, 7, dtype=np.int16))
    frame = await asyncio.wait_for(reading, 1.0)
    assert (frame_to_pcm(frame) == 7).all()
    assert mic.status.state is AudioState.LIVE
    mic.stop()
    assert streams[1].closed


async def test_a_slow_reader_loses_old_samples_not_memory(null_audio: Path) -> None:
    streams: list[FakeInput] = []

    def fake(device: AudioDevice, callback: Any, finished: Any) -> FakeInput:
        streams.append(FakeInput(callback, finished))
        return streams[-1]

    mic = MicrophoneTrack(NULL_DEVICE, stream_factory=fake, buffer_seconds=0.1)
    mic.start()
    await started(streams)
    for i in range(50):  # one second of 20 ms blocks nobody reads
        streams[0].feed(np.full(FRAME_SAMPLES, i, dtype=np.int16))
    assert mic.samples_dropped >= 45 * FRAME_SAMPLES
    frame = await mic.recv()
    assert frame_to_pcm(frame)[0, 0] >= 44, "the oldest samples should have been dropped"
    mic.stop()


async def test_the_null_device_records_in_real_time(null_audio: Path) -> None:
    mic = MicrophoneTrack(NULL_DEVICE)
    loop = asyncio.get_running_loop()
    try:
        first = await asyncio.wait_for(mic.recv(), 5.0)
        start = loop.time()
        frames = [await asyncio.wait_for(mic.recv(), 2.0) for _ in range(25)]
        elapsed = loop.time() - start
    finally:
        mic.stop()
    assert mic.status.state is AudioState.STOPPED
    assert first.sample_rate == SAMPLE_RATE
    # (What ALSA's null device records is not guaranteed to be zeros: not checked.)
    assert all(f.samples == FRAME_SAMPLES for f in frames)
    # A device without a clock is held to real time rather than flooding the call.
    assert elapsed >= 0.3, f"25 frames in {elapsed:.3f} s: the null device was not paced"
    assert mic.samples_captured < 2 * SAMPLE_RATE


async def test_unmuted_frames_go_through_as_they_are() -> None:
    source = ToneTrack(440)
    sender = MutableAudioTrack(source)
    frame = await sender.recv()
    assert frame_to_pcm(frame).any()
    # No copy on the way and no per-frame level: it is worked out when asked.
    assert sender._last is frame
    assert sender.level == pytest.approx(level_dbfs(frame_to_pcm(frame)))


def test_frame_samples_is_a_read_only_view_and_frame_to_pcm_a_copy() -> None:
    pcm = np.arange(2 * FRAME_SAMPLES, dtype=np.int16).reshape(-1, 2)
    frame = pcm_to_frame(pcm, 0)
    view = frame_samples(frame)
    assert view.shape == (FRAME_SAMPLES, 2)
    assert np.array_equal(view, pcm)
    assert not view.flags.writeable
    assert np.shares_memory(view, frame_samples(frame))
    copy = frame_to_pcm(frame)
    assert np.array_equal(copy, pcm)
    assert copy.flags.writeable
    assert not np.shares_memory(copy, view)
    mono = pcm_to_frame(pcm[:, :1].copy(), 0)
    assert frame_samples(mono).shape == (FRAME_SAMPLES, 1)
