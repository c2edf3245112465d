"""Stand-ins for the call engine, the server and the desktop services."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from callapp.call.config import CallConfig
from callapp.call.errors import InvalidAction, RoomFullError, RoomLockedError, ServerUnavailable
from callapp.call.report import LegRecord
from callapp.call.state import (
    CallSnapshot,
    ChatMessage,
    EndReason,
    LegSnapshot,
    LegState,
    LinkState,
    Presence,
    Role,
    focus_leg,
    summary_phase,
)
from callapp.call.stats import CallStats
from callapp.media.devices import AudioState, AudioStatus
from callapp.ui.devices import CameraFound, DeviceScan
from callapp.ui.settings import Settings


def stats(**changes: Any) -> CallStats:
    values: dict[str, Any] = {
        "codec": "video/VP8",
        "frames_sent": 300,
        "frames_received": 290,
        "sent_size": (640, 480),
        "received_size": (640, 480),
        "fps_sent": 30.0,
        "fps_received": 29.6,
        "bytes_sent": 1_000_000,
        "bytes_received": 900_000,
        "bitrate_sent": 850_000.0,
        "bitrate_received": 1_200_000.0,
        "rtt_ms": 3.2,
        "packet_loss": 0.0,
        "remote_packet_loss": 0.0,
        "packets_received": 1000,
        "packets_lost": 0,
        "window": 1.0,
        "audio_frames_sent": 125,
        "audio_frames_received": 120,
    }
    values.update(changes)
    return CallStats(**values)


class FakeCallSession:
    """The CallSession surface, with legs, driven by the test instead of a network."""

    instances: list[FakeCallSession] = []  # noqa: RUF012 - a registry on purpose

    def __init__(
        self,
        config: CallConfig,
        *,
        unreachable: bool = False,
        full_rooms: frozenset[str] = frozenset(),
        locked_rooms: frozenset[str] = frozenset(),
        connection_id: str = "self-id-123456",
        hang_up_hangs: bool = False,
    ) -> None:
        self.config = config
        self.unreachable = unreachable
        self.full_rooms = full_rooms
        self.locked_rooms = locked_rooms
        self.connection_id = connection_id
        self.hang_up_hangs = hang_up_hangs
        self._snap = CallSnapshot(name=config.name)
        self._link = LinkState.OFFLINE
        self._legs: dict[str, LegSnapshot] = {}
        self._listeners: list[Callable[[CallSnapshot], None]] = []
        self.local_cb: Callable[[Any], None] | None = None
        self.audio_cb: Callable[[Any], None] | None = None
        self.mixed_cb: Callable[[Any], None] | None = None
        self._mixing: tuple[int, Any] | None = None
        self.peer_cb: Callable[[str, Any], None] | None = None
        self.calls: list[tuple[str, Any]] = []
        self.closed = False
        self.volume = config.volume
        self.peer_stats: dict[str, CallStats] = {}
        self._record: LegRecord | None = None
        FakeCallSession.instances.append(self)

    # -- observing ------------------------------------------------------------------
    @property
    def snapshot(self) -> CallSnapshot:
        return self._snap

    def subscribe(self, callback: Callable[[CallSnapshot], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def set_frame_callbacks(
        self,
        *,
        remote: Callable[[Any], None] | None = None,
        local: Callable[[Any], None] | None = None,
        remote_by_peer: Callable[[str, Any], None] | None = None,
        remote_audio: Callable[[Any], None] | None = None,
        mixed_audio: Callable[[Any], None] | None = None,
    ) -> None:
        self.local_cb, self.peer_cb = local, remote_by_peer
        self.audio_cb = remote_audio
        self.mixed_cb = mixed_audio

    def publish(self, **changes: Any) -> None:
        legs = tuple(self._legs.values())
        focus = focus_leg(legs)
        connected = [leg.connected_at for leg in legs if leg.connected_at is not None]
        values: dict[str, Any] = {
            "phase": summary_phase(self._link, legs, closed=self.closed),
            "link": self._link,
            "legs": legs,
            "peer_id": focus.peer_id if focus else None,
            "role": focus.role if focus else None,
            "connected_at": min(connected) if connected else None,
        }
        values.update(changes)
        self._snap = self._snap.evolve(**values)
        for listener in list(self._listeners):
            listener(self._snap)

    # -- test drivers -----------------------------------------------------------------
    def add_peer(
        self,
        peer_id: str,
        name: str | None = None,
        *,
        state: LegState = LegState.CONNECTED,
        in_room: bool = True,
        code: str | None = "1234 5678 9012",
        verified: bool = True,
        **presence: Any,
    ) -> None:
        self._legs[peer_id] = LegSnapshot(
            peer_id=peer_id,
            state=state,
            role=Role.CALLER,
            in_room=in_room,
            presence=Presence(name=name, **presence) if name is not None else None,
            connected_at=time.monotonic() - 65 if state is LegState.CONNECTED else None,
            security_code=code,
            peer_verified=verified,
        )
        self.peer_stats.setdefault(peer_id, stats())
        self.publish()

    def update_peer(self, peer_id: str, **presence: Any) -> None:
        leg = self._legs[peer_id]
        base = leg.presence or Presence()
        fields = {k: presence.get(k, getattr(base, k)) for k in Presence.__dataclass_fields__}
        self._legs[peer_id] = LegSnapshot(
            **{
                **{k: getattr(leg, k) for k in LegSnapshot.__dataclass_fields__},
                "presence": Presence(**fields),
            }
        )
        self.publish()

    def ring(self, peer_id: str, name: str | None = "Ana") -> None:
        self.add_peer(peer_id, name, state=LegState.RINGING, in_room=False)

    def leaves(self, peer_id: str, reason: EndReason) -> None:
        self._legs.pop(peer_id, None)
        self.publish(end_reason=reason)

    def media_up(self, peer_id: str = "peer-b", name: str = "Bo") -> None:
        self.add_peer(peer_id, name)

    def reconnecting(self, **changes: Any) -> None:
        self._link = LinkState.RECONNECTING
        self.publish(**changes)

    def gone(self) -> None:
        self._link = LinkState.GONE
        self._legs.clear()
        self.publish(end_reason=EndReason.SERVER_LOST)

    def receive_chat(self, sender: str, name: str, text: str) -> None:
        line = ChatMessage(sender=sender, sender_name=name, text=text, at=time.monotonic())
        self.publish(chat=(*self._snap.chat, line))

    def frame(self, peer_id: str, frame: Any) -> None:
        if self.peer_cb is not None:
            self.peer_cb(peer_id, frame)

    def audio(self, peer_id: str, frame: Any) -> None:
        """``peer_id``'s audio, handed out as the engine does: the focus leg's to
        ``remote_audio``; everyone's, summed per 20 ms (by pts), to ``mixed_audio``
        as int16 stereo blocks (a block goes out once a later one begins)."""
        if self.audio_cb is not None and self._snap.peer_id == peer_id:
            self.audio_cb(frame)
        samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).astype(np.int32)
        if samples.shape[1] == 1:
            samples = np.repeat(samples, 2, axis=1)
        if self._mixing is not None and self._mixing[0] != frame.pts:
            self._emit_mix()
        if self._mixing is None:
            self._mixing = (frame.pts, samples)
        else:
            self._mixing = (frame.pts, self._mixing[1] + samples)

    def _emit_mix(self) -> None:
        if self._mixing is not None and self.mixed_cb is not None:
            self.mixed_cb(np.clip(self._mixing[1], -32768, 32767).astype(np.int16))
        self._mixing = None

    # -- actions ---------------------------------------------------------------------
    async def connect(self) -> str:
        self.calls.append(("connect", None))
        self._link = LinkState.CONNECTING
        self.publish(server_url=self.config.server_url)
        await asyncio.sleep(0)
        if self.unreachable:
            self._link = LinkState.OFFLINE
            self.publish()
            raise ServerUnavailable("Connect call failed ('192.0.2.99', 19502)")
        self._link = LinkState.CONNECTED
        self.publish(connection_id=self.connection_id)
        return self.connection_id

    async def join_room(
        self, room: str, capacity: int | None = None, *, secret: str | None = None
    ) -> None:
        self.calls.append(("join_room", (room, capacity, secret)))
        if room in self.full_rooms:
            raise RoomFullError(f"The room “{room}” is full.")
        if room in self.locked_rooms and secret is None:
            raise RoomLockedError("unauthorized")
        self.publish(room=room)

    async def dial(self, peer_id: str) -> None:
        self.calls.append(("dial", peer_id))
        self.add_peer(peer_id, None, state=LegState.OFFERING, in_room=False)

    async def accept(self) -> None:
        self.calls.append(("accept", None))
        for peer_id, leg in list(self._legs.items()):
            if leg.state is LegState.RINGING:
                self._legs[peer_id] = LegSnapshot(
                    peer_id=peer_id,
                    state=LegState.CONNECTED,
                    role=Role.CALLEE,
                    in_room=False,
                    presence=leg.presence,
                    connected_at=time.monotonic(),
                )
        self.publish()

    async def decline(self) -> None:
        self.calls.append(("decline", None))
        for peer_id in [p for p, leg in self._legs.items() if leg.state is LegState.RINGING]:
            del self._legs[peer_id]
        self.publish(end_reason=EndReason.DECLINED)

    async def hang_up(self) -> None:
        self.calls.append(("hang_up", None))
        if self.hang_up_hangs:
            await asyncio.Event().wait()
        if self._link is not LinkState.CONNECTED:
            raise InvalidAction("not connected to a signaling server")
        self._legs.clear()
        self.publish(end_reason=EndReason.HUNG_UP, room=None)

    async def set_video_enabled(self, enabled: bool) -> None:
        self.calls.append(("set_video_enabled", enabled))
        self.publish(video_enabled=enabled)

    async def set_muted(self, muted: bool) -> None:
        self.calls.append(("set_muted", muted))
        self.publish(muted=muted)

    async def set_volume(self, volume: float) -> None:
        self.calls.append(("set_volume", volume))
        self.volume = volume

    async def set_name(self, name: str) -> None:
        self.calls.append(("set_name", name))
        self.publish(name=name)

    async def set_recording(self, recording: bool) -> None:
        self.calls.append(("set_recording", recording))
        self.publish(recording=recording)

    async def share_screen(self, spec: str | None = "screen") -> None:
        self.calls.append(("share_screen", spec))
        self.publish(screen_sharing=spec is not None)

    async def send_chat(self, text: str) -> ChatMessage:
        self.calls.append(("send_chat", text))
        if not any(leg.state is LegState.CONNECTED for leg in self._legs.values()):
            raise InvalidAction("Nobody is in the call to read your message.")
        line = ChatMessage(
            sender=self.connection_id, sender_name="Me", text=text.strip(), at=0.0, mine=True
        )
        self.publish(chat=(*self._snap.chat, line))
        return line

    async def stats(self) -> CallStats | None:
        peer = self._snap.peer_id
        return self.peer_stats.get(peer) if peer is not None else None

    async def all_stats(self) -> dict[str, CallStats]:
        return {
            p: s
            for p, s in self.peer_stats.items()
            if p in self._legs and self._legs[p].state is LegState.CONNECTED
        }

    def records(self) -> list[LegRecord]:
        return []

    async def close(self) -> None:
        self.calls.append(("close", None))
        self.closed = True
        self._legs.clear()
        self._link = LinkState.GONE
        self.publish(end_reason=self._snap.end_reason or EndReason.CLOSED)


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
    """Answers questions with ``answer``; records the clipboard and what was asked."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.questions: list[str] = []
        self.clipboard: list[str] = []
        self.files: list[str | None] = []
        self.file_requests: list[tuple[str, str]] = []
        #: What choose_save_file answers, in turn (None: cancelled).
        self.save_files: list[str | None] = []
        self.save_requests: list[tuple[str, str]] = []
        #: What edit_preferences answers (None: cancelled).
        self.preferences: Settings | None = None
        self.preferences_asked: list[Settings] = []

    def copy_text(self, text: str) -> None:
        self.clipboard.append(text)

    async def confirm(self, title: str, text: str, yes: str, no: str = "Cancel") -> bool:
        self.questions.append(title)
        return self.answer

    async def choose_file(self, title: str, start: str) -> str | None:
        self.file_requests.append((title, start))
        return self.files.pop(0) if self.files else None

    async def choose_save_file(self, title: str, start: str) -> str | None:
        self.save_requests.append((title, start))
        return self.save_files.pop(0) if self.save_files else None

    async def edit_preferences(
        self,
        settings: Settings,
        devices: Any,
        *,
        settings_path: str | None = None,
        in_call: bool = False,
        hosting: bool = False,
        overridden: Iterable[str] = (),
        on_volume: Callable[[int], None] | None = None,
    ) -> Settings | None:
        self.preferences_asked.append(settings)
        return self.preferences


