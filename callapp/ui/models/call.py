"""The call: one session's lifecycle, from the lobby to the call screen and back.

Widgets never touch the engine: they render what :class:`CallModel` signals
and call its actions. Actions are ``qasync.asyncSlot`` coroutines (calling one
schedules it and returns its task; tests await it). Failures never escape an
action: they become one plain sentence on :attr:`CallModel.messageChanged`.

Hang up works in every state, reconnecting included, and always ends on the
lobby: it asks the engine to hang up (bounded), closes the session (bounded),
and stops hosting. A call that cannot go on (the host ended it, the server is
gone for good, a dialled call ended) goes back to the lobby by itself, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import enum
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec, cast

from PySide6.QtCore import QObject, QTimer, Signal
from qasync import asyncSlot as _qasync_async_slot

from callapp.call.config import CallConfig
from callapp.call.errors import MediaError
from callapp.call.recording import CallRecording
from callapp.call.state import CallPhase, CallSnapshot, EndReason, LegState, LinkState
from callapp.call.stats import CallStats
from callapp.media.grid import GridComposer
from callapp.media.pcm import Pcm, pcm_to_frame
from callapp.media.recorder import RecordingError
from callapp.ui.devices import speaker_setting
from callapp.ui.logic import quality, tiles, wording
from callapp.ui.logic.history import StatsHistory
from callapp.ui.logic.join_target import (
    JoinError,
    JoinTarget,
    connection_id_problem,
    parse_join_target,
)
from callapp.ui.models.hosting import HOST_CAPACITY, HostingModel
from callapp.ui.names import random_room_name, room_problem
from callapp.ui.ports import SessionFactory, SessionLike, TlsFiles
from callapp.ui.services import UiServices
from callapp.ui.settings import Settings

log = logging.getLogger(__name__)

P = ParamSpec("P")

#: The longest a hang-up, or closing a session, may hold up going back to the lobby.
LEAVE_TIMEOUT = 5.0
#: How long a sentence about someone leaving stays up.
NEWS_SECONDS = 8.0


def async_slot(
    *types: type,
) -> Callable[[Callable[P, Coroutine[Any, Any, None]]], Callable[P, asyncio.Task[None]]]:
    """``qasync.asyncSlot`` with types: the decorated method returns its task."""
    return cast(
        Callable[[Callable[P, Coroutine[Any, Any, None]]], Callable[P, asyncio.Task[None]]],
        _qasync_async_slot(*types),
    )


class Screen(enum.StrEnum):
    LOBBY = "lobby"
    CALL = "call"


class InputError(ValueError):
    """Something typed into the window cannot be used; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class CallOptions:
    """How new sessions are configured (from settings and command-line flags)."""

    video: str = "camera"
    audio: str = "mic"
    #: Speaker (``CallConfig.speaker``): None for the default, a name, or "none".
    speaker: str | None = None
    volume: float = 1.0
    width: int = 640
    height: int = 480
    ice_servers: tuple[str, ...] = field(default_factory=tuple)
    #: Media only through a TURN relay (``CallConfig.relay_only``).
    relay_only: bool = False
    allow_loopback: bool = False
    codec: str = "vp8"
    #: Host with TLS: ``(certificate file, key file)``; None for plain ws://.
    tls: TlsFiles | None = None
    #: Our display name, as the others see it.
    name: str = "Guest"

    @classmethod
    def from_settings(
        cls, settings: Settings, *, allow_loopback: bool = False, codec: str = "vp8"
    ) -> CallOptions:
        """The options a call gets from the saved settings (and the command line)."""
        return cls(
            video=settings.video,
            audio=settings.audio,
            speaker=speaker_setting(settings.speaker),
            volume=settings.volume / 100,
            width=settings.width,
            height=settings.height,
            ice_servers=settings.ice_servers,
            relay_only=settings.relay_only,
            allow_loopback=allow_loopback,
            codec=codec,
            tls=settings.tls_files,
        )

    def config(
        self,
        url: str,
        *,
        tls_pin: str | None = None,
        server_pin: str | None = None,
        hosting: bool = False,
    ) -> CallConfig:
        """The session config for ``url``; a pin trusts that certificate alone.

        ``hosting``: this app runs the server, so closing tells the others
        "the host ended the call" (they stop retrying a server that is gone).
        """
        return CallConfig(
            server_url=url,
            name=self.name.strip() or "Guest",
            video=self.video,
            audio=self.audio,
            speaker=self.speaker,
            volume=self.volume,
            width=self.width,
            height=self.height,
            codec=self.codec,
            ice_servers=self.ice_servers,
            relay_only=self.relay_only,
            allow_loopback=self.allow_loopback,
            tls_pin=tls_pin,
            server_pin=server_pin,
            hosting=hosting,
        )


