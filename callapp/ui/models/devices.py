"""The system's cameras, microphones and speakers, listed off the GUI thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal

from callapp.media.audio_sources import open_audio_source
from callapp.media.devices import AudioState, AudioStatus
from callapp.media.pcm import SILENCE_DBFS, frame_to_pcm, level_dbfs
from callapp.media.sources import open_video_source
from callapp.ui.devices import DeviceScan, scan_devices
from callapp.ui.models.call import async_slot

log = logging.getLogger(__name__)


class DeviceScanner(Protocol):
    """``scan_devices``: what the system has (blocking; run off the GUI thread)."""

    def __call__(self, *, cameras: bool = True, rescan_audio: bool = False) -> DeviceScan: ...


class DevicesModel(QObject):
    """Lists devices; ``in_call`` says whether a call may hold a camera or stream now."""

    devicesChanged = Signal(object)  # DeviceScan

    def __init__(
        self,
        scanner: DeviceScanner | None = None,
        *,
        in_call: Callable[[], bool] = lambda: False,
        idle: Callable[[], bool] = lambda: True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._scanner: DeviceScanner = scanner or scan_devices
        self._in_call = in_call
        self._idle = idle
        self._scanning = False
        self.devices: DeviceScan | None = None
        #: The lobby's self-preview and level meter; never while a session may hold devices.
        self.preview = PreviewService(allowed=idle, parent=self)

    @async_slot()
    async def refresh(self) -> None:
        """Ask the system again. PortAudio only rescans while no session may hold a
        stream, and the cameras are only probed while no call holds one."""
        if self._scanning:
            return
        self._scanning = True
        try:
            scan = await asyncio.to_thread(
                self._scanner, cameras=not self._in_call(), rescan_audio=self._idle()
            )
        except Exception as exc:  # a listing that fails leaves the pickers as they were
            log.warning("listing devices failed: %s", exc, exc_info=True)
            return
        finally:
            self._scanning = False
        if not scan.cameras_scanned and self.devices is not None:
            scan = replace(scan, cameras=self.devices.cameras, cameras_scanned=True)
        self.devices = scan
        self.devicesChanged.emit(scan)


# -- the lobby's self-preview and microphone level ------------------------------------

#: The preview is small and slow: it is a mirror, not a call.
PREVIEW_SIZE = (640, 360)
PREVIEW_FPS = 15.0
#: The meter's floor: anything quieter shows as an empty bar.
METER_FLOOR_DBFS = -60.0


class MediaTrack(Protocol):
    """What the preview reads: an aiortc-style track (``recv`` and ``stop``)."""

    async def recv(self) -> Any: ...

    def stop(self) -> None: ...


class VideoOpener(Protocol):
    """``spec -> track`` for the self-preview (raises OSError/ValueError when it cannot)."""

    def __call__(self, spec: str) -> MediaTrack: ...


class AudioOpener(Protocol):
    """``(spec, on_status) -> track`` for the level meter."""

    def __call__(self, spec: str, on_status: Callable[[AudioStatus], None]) -> MediaTrack: ...


def open_preview_video(spec: str) -> MediaTrack:
    """The chosen camera (its own test pattern when there is none), small and slow.

    A screen is not previewed: the lobby shows the test pattern instead.
    """
    text = spec.strip() or "camera"
    if text.startswith("screen"):
        text = "test"
    width, height = PREVIEW_SIZE
    return open_video_source(text, width=width, height=height, fps=PREVIEW_FPS)


def open_preview_audio(spec: str, on_status: Callable[[AudioStatus], None]) -> MediaTrack:
    """The chosen microphone (or tone, file, none) for the level meter."""
    return open_audio_source(spec.strip() or "mic", on_status=on_status)


def mic_words(status: AudioStatus) -> str:
    """What the meter says beside the bar ("" while it measures a live source)."""
    if status.state is AudioState.FALLBACK:
        return "No microphone found"
    if status.state is AudioState.OFF:
        return "No microphone chosen"
    return ""


def meter_value(dbfs: float) -> int:
    """A level in dBFS as the meter's 0-100."""
    clamped = max(METER_FLOOR_DBFS, min(0.0, dbfs))
    return round(100 * (clamped - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS)


class PreviewService(QObject):
    """While the lobby is shown: frames from the chosen camera and the microphone's level.

    ``start`` opens (or re-opens, for other specs) the sources; ``stop`` releases
    them at once, so a call that starts next gets the camera. ``allowed`` says
    whether a preview may run now (not while a session holds the devices).
    """

    frameReady = Signal(object)  # av.VideoFrame
    levelChanged = Signal(float)  # dBFS of the latest microphone frame
    micStatusChanged = Signal(str)  # words for the meter ("" while measuring)
    videoStatusChanged = Signal(str)  # words for the preview ("" while it paints)

    def __init__(
        self,
        *,
        video_opener: VideoOpener = open_preview_video,
        audio_opener: AudioOpener = open_preview_audio,
        allowed: Callable[[], bool] = lambda: True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.video_opener = video_opener
        self.audio_opener = audio_opener
        self._allowed = allowed
        #: Set by a launch that goes straight to a call: the lobby it passes
        #: through must not open the camera only to hand it over at once.
        #: The lobby clears it when it makes way for the call screen.
        self.held = False
        self._specs: tuple[str, str] | None = None
        self._tracks: list[MediaTrack] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.frames = 0
        self.level_dbfs = SILENCE_DBFS
        self.mic_status = ""

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def start(self, video_spec: str, audio_spec: str) -> None:
        """Preview ``video_spec`` and measure ``audio_spec`` (no-op if already doing so)."""
        specs = (video_spec.strip(), audio_spec.strip())
        if self.running and specs == self._specs:
            return
        self.stop()
        if self.held or not self._allowed():
            return
        self._specs = specs
        loop = asyncio.get_event_loop()
        if specs[1] == "none":
            self._set_mic_status("No microphone chosen")
        try:
            video = self.video_opener(specs[0])
        except (OSError, ValueError) as exc:
            log.info("preview: no video for %r: %s", specs[0], exc)
            self.videoStatusChanged.emit("This camera or file cannot be shown")
        else:
            self._tracks.append(video)
            self._tasks.append(loop.create_task(self._read_video(video), name="preview-video"))
            self.videoStatusChanged.emit("")
        try:
            audio = self.audio_opener(specs[1], self._on_audio_status)
        except (OSError, ValueError) as exc:
            log.info("preview: no audio for %r: %s", specs[1], exc)
            self._set_mic_status("This microphone or file cannot be used")
        else:
            self._tracks.append(audio)
            self._tasks.append(loop.create_task(self._read_audio(audio), name="preview-audio"))

    def stop(self) -> None:
        """Release the camera and the microphone now."""
        tasks, self._tasks = self._tasks, []
        tracks, self._tracks = self._tracks, []
        self._specs = None
        for task in tasks:
            task.cancel()
        for track in tracks:
            try:
                track.stop()
            except Exception as exc:  # releasing must not fail the lobby
                log.warning("preview: stopping a source failed: %r", exc)
        if tasks:
            self.level_dbfs = SILENCE_DBFS
            self.levelChanged.emit(SILENCE_DBFS)

    async def aclose(self) -> None:
        """:meth:`stop`, and wait until the readers have ended."""
        tasks = list(self._tasks)
        self.stop()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read_video(self, track: MediaTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames += 1
                self.frameReady.emit(frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the source ended or failed: the preview stops
            log.info("preview video ended: %r", exc)

    async def _read_audio(self, track: MediaTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.level_dbfs = level_dbfs(frame_to_pcm(frame))
                self.levelChanged.emit(self.level_dbfs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("preview audio ended: %r", exc)

    def _on_audio_status(self, status: AudioStatus) -> None:
        self._set_mic_status(mic_words(status))

    def _set_mic_status(self, words: str) -> None:
        self.mic_status = words
        self.micStatusChanged.emit(words)
