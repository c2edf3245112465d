"""Devices and playback: listing and choosing devices, playing into ALSA's null device for
real, falling back to discarding when there is no speaker, volume, capture and WAV."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from callapp.media.devices import (
    AudioDevice,
    AudioDeviceError,
    AudioState,
    AudioStatus,
    find_device,
    list_audio_devices,
)
from callapp.media.pcm import FRAME_SAMPLES, SAMPLE_RATE, pcm_to_frame
from callapp.media.playback import AudioPlayback, PlaybackCapture, WavWriter
from callapp.media.tone import ToneTrack
from tests.media.audio_null import NULL_DEVICE
from tests.media.conftest import dominant_hz


class Decoded(MediaStreamTrack):
    """Stands in for aiortc's remote track: stereo s16 frames, RTP-like pts from 12345."""

    kind = "audio"

    def __init__(self, source: ToneTrack, frames: int = -1) -> None:
        super().__init__()
        self.source = source
        self.remaining = frames

    async def recv(self) -> AudioFrame:
        if self.remaining == 0:
            self.stop()
        if self.readyState != "live":
            raise MediaStreamError
        self.remaining -= 1
        frame = await self.source.recv()
        mono = np.frombuffer(bytes(frame.planes[0]), dtype=np.int16)[: frame.samples]
        stereo = np.stack([mono, mono], axis=1)
        return pcm_to_frame(stereo, 12345 + (frame.pts or 0))


async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"still not true after {within} s")


# -- devices ------------------------------------------------------------------------


def test_the_null_device_is_listed_both_ways_and_chosen_by_name_or_index(
    null_audio: Path,
) -> None:
    devices = list_audio_devices()
    names = [d.name for d in devices]
    assert NULL_DEVICE in names
    null = devices[names.index(NULL_DEVICE)]
    assert null.is_input
    assert null.is_output
    assert null.host_api == "ALSA"
    assert null.spec == f"mic:{NULL_DEVICE}"
    assert NULL_DEVICE in [d.name for d in list_audio_devices("input")]
    assert NULL_DEVICE in [d.name for d in list_audio_devices("output")]
    assert find_device(NULL_DEVICE, "output") == null
    assert find_device(null.index, "input") == null
    assert find_device(str(null.index), "input") == null
    assert find_device("CALLAPP_N", "output") == null  # a unique part, any case
    default = find_device(None, "output")
    assert default.is_default_output


def test_unknown_and_ambiguous_device_names_say_so(null_audio: Path) -> None:
    with pytest.raises(AudioDeviceError, match="No speaker named 'Headphones'"):
        find_device("Headphones", "output")
    with pytest.raises(AudioDeviceError, match="No microphone with index 99"):
        find_device(99, "input")
    # "null" is part of callapp_null only; "" would be the default, "a" matches both devices.
    with pytest.raises(AudioDeviceError, match="matches several"):
        find_device("a", "output")


def test_without_a_sound_card_there_are_no_devices(no_audio_devices: None) -> None:
    assert list_audio_devices() == []
    with pytest.raises(AudioDeviceError, match="No microphone found"):
        find_device(None, "input")


# -- playback -----------------------------------------------------------------------


