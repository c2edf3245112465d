"""Devices and playback: listing and choosing devices, playing into ALSA's null device for
real, falling back to discarding when there is no speaker, volume, capture and WAV."""

from __future__ import annotations

import asyncio
import time
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
from callapp.media.pcm import FRAME_SAMPLES, SAMPLE_RATE, Pcm, level_dbfs, pcm_to_frame
from callapp.media.playback import DEFAULT_INPUT, AudioPlayback, PlaybackCapture, WavWriter
from callapp.media.tone import ToneTrack
from tests.media.audio_null import NULL_DEVICE
from tests.media.conftest import FeedTrack, dominant_hz, settle_until


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


# -- mixing -------------------------------------------------------------------------


class Mixer:
    """An AudioPlayback on a fake speaker whose inputs the test feeds, 20 ms at a time."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.streams: list[FakeOutput] = []
        self.capture = PlaybackCapture()
        self.sink = AudioPlayback(stream_factory=self.fake, capture=self.capture)
        self.tracks = {key: FeedTrack("audio") for key in keys}
        for key, track in self.tracks.items():
            self.sink.add_input(key, track)
        self.index = 0

    def fake(self, device: AudioDevice, channels: int, callback: Any, finished: Any) -> FakeOutput:
        self.streams.append(FakeOutput(callback, finished))
        return self.streams[-1]

    async def start(self) -> None:
        self.sink.start()
        await wait_for(lambda: bool(self.streams))

    async def step(self, samples: dict[str, Pcm]) -> Pcm:
        """One frame into each input named, then 20 ms (two device blocks) out; returns those."""
        before = self.sink.frames_received
        for key, pcm in samples.items():
            self.tracks[key].push(pcm_to_frame(pcm, self.index * FRAME_SAMPLES))
        self.index += 1
        await settle_until(lambda: self.sink.frames_received == before + len(samples))
        return np.concatenate([self.streams[0].play(480, 2) for _ in range(2)])


def tone_frames(hz: float) -> Callable[[], Pcm]:
    tone = ToneTrack(hz)
    return lambda: tone.generate(FRAME_SAMPLES, 0)


def strength(samples: Pcm, hz: float) -> float:
    """Spectral magnitude at ``hz`` in channel 0, relative to the strongest frequency."""
    spectrum = np.abs(np.fft.rfft(samples[:, 0].astype(np.float64) * np.hanning(len(samples))))
    return float(spectrum[round(hz * len(samples) / SAMPLE_RATE)] / spectrum.max())


async def test_two_inputs_are_mixed_and_one_leaves_without_a_gap(null_audio: Path) -> None:
    mixer = Mixer(("a", "b"))
    a, b = tone_frames(440), tone_frames(660)
    await mixer.start()
    assert mixer.sink.inputs == ("a", "b")
    both = np.concatenate([await mixer.step({"a": a(), "b": b()}) for _ in range(50)])
    mixed = both[-SAMPLE_RATE // 2 :]
    assert strength(mixed, 440) > 0.7
    assert strength(mixed, 660) > 0.7
    # Summed, not one or the other: each tone peaks at 8192.
    assert np.abs(mixed.astype(np.int32)).max() > 12_000
    assert np.array_equal(both, mixer.capture.samples()), "capture gets the mix"
    underruns = mixer.sink.input_stats("a").underruns

    mixer.sink.remove_input("b")
    assert mixer.sink.inputs == ("a",)
    alone = np.concatenate([await mixer.step({"a": a()}) for _ in range(25)])
    blocks = alone.reshape(-1, 480, 2)
    assert min(level_dbfs(block) for block in blocks) > -20, "a gap after b left"
    assert mixer.sink.input_stats("a").underruns == underruns
    # b fades out within its last block, with no click; from then on only a is heard.
    rest = alone[480:]
    assert strength(rest, 660) < 0.02
    assert dominant_hz(rest[:, 0]) == pytest.approx(440, abs=3)
    across = np.concatenate([both[-480:], alone[:960]])[:, 0].astype(np.int32)
    # Each tone moves at most ~700 a sample; dropping b at once would jump up to 8192.
    assert np.abs(np.diff(across)).max() < 1500, "b left with a click"
    await mixer.sink.stop()
    assert mixer.sink.input_stats("a").played > 0


async def test_an_input_that_starves_does_not_hold_up_the_others(null_audio: Path) -> None:
    mixer = Mixer(("a", "b"))
    a, b = tone_frames(440), tone_frames(660)
    await mixer.start()
    for _ in range(10):
        await mixer.step({"a": a(), "b": b()})
    starved = np.concatenate([await mixer.step({"a": a()}) for _ in range(25)])
    assert mixer.sink.input_stats("b").underruns == 1, "b ran dry (and stays waiting)"
    assert mixer.sink.input_stats("a").underruns == 0
    steady = starved[FRAME_SAMPLES:]  # b's fade-out is over within 10 ms
    assert min(level_dbfs(block) for block in steady.reshape(-1, 480, 2)) > -20
    assert dominant_hz(steady[:, 0]) == pytest.approx(440, abs=3)
    assert strength(steady, 660) < 0.02
    assert mixer.sink.stats.underruns == 1, "stats sums the inputs"
    await mixer.sink.stop()


async def test_a_loud_mix_clips_instead_of_wrapping_and_volume_comes_first(
    null_audio: Path,
) -> None:
    mixer = Mixer(("a", "b"))
    await mixer.start()

    def loud(value: int) -> dict[str, Pcm]:
        return {key: np.full((FRAME_SAMPLES, 1), value, np.int16) for key in ("a", "b")}

    up = np.concatenate([await mixer.step(loud(30_000)) for _ in range(6)])
    down = np.concatenate([await mixer.step(loud(-30_000)) for _ in range(6)])
    playing = up[np.flatnonzero(up[:, 0])[0] + 480 :]  # past the 2.5 ms fade-in
    assert playing.min() == playing.max() == 32_767, "30000 + 30000 wrapped around"
    assert down[-480:].min() == down[-480:].max() == -32_768
    mixer.sink.volume = 0.5
    await mixer.step(loud(30_000))  # ramps to the new volume
    halved = np.concatenate([await mixer.step(loud(30_000)) for _ in range(4)])
    # The volume scales the int32 sum, then it is clipped: 60000 * 0.5, not 32767 * 0.5.
    assert halved[-960:].min() == halved[-960:].max() == 30_000
    await mixer.sink.stop()


async def test_one_track_at_construction_is_the_default_input(null_audio: Path) -> None:
    track = FeedTrack("audio")
    sink = AudioPlayback(track, device="none")
    assert sink.inputs == (DEFAULT_INPUT,)
    with pytest.raises(ValueError, match="playing already"):
        sink.add_input(DEFAULT_INPUT, FeedTrack("audio"))
    with pytest.raises(ValueError, match="audio track"):
        sink.add_input("video", FeedTrack("video"))
    sink.remove_input("nobody")  # no-op
    sink.start()
    track.push(pcm_to_frame(np.ones((FRAME_SAMPLES, 2), np.int16), 0))
    await settle_until(lambda: sink.frames_received == 1)
    assert sink.stats is sink.input_stats(DEFAULT_INPUT)
    sink.remove_input(DEFAULT_INPUT)
    assert sink.inputs == ()
    await sink.stop()
    assert track.readyState == "live", "the sink never stops a track"
    with pytest.raises(RuntimeError):
        sink.add_input("late", FeedTrack("audio"))


# -- feeds, and discarding without a clock of its own ----------------------------------


async def test_a_feed_is_played_like_a_track_with_nothing_reading_it(null_audio: Path) -> None:
    mixer = Mixer(())
    feed = mixer.sink.add_feed("leg")
    tone = tone_frames(440)
    feed(pcm_to_frame(np.repeat(tone(), 2, axis=1), 0))  # before the speaker: dropped
    assert mixer.sink.frames_received == 0
    await mixer.start()
    await wait_for(lambda: mixer.sink.status.state is AudioState.LIVE)
    assert mixer.sink.inputs == ("leg",)
    with pytest.raises(ValueError, match="playing already"):
        mixer.sink.add_feed("leg")
    played = []
    for index in range(1, 51):
        feed(pcm_to_frame(np.repeat(tone(), 2, axis=1), index * FRAME_SAMPLES))
        played += [mixer.streams[0].play(480, 2) for _ in range(2)]
    assert mixer.sink.frames_received == 50
    assert dominant_hz(np.concatenate(played)[-SAMPLE_RATE // 2 :, 0]) == pytest.approx(440, abs=3)
    assert mixer.sink.level > -30
    mixer.sink.remove_input("leg")
    feed(pcm_to_frame(np.repeat(tone(), 2, axis=1), 51 * FRAME_SAMPLES))  # gone: ignored
    assert mixer.sink.frames_received == 50
    await mixer.sink.stop()
    with pytest.raises(RuntimeError):
        mixer.sink.add_feed("late")


async def test_without_a_speaker_arriving_frames_drive_the_discarding() -> None:
    capture = PlaybackCapture()
    sink = AudioPlayback(device="none", capture=capture)
    feed = sink.add_feed("leg")
    sink.start()
    await wait_for(lambda: sink.status.state is AudioState.OFF)
    blocks: list[int] = []

    def keep(pcm: Pcm) -> None:
        blocks.append(pcm.shape[0])
        capture(pcm)

    sink.capture = keep
    tone = ToneTrack(440)
    started = asyncio.get_running_loop().time()
    for index in range(40):  # 0.8 s of frames, on time
        await asyncio.sleep(0.02)
        feed(pcm_to_frame(np.repeat(tone.generate(FRAME_SAMPLES, 0), 2, axis=1), index * 960))
    elapsed = asyncio.get_running_loop().time() - started
    # What a device would have taken: real time, in 10 ms blocks, the tone in them.
    assert sink.played_seconds == pytest.approx(elapsed, abs=0.05)
    assert set(blocks) == {480}
    assert dominant_hz(capture.samples()[-SAMPLE_RATE // 4 :, 0]) == pytest.approx(440, abs=8)
    # A frame a sleep late on a busy machine is an underrun; a few of 40 are jitter.
    assert sink.stats.underruns <= 6
    # With nothing arriving, the clock still runs (in steps of at most 0.1 s).
    before = sink.played_seconds
    await asyncio.sleep(0.35)
    assert sink.played_seconds - before == pytest.approx(0.35, abs=0.12)
    await sink.stop()


async def test_a_stalled_loop_skips_ahead_instead_of_discarding_a_burst() -> None:
    sink = AudioPlayback(device="none")
    sink.start()
    await wait_for(lambda: sink.status.state is AudioState.OFF)
    await asyncio.sleep(0.05)
    time.sleep(0.8)  # noqa: ASYNC251  (the loop stalls: that is the point)
    sink._discard_due()
    assert sink.played_seconds < 0.3
    await sink.stop()