async def until(predicate: Callable[[], object], limit: float = 10.0) -> None:
    """Poll ``predicate`` on the running loop until it is true (fail after ``limit`` s)."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - conditions are plain state, not events
            await asyncio.sleep(0.01)


class FakeSpeaker:
    """Stands in for the speaker the window's sounds play on (SoundsModel's opener).

    Each opened playback is kept in :attr:`played` as ``(chime name, speaker)``;
    a once-only chime "plays" in ``seconds`` and ends; a repeating one plays
    until stopped. ``fail`` makes the speaker fall back as a missing one does.
    """

    def __init__(self, *, seconds: float = 0.05, fail: str = "") -> None:
        self.seconds = seconds
        self.fail = fail
        self.played: list[tuple[str, str | None]] = []
        self.open_now: list[FakePlayback] = []

    def __call__(
        self, track: Any, speaker: str | None, on_status: Callable[[AudioStatus], None]
    ) -> FakePlayback:
        self.played.append((track.chime.name, speaker))
        return FakePlayback(self, track, on_status)


class FakePlayback:
    def __init__(
        self, owner: FakeSpeaker, track: Any, on_status: Callable[[AudioStatus], None]
    ) -> None:
        self.owner = owner
        self.track = track
        self.on_status = on_status
        self.status = AudioStatus(AudioState.STARTING, "fake", "Opening the speaker")
        # Futures of the loop itself: qtbot may step a task while that loop is not running.
        self._loop = asyncio.get_event_loop()
        self._ended: asyncio.Future[None] = self._loop.create_future()

    def start(self) -> None:
        self.owner.open_now.append(self)
        if self.owner.fail:
            self.status = AudioStatus(AudioState.FALLBACK, "fake", self.owner.fail)
        else:
            self.status = AudioStatus(AudioState.LIVE, "fake", "Playing")
        self.on_status(self.status)
        if not self.track.repeat:
            self._loop.call_later(self.owner.seconds, self._end)

    def _end(self) -> None:
        if not self._ended.done():
            self._ended.set_result(None)

    async def stop(self) -> None:
        if self in self.owner.open_now:
            self.owner.open_now.remove(self)
        self._end()

    async def wait_ended(self) -> None:
        await self._ended