#: File name endings the recorder can make (anything else gets ``.mp4``).
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov")


def suggested_recording_path(now: datetime.datetime | None = None) -> str:
    """Where the save dialog starts: ``~/Videos`` (or home), named after the time."""
    when = now or datetime.datetime.now()
    home = os.path.expanduser("~")
    videos = os.path.join(home, "Videos")
    folder = videos if os.path.isdir(videos) else home
    return os.path.join(folder, f"Call {when:%Y-%m-%d %H.%M}.mp4")


def with_video_suffix(path: str) -> str:
    """``path``, ending in ``.mp4`` unless it already names a video kind the recorder makes."""
    return path if os.path.splitext(path)[1].lower() in VIDEO_SUFFIXES else path + ".mp4"


class CallRecorder:
    """One recording of the call into one file, with the media recorder the CLI uses.

    What is recorded: **everyone's picture** (each peer's newest frame,
    composed by :class:`~callapp.media.grid.GridComposer` into one 1280x720
    canvas laid out like the call screen's grid, at most :data:`RECORD_FPS`
    frames a second; one peer fills it, letterboxed) and **what the person
    hears** (the speaker's mix of every peer, as played: the session's
    ``mixed_audio``). Our own camera and microphone are not in it.

    ``.mp4`` (the default) and ``.mov`` get H.264 and AAC, ``.mkv`` H.264 and
    Opus, ``.webm`` VP8 and Opus (:class:`~callapp.media.recorder.Recorder`).
    Frames go on the loop thread into the engine's own
    :class:`~callapp.call.recording.CallRecording` (what ``callapp call
    --record`` uses); encoding runs on the recorder's thread. A path that cannot be written
    raises :exc:`RecordingError` here; a failure later (disk full) calls
    ``on_error`` on the loop thread and is raised again by :meth:`stop`.
    """

    def __init__(self, path: str, on_error: Callable[[RecordingError], None]) -> None:
        self.path = path
        # 10 ms blocks of the mix: a second's worth rides out a slow write.
        self._file = CallRecording(path, audio_frames=100, on_error=on_error)
        self.canvas = GridComposer(RECORD_SIZE[0], RECORD_SIZE[1], _grid_layout)
        self._composed_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._file.start()

    def video_frame(self, peer_id: str, frame: Any) -> None:
        """``peer_id``'s newest picture (loop thread); composes at most RECORD_FPS a second."""
        self.canvas.put(peer_id, frame)
        now = time.monotonic()
        if now - self._composed_at >= 1 / RECORD_FPS:
            self._composed_at = now
            composed = self.canvas.compose()
            if composed is not None:
                self._file.write(composed)

    def keep_only(self, peer_ids: set[str]) -> None:
        """Drop the pictures of peers no longer in the call: the others take the room."""
        for key in self.canvas.keys:
            if key not in peer_ids:
                self.canvas.remove(key)

    def mixed_audio(self, pcm: Pcm) -> None:
        """A block of the speaker's mix, from PortAudio's thread (or the loop's)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            block = pcm.copy()  # the playback may reuse its buffer
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._audio_block, block)

    def _audio_block(self, pcm: Pcm) -> None:
        self._file.write_audio(pcm_to_frame(pcm))

    @property
    def failed(self) -> bool:
        return self._file.failed

    async def stop(self) -> bool:
        """Finish the file; False if nothing was recorded (no file is left then).

        Raises :exc:`RecordingError` if recording failed.
        """
        self._loop = None
        return await self._file.finish()


#: The recording's canvas and its most frames a second.
RECORD_SIZE = (1280, 720)
RECORD_FPS = 30


def _grid_layout(
    aspects: Sequence[float], width: int, height: int
) -> list[tuple[int, int, int, int]]:
    """The call screen's grid (:func:`callapp.ui.logic.tiles.grid`), for the recording."""
    return [(r.x, r.y, r.w, r.h) for r in tiles.grid(aspects, tiles.Rect(0, 0, width, height))]


