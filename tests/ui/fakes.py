"""Stand-ins for the call engine, the server and the desktop services."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from callapp.call.config import CallConfig
from callapp.call.errors import RoomFullError, ServerUnavailable
from callapp.call.report import LegRecord
from callapp.call.state import CallPhase, CallSnapshot, EndReason, Role
from callapp.call.stats import CallStats
from callapp.ui.devices import CameraFound, DeviceScan


class FakeCallSession:
    """The CallSession surface, driven by the test instead of a network."""

    instances: list[FakeCallSession] = []  # noqa: RUF012 - a registry on purpose

    def __init__(
        self,
        config: CallConfig,
        *,
        unreachable: bool = False,
        full_rooms: frozenset[str] = frozenset(),
        connection_id: str = "self-id-123456",
    ) -> None:
        self.config = config
        self.unreachable = unreachable
        self.full_rooms = full_rooms
        self.connection_id = connection_id
        self._snap = CallSnapshot()
        self._listeners: list[Callable[[CallSnapshot], None]] = []
        self.remote_cb: Callable[[Any], None] | None = None
        self.local_cb: Callable[[Any], None] | None = None
        self.calls: list[tuple[str, Any]] = []
        self.closed = False
        self.volume = config.volume
        #: What stats() reports as audio frames received.
        self.audio_frames_received = 120
        self._record: LegRecord | None = None
        self._last_stats: CallStats | None = None
        FakeCallSession.instances.append(self)

    @property
    def snapshot(self) -> CallSnapshot:
        return self._snap

    def subscribe(self, callback: Callable[[CallSnapshot], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def set_frame_callbacks(
        self,
        *,
        remote: Callable[[Any], None] | None = None,
        local: Callable[[Any], None] | None = None,
    ) -> None:
        self.remote_cb, self.local_cb = remote, local

    def publish(self, **changes: Any) -> None:
        self._snap = self._snap.evolve(**changes)
        for listener in list(self._listeners):
            listener(self._snap)

    async def connect(self) -> str:
        self.calls.append(("connect", None))
        self.publish(phase=CallPhase.CONNECTING, server_url=self.config.server_url)
        await asyncio.sleep(0)
        if self.unreachable:
            self.publish(phase=CallPhase.IDLE)
            raise ServerUnavailable(f"Could not reach the server at {self.config.server_url}.")
        self.publish(phase=CallPhase.WAITING, connection_id=self.connection_id)
        return self.connection_id

    async def join_room(self, room: str) -> None:
        self.calls.append(("join_room", room))
        if room in self.full_rooms:
            raise RoomFullError(f"The room “{room}” is full.")
        self.publish(room=room)

    async def dial(self, peer_id: str) -> None:
        self.calls.append(("dial", peer_id))
        self.publish(phase=CallPhase.CALLING, peer_id=peer_id, role=Role.CALLER)

    # test drivers ------------------------------------------------------------
    def media_up(self) -> None:
        self.publish(phase=CallPhase.CONNECTED, connected_at=time.monotonic() - 65)

    def ring(self, peer_id: str) -> None:
        self.publish(phase=CallPhase.RINGING, peer_id=peer_id, role=Role.CALLEE)

    def end(self, reason: EndReason) -> None:
        self.publish(phase=CallPhase.WAITING, peer_id=None, end_reason=reason, connected_at=None)

    # actions -------------------------------------------------------------------
    async def accept(self) -> None:
        self.calls.append(("accept", None))
        self.publish(phase=CallPhase.CALLING)

    async def decline(self) -> None:
        self.calls.append(("decline", None))
        self.end(EndReason.DECLINED)

    async def hang_up(self) -> None:
        self.calls.append(("hang_up", None))
        if self._snap.phase in (CallPhase.CALLING, CallPhase.CONNECTED, CallPhase.RINGING):
            self.end(EndReason.HUNG_UP)

    async def set_video_enabled(self, enabled: bool) -> None:
        self.calls.append(("set_video_enabled", enabled))
        self.publish(video_enabled=enabled)

    async def set_muted(self, muted: bool) -> None:
        self.calls.append(("set_muted", muted))
        self.publish(muted=muted)

    async def set_volume(self, volume: float) -> None:
        self.calls.append(("set_volume", volume))
        self.volume = volume

    async def stats(self) -> CallStats | None:
        if self._snap.phase is not CallPhase.CONNECTED:
            return None
        self._last_stats = CallStats(
            codec="video/VP8",
            frames_sent=300,
            frames_received=290,
            sent_size=(640, 480),
            received_size=(640, 480),
            fps_sent=30.0,
            fps_received=29.6,
            bytes_sent=1_000_000,
            bytes_received=900_000,
            bitrate_sent=850_000.0,
            bitrate_received=1_200_000.0,
            rtt_ms=3.2,
            packet_loss=0.0,
            remote_packet_loss=0.0,
            packets_received=1000,
            packets_lost=0,
            window=1.0,
            audio_frames_sent=125,
            audio_frames_received=self.audio_frames_received,
        )
        return self._last_stats

    def records(self) -> list[LegRecord]:
        """One leg once media is up, with the numbers stats() reports."""
        if self._record is None and self._snap.phase is CallPhase.CONNECTED:
            now = time.monotonic()
            self._record = LegRecord(
                peer_id=self._snap.peer_id or "peer", role=Role.CALLER, created_at=now - 66
            )
            self._record.connected_at = now - 65
        if self._record is not None:
            self._record.audio_frames_received = self.audio_frames_received
            self._record.stats = self._last_stats
            self._record.stats_at = time.monotonic()
        return [self._record] if self._record is not None else []

    async def close(self) -> None:
        self.calls.append(("close", None))
        self.closed = True
        self.publish(phase=CallPhase.CLOSED, end_reason=EndReason.CLOSED)


class FakeServer:
    def __init__(
        self, host: str, port: int, busy_ports: set[int], tls: tuple[str, str] | None = None
    ) -> None:
        self.tls = tls
        if tls is not None:
            from callapp.signaling.tls import server_context

            server_context(*tls)  # refuses what the real server would refuse
        self.host = host
        self.requested = port
        self.busy_ports = busy_ports
        self._port: int | None = None
        self.stopped = False

    @property
    def port(self) -> int:
        assert self._port is not None
        return self._port

    async def start(self) -> None:
        if self.requested in self.busy_ports:
            raise OSError(98, "Address already in use")
        self._port = self.requested or 40123

    async def stop(self) -> None:
        self.stopped = True


class FakeDeviceScanner:
    """What the "system" has; records how it was asked."""

    def __init__(self, scan: DeviceScan | None = None) -> None:
        self.scan = scan or DeviceScan(
            cameras=(CameraFound(0, 1280, 720),),
            microphones=("USB Mic", "default"),
            speakers=("HDMI Out", "USB Mic", "default"),
        )
        self.asked: list[tuple[bool, bool]] = []

    def __call__(self, *, cameras: bool = True, rescan_audio: bool = False) -> DeviceScan:
        self.asked.append((cameras, rescan_audio))
        if cameras:
            return self.scan
        return DeviceScan(
            microphones=self.scan.microphones, speakers=self.scan.speakers, cameras_scanned=False
        )


class FakeServices:
    """Answers incoming-call prompts with ``answer``; records the clipboard."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.asked: list[str] = []
        self.dismissed = 0
        self.clipboard: list[str] = []
        #: What choose_file answers, in order (None: the person cancelled).
        self.files: list[str | None] = []
        self.file_requests: list[tuple[str, str]] = []
        self.hold: asyncio.Event | None = None

    async def ask_accept_call(self, peer_id: str) -> bool:
        self.asked.append(peer_id)
        if self.hold is not None:
            await self.hold.wait()
        return self.answer

    def dismiss_call_prompt(self) -> None:
        self.dismissed += 1
        if self.hold is not None:
            self.hold.set()

    def copy_text(self, text: str) -> None:
        self.clipboard.append(text)

    async def choose_file(self, title: str, start: str) -> str | None:
        self.file_requests.append((title, start))
        return self.files.pop(0) if self.files else None


async def until(predicate: Callable[[], object], limit: float = 10.0) -> None:
    """Poll ``predicate`` on the running loop until it is true (fail after ``limit`` s)."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - conditions are plain state, not events
            await asyncio.sleep(0.01)
