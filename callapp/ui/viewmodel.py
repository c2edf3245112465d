"""The one view-model: session snapshots in, Qt signals out; user intents in, session calls out.

Widgets never touch the call engine: they render what this object signals
and call its actions. Actions are ``qasync.asyncSlot`` coroutines; calling
one schedules it on the running loop and returns its task (tests await it).
Failures never escape an action: they become one plain sentence on
:attr:`CallViewModel.errorChanged`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec, Protocol, cast

from PySide6.QtCore import QObject, QTimer, Signal
from qasync import asyncSlot as _qasync_async_slot

from callapp.call.config import CallConfig
from callapp.call.state import CallPhase, CallSnapshot
from callapp.call.stats import CallStats
from callapp.ui.address import (
    DEFAULT_PORT,
    LOOPBACK,
    AddressError,
    choose_lan_address,
    invite_url,
    local_address_candidates,
    normalize_server_url,
    server_url,
)
from callapp.ui.controls import IN_CALL, Controls, controls_for, ending_message
from callapp.ui.devices import DeviceScan, scan_devices, speaker_setting
from callapp.ui.errors import explain
from callapp.ui.names import random_room_name, room_problem
from callapp.ui.ports import ServerFactory, ServerLike, SessionFactory, SessionLike, TlsFiles
from callapp.ui.services import UiServices
from callapp.ui.settings import Settings
from callapp.ui.status import call_duration, stats_text, status_text

log = logging.getLogger(__name__)

P = ParamSpec("P")


def async_slot(
    *types: type,
) -> Callable[[Callable[P, Coroutine[Any, Any, None]]], Callable[P, asyncio.Task[None]]]:
    """``qasync.asyncSlot`` with types: the decorated method returns its task."""
    return cast(
        Callable[[Callable[P, Coroutine[Any, Any, None]]], Callable[P, asyncio.Task[None]]],
        _qasync_async_slot(*types),
    )


class DeviceScanner(Protocol):
    """``scan_devices``: what the system has (blocking; run off the GUI thread)."""

    def __call__(self, *, cameras: bool = True, rescan_audio: bool = False) -> DeviceScan: ...


@dataclass(frozen=True, slots=True)
class CallOptions:
    """How new sessions are configured (from settings and command-line flags)."""

    video: str = "camera"
    #: Audio source spec (``CallConfig.audio``).
    audio: str = "mic"
    #: Speaker (``CallConfig.speaker``): None for the default, a name, or "none".
    speaker: str | None = None
    #: Speaker volume, 0 to 2.
    volume: float = 1.0
    width: int = 640
    height: int = 480
    ice_servers: tuple[str, ...] = field(default_factory=tuple)
    allow_loopback: bool = False
    codec: str = "vp8"
    #: Host with TLS: ``(certificate file, key file)``; None for plain ws://.
    tls: TlsFiles | None = None

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
            allow_loopback=allow_loopback,
            codec=codec,
            tls=settings.tls_files,
        )

    def config(self, url: str, *, tls_pin: str | None = None) -> CallConfig:
        """The session config for ``url``; ``tls_pin`` trusts that certificate alone."""
        return CallConfig(
            server_url=url,
            video=self.video,
            audio=self.audio,
            speaker=self.speaker,
            volume=self.volume,
            width=self.width,
            height=self.height,
            codec=self.codec,
            ice_servers=self.ice_servers,
            allow_loopback=self.allow_loopback,
            tls_pin=tls_pin,
        )


@dataclass(frozen=True, slots=True)
class Hosting:
    """What to tell the other person while this app hosts a call."""

    share_url: str
    local_url: str
    room: str
    port: int
    #: The browser client's page opening ``room``: ``http(s)://LAN:PORT/?room=NAME``.
    invite_url: str = ""
    #: Whether the server speaks TLS (wss:// and https://).
    tls: bool = False


class InputError(ValueError):
    """Something typed into the window cannot be used; ``str()`` says why."""


class CallViewModel(QObject):
    """Turns a call session into Qt signals and button presses into session calls."""

    snapshotChanged = Signal(object)  # CallSnapshot
    statusChanged = Signal(str)
    connectionIdChanged = Signal(str)
    durationChanged = Signal(str)
    statsChanged = Signal(str)
    errorChanged = Signal(str)  # "" when the error is cleared
    noticeChanged = Signal(str)
    hostingChanged = Signal(object)  # Hosting | None
    controlsChanged = Signal(object)  # Controls
    remoteActiveChanged = Signal(bool)
    mutedChanged = Signal(bool)
    devicesChanged = Signal(object)  # DeviceScan
    remoteFrame = Signal(object)  # av.VideoFrame
    localFrame = Signal(object)  # av.VideoFrame

    def __init__(
        self,
        session_factory: SessionFactory,
        server_factory: ServerFactory,
        services: UiServices,
        options: CallOptions | None = None,
        *,
        host_port: int = DEFAULT_PORT,
        bind_host: str = "0.0.0.0",
        lan_address: Callable[[], str] | None = None,
        device_scanner: DeviceScanner | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._session_factory = session_factory
        self._server_factory = server_factory
        self._services = services
        self.options = options or CallOptions()
        self._host_port = host_port
        self._bind_host = bind_host
        self._lan_address = lan_address or (lambda: choose_lan_address(local_address_candidates()))
        self._session: SessionLike | None = None
        self._session_url: str | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._server: ServerLike | None = None
        self._hosting: Hosting | None = None
        self._host_pin: str | None = None
        self._snapshot: CallSnapshot = CallSnapshot()
        self._busy = 0
        self._video_enabled = True
        self._muted = False
        self._device_scanner: DeviceScanner = device_scanner or scan_devices
        self._scanning = False
        self.devices: DeviceScan | None = None
        self._remote_active = False
        self._prompt: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self.last_stats: CallStats | None = None
        self.error = ""
        self.errors: list[str] = []
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._tick)
        # Ticks only while a call is on (see _on_snapshot): an idle window never wakes.
        self._shut_down = False

    # -- what views read ---------------------------------------------------------

    @property
    def snapshot(self) -> CallSnapshot:
        return self._snapshot

    @property
    def hosting(self) -> Hosting | None:
        return self._hosting

    @property
    def busy(self) -> bool:
        return self._busy > 0

    @property
    def controls(self) -> Controls:
        return controls_for(self._snapshot, busy=self.busy, hosting=self._hosting is not None)

    @property
    def muted(self) -> bool:
        """Whether the microphone is muted (the session's word while there is one)."""
        return self._muted

    @property
    def session(self) -> SessionLike | None:
        return self._session

    @property
    def services(self) -> UiServices:
        """The desktop services (file picker, clipboard) the window may use too."""
        return self._services

    # -- actions -----------------------------------------------------------------

    @async_slot()
    async def host(self, room: str = "") -> None:
        """Start the embedded server, then join ``room`` (a random one if empty)."""
        async with self._action():
            name = room.strip() or random_room_name()
            _check_room(name)
            await self._drop_session()
            await self._stop_server()
            tls = self.options.tls
            server = await self._start_server(tls)
            lan = self._lan_address()
            secure = tls is not None
            hosting = Hosting(
                share_url=server_url(lan, server.port, tls=secure),
                local_url=server_url(LOOPBACK, server.port, tls=secure),
                room=name,
                port=server.port,
                invite_url=invite_url(lan, server.port, name, tls=secure),
                tls=secure,
            )
            self._hosting = hosting
            self._host_pin = tls[0] if tls is not None else None
            self.hostingChanged.emit(hosting)
            try:
                session = await self._ensure_session(hosting.local_url)
                await session.join_room(name)
            except Exception:
                # Hosting is all or nothing: no server left running without us in it.
                await self._drop_session()
                await self._stop_server()
                raise

    @async_slot()
    async def stop_hosting(self) -> None:
        """Leave the call and stop the embedded server."""
        async with self._action():
            await self._drop_session()
            await self._stop_server()

    @async_slot()
    async def join(self, server_text: str, room: str) -> None:
        """Connect to a server and join ``room``; with no room, just connect and wait.

        While hosting, the room is on our own server, whatever the address field says.
        """
        async with self._action():
            if self._hosting is not None:
                url = self._hosting.local_url
            else:
                url = normalize_server_url(server_text)
            name = room.strip()
            if name:
                _check_room(name)
            session = await self._ensure_session(url)
            if name:
                await session.join_room(name)

    @async_slot()
    async def call(self, server_text: str, peer_id: str) -> None:
        """Dial a connection id (connecting to the server first if needed)."""
        async with self._action():
            peer = peer_id.strip()
            if not peer:
                raise InputError("Enter the connection id of the person to call.")
            if self._hosting is not None:
                url = self._hosting.local_url
            else:
                url = normalize_server_url(server_text)
            session = await self._ensure_session(url)
            if peer == session.snapshot.connection_id:
                raise InputError("That is this app's own connection id; enter the other one.")
            await session.dial(peer)

    @async_slot()
    async def hang_up(self) -> None:
        async with self._action():
            if self._session is not None:
                await self._session.hang_up()

    @async_slot()
    async def accept(self) -> None:
        async with self._action():
            if self._session is not None and self._session.snapshot.phase is CallPhase.RINGING:
                await self._session.accept()

    @async_slot()
    async def decline(self) -> None:
        async with self._action():
            if self._session is not None and self._session.snapshot.phase is CallPhase.RINGING:
                await self._session.decline()

    @async_slot(bool)
    async def set_video_enabled(self, enabled: bool) -> None:
        async with self._action(clear_error=False):
            self._video_enabled = enabled
            if self._session is not None:
                await self._session.set_video_enabled(enabled)

    @async_slot(bool)
    async def set_muted(self, muted: bool) -> None:
        """Mute or unmute the microphone; kept for later calls and sessions."""
        async with self._action(clear_error=False):
            if self._session is not None:
                await self._session.set_muted(muted)  # the snapshot brings it back
            else:
                self._set_muted(muted)

    @async_slot(float)
    async def set_volume(self, volume: float) -> None:
        """Speaker volume, 0 to 2, now and for later calls."""
        async with self._action(clear_error=False):
            volume = max(0.0, min(2.0, volume))
            self.options = replace(self.options, volume=volume)
            if self._session is not None:
                await self._session.set_volume(volume)

    @async_slot()
    async def refresh_devices(self) -> None:
        """List the system's cameras, microphones and speakers off the GUI thread.

        PortAudio only rescans while no session may hold a stream, and the
        cameras are only probed while no call holds one.
        """
        if self._scanning:
            return
        self._scanning = True
        try:
            idle = self._session is None
            in_call = self._snapshot.phase in IN_CALL
            scan = await asyncio.to_thread(
                self._device_scanner, cameras=not in_call, rescan_audio=idle
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

    @async_slot()
    async def shutdown(self) -> None:
        """Hang up, close the session and stop the server (the window is closing)."""
        self._shut_down = True
        self._timer.stop()
        try:
            await self._drop_session()
            await self._stop_server()
        except Exception as exc:  # closing must finish whatever happens
            log.warning("error while shutting down: %s", exc, exc_info=True)

    def copy(self, text: str) -> None:
        """Copy ``text`` (an id, an address, a room) to the clipboard."""
        if text:
            self._services.copy_text(text)

    def show_error(self, message: str) -> None:
        """Put ``message`` in the error banner ("" clears it)."""
        self.error = message
        if message:
            self.errors.append(message)
        self.errorChanged.emit(message)

    # -- plumbing ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _action(self, *, clear_error: bool = True) -> AsyncIterator[None]:
        if clear_error and self.error:
            self.show_error("")
        self._busy += 1
        self._emit_controls()
        try:
            yield
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.show_error(explain(exc, server_url=self._session_url))
        finally:
            self._busy -= 1
            self._emit_controls()

    async def _start_server(self, tls: TlsFiles | None) -> ServerLike:
        ports = [self._host_port, 0] if self._host_port else [0]
        last: OSError | None = None
        for port in ports:
            # A certificate that cannot be used raises here, before anything listens.
            server = self._server_factory(self._bind_host, port, tls)
            try:
                await server.start()
            except OSError as exc:
                log.info("cannot listen on port %s: %s", port, exc)
                last = exc
                continue
            self._server = server
            return server
        assert last is not None
        raise last

    async def _stop_server(self) -> None:
        server, self._server = self._server, None
        self._host_pin = None
        if self._hosting is not None:
            self._hosting = None
            self.hostingChanged.emit(None)
        if server is not None:
            await server.stop()

    async def _ensure_session(self, url: str) -> SessionLike:
        session = self._session
        if (
            session is not None
            and self._session_url == url
            and session.snapshot.phase not in (CallPhase.IDLE, CallPhase.CLOSED)
        ):
            return session
        await self._drop_session()
        # Our own server's certificate is trusted for our own connection to it.
        pin = (
            self._host_pin if self._hosting is not None and url == self._hosting.local_url else None
        )
        session = self._session_factory(self.options.config(url, tls_pin=pin))
        if self._muted:
            await session.set_muted(True)  # before the first snapshot: no flicker
        self._session = session
        self._session_url = url
        self._unsubscribe = session.subscribe(self._on_snapshot)
        session.set_frame_callbacks(remote=self.remoteFrame.emit, local=self._on_local_frame)
        self._on_snapshot(session.snapshot)
        try:
            await session.connect()
            if not self._video_enabled:
                await session.set_video_enabled(False)
        except BaseException:
            await self._drop_session()
            raise
        return session

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if session is None:
            return
        try:
            await session.close()
        finally:
            if unsubscribe is not None:
                unsubscribe()
            session.set_frame_callbacks(remote=None, local=None)
            self._session_url = None
            self.last_stats = None
            self._on_snapshot(
                CallSnapshot(end_reason=session.snapshot.end_reason, muted=self._muted), force=True
            )

    def _on_local_frame(self, frame: Any) -> None:
        # While the camera is off the engine sends black frames; the self-view
        # shows "Camera off" instead of a black square.
        if self._video_enabled:
            self.localFrame.emit(frame)

    def _on_snapshot(self, snap: CallSnapshot, *, force: bool = False) -> None:
        previous = self._snapshot
        self._snapshot = snap
        message = ending_message(previous, snap)
        if message:
            self.show_error(message)
        self.snapshotChanged.emit(snap)
        self.statusChanged.emit(status_text(snap))
        if snap.connection_id != previous.connection_id or force:
            self.connectionIdChanged.emit(snap.connection_id or "")
        if snap.notice != previous.notice or force:
            self.noticeChanged.emit(snap.notice or "")
        self._set_muted(snap.muted)
        active = snap.phase is CallPhase.CONNECTED or (
            snap.phase is CallPhase.RECONNECTING and snap.connected_at is not None
        )
        if active != self._remote_active:
            self._remote_active = active
            self.remoteActiveChanged.emit(active)
            if not active:
                self.statsChanged.emit("")
                self.durationChanged.emit("")
        self._emit_controls()
        ticking = snap.phase in IN_CALL or snap.phase is CallPhase.RECONNECTING
        if ticking and not self._shut_down and not self._timer.isActive():
            self._timer.start()
        elif not ticking and self._timer.isActive():
            self._timer.stop()
        if snap.phase is CallPhase.RINGING and snap.peer_id and self._prompt is None:
            self._prompt = asyncio.ensure_future(self._ask(snap.peer_id))
        elif (
            snap.phase is not CallPhase.RINGING
            and self._prompt is not None
            and not self._prompt.done()
        ):
            self._services.dismiss_call_prompt()

    async def _ask(self, peer_id: str) -> None:
        try:
            accepted = await self._services.ask_accept_call(peer_id)
            session = self._session
            if session is None or session.snapshot.phase is not CallPhase.RINGING:
                return
            if accepted:
                await self.accept()
            else:
                await self.decline()
        finally:
            self._prompt = None

    def _set_muted(self, muted: bool) -> None:
        if muted != self._muted:
            self._muted = muted
            self.mutedChanged.emit(muted)

    def _emit_controls(self) -> None:
        self.controlsChanged.emit(self.controls)

    def _tick(self) -> None:
        snap = self._snapshot
        if snap.phase not in IN_CALL and snap.phase is not CallPhase.RECONNECTING:
            return
        self.durationChanged.emit(call_duration(snap, time.monotonic()))
        if self._remote_active and self._session is not None and self._stats_task is None:
            self._stats_task = asyncio.ensure_future(self._refresh_stats(self._session))

    async def _refresh_stats(self, session: SessionLike) -> None:
        try:
            stats = await session.stats()
        except Exception as exc:  # stats are best effort
            log.debug("stats failed: %s", exc)
            return
        finally:
            self._stats_task = None
        if session is self._session:
            self.last_stats = stats
            self.statsChanged.emit(stats_text(stats))


def _check_room(name: str) -> None:
    problem = room_problem(name)
    if problem:
        raise InputError(problem)


__all__ = ["AddressError", "CallOptions", "CallViewModel", "Hosting", "InputError"]
