"""Playing a remote audio track: a jitter buffer in front of a speaker.

aiortc decodes remote audio into 20 ms frames but has nothing to play them
with. :class:`AudioPlayback` reads the track in a task, queues each frame in a
:class:`~callapp.media.jitter.JitterBuffer`, and a PortAudio output stream
pulls 10 ms blocks from it in its callback, on PortAudio's thread (the buffer
is shared under a lock; the callback does no allocation beyond numpy's and
never waits for the event loop).

Without a speaker (none found, it fails to open, it goes away, or ``none``
was asked for) the call goes on: a clock on the event loop pulls the same
blocks in real time and throws them away, and :attr:`AudioPlayback.status`
says so in words. Either way every block played (or discarded) is handed to
``capture``, which is how tests and recordings hear what the user heard.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import queue
import threading
import wave
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from callapp.media.clock import Pacer
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
    frame_to_pcm,
    level_dbfs,
    ramp,
    to_channels,
)

logger = logging.getLogger(__name__)

#: Samples the speaker is handed per callback: 10 ms.
BLOCK_SAMPLES = 480
#: Most a volume may be raised to (2 = +6 dB); samples are clipped beyond full scale.
MAX_VOLUME = 2.0
NOT_PLAYED = "the other person's audio is not played"

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


class AudioPlayback:
    """Plays ``track`` on a speaker through a jitter buffer; see the module docstring.

    ``device`` is an index, a name (or part of one), None for the default
    speaker, or ``"none"`` to play nothing (blocks are still captured).
    ``volume`` scales what is played, 0 to :data:`MAX_VOLUME`; changes fade
    over one block. ``capture(samples)`` gets a copy of each block, shaped
    ``(480, 2)``, on PortAudio's thread or the event loop's: keep it short.
    ``on_status`` runs on the event loop thread. Stopping the sink does not
    stop the track.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        *,
        device: int | str | None = None,
        volume: float = 1.0,
        on_status: Callable[[AudioStatus], None] | None = None,
        capture: Capture | None = None,
        stream_factory: OutputStreamFactory = open_portaudio_output,
        jitter: JitterBuffer | None = None,
    ) -> None:
        self.track = track
        self.device = device
        self.on_status = on_status
        self.capture = capture
        self._stream_factory = stream_factory
        self._jitter = jitter or JitterBuffer(2)
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
        self._task: asyncio.Task[None] | None = None
        self._clock: asyncio.Task[None] | None = None
        self._resampler: av.AudioResampler | None = None
        self._stopping = False
        self._callback_failed = False
        self.frames_received = 0
        self.samples_played = 0
        """Samples handed to the speaker (or discarded in its place), silence included."""
        self.device_underflows = 0
        """Times the speaker reported it ran dry (its own buffer, not ours)."""
        self.level = SILENCE_DBFS
        """Level of the last block played, in dBFS."""
        self.error: BaseException | None = None

    # -- observing -------------------------------------------------------------

    @property
    def status(self) -> AudioStatus:
        return self._status

    @property
    def stats(self) -> JitterStats:
        return self._jitter.stats

    @property
    def delay(self) -> float:
        """Seconds of audio waiting in the jitter buffer (the device adds its own latency)."""
        return self._jitter.delay

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
        return self._task is not None and not self._task.done()

    # -- control ---------------------------------------------------------------

    def start(self) -> None:
        """Open the speaker and start reading the track; idempotent. On the event loop thread."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._report()
            self._task = self._loop.create_task(self._run(), name="audio-playback")

    async def stop(self) -> None:
        """Stop reading and close the speaker (the track keeps running)."""
        self._stopping = True
        for task in (self._task, self._clock):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._close_stream()
        if self._status.state is not AudioState.STOPPED:
            self._set_status(AudioState.STOPPED, "Sound output stopped")

    async def wait_ended(self) -> None:
        """Wait until the track has ended (or the sink was stopped)."""
        if self._task is not None:
            await asyncio.wait([self._task])

    # -- event loop side -------------------------------------------------------

    async def _run(self) -> None:
        await self._open_output()
        try:
            while True:
                frame = await self.track.recv()
                if isinstance(frame, AudioFrame):
                    self._push(frame)
        except MediaStreamError:
            pass
        except Exception as exc:
            logger.exception("playback: reading the audio track failed")
            self.error = exc

    def _push(self, frame: AudioFrame) -> None:
        self.frames_received += 1
        pts: int | None = None
        if frame.sample_rate == SAMPLE_RATE and frame.format.name in ("s16", "s16p"):
            pcm = frame_to_pcm(frame)
            if frame.pts is not None and frame.time_base is not None:
                pts = round(frame.pts * frame.time_base * SAMPLE_RATE)
        else:
            if self._resampler is None:
                self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=SAMPLE_RATE)
            parts = [frame_to_pcm(f) for f in self._resampler.resample(frame)]
            if not parts:
                return
            pcm = np.concatenate(parts)
            if frame.pts is not None and frame.time_base is not None:
                pts = round(Fraction(frame.pts) * frame.time_base * SAMPLE_RATE)
        with self._lock:
            self._jitter.push(pcm, pts)

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
            self._clock = loop.create_task(self._discard(), name="audio-discard")

    async def _discard(self) -> None:
        """Pull blocks in real time with nowhere to play them (no speaker)."""
        pacer = Pacer(SAMPLE_RATE / BLOCK_SAMPLES)
        try:
            while True:
                await pacer.next()
                self._emit(self._pull(BLOCK_SAMPLES))
        except RuntimeError:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return  # stepped after its loop stopped (qasync at exit): just end
            raise

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
        with self._lock:
            pcm = self._jitter.pull(n)
        volume, before = self._volume, self._applied_volume
        if volume != 1.0 or before != 1.0:
            pcm = ramp(pcm, before, volume)
            self._applied_volume = volume
        self.samples_played += n
        self.level = level_dbfs(pcm)
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