async def test_playing_a_tone_into_the_null_device_for_real(null_audio: Path) -> None:
    capture = PlaybackCapture()
    statuses: list[AudioStatus] = []
    sink = AudioPlayback(
        Decoded(ToneTrack(660)), device=NULL_DEVICE, capture=capture, on_status=statuses.append
    )
    sink.start()
    delays = []
    for _ in range(1000):
        if sink.played_seconds >= 1.5:
            break
        delays.append(sink.delay)
        await asyncio.sleep(0.01)
    await sink.stop()
    assert [s.state for s in statuses][:2] == [AudioState.STARTING, AudioState.LIVE]
    assert statuses[1].device == NULL_DEVICE
    assert statuses[-1].state is AudioState.STOPPED
    played = capture.samples()
    assert played.shape[1] == 2
    assert played.shape[0] >= int(1.4 * SAMPLE_RATE)
    assert dominant_hz(played[-SAMPLE_RATE:, 0]) == pytest.approx(660, abs=2)
    # The device is paced in real time: what it played matches what arrived.
    assert sink.frames_received * FRAME_SAMPLES == pytest.approx(played.shape[0], rel=0.15)
    assert sink.stats.underruns <= 3
    # The jitter buffer keeps what it holds near one frame and a margin (20-30 ms).
    assert float(np.median(delays[len(delays) // 2 :])) <= 0.060


async def test_no_speaker_discards_in_real_time_and_says_so(no_audio_devices: None) -> None:
    capture = PlaybackCapture()
    sink = AudioPlayback(Decoded(ToneTrack(440)), capture=capture)
    sink.start()
    await wait_for(lambda: sink.played_seconds >= 0.6)
    await sink.stop()
    assert sink.status.state is AudioState.STOPPED
    assert sink.frames_received >= 25
    assert dominant_hz(capture.samples()[-SAMPLE_RATE // 4 :, 0]) == pytest.approx(440, abs=8)


async def test_no_speaker_status_message(no_audio_devices: None) -> None:
    statuses: list[AudioStatus] = []
    sink = AudioPlayback(Decoded(ToneTrack(440)), on_status=statuses.append)
    sink.start()
    await wait_for(lambda: any(s.state is AudioState.FALLBACK for s in statuses))
    await sink.stop()
    fallback = next(s for s in statuses if s.state is AudioState.FALLBACK)
    assert fallback.message == "No speaker found: the other person's audio is not played"


async def test_output_none_is_off_not_a_failure() -> None:
    sink = AudioPlayback(Decoded(ToneTrack(440)), device="none")
    sink.start()
    await wait_for(lambda: sink.played_seconds >= 0.1)
    assert sink.status.state is AudioState.OFF
    await sink.stop()


class FakeOutput:
    def __init__(
        self, callback: Callable[[Any, int, Any, Any], None], finished: Callable[[], None]
    ):
        self.callback = callback
        self.finished = finished
        self.latency = 0.01

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass

    def play(self, frames: int, channels: int) -> np.ndarray:
        out = np.ones((frames, channels), dtype=np.int16)
        self.callback(out, frames, None, None)
        return out


async def test_a_speaker_that_goes_away_falls_back_to_discarding(null_audio: Path) -> None:
    streams: list[FakeOutput] = []

    def fake(device: AudioDevice, channels: int, callback: Any, finished: Any) -> FakeOutput:
        assert channels == 2
        streams.append(FakeOutput(callback, finished))
        return streams[-1]

    capture = PlaybackCapture()
    sink = AudioPlayback(
        Decoded(ToneTrack(440)), device=NULL_DEVICE, stream_factory=fake, capture=capture
    )
    sink.start()
    await wait_for(lambda: sink.status.state is AudioState.LIVE)
    await wait_for(lambda: sink.frames_received >= 4)
    out = streams[0].play(480, 2)
    assert np.array_equal(out, capture.samples()), "the device got something else than captured"
    streams[0].finished()  # unplugged
    await wait_for(lambda: sink.status.state is AudioState.FALLBACK)
    assert "went away" in sink.status.message
    before = capture.total
    await wait_for(lambda: capture.total >= before + SAMPLE_RATE // 5)
    await sink.stop()


async def test_volume_scales_what_is_played_without_a_jump(null_audio: Path) -> None:
    streams: list[FakeOutput] = []

    def fake(device: AudioDevice, channels: int, callback: Any, finished: Any) -> FakeOutput:
        streams.append(FakeOutput(callback, finished))
        return streams[-1]

    sink = AudioPlayback(Decoded(ToneTrack(440, amplitude=0.5)), stream_factory=fake)
    sink.start()
    await wait_for(lambda: bool(streams) and sink.frames_received >= 6)
    full = np.abs(streams[0].play(480, 2)).max()
    sink.volume = 0.25
    changing = streams[0].play(480, 2)
    quiet = np.abs(streams[0].play(480, 2)).max()
    await sink.stop()
    assert full > 10_000
    assert quiet == pytest.approx(full * 0.25, rel=0.1)
    steps = np.abs(np.diff(changing[:, 0].astype(np.int32)))
    assert steps.max() < 0.2 * full, "the volume change jumped"
    sink.volume = 9.0
    assert sink.volume == 2.0


def test_wav_writer_writes_what_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "heard.wav"
    writer = WavWriter(path)
    block = np.arange(960, dtype=np.int16).reshape(480, 2)
    for _ in range(10):
        writer(block)
    writer.close()
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == SAMPLE_RATE
        assert wav.getnchannels() == 2
        assert wav.getnframes() == 4800
        data = np.frombuffer(wav.readframes(480), dtype="<i2").reshape(-1, 2)
    assert np.array_equal(data, block)