def reconnect_deadline(snap: CallSnapshot) -> float | None:
    """``SessionSnapshot.reconnect_deadline`` (monotonic), once the engine has it.

    The engine is gaining this field; until it has, there is no countdown.
    """
    value = getattr(snap, "reconnect_deadline", None)
    return float(value) if isinstance(value, int | float) else None


class CallModel(QObject):
    """Session snapshots in, Qt signals out; button presses in, session calls out."""

    snapshotChanged = Signal(object)  # CallSnapshot
    screenChanged = Signal(str)  # Screen
    statusChanged = Signal(str)
    messageChanged = Signal(str)  # the banner; "" clears it
    noticeChanged = Signal(str)
    timerChanged = Signal(str)
    reconnectChanged = Signal(str)  # the countdown words; "" while not reconnecting
    qualityChanged = Signal(object)  # dict[str, Quality]
    ringingChanged = Signal(str)  # the caller's name; "" when nothing rings
    mutedChanged = Signal(bool)
    cameraChanged = Signal(bool)
    sharingChanged = Signal(bool)
    recordingChanged = Signal(bool)  # our recording of the call runs (or not)
    historyChanged = Signal()  # new numbers in :attr:`CallModel.history`
    busyChanged = Signal(bool)
    peerFrame = Signal(str, object)  # peer id, av.VideoFrame
    localFrame = Signal(object)  # av.VideoFrame

    def __init__(
        self,
        session_factory: SessionFactory,
        hosting: HostingModel,
        services: UiServices,
        options: CallOptions | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._factory = session_factory
        self.hosting = hosting
        self._services = services
        self.options = options or CallOptions()
        self._session: SessionLike | None = None
        self._url: str | None = None
        self._last_url: str | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._snapshot = CallSnapshot()
        self._screen = Screen.LOBBY
        self._dialled = False
        self._busy = 0
        self._leaving = False
        self._muted = False
        self._video_enabled = True
        self._ringing = ""
        self._shut_down = False
        self.message = ""
        #: Every banner sentence shown (for ``--stats-json`` and tests).
        self.messages: list[str] = []
        self.last_stats: CallStats | None = None
        self.qualities: dict[str, quality.Quality] = {}
        #: The last minute of every peer's numbers (the details panel's graphs).
        self.history = StatsHistory()
        self._recorder: CallRecorder | None = None
        self._recording_task: asyncio.Task[None] | None = None
        #: Where the current (or last) recording goes.
        self.recording_path: str | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._leave_task: asyncio.Future[None] | None = None
        self._ticks = 0
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._tick)
        self._news_timer = QTimer(self)
        self._news_timer.setSingleShot(True)
        self._news_timer.timeout.connect(self._news_over)
        self._news = ""

    # -- what views read ---------------------------------------------------------

    @property
    def snapshot(self) -> CallSnapshot:
        return self._snapshot

    @property
    def session(self) -> SessionLike | None:
        return self._session

    @property
    def screen(self) -> Screen:
        return self._screen

    @property
    def busy(self) -> bool:
        return self._busy > 0

    @property
    def muted(self) -> bool:
        return self._muted

    @property
    def video_enabled(self) -> bool:
        return self._video_enabled

    @property
    def recording(self) -> bool:
        """We are recording the call to a file."""
        return self._recorder is not None

    @property
    def others_here(self) -> bool:
        """Someone else is in the call, or on their way into it."""
        return any(leg.state is not LegState.ENDED for leg in self._snapshot.legs)

    # -- actions -----------------------------------------------------------------

    @async_slot()
    async def host(self, room: str = "") -> None:
        """Start the embedded server and wait in a new room with a secret."""
        async with self._action():
            name = room.strip() or random_room_name()
            problem = room_problem(name)
            if problem:
                raise InputError(problem)
            await self._drop_session()
            hosting = await self.hosting.start(name, self.options.tls)
            try:
                await self._open(
                    hosting.local_url,
                    room=name,
                    secret=hosting.secret,
                    capacity=HOST_CAPACITY,
                    tls_pin=hosting.tls_cert,
                    hosting=True,
                )
            except BaseException:
                await self.hosting.stop()  # all or nothing: no server left without us
                raise

    @async_slot(str)
    async def join_text(self, text: str) -> None:
        """Join whatever was pasted into the Join field (an invite, a link, an address)."""
        async with self._action():
            target = parse_join_target(text)
            await self._join(target)

    @async_slot(object)
    async def join(self, target: JoinTarget) -> None:
        async with self._action():
            await self._join(target)

    @async_slot(str, str)
    async def dial(self, server_url: str, peer_id: str) -> None:
        """Connect to ``server_url`` and call connection ``peer_id``."""
        async with self._action():
            peer = peer_id.strip()
            if not peer:
                raise InputError("Enter the connection id of the person to call.")
            await self.hosting.stop()
            target = parse_join_target(server_url)
            await self._open(target.server_url, dial=peer, server_pin=target.pin)

    @async_slot()
    async def accept(self) -> None:
        async with self._action():
            if self._session is not None and self._is_ringing():
                await self._session.accept()

    @async_slot()
    async def decline(self) -> None:
        async with self._action():
            if self._session is not None and self._is_ringing():
                await self._session.decline()

    def _is_ringing(self) -> bool:
        return any(leg.state is LegState.RINGING for leg in self._snapshot.legs)

    @async_slot()
    async def hang_up(self) -> None:
        """Leave the call, whatever state it is in, and go back to the lobby.

        A host with others in the call is asked first: it ends the call for all.
        """
        if self.hosting.hosting is not None and self.others_here:
            ok = await self._services.confirm(
                "End the call?",
                "You are hosting this call: hanging up ends it for everyone.",
                "End the call",
            )
            if not ok:
                return
        await self._leave("")

    @async_slot(bool)
    async def set_muted(self, muted: bool) -> None:
        async with self._action(clear=False):
            if self._session is not None:
                await self._session.set_muted(muted)
            else:
                self._set_muted(muted)

    @async_slot(bool)
    async def set_video_enabled(self, enabled: bool) -> None:
        async with self._action(clear=False):
            self._video_enabled = enabled
            self.cameraChanged.emit(enabled)
            if self._session is not None:
                await self._session.set_video_enabled(enabled)

    @async_slot(bool)
    async def share_screen(self, on: bool) -> None:
        """Send the screen instead of the camera, or the camera again."""
        async with self._action(clear=False):
            if self._session is None:
                return
            await self._session.share_screen("screen" if on else None)

    @async_slot(bool)
    async def set_recording(self, recording: bool) -> None:
        """Only tell the others (presence); :meth:`start_recording` records."""
        async with self._action(clear=False):
            if self._session is not None:
                await self._session.set_recording(recording)

    @async_slot()
    async def start_recording(self) -> None:
        """Ask where to save, record the call there, and tell the others."""
        async with self._action(clear=False):
            session = self._session
            if session is None or not self._snapshot.in_call:
                raise InputError(wording.RECORD_NEEDS_CALL)
            if self._recorder is not None:
                return
            chosen = await self._services.choose_save_file(
                "Save the recording", suggested_recording_path()
            )
            if not chosen or self._recorder is not None:
                return
            if session is not self._session:
                return  # the call ended while the dialog was open
            if not self._snapshot.in_call:
                raise InputError(wording.RECORD_NEEDS_CALL)
            path = with_video_suffix(chosen)
            try:
                recorder = CallRecorder(path, on_error=self._recording_failed)
                await recorder.start()
            except (RecordingError, MediaError) as exc:  # MediaError: a path it cannot write
                raise InputError(wording.recording_problem(exc, starting=True)) from exc
            self._recorder = recorder
            self.recording_path = path
            self.recordingChanged.emit(True)
            await session.set_recording(True)

    @async_slot()
    async def stop_recording(self) -> None:
        """Finish the file, say where it is, and tell the others."""
        async with self._action(clear=False):
            note = await self._finish_recording(self._session)
            if note:
                self.show_message(note)

    @async_slot(float)
    async def set_volume(self, volume: float) -> None:
        async with self._action(clear=False):
            volume = max(0.0, min(2.0, volume))
            self.options = replace(self.options, volume=volume)
            if self._session is not None:
                await self._session.set_volume(volume)

    @async_slot()
    async def shutdown(self) -> None:
        """Hang up, close the session and stop the server (the window is closing)."""
        self._shut_down = True
        self._timer.stop()
        try:
            await self._leave("", closing=True)
        except Exception as exc:  # closing must finish whatever happens
            log.warning("error while shutting down: %s", exc, exc_info=True)

    def toggle_muted(self) -> None:
        self.set_muted(not self._muted)

    def toggle_camera(self) -> None:
        self.set_video_enabled(not self._video_enabled)

    def toggle_sharing(self) -> None:
        self.share_screen(not self._snapshot.screen_sharing)

    def toggle_recording(self) -> None:
        """Record (asking where), or stop recording."""
        if self._recorder is not None:
            self.stop_recording()
        else:
            self.start_recording()

    def show_message(self, message: str) -> None:
        """Put ``message`` in the banner ("" clears it)."""
        self._news_timer.stop()
        self.message = message
        if message:
            self.messages.append(message)
        self.messageChanged.emit(message)

    # -- plumbing ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _action(self, *, clear: bool = True) -> AsyncIterator[None]:
        if clear:
            self._last_url = None
        if clear and self.message:
            self.show_message("")
        self._busy += 1
        self.busyChanged.emit(True)
        try:
            yield
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._shut_down:  # the window is closing: whatever was under way is moot
                log.debug("action ended by shutting down: %r", exc)
                return
            self.show_message(wording.explain(exc, server_url=self._url or self._last_url))
        finally:
            self._busy -= 1
            if not self._shut_down:
                self.busyChanged.emit(self.busy)

    async def _join(self, target: JoinTarget) -> None:
        if target.peer_id is not None:  # a bare connection id: call it where we are connected
            session = self._session
            connected = session is not None and session.snapshot.link is LinkState.CONNECTED
            problem = connection_id_problem(connected=connected, in_call=self.others_here)
            if problem or session is None:
                raise JoinError(problem)
            self._dialled = True
            await session.dial(target.peer_id)
            return
        await self.hosting.stop()
        await self._open(
            target.server_url, room=target.room, secret=target.secret, server_pin=target.pin
        )

    async def _open(
        self,
        url: str,
        *,
        room: str | None = None,
        secret: str | None = None,
        capacity: int | None = None,
        dial: str | None = None,
        tls_pin: str | None = None,
        server_pin: str | None = None,
        hosting: bool = False,
    ) -> None:
        await self._drop_session()
        config = self.options.config(url, tls_pin=tls_pin, server_pin=server_pin, hosting=hosting)
        session = self._factory(config)
        if self._muted:
            await session.set_muted(True)  # before the first snapshot: no flicker
        self._session = session
        self._url = self._last_url = url
        self._dialled = dial is not None
        self._unsubscribe = session.subscribe(self._on_snapshot)
        session.set_frame_callbacks(
            local=self._on_local_frame,
            remote_by_peer=self._on_peer_frame,
            mixed_audio=self._on_mixed_audio,
        )
        self._set_screen(Screen.CALL)
        self._on_snapshot(session.snapshot)
        try:
            await session.connect()
            if not self._video_enabled:
                await session.set_video_enabled(False)
            if room:
                await session.join_room(room, capacity, secret=secret)
            elif dial:
                await session.dial(dial)
        except BaseException:
            await self._drop_session()
            if not self._shut_down:
                self._set_screen(Screen.LOBBY)
            raise

    async def _leave(self, message: str, *, closing: bool = False) -> None:
        """Hang up (bounded), close the session (bounded), stop hosting, show the lobby."""
        if self._leaving:
            return
        self._leaving = True
        try:
            session = self._session
            note = await self._finish_recording(session)
            message = f"{message} {note}".strip()
            if session is not None:
                try:
                    async with asyncio.timeout(LEAVE_TIMEOUT):
                        await session.hang_up()
                except Exception as exc:  # reconnecting, or already gone: close anyway
                    log.info("hang-up did not finish: %r", exc)
            await self._drop_session()
            try:
                await self.hosting.stop()
            except Exception as exc:
                log.warning("stopping the server failed: %r", exc)
            if not closing:
                self._set_screen(Screen.LOBBY)
                self.show_message(message)
        finally:
            self._leaving = False

    def _leave_soon(self, message: str) -> None:
        if not self._leaving and self._session is not None:
            self._leave_task = asyncio.ensure_future(self._leave(message))

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if session is None:
            return
        note = await self._finish_recording(session)  # replaced or failed: finish the file
        if note and not self._shut_down:
            self.show_message(note)
        if unsubscribe is not None:
            unsubscribe()
        session.set_frame_callbacks(local=None, remote_by_peer=None, mixed_audio=None)
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT):
                await session.close()
        except Exception as exc:
            log.warning("closing the session failed: %r", exc)
        self._url = None
        self.last_stats = None
        self.qualities = {}
        self.qualityChanged.emit({})
        self.history.clear()
        self.historyChanged.emit()
        self._on_snapshot(CallSnapshot(muted=self._muted, video_enabled=self._video_enabled))

    def _set_screen(self, screen: Screen) -> None:
        if screen is not self._screen:
            self._screen = screen
            self.screenChanged.emit(screen.value)
        running = screen is Screen.CALL and not self._shut_down
        if running and not self._timer.isActive():
            self._timer.start()
        elif not running:
            self._timer.stop()
            self.timerChanged.emit("")
            self.reconnectChanged.emit("")

    def _on_local_frame(self, frame: Any) -> None:
        if self._video_enabled:
            self.localFrame.emit(frame)

    def _on_peer_frame(self, peer_id: str, frame: Any) -> None:
        recorder = self._recorder
        if recorder is not None:
            recorder.video_frame(peer_id, frame)
        self.peerFrame.emit(peer_id, frame)

    def _on_mixed_audio(self, pcm: Pcm) -> None:
        # PortAudio's thread: read the reference once, hand the block over.
        recorder = self._recorder
        if recorder is not None:
            recorder.mixed_audio(pcm)

    # -- recording -------------------------------------------------------------------

    async def _finish_recording(self, session: SessionLike | None) -> str:
        """Stop the recording (if any), tell the others; the sentence to show about it."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return ""
        self.recordingChanged.emit(False)
        if session is not None:
            try:
                async with asyncio.timeout(LEAVE_TIMEOUT):
                    await session.set_recording(False)
            except Exception as exc:  # the call may be ending: the file matters more
                log.info("could not tell the others the recording stopped: %r", exc)
        try:
            wrote = await recorder.stop()
        except RecordingError as exc:
            return wording.recording_problem(exc, starting=False)
        return wording.recording_saved(recorder.path) if wrote else wording.NOTHING_RECORDED

    def _recording_failed(self, error: RecordingError) -> None:
        """The recorder failed mid-call (on the loop thread): stop it and say so."""
        log.info("recording failed: %s", error)
        self._stop_recording_soon()

    def _stop_recording_soon(self) -> None:
        leaving = self._leaving or (self._leave_task is not None and not self._leave_task.done())
        if self._recorder is None or self._recording_task is not None or leaving:
            return

        async def stop() -> None:
            try:
                note = await self._finish_recording(self._session)
                if note and not self._shut_down:
                    self.show_message(note)
            finally:
                self._recording_task = None

        self._recording_task = asyncio.ensure_future(stop())

    def _on_snapshot(self, snap: CallSnapshot) -> None:
        previous = self._snapshot
        self._snapshot = snap
        if self._session is not None:
            self._news_of(previous, snap)
        self.snapshotChanged.emit(snap)
        self.statusChanged.emit(wording.status_line(snap))
        if snap.notice != previous.notice:
            self.noticeChanged.emit(wording.notice_text(snap.notice))
        self._set_muted(snap.muted)
        if snap.video_enabled != previous.video_enabled:
            self.cameraChanged.emit(snap.video_enabled)
        if snap.screen_sharing != previous.screen_sharing:
            self.sharingChanged.emit(snap.screen_sharing)
        if self._recorder is not None:
            self._recorder.keep_only({leg.peer_id for leg in snap.legs})
        if self._recorder is not None and previous.in_call and not snap.in_call:
            self._stop_recording_soon()  # nobody is connected: the call recorded has ended
        ringing = next((leg for leg in snap.legs if leg.state is LegState.RINGING), None)
        name = wording.leg_name(ringing) if ringing is not None else ""
        if name != self._ringing:
            self._ringing = name
            self.ringingChanged.emit(name)
        if snap.phase is not CallPhase.RECONNECTING and previous.phase is CallPhase.RECONNECTING:
            self.reconnectChanged.emit("")
        elif snap.phase is CallPhase.RECONNECTING:
            self._emit_reconnect()

    def _news_of(self, previous: CallSnapshot, snap: CallSnapshot) -> None:
        """Say who left and why; leave for the lobby when the call cannot go on."""
        reason = snap.end_reason
        if reason is not None and reason.name == "HOST_LEFT":
            self._leave_soon(wording.ending_text(reason))
            return
        if snap.link is LinkState.GONE and previous.link is not LinkState.GONE:
            self._leave_soon(wording.ending_text(EndReason.SERVER_LOST))
            return
        # A peer back on signaling with a new id (RELINK) is the same call, not gone.
        moved = {old_id for leg in snap.legs for old_id in leg.previous_ids}
        gone = [
            leg
            for leg in previous.legs
            if snap.leg(leg.peer_id) is None and leg.peer_id not in moved
        ]
        if not gone:
            return
        text = wording.ending_text(reason, wording.leg_name(gone[-1]))
        if self._dialled and not snap.legs:
            self._leave_soon(text if wording.is_news(reason) else "")
        elif wording.is_news(reason):
            self._show_news(text)

    def _show_news(self, text: str) -> None:
        self.show_message(text)
        self._news = text
        self._news_timer.start(int(NEWS_SECONDS * 1000))

    def _news_over(self) -> None:
        if self.message == self._news:
            self.show_message("")

    def _emit_reconnect(self) -> None:
        deadline = reconnect_deadline(self._snapshot)
        left = deadline - time.monotonic() if deadline is not None else None
        self.reconnectChanged.emit(wording.reconnect_text(left))

    def _set_muted(self, muted: bool) -> None:
        if muted != self._muted:
            self._muted = muted
            self.mutedChanged.emit(muted)

    def _tick(self) -> None:
        snap = self._snapshot
        self.timerChanged.emit(wording.call_duration(snap, time.monotonic()))
        if snap.phase is CallPhase.RECONNECTING:
            self._emit_reconnect()
        self._ticks += 1
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:  # no loop (any more): nothing to ask
            return
        if loop.is_closed():
            return
        if snap.in_call and self._session is not None and self._stats_task is None:
            self._stats_task = loop.create_task(self._refresh_stats(self._session))

    async def _refresh_stats(self, session: SessionLike) -> None:
        try:
            found = await session.all_stats()
        except Exception as exc:  # stats are best effort
            log.debug("stats failed: %s", exc)
            return
        finally:
            self._stats_task = None
        if session is not self._session:
            return
        snap = self._snapshot
        qualities: dict[str, quality.Quality] = {}
        for peer_id, stats in found.items():
            leg = snap.leg(peer_id)
            camera_off = leg is not None and leg.presence is not None and leg.presence.camera_off
            assessed = quality.assess(stats, video_expected=not camera_off)
            if assessed is not None:
                qualities[peer_id] = assessed
        if snap.peer_id is not None and snap.peer_id in found:
            self.last_stats = found[snap.peer_id]
        elif found:
            self.last_stats = next(iter(found.values()))
        self.qualities = qualities
        self.qualityChanged.emit(qualities)
        present = [leg.peer_id for leg in snap.legs if leg.state is LegState.CONNECTED]
        self.history.record(time.monotonic(), found, present)
        self.historyChanged.emit()


__all__ = [
    "CallModel",
    "CallOptions",
    "CallRecorder",
    "InputError",
    "Screen",
    "async_slot",
    "suggested_recording_path",
    "with_video_suffix",
]
