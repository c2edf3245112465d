"""Audio sources as aiortc tracks, the mute switch, and opening one from a spec.

======================  ====================================================
spec                    source
======================  ====================================================
``mic``                 the default microphone (:class:`MicrophoneTrack`)
``mic:DEVICE``          a microphone by index or (part of its) name
``tone`` / ``tone:HZ``  a sine tone, 440 Hz by default (:class:`~callapp.media.tone.ToneTrack`)
``none``                silence (:class:`~callapp.media.tone.SilenceTrack`)
anything else           an audio (or video) file path, played in a loop (:class:`AudioFileTrack`)
======================  ====================================================

All of them send 20 ms frames of ``s16`` mono at 48 kHz. A microphone that
is missing or fails is not an error: its track sends silence and says so
through ``on_status``, so a call never stops for want of one.

The microphone is read by a PortAudio callback on PortAudio's own thread,
which only copies samples into a bounded buffer (200 ms; the oldest are
dropped beyond that) and wakes the event loop at most once per frame.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame
from av.container import InputContainer

from callapp.media.clock import Pacer, wait_event
from callapp.media.decoding import LoopingFileTrack, open_media_file, source_file_path
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
from callapp.media.pcm import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SILENCE_DBFS,
    Pcm,
    frame_samples,
    frame_to_pcm,
    level_dbfs,
    pcm_to_frame,
    ramp,
    take_samples,
)
from callapp.media.tone import DEFAULT_TONE_HZ, SilenceTrack, ToneTrack

logger = logging.getLogger(__name__)

SPEC_HELP = "'mic', 'mic:DEVICE' (index or name), 'tone', 'tone:HZ', 'none', or an audio file path"
NO_MIC_HEARS = "the other person will hear silence"

StatusCallback = Callable[[AudioStatus], None]


#: ``(device, callback, finished_callback) -> stream``; the callback has
#: sounddevice's signature ``(indata, frames, time, status)``.
InputStreamFactory = Callable[[AudioDevice, StreamCallback, Callable[[], None]], AudioStream]


def open_portaudio_input(
    device: AudioDevice,
    callback: StreamCallback,
    finished: Callable[[], None],
) -> AudioStream:
    """A started-able mono 48 kHz ``int16`` input stream on ``device``."""
    return open_portaudio_stream("input", device, 1, callback, finished)


class MicrophoneTrack(MediaStreamTrack):
    """Audio from a microphone, or silence while there is none.

    ``device`` is an index, a name (or part of one), or None for the default.
    The device opens on :meth:`start` or the first :meth:`recv` (on a worker
    thread, so the event loop never waits for PortAudio). If it is missing,
    cannot be opened, goes away, or sends nothing for ``stall_timeout``
    seconds, the track keeps sending real-time silence and reports a
    :class:`~callapp.media.devices.AudioStatus` with state ``FALLBACK``; if
    samples flow again it goes back to ``LIVE``. ``on_status`` runs on the
    event loop thread.

    Nobody reading for ``idle_timeout`` seconds (between calls) closes the
    device, so the microphone is not left recording; the next :meth:`recv`
    opens it again.
    """

    kind = "audio"

    def __init__(
        self,
        device: int | str | None = None,
        *,
        on_status: StatusCallback | None = None,
        stream_factory: InputStreamFactory = open_portaudio_input,
        buffer_seconds: float = 0.2,
        stall_timeout: float = 1.0,
        idle_timeout: float = 2.0,
    ) -> None:
        super().__init__()
        self.device = device
        self.on_status = on_status
        self._stream_factory = stream_factory
        self._capacity = max(FRAME_SAMPLES, round(buffer_seconds * SAMPLE_RATE))
        self._stall_timeout = stall_timeout
        self._idle_timeout = idle_timeout
        self._last_read = time.monotonic()
        self.idle_closes = 0
        """How many times the device was closed because nobody read from it."""
        self._status = AudioStatus(
            AudioState.STARTING, device_label(device), "Opening the microphone"
        )
        self._device_name = "microphone" if device in (None, "") else f"microphone {device!r}"
        self._stream: AudioStream | None = None
        self._opening: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._pacer = Pacer(SAMPLE_RATE / FRAME_SAMPLES)
        self._guard = PaceGuard(SAMPLE_RATE)
        self._samples_out = 0
        # Shared with PortAudio's thread, guarded by _lock.
        self._lock = threading.Lock()
        self._chunks: collections.deque[Pcm] = collections.deque()
        self._buffered = 0
        self._wake_pending = False
        self._stopping = False
        self.samples_captured = 0
        self.samples_dropped = 0
        """Captured samples thrown away because nobody read them in time."""

    @property
    def status(self) -> AudioStatus:
        return self._status

    def start(self) -> None:
        """Open the device on a worker thread; idempotent. Call on the event loop thread."""
        if self._opening is None and self.readyState == "live":
            self._loop = asyncio.get_running_loop()
            self._report(self._status)
            self._opening = self._loop.create_task(self._open(), name="microphone-open")

    def stop(self) -> None:
        """End the track and close the device."""
        if self.readyState == "live":
            super().stop()
        self._stopping = True
        self._ready.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            close_stream(stream)
        if self._status.state is not AudioState.STOPPED:
            self._set_status(AudioState.STOPPED, "Microphone stopped")

    async def recv(self) -> AudioFrame:
        """The next 20 ms of the microphone (or silence). MediaStreamError once stopped."""
        if self.readyState != "live":
            raise MediaStreamError
        self._last_read = time.monotonic()
        self.start()
        assert self._opening is not None
        if not self._opening.done():
            await asyncio.wait([self._opening])
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            pcm = self._take()
            if pcm is not None:
                if self._status.state is not AudioState.LIVE:
                    self._set_status(AudioState.LIVE, f"The {self._device_name} is on")
                return self._frame(pcm)
            if self._status.state is AudioState.FALLBACK:
                await self._pacer.next()
                if self.readyState != "live":
                    raise MediaStreamError
                pcm = self._take()
                return self._frame(pcm if pcm is not None else _zeros())
            self._ready.clear()
            if not await wait_event(self._ready, self._stall_timeout):
                self._set_status(
                    AudioState.FALLBACK,
                    f"The {self._device_name} stopped sending: {NO_MIC_HEARS}",
                )
                self._pacer.reset()

    # -- event loop side -------------------------------------------------------

    async def _open(self) -> None:
        try:
            device, stream = await open_device_stream(
                self.device,
                "input",
                lambda device: self._stream_factory(device, self._callback, self._finished),
            )
        except AudioDeviceError as exc:
            self._set_status(AudioState.FALLBACK, f"{exc}: {NO_MIC_HEARS}")
            return
        self._device_name = f"microphone {device.name!r}"
        if self._stopping:
            close_stream(stream)
            return
        self._stream = stream
        self._status = AudioStatus(AudioState.STARTING, device.name, self._status.message)
        self._watch_idle()

    def _watch_idle(self) -> None:
        loop = self._loop
        if loop is not None and self._idle_timeout > 0:
            loop.call_later(self._idle_timeout / 2, self._close_if_idle)

    def _close_if_idle(self) -> None:
        """Close the device when nobody has read for ``idle_timeout``; else look again later."""
        stream = self._stream
        if stream is None or self._stopping:
            return
        if time.monotonic() - self._last_read < self._idle_timeout:
            self._watch_idle()
            return
        self._stream = None  # first: its finished callback is then no "device lost"
        self._opening = None  # the next recv() opens the device again
        self.idle_closes += 1
        with self._lock:
            self._chunks.clear()
            self._buffered = 0
        self._guard = PaceGuard(SAMPLE_RATE)
        task = asyncio.ensure_future(asyncio.to_thread(close_stream, stream))
        task.add_done_callback(lambda _: None)

    def _take(self) -> Pcm | None:
        with self._lock:
            self._wake_pending = False
            if self._buffered < FRAME_SAMPLES:
                return None
            self._buffered -= FRAME_SAMPLES
            return take_samples(self._chunks, FRAME_SAMPLES, 1)

    def _frame(self, pcm: Pcm) -> AudioFrame:
        frame = pcm_to_frame(pcm, self._samples_out)
        self._samples_out += pcm.shape[0]
        return frame

    def _device_lost(self) -> None:
        if self._stream is None:
            return  # closed on purpose (idle), or never opened
        if not self._stopping and self._status.state is not AudioState.FALLBACK:
            self._set_status(
                AudioState.FALLBACK, f"The {self._device_name} went away: {NO_MIC_HEARS}"
            )
            self._pacer.reset()
            self._ready.set()

    def _set_status(self, state: AudioState, message: str) -> None:
        self._status = AudioStatus(state, self._status.device, message)
        self._report(self._status)

    def _report(self, status: AudioStatus) -> None:
        report_status(self.on_status, status, "microphone")

    # -- PortAudio's thread ------------------------------------------------------

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        pcm = np.array(indata, dtype=np.int16, copy=True).reshape(frames, -1)[:, :1]
        wake = False
        with self._lock:
            self._chunks.append(pcm)
            self._buffered += frames
            self.samples_captured += frames
            while self._buffered - self._chunks[0].shape[0] >= self._capacity:
                dropped = self._chunks.popleft()
                self._buffered -= dropped.shape[0]
                self.samples_dropped += dropped.shape[0]
            if self._buffered >= FRAME_SAMPLES and not self._wake_pending:
                self._wake_pending = wake = True
        if wake:
            notify_loop(self._loop, self._ready.set)
        self._guard.after(frames)

    def _finished(self) -> None:
        if not self._stopping:
            notify_loop(self._loop, self._device_lost)


class AudioFileTrack(LoopingFileTrack[Pcm]):
    """The first audio stream of a file, looped, as 48 kHz mono in real time.

    The file is opened and probed in the constructor: a missing file raises
    FileNotFoundError, a file without audio ValueError. A
    :class:`~callapp.media.decoding.LoopingDecoder` thread decodes and
    resamples, at most ``buffer_frames`` frames ahead of playback. A decoding
    error ends the track (MediaStreamError); it is kept in :attr:`error`.
    """

    kind = "audio"

    def __init__(
        self, path: str | os.PathLike[str], *, loop: bool = True, buffer_frames: int = 10
    ) -> None:
        path = os.fspath(path)
        super().__init__(
            open_media_file(path, "audio"),
            _decode_audio_pass,
            rate=SAMPLE_RATE / FRAME_SAMPLES,
            path=path,
            what="audio",
            loop=loop,
            buffer=buffer_frames,
            thread_name="audio-file",
        )

    async def recv(self) -> AudioFrame:
        """The next 20 ms of the file at its time. MediaStreamError at the end."""
        pcm = await self._next_item()
        return pcm_to_frame(pcm, self._pacer.index * FRAME_SAMPLES)


def _decode_audio_pass(container: InputContainer) -> Generator[Pcm, None, None]:
    """The first audio stream once through, as 20 ms blocks of 48 kHz mono (decoder thread)."""
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(
        format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=FRAME_SAMPLES
    )
    for decoded in container.decode(stream):
        for frame in resampler.resample(decoded):
            yield frame_to_pcm(frame)
    for frame in resampler.resample(None):
        pcm = frame_to_pcm(frame)
        if pcm.shape[0] < FRAME_SAMPLES:  # keep every frame 20 ms long
            pcm = np.concatenate([pcm, _zeros(FRAME_SAMPLES - pcm.shape[0])])
        yield pcm


class MutableAudioTrack(MediaStreamTrack):
    """What a call sends: ``source``'s audio, or digital silence while muted.

    Muting needs no renegotiation: frames keep flowing with the same timing,
    their samples zeroed. Going in and out of mute fades over one frame
    (20 ms), so neither side hears a click. The source keeps being read while
    muted, so unmuting is immediate. :attr:`level` is the level of the last
    frame sent, in dBFS (for a meter). Stopping this track leaves the source
    running (:meth:`replace_source` swaps it, e.g. for another microphone).
    """

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, *, muted: bool = False) -> None:
        super().__init__()
        if source.kind != "audio":
            raise ValueError(f"expected an audio source, got a {source.kind} track")
        self._source = source
        self.muted = muted
        self._gain = 0.0 if muted else 1.0
        self._last: AudioFrame | None = None
        self.frames = 0

    @property
    def source(self) -> MediaStreamTrack:
        return self._source

    @property
    def level(self) -> float:
        """Level of the last frame sent, in dBFS (worked out when asked, not per frame)."""
        frame = self._last
        return level_dbfs(frame_samples(frame)) if frame is not None else SILENCE_DBFS

    def replace_source(self, source: MediaStreamTrack) -> MediaStreamTrack:
        """Send ``source`` from the next frame on; returns the previous one (not stopped)."""
        if source.kind != "audio":
            raise ValueError(f"expected an audio source, got a {source.kind} track")
        old, self._source = self._source, source
        return old

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._source.recv()
        if not isinstance(frame, AudioFrame):
            raise TypeError(f"audio source produced {type(frame).__name__}, not an AudioFrame")
        target = 0.0 if self.muted else 1.0
        if target == 1.0 and self._gain == 1.0 and frame.format.name == "s16":
            out = frame  # the source's frame as it is: no copy
        else:
            if target == 0.0 and self._gain == 0.0:
                pcm = _zeros(frame.samples, len(frame.layout.channels))
            else:
                pcm = ramp(frame_to_pcm(frame), self._gain, target)
            out = pcm_to_frame(pcm, frame.pts, frame.sample_rate)
            out.time_base = frame.time_base
        self._gain = target
        self._last = out
        self.frames += 1
        return out


def open_audio_source(spec: str, *, on_status: StatusCallback | None = None) -> MediaStreamTrack:
    """A new audio track for ``spec`` (see the module docstring).

    A missing microphone is not an error (the track sends silence and says
    so through ``on_status``). Raises ValueError for a malformed spec or a
    file without audio, FileNotFoundError for a path that does not exist.
    """
    text = spec.strip()
    if not text:
        raise ValueError(f"empty audio source; expected {SPEC_HELP}")
    if text in ("none", "silence"):
        return SilenceTrack()
    if text == "tone" or text.startswith("tone:"):
        hz = text.removeprefix("tone").removeprefix(":")
        try:
            frequency = float(hz) if hz else DEFAULT_TONE_HZ
        except ValueError:
            raise ValueError(f"bad tone frequency in {spec!r}; expected e.g. 'tone:440'") from None
        return ToneTrack(frequency)
    if text == "mic" or text.startswith("mic:"):
        device = text.removeprefix("mic").removeprefix(":").strip()
        return MicrophoneTrack(
            int(device) if device.isdigit() else (device or None), on_status=on_status
        )
    return AudioFileTrack(source_file_path(spec, "audio", SPEC_HELP))


def _zeros(samples: int = FRAME_SAMPLES, channels: int = 1) -> Pcm:
    return np.zeros((samples, channels), dtype=np.int16)


__all__ = [
    "SPEC_HELP",
    "AudioFileTrack",
    "InputStreamFactory",
    "MicrophoneTrack",
    "MutableAudioTrack",
    "open_audio_source",
    "open_portaudio_input",
]
