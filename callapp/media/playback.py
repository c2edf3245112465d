"""Playing remote audio tracks: one jitter buffer per track, mixed into one speaker.

aiortc decodes remote audio into 20 ms frames but has nothing to play them
with. :class:`AudioPlayback` is a session's one speaker stream with any
number of inputs (one per call leg, by key): a task per input reads its track
and queues each frame in that input's own
:class:`~callapp.media.jitter.JitterBuffer`, and a PortAudio output stream
pulls 10 ms blocks in its callback, on PortAudio's thread: the next block of
every input, summed in ``int32``, scaled by the volume, clipped to ``int16``
(:func:`~callapp.media.pcm.mix`). The buffers are shared under one lock; the
callback does no allocation beyond numpy's and never waits for the event
loop. An input whose audio has not arrived gives its fade-out, then silence
(its buffer conceals, see :mod:`~callapp.media.jitter`), so one late leg
never holds up the others; an input removed gives one last block faded to
nothing, so leaving does not click.

Inputs are tracks (:meth:`AudioPlayback.add_input`: a task reads each) or
feeds (:meth:`AudioPlayback.add_feed`: whoever already has the decoded
frames, the call session reading a leg's remote track, pushes them in, and no
task or queue of ours sits in between).

Without a speaker (none found, it fails to open, it goes away, or ``none``
was asked for) the call goes on: the same blocks are pulled in real time and
thrown away, and :attr:`AudioPlayback.status` says so in words. No timer of
its own ticks 100 times a second for that: whenever a frame arrives, and at
the latest every :data:`DISCARD_TICK` seconds, the blocks that real time says
are due are pulled before the frame goes in, so each input's buffer sees what
a device would have asked of it by then. Either way every block played (or
discarded), the mix, is handed to ``capture``, which is how tests and
recordings hear what the user heard.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import queue
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from av import AudioFrame

from callapp.media.devices import (
    AudioDevice,
    AudioDeviceError,
    AudioState,
    AudioStatus,
    AudioStream,
    PaceGuard,
    StreamCallback,
    close_stream,
    device_label,
    notify_loop,
    open_device_stream,
    open_portaudio_stream,
    report_status,
)
from callapp.media.jitter import JitterBuffer, JitterStats
from callapp.media.pcm import (
    SAMPLE_RATE,
    SILENCE_DBFS,
    Pcm,
    frame_samples,
    frame_to_pcm,
    level_dbfs,
    mix,
    ramp,
    to_channels,
)
from callapp.media.reading import read_track

logger = logging.getLogger(__name__)

#: Samples the speaker is handed per callback: 10 ms.
BLOCK_SAMPLES = 480
#: Without a speaker: the longest the discarding clock waits for a frame to wake it.
DISCARD_TICK = 0.1
#: Most a volume may be raised to (2 = +6 dB); samples are clipped beyond full scale.
MAX_VOLUME = 2.0
#: The key of the input given to the constructor.
DEFAULT_INPUT = "default"
#: Channels every input is mixed in (what aiortc's Opus decoder gives).
MIX_CHANNELS = 2
NOT_PLAYED = "the other person's audio is not played"

#: Without a speaker: a loop that fell further behind than this skips ahead.
_MAX_DISCARD_LAG = 0.5

Capture = Callable[[Pcm], None]
#: ``(device, channels, callback, finished_callback) -> stream``; the callback
#: has sounddevice's signature ``(outdata, frames, time, status)``.
OutputStreamFactory = Callable[[AudioDevice, int, StreamCallback, Callable[[], None]], AudioStream]


def open_portaudio_output(
    device: AudioDevice,
    channels: int,
    callback: StreamCallback,
    finished: Callable[[], None],
) -> AudioStream:
    """A 48 kHz ``int16`` output stream on ``device`` with 10 ms blocks, lowest latency."""
    return open_portaudio_stream(
        "output", device, channels, callback, finished, blocksize=BLOCK_SAMPLES
    )


@dataclass(eq=False)
class _Input:
    """One track being played: its buffer (shared with the audio thread) and its reader."""

    key: str
    track: MediaStreamTrack | None  # None: a feed (add_feed)
    jitter: JitterBuffer
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    resampler: av.AudioResampler | None = field(default=None, repr=False)


class AudioPlayback:
    """Mixes its inputs' audio onto one speaker, each through its own jitter buffer.

    See the module docstring. ``track``, if given, is the first input, under
    :data:`DEFAULT_INPUT` (with ``jitter`` as its buffer): ``AudioPlayback(track)``
    plays one track. :meth:`add_input` and :meth:`remove_input` change the
    inputs at any time, before or after :meth:`start`.

    ``device`` is an index, a name (or part of one), None for the default
    speaker, or ``"none"`` to play nothing (blocks are still captured).
    ``volume`` scales the mix, 0 to :data:`MAX_VOLUME`; changes fade over
    one block. ``capture(samples)`` gets each block of the mix, shaped
    ``(480, 2)``, on PortAudio's thread or the event loop's: keep it short,
    and copy the block to keep it. ``on_status`` runs on the event loop
    thread. Everything else is called on the event loop thread. Neither
    removing an input nor stopping the sink stops a track.
    """

    def __init__(
        self,
        track: MediaStreamTrack | None = None,
        *,
        device: int | str | None = None,
        volume: float = 1.0,
        on_status: Callable[[AudioStatus], None] | None = None,
        capture: Capture | None = None,
        stream_factory: OutputStreamFactory = open_portaudio_output,
        jitter: JitterBuffer | None = None,
    ) -> None:
        self.device = device
        self.on_status = on_status
        self.capture = capture
        self._stream_factory = stream_factory
        self._volume = _clamp_volume(volume)
        self._applied_volume = self._volume
        self._status = AudioStatus(AudioState.STARTING, device_label(device), "Opening the speaker")
        self._lock = threading.Lock()
        self._stream: AudioStream | None = None
        self._channels = 2
        # Until the stream says its latency (see _open_output): a clockless device
        # must not pull 100 ms at once while the first frames are on their way.
        self._guard = PaceGuard(SAMPLE_RATE, slack=0.05)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Task[None] | None = None
        self._clock: asyncio.Task[None] | None = None
        # Without a speaker: when discarding started, and the blocks pulled since.
        self._discard_origin = 0.0
        self._discard_blocks = 0
        # Both guarded by _lock: the audio thread pulls from them.
        self._inputs: dict[str, _Input] = {}
        self._leaving: list[_Input] = []  # removed; one last, faded block to play
        self._stopping = False
        self._callback_failed = False
        self.frames_received = 0
        """Frames read from all inputs, removed ones included."""
        self.samples_played = 0
        """Samples handed to the speaker (or discarded in its place), silence included."""
        self.device_underflows = 0
        """Times the speaker reported it ran dry (its own buffer, not ours)."""
        self._last_block: Pcm | None = None
        self.error: BaseException | None = None
        """What the last input that failed raised (its track ended otherwise than normally)."""
        if track is not None:
            self.add_input(DEFAULT_INPUT, track, jitter=jitter)
        elif jitter is not None:
            raise ValueError("jitter is the buffer of the track given with it")

    # -- observing -------------------------------------------------------------

    @property
    def status(self) -> AudioStatus:
        return self._status

    @property
    def inputs(self) -> tuple[str, ...]:
        """The keys of the inputs playing now, in the order they were added."""
        return tuple(self._inputs)

    @property
    def stats(self) -> JitterStats:
        """Jitter-buffer counters: the one input's own, or a sum over the inputs playing now."""
        inputs = list(self._inputs.values())
        if len(inputs) == 1:
            return inputs[0].jitter.stats
        total = JitterStats()
        for counter in dataclasses.fields(JitterStats):
            name = counter.name
            setattr(total, name, sum(getattr(i.jitter.stats, name) for i in inputs))
        return total

    def input_stats(self, key: str) -> JitterStats:
        """The jitter-buffer counters of input ``key`` (KeyError if it is not playing)."""
        return self._inputs[key].jitter.stats

    @property
    def delay(self) -> float:
        """Seconds of audio waiting in the fullest input's jitter buffer (0 without inputs).

        The device adds its own latency.
        """
        return max((i.jitter.delay for i in self._inputs.values()), default=0.0)

    @property
    def level(self) -> float:
        """Level of the last block played, in dBFS (worked out when asked)."""
        block = self._last_block
        return SILENCE_DBFS if block is None else level_dbfs(block)

    @property
    def played_seconds(self) -> float:
        return self.samples_played / SAMPLE_RATE

    @property
    def volume(self) -> float:
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        self._volume = _clamp_volume(value)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._opening is not None and not self._stopping

    # -- control ---------------------------------------------------------------

    def start(self) -> None:
        """Open the speaker and start reading every input; idempotent."""
        if self._opening is None and not self._stopping:
            self._loop = asyncio.get_running_loop()
            self._report()
            self._opening = self._loop.create_task(self._open_output(), name="audio-output")
            for item in self._inputs.values():
                self._start_input(item)

    def add_input(
        self, key: str, track: MediaStreamTrack, *, jitter: JitterBuffer | None = None
    ) -> None:
        """Mix ``track`` in from its next frame on, through its own jitter buffer.

        ``jitter`` replaces the default ``JitterBuffer(2)``. Reading starts
        now if the sink has started, else at :meth:`start`. The track plays
        until :meth:`remove_input`; once it ends, its input is silent. Raises
        ValueError if ``key`` is playing already (remove it first) or the
        track is not audio, RuntimeError after :meth:`stop`.
        """
        if self._stopping:
            raise RuntimeError("add_input() after stop()")
        if track.kind != "audio":
            raise ValueError(f"can play an audio track, not a {track.kind!r} one")
        if key in self._inputs:
            raise ValueError(f"an input {key!r} is playing already")
        item = _Input(key, track, jitter or JitterBuffer(MIX_CHANNELS))
        with self._lock:
            self._inputs[key] = item
        if self._opening is not None:
            self._start_input(item)

    def add_feed(
        self, key: str, *, jitter: JitterBuffer | None = None
    ) -> Callable[[AudioFrame], None]:
        """An input fed by the function returned: call it with each decoded frame, in order.

        Mixed in like :meth:`add_input`'s tracks (through its own ``jitter``
        buffer, by default ``JitterBuffer(2)``), but no task reads anything:
        the caller, who has the frames already, hands them straight in, on
        the event loop thread. Frames given before the speaker is open are
        dropped (they would only be delay), and so is anything given after
        :meth:`remove_input` or :meth:`stop`. Raises as :meth:`add_input`.
        """
        if self._stopping:
            raise RuntimeError("add_feed() after stop()")
        if key in self._inputs:
            raise ValueError(f"an input {key!r} is playing already")
        item = _Input(key, None, jitter or JitterBuffer(MIX_CHANNELS))
        with self._lock:
            self._inputs[key] = item

        def feed(frame: AudioFrame) -> None:
            opening = self._opening
            if opening is None or not opening.done() or self._inputs.get(key) is not item:
                return
            self._push(item, frame)

        return feed

    def remove_input(self, key: str) -> None:
        """Stop reading input ``key``; its next block fades out and it is gone. No-op if absent.

        The other inputs play on without a gap; the track is not stopped.
        """
        with self._lock:
            item = self._inputs.pop(key, None)
            if item is None:
                return
            self._leaving.append(item)
        if item.task is not None:
            item.task.cancel()

    async def stop(self) -> None:
        """Stop reading every input and close the speaker (the tracks keep running)."""
        self._stopping = True
        with self._lock:
            items = [*self._inputs.values(), *self._leaving]
        tasks = [t for t in (self._opening, self._clock, *(i.task for i in items)) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_stream()
        if self._status.state is not AudioState.STOPPED:
            self._set_status(AudioState.STOPPED, "Sound output stopped")

    async def wait_ended(self) -> None:
        """Wait until every input's track has ended (or was removed, or the sink stopped)."""
        tasks = [i.task for i in self._inputs.values() if i.task is not None]
        if tasks:
            await asyncio.wait(tasks)  # unlike gather, neither raises nor cancels them

    # -- event loop side -------------------------------------------------------

    def _start_input(self, item: _Input) -> None:
        assert self._loop is not None
        if item.track is not None:
            item.task = self._loop.create_task(self._read(item), name=f"audio-input-{item.key}")

    async def _read(self, item: _Input) -> None:
        assert self._opening is not None
        # The speaker first: frames read before it plays would only pile up as delay.
        await asyncio.wait([self._opening])
        what = f"playback: reading audio input {item.key!r}"
        assert item.track is not None
        error = await read_track(item.track, lambda frame: self._push(item, frame), what=what)
        if error is not None:
            self.error = error

    def _push(self, item: _Input, frame: object) -> None:
        if not isinstance(frame, AudioFrame):
            return
        if self._clock is not None:
            self._discard_due()  # what a speaker would have taken before this frame came
        self.frames_received += 1
        pts: int | None = None
        if frame.sample_rate == SAMPLE_RATE and frame.format.name in ("s16", "s16p"):
            pcm = frame_samples(frame)  # s16 (what Opus decodes to): a view, not a copy
            if frame.pts is not None and frame.time_base is not None:
                pts = round(frame.pts * frame.time_base * SAMPLE_RATE)
        else:
            if item.resampler is None:
                item.resampler = av.AudioResampler(format="s16", layout="stereo", rate=SAMPLE_RATE)
            parts = [frame_to_pcm(f) for f in item.resampler.resample(frame)]
            if not parts:
                return
            pcm = np.concatenate(parts)
            if frame.pts is not None and frame.time_base is not None:
                pts = round(Fraction(frame.pts) * frame.time_base * SAMPLE_RATE)
        with self._lock:
            item.jitter.push(pcm, pts)

    async def _open_output(self) -> None:
        if isinstance(self.device, str) and self.device.strip().lower() == "none":
            self._status = AudioStatus(AudioState.OFF, None, "Sound output is off")
            self._report()
            self._start_clock()
            return
        try:
            device, stream = await open_device_stream(self.device, "output", self._open_stream)
        except AudioDeviceError as exc:
            self._fall_back(f"{exc}: {NOT_PLAYED}")
            return
        if self._stopping:
            await asyncio.to_thread(close_stream, stream)
            return
        # A device that keeps time runs at most its own latency ahead; only one
        # without a clock (ALSA's null) gets this far and is held back.
        latency = getattr(stream, "latency", 0.0)
        self._guard.slack = max(0.03, float(latency or 0.0) + 2 * BLOCK_SAMPLES / SAMPLE_RATE)
        self._stream = stream
        self._status = AudioStatus(AudioState.LIVE, device.name, f"Playing on {device.name}")
        self._report()

    def _open_stream(self, device: AudioDevice) -> AudioStream:
        # Set before the stream exists: its callback reads it from the first block on.
        self._channels = min(2, device.max_output_channels)
        return self._stream_factory(device, self._channels, self._callback, self._finished)

    def _fall_back(self, message: str) -> None:
        self._set_status(AudioState.FALLBACK, message)
        self._start_clock()

    def _start_clock(self) -> None:
        if self._clock is None and not self._stopping:
            loop = asyncio.get_running_loop()
            self._discard_origin = time.monotonic()
            self._discard_blocks = 0
            self._clock = loop.create_task(self._discard(), name="audio-discard")

    async def _discard(self) -> None:
        """Pull blocks in real time with nowhere to play them (no speaker).

        Frames arriving call :meth:`_discard_due` too, so this only ticks
        while none do.
        """
        try:
            while True:
                self._discard_due()
                await asyncio.sleep(DISCARD_TICK)
        except RuntimeError:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return  # stepped after its loop stopped (qasync at exit): just end
            raise

    def _discard_due(self) -> None:
        """Pull (and capture) every block due by now; after a long stall, skip ahead instead."""
        due = int((time.monotonic() - self._discard_origin) * SAMPLE_RATE) // BLOCK_SAMPLES
        behind = due - self._discard_blocks
        if behind * BLOCK_SAMPLES > _MAX_DISCARD_LAG * SAMPLE_RATE:
            self._discard_blocks = due - 1  # like Pacer: the present, not a burst
            behind = 1
        for _ in range(behind):
            self._emit(self._pull(BLOCK_SAMPLES))
        self._discard_blocks += max(0, behind)

    def _device_lost(self) -> None:
        if self._stopping or self._status.state is not AudioState.LIVE:
            return
        name = self._status.device or "speaker"
        self._stream = None  # PortAudio has finished it; closing happens in stop()
        self._fall_back(f"The speaker {name!r} went away: {NOT_PLAYED}")

    async def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await asyncio.to_thread(close_stream, stream)

    def _set_status(self, state: AudioState, message: str) -> None:
        self._status = AudioStatus(state, self._status.device, message)
        self._report()

    def _report(self) -> None:
        report_status(self.on_status, self._status, "speaker")

    # -- either thread -----------------------------------------------------------

    def _pull(self, n: int) -> Pcm:
        """The next ``n`` samples of the mix, shaped ``(n, MIX_CHANNELS)``."""
        with self._lock:
            blocks = [to_channels(i.jitter.pull(n), MIX_CHANNELS) for i in self._inputs.values()]
            blocks += [
                ramp(to_channels(i.jitter.pull(n), MIX_CHANNELS), 1.0, 0.0) for i in self._leaving
            ]
            self._leaving.clear()
        volume, before = self._volume, self._applied_volume
        pcm = mix(blocks, n, MIX_CHANNELS, start=before, end=volume)
        self._applied_volume = volume
        self.samples_played += n
        self._last_block = pcm
        return pcm

    def _emit(self, pcm: Pcm) -> None:
        if self.capture is not None:
            try:
                self.capture(pcm)
            except Exception:
                logger.exception("playback capture hook failed")
                self.capture = None

    # -- PortAudio's thread ------------------------------------------------------

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        try:
            if status and getattr(status, "output_underflow", False):
                self.device_underflows += 1
            pcm = self._pull(frames)
            outdata[:] = to_channels(pcm, self._channels)
            self._emit(pcm)
        except Exception:
            outdata.fill(0)
            if not self._callback_failed:
                self._callback_failed = True
                logger.exception("playback callback failed; playing silence")
        self._guard.after(frames)

    def _finished(self) -> None:
        if not self._stopping:
            notify_loop(self._loop, self._device_lost)


class PlaybackCapture:
    """Keeps the newest ``max_seconds`` of what a sink played; usable as ``capture``.

    Safe to call from any thread.
    """

    def __init__(self, max_seconds: float = 120.0) -> None:
        self.max_samples = round(max_seconds * SAMPLE_RATE)
        self._lock = threading.Lock()
        self._blocks: collections.deque[Pcm] = collections.deque()
        self._count = 0
        self.total = 0
        """Samples captured in all, including those no longer kept."""

    def __call__(self, pcm: Pcm) -> None:
        with self._lock:
            self._blocks.append(pcm.copy())
            self._count += pcm.shape[0]
            self.total += pcm.shape[0]
            while self._count - self._blocks[0].shape[0] >= self.max_samples:
                self._count -= self._blocks.popleft().shape[0]

    def samples(self) -> Pcm:
        """Everything kept, oldest first, shaped ``(samples, channels)``."""
        with self._lock:
            blocks = list(self._blocks)
        if not blocks:
            return np.zeros((0, 2), dtype=np.int16)
        return np.concatenate(blocks)

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._count = 0


class WavWriter:
    """Writes captured blocks to a 16-bit 48 kHz WAV file on its own thread; usable as ``capture``.

    Calls never block: a block that finds the queue full is dropped and
    counted. :meth:`close` finishes the file.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, channels: int = 2, max_queue: int = 500
    ) -> None:
        self.path = os.fspath(path)
        self.channels = channels
        self.samples_written = 0
        self.dropped = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue[Pcm | None] = queue.Queue(maxsize=max_queue)
        self._file = wave.open(self.path, "wb")  # noqa: SIM115  (closed by the thread)
        self._file.setnchannels(channels)
        self._file.setsampwidth(2)
        self._file.setframerate(SAMPLE_RATE)
        self._thread = threading.Thread(target=self._run, name="wav-writer", daemon=True)
        self._thread.start()

    def __call__(self, pcm: Pcm) -> None:
        try:
            self._queue.put_nowait(to_channels(pcm, self.channels).copy())
        except queue.Full:
            self.dropped += pcm.shape[0]

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and close the file (blocks; call via ``asyncio.to_thread``)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                pcm = self._queue.get()
                if pcm is None:
                    break
                self._file.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
                self.samples_written += pcm.shape[0]
        except Exception as exc:
            logger.exception("writing %s failed", self.path)
            self.error = exc
        finally:
            with contextlib.suppress(Exception):
                self._file.close()


def _clamp_volume(value: float) -> float:
    if not value == value:  # NaN
        raise ValueError("volume must be a number")
    return min(MAX_VOLUME, max(0.0, float(value)))
