"""A call session: one signaling connection, one call at a time.

:class:`CallSession` is what the Qt view-model and the headless CLI drive. It
owns a :class:`~callapp.call.channel.SignalingChannel` and, during a call, one
:class:`~callapp.call.peer.Peer` (an ``RTCPeerConnection``). Everything a
view may show is published as an immutable
:class:`~callapp.call.state.CallSnapshot`; phases change only through the
table in :mod:`callapp.call.transitions`.

Two ways into a call:

* **Room**: :meth:`CallSession.join_room`. When the room is complete the
  server sends ``ready``; the first member listed offers, the other answers
  (PROTOCOL.md). The callee starts gathering candidates as soon as ``ready``
  arrives, so its gathering overlaps with the caller's.
* **Dial**: :meth:`CallSession.dial` a connection id. An offer from someone
  we are not calling rings (``RINGING``) until :meth:`accept` or
  :meth:`decline`, unless ``auto_answer`` is set. When both sides dial each
  other at once (glare) the lower connection id stays the caller and the
  other answers its offer, so exactly one call results.

A call ends (back to ``WAITING``, with an :class:`EndReason`) on hang-up,
``BYE``, the peer leaving the room, ICE/DTLS failure, a timeout, or silence:
aiortc has no ICE "disconnected" state, so a peer that stops sending
anything for ``silence_timeout`` seconds (killed, unplugged) has gone.

All actions and all incoming events are serialized by one lock, so handlers
never see a half-changed session.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from callapp.call import errors, ice, sources, wire
from callapp.call.channel import (
    ChannelClosed,
    ChannelLost,
    ChannelRestored,
    SignalingChannel,
    lifecycle,
    wrap_errors,
)
from callapp.call.config import CallConfig
from callapp.call.peer import AudioCallback, FrameCallback, Peer, black_like
from callapp.call.state import CallPhase, CallSnapshot, EndReason, Role
from callapp.call.stats import CallStats, StatsMeter
from callapp.call.transitions import Trigger, can, next_phase
from callapp.signaling import messages
from callapp.signaling.client import SignalingClient
from callapp.signaling.tls import TlsError, pinned_client_context

logger = logging.getLogger(__name__)

Listener = Callable[[CallSnapshot], None]

#: Candidates kept per sender that has not offered yet, and senders remembered.
_EARLY_CANDIDATES = 64
_EARLY_SENDERS = 8


@dataclass(eq=False)
class _Call:
    """The session's private record of the call in progress."""

    peer_id: str
    role: Role
    in_room: bool
    peer: Peer | None = None
    #: An offer waiting for accept() (RINGING).
    offer: str | None = None
    #: Candidates that arrived before there was a Peer to hold them.
    candidates: list[wire.Ice] = field(default_factory=list)
    answered: bool = False
    connected: bool = False
    timer: asyncio.TimerHandle | None = None
    watchdog: asyncio.Task[None] | None = None
    meter: StatsMeter | None = None


class CallSession:
    """One user's calls through one signaling server; see the module docstring."""

    def __init__(self, config: CallConfig, *, channel: SignalingChannel | None = None) -> None:
        self._config = config
        self._channel = channel
        self._snapshot = CallSnapshot(server_url=config.server_url)
        self._listeners: list[Listener] = []
        self._remote_callback: FrameCallback | None = None
        self._local_callback: FrameCallback | None = None
        self._call: _Call | None = None
        self._source: MediaStreamTrack | None = None
        self._audio_source: MediaStreamTrack | None = None
        self._remote_audio_callback: AudioCallback | None = None
        self._volume = config.volume
        # What each device (and the last failed call) wants the user to know;
        # the snapshot's notice is all of them, in this order.
        self._notices: dict[str, str] = {}
        self._room_peers: list[str] = []
        self._early: dict[str, list[wire.Ice]] = {}
        self._lock = asyncio.Lock()
        self._events: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._preview: asyncio.Task[None] | None = None

    # -- observing ---------------------------------------------------------------

    @property
    def snapshot(self) -> CallSnapshot:
        """The current state; a new object after every visible change."""
        return self._snapshot

    @property
    def config(self) -> CallConfig:
        return self._config

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every new snapshot; returns the unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def set_frame_callbacks(
        self,
        *,
        remote: FrameCallback | None = None,
        local: FrameCallback | None = None,
        remote_audio: AudioCallback | None = None,
    ) -> None:
        """Receive each decoded remote / each sent local frame, on the loop thread.

        Frames are handed over as they come, never queued: keep the callback
        short (store the latest frame and return). ``remote_audio`` gets each
        decoded 20 ms of the peer's audio (it is played regardless).
        """
        self._remote_callback = remote
        self._local_callback = local
        self._remote_audio_callback = remote_audio
        self._sync_preview()

    def _publish(self, snapshot: CallSnapshot) -> None:
        if snapshot == self._snapshot:
            return
        self._snapshot = snapshot
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:
                logger.exception("snapshot listener failed")

    def _move(self, trigger: Trigger, **changes: Any) -> None:
        phase = next_phase(self._snapshot.phase, trigger)
        self._publish(self._snapshot.evolve(phase=phase, **changes))

    def _update(self, **changes: Any) -> None:
        self._publish(self._snapshot.evolve(**changes))

    # -- connection --------------------------------------------------------------

    def _require_channel(self) -> SignalingChannel:
        if self._channel is None or self._snapshot.connection_id is None:
            raise errors.NotConnected("not connected to a signaling server")
        return self._channel

    async def connect(self) -> str:
        """Connect to the signaling server; returns our connection id.

        Raises :exc:`~callapp.call.errors.ServerUnavailable` (and the phase
        goes back to ``IDLE``) if the server cannot be reached.
        """
        if self._snapshot.phase is not CallPhase.IDLE:
            raise errors.InvalidAction(f"cannot connect while {self._snapshot.phase.value}")
        self._move(Trigger.CONNECT, end_reason=None)
        try:
            with wrap_errors():
                if self._channel is None:
                    self._channel = _client_for(self._config.server_url, self._config.tls_pin)
                await self._channel.connect()
        except BaseException:
            self._move(Trigger.CONNECT_FAILED)
            raise
        connection_id = self._channel.connection_id
        assert connection_id is not None, "a connected channel has an id"
        self._move(Trigger.WELCOMED, connection_id=connection_id)
        # Open the video source now rather than on the first call: opening a
        # camera (or importing what draws the test pattern) takes long enough
        # to delay the first frame noticeably.
        self._open_source()
        self._open_audio_source()  # a bad spec is said now, not at the first call
        self._sync_preview()
        self._events = asyncio.ensure_future(self._pump_events(self._channel))
        return connection_id

    async def join_room(self, room: str) -> None:
        """Join ``room``; a call starts when someone else is (or gets) there.

        Raises :exc:`~callapp.call.errors.RoomFullError` or
        :exc:`~callapp.call.errors.BadRoomError`; the session stays usable.
        """
        async with self._lock:
            channel = self._require_channel()
            if self._call is not None:
                raise errors.InvalidAction("hang up before joining a room")
            with wrap_errors():
                reply = await channel.join(room)
            peers = getattr(reply, "peers", None)
            me = self._snapshot.connection_id
            self._room_peers = list(peers) if peers else ([me] if me else [])
            self._update(room=room, end_reason=None)

    async def leave_room(self) -> None:
        """Leave the room (hanging up any call in it)."""
        async with self._lock:
            await self._leave_room()

    async def _leave_room(self) -> None:
        if self._call is not None:
            await self._end(EndReason.HUNG_UP, bye=True)
        if self._snapshot.room is not None and self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.leave()
        self._room_peers = []
        self._update(room=None)

    # -- actions -----------------------------------------------------------------

    async def dial(self, peer_id: str) -> None:
        """Call connection ``peer_id``; returns once the offer is on its way.

        The outcome shows in snapshots: ``CONNECTED``, or back to ``WAITING``
        with ``DECLINED`` / ``NO_ANSWER`` / ``FAILED``.
        """
        async with self._lock:
            channel = self._require_channel()
            if peer_id == self._snapshot.connection_id:
                raise errors.InvalidAction("you cannot call yourself")
            if not peer_id:
                raise errors.InvalidAction("no connection id to call")
            if self._call is not None or not can(self._snapshot.phase, Trigger.DIAL):
                raise errors.InvalidAction(f"cannot dial while {self._snapshot.phase.value}")
            await self._start_as_caller(channel, peer_id, in_room=False)

    async def accept(self) -> None:
        """Answer the ringing call."""
        async with self._lock:
            call = self._call
            if call is None or self._snapshot.phase is not CallPhase.RINGING:
                raise errors.InvalidAction("no incoming call to accept")
            self._move(Trigger.ACCEPT)
            await self._answer(call, call.offer or "")

    async def decline(self) -> None:
        """Turn the ringing call down (the caller sees ``DECLINED``)."""
        async with self._lock:
            if self._call is None or self._snapshot.phase is not CallPhase.RINGING:
                raise errors.InvalidAction("no incoming call to decline")
            await self._end(EndReason.DECLINED, bye=True)

    async def hang_up(self) -> None:
        """End the call (declines a ringing one). In a room, also leaves it.

        Leaving matters: the room would otherwise stay complete, and neither
        side could be called again from it; whoever joins next starts a fresh
        call with the one who stayed.
        """
        async with self._lock:
            if self._call is not None:
                ringing = self._snapshot.phase is CallPhase.RINGING
                await self._end(EndReason.DECLINED if ringing else EndReason.HUNG_UP, bye=True)
            if self._snapshot.room is not None:
                await self._leave_room()

    async def set_video_enabled(self, enabled: bool) -> None:
        """Send video, or black frames while off (the peer still sees us alive)."""
        if self._call is not None and self._call.peer is not None:
            self._call.peer.tap.enabled = enabled
        self._update(video_enabled=enabled)

    async def set_muted(self, muted: bool) -> None:
        """Mute the microphone (the peer hears digital silence) or unmute it."""
        if self._call is not None and self._call.peer is not None:
            tap = self._call.peer.audio_tap
            if tap is not None:
                tap.muted = muted
        self._update(muted=muted)

    async def set_volume(self, volume: float) -> None:
        """Speaker volume for the peer's audio, 0 (silent) to 2; kept for later calls."""
        if not 0.0 <= volume <= 2.0:
            raise errors.InvalidAction(f"volume must be between 0 and 2, not {volume}")
        self._volume = volume
        if self._call is not None and self._call.peer is not None:
            playback = self._call.peer.playback
            if playback is not None:
                playback.volume = volume

    async def stats(self) -> CallStats | None:
        """The call's numbers now, rates since the previous call; None outside a call."""
        call = self._call
        if call is None or call.peer is None:
            return None
        peer = call.peer
        if call.meter is None:
            call.meter = StatsMeter(self._snapshot.connected_at or time.monotonic())
        report = await peer.get_stats()
        return call.meter.sample(report, peer.counters(), peer.codec())

    async def close(self) -> None:
        """Hang up, leave, disconnect and release the video source. Idempotent."""
        if self._closing:
            return
        self._closing = True
        async with self._lock:
            if self._call is not None:
                await self._end(EndReason.CLOSED, bye=True)
            channel, self._channel = self._channel, None
            if channel is not None:
                with contextlib.suppress(Exception):
                    await channel.close()
            if self._events is not None:
                self._events.cancel()
                with contextlib.suppress(BaseException):
                    await self._events
            for task in list(self._tasks):
                task.cancel()
            self._sync_preview()
            if self._source is not None:
                self._source.stop()
                self._source = None
            if self._audio_source is not None:
                self._audio_source.stop()
                self._audio_source = None
            self._move(Trigger.CLOSE)

    # -- calls: starting ---------------------------------------------------------

    def _open_source(self) -> MediaStreamTrack:
        """The session's one video source, opened on first use (test pattern if it cannot be)."""
        if self._source is None:
            self._source = self._open_or_fall_back(
                "video",
                sources.open_source,
                dataclasses.replace(self._config, video="test"),
                "Sending a test pattern",
            )
        return self._source

    def _open_audio_source(self) -> MediaStreamTrack:
        """The session's one audio source, opened on first use (silence if it cannot be).

        A microphone opens its device on the first frame a call asks for, so
        it is on only during calls.
        """
        if self._audio_source is None:
            self._audio_source = self._open_or_fall_back(
                "microphone",
                sources.open_audio,
                dataclasses.replace(self._config, audio="none"),
                "Sending silence",
            )
        return self._audio_source

    def _open_or_fall_back(
        self,
        key: str,
        opener: Callable[[CallConfig, Callable[[str | None], None]], MediaStreamTrack],
        fallback: CallConfig,
        instead: str,
    ) -> MediaStreamTrack:
        """Open a source with ``opener``; if it cannot be (a missing file, say),
        open ``fallback``'s and say why under ``key``: a bad source must not
        stop calls."""

        def say(notice: str | None) -> None:
            self._set_notice(key, notice)

        try:
            return opener(self._config, say)
        except errors.MediaError as exc:
            track = opener(fallback, say)
            say(f"{exc}. {instead} instead.")
            return track

    def _sync_preview(self) -> None:
        """Run the self-view pump exactly when no call is pulling the source.

        Outside calls nothing reads the source, so the local callback would see
        nothing; this task reads it instead. A Peer takes over during calls.
        """
        source = self._source
        wanted = (
            self._local_callback is not None
            and (self._call is None or self._call.peer is None)
            and not self._closing
        )
        if wanted and source is not None and self._preview is None:
            self._preview = asyncio.ensure_future(self._pump_preview(source))
        elif (not wanted or source is None) and self._preview is not None:
            self._preview.cancel()
            self._preview = None

    async def _pump_preview(self, source: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await source.recv()
                callback = self._local_callback
                if callback is not None and isinstance(frame, av.VideoFrame):
                    if not self._snapshot.video_enabled:
                        frame = black_like(frame)
                    callback(frame)
        except MediaStreamError:
            return
        except Exception:
            logger.exception("self-view stopped")

    def _new_peer(self, call: _Call) -> Peer:
        if self._preview is not None:
            self._preview.cancel()
            self._preview = None
        source = self._open_source()
        channel = self._channel
        servers = ice.ice_servers(
            channel.ice_servers if channel is not None else (), self._config.ice_servers
        )
        peer = Peer(
            self._config,
            servers,
            source,
            video_enabled=self._snapshot.video_enabled,
            audio_source=self._open_audio_source(),
            muted=self._snapshot.muted,
            volume=self._volume,
            local_callback=lambda: self._local_callback,
            remote_callback=lambda: self._remote_callback,
            remote_audio_callback=lambda: self._remote_audio_callback,
            on_speaker_status=lambda status: self._set_notice(
                "speaker", sources.audio_notice(status)
            ),
            on_connection_state=lambda state: self._spawn(self._peer_state(call, state)),
        )
        call.peer = peer
        return peer

    def _set_notice(self, key: str, notice: str | None) -> None:
        """Set (or clear, with None) what ``key`` wants said; publish them all."""
        if notice is None:
            self._notices.pop(key, None)
        else:
            self._notices[key] = notice
        self._update(notice="\n".join(self._notices.values()) or None)

    async def _start_as_caller(
        self, channel: SignalingChannel, peer_id: str, in_room: bool
    ) -> None:
        call = _Call(peer_id=peer_id, role=Role.CALLER, in_room=in_room)
        self._call = call
        self._move(Trigger.DIAL, peer_id=peer_id, role=Role.CALLER, end_reason=None)
        peer = self._new_peer(call)
        self._arm(call, self._config.ring_timeout, EndReason.NO_ANSWER)
        try:
            sdp = await peer.make_offer()
            with wrap_errors():
                await channel.send(wire.encode(wire.Sdp("offer", sdp)), to=peer_id)
        except Exception:
            if self._call is call:
                await self._end(EndReason.FAILED)
            raise

    async def _answer(self, call: _Call, offer: str) -> None:
        """Answer ``offer`` on ``call`` (creating its Peer if needed) and send it."""
        peer = call.peer or self._new_peer(call)
        for early in call.candidates:
            await peer.add_candidate(early)
        call.candidates.clear()
        self._arm(call, self._config.connect_timeout, EndReason.FAILED)
        try:
            answer = await peer.take_offer(offer)
            if self._channel is None or self._call is not call:
                return
            with wrap_errors():
                await self._channel.send(wire.encode(wire.Sdp("answer", answer)), to=call.peer_id)
        except Exception:
            logger.exception("could not answer the offer from %s", call.peer_id)
            if self._call is call:
                await self._end(EndReason.FAILED)

    # -- calls: ending -----------------------------------------------------------

    def _arm(self, call: _Call, delay: float, reason: EndReason) -> None:
        """(Re)start the call's one timer: end it with ``reason`` unless connected."""
        if call.timer is not None:
            call.timer.cancel()
        loop = asyncio.get_running_loop()
        call.timer = loop.call_later(
            delay, lambda: self._spawn(self._end_if(call, reason, bye=True, unless_connected=True))
        )

    async def _end_if(
        self, call: _Call, reason: EndReason, *, bye: bool = False, unless_connected: bool = False
    ) -> None:
        async with self._lock:
            if self._call is call and not (unless_connected and call.connected):
                await self._end(reason, bye=bye)

    async def _end(
        self, reason: EndReason, *, bye: bool = False, notice: str | None = None
    ) -> None:
        """End the current call (lock held) and go back to waiting."""
        call, self._call = self._call, None
        if call is None:
            return
        if call.timer is not None:
            call.timer.cancel()
        if call.watchdog is not None:
            call.watchdog.cancel()
        if bye and self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.send(wire.encode(wire.Bye()), to=call.peer_id)
        if call.peer is not None:
            try:
                await asyncio.wait_for(call.peer.close(), timeout=3.0)
            except Exception:
                logger.exception("closing the peer connection failed")
        self._early.pop(call.peer_id, None)
        self._sync_preview()
        changes: dict[str, Any] = {
            "peer_id": None,
            "role": None,
            "end_reason": reason,
            "connected_at": None,
        }
        if notice is not None:
            self._set_notice("call", notice)
        if can(self._snapshot.phase, Trigger.CALL_ENDED):
            self._move(Trigger.CALL_ENDED, **changes)
        else:
            self._update(**changes)

    # -- events from the peer connection -----------------------------------------

    async def _peer_state(self, call: _Call, state: str) -> None:
        async with self._lock:
            if self._call is not call:
                return
            if state == "connected" and not call.connected:
                call.connected = True
                if call.timer is not None:
                    call.timer.cancel()
                assert call.peer is not None
                call.watchdog = asyncio.ensure_future(
                    call.peer.watch(
                        self._config.silence_timeout,
                        lambda: self._spawn(self._end_if(call, EndReason.PEER_UNREACHABLE)),
                    )
                )
                self._move(Trigger.MEDIA_UP, connected_at=time.monotonic())
            elif state in ("failed", "closed"):
                # "closed" here means the peer closed DTLS on purpose (a crash
                # sends nothing): a hang-up whose BYE is still on its way
                # through the server.
                if not call.connected:
                    reason = EndReason.FAILED
                elif state == "closed":
                    reason = EndReason.PEER_HUNG_UP
                else:
                    reason = EndReason.PEER_UNREACHABLE
                await self._end(reason)

    # -- events from signaling ---------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("session task failed", exc_info=task.exception())

    async def _pump_events(self, channel: SignalingChannel) -> None:
        async for event in channel.events():
            try:
                async with self._lock:
                    await self._handle(event)
            except Exception:
                logger.exception("failed to handle %r", event)
            if isinstance(lifecycle(event), ChannelClosed):
                return

    async def _handle(self, event: object) -> None:
        if self._closing:
            return
        me = self._snapshot.connection_id
        match lifecycle(event) or event:
            case messages.Relayed(sender=sender, data=data):
                message = wire.parse(data)
                if message is not None and sender != me:
                    await self._on_call_message(sender, message)
            case messages.Ready(peers=peers):
                await self._on_ready(list(peers))
            case messages.PeerJoined(connection_id=cid):
                if cid not in self._room_peers:
                    self._room_peers.append(cid)
            case messages.PeerLeft(connection_id=cid):
                if cid in self._room_peers:
                    self._room_peers.remove(cid)
                self._early.pop(cid, None)
                if self._call is not None and self._call.peer_id == cid:
                    await self._end(EndReason.PEER_LEFT)
            case messages.Error(code=code, message=text):
                await self._on_error(code, text)
            case ChannelLost():
                if self._call is not None and not self._call.connected:
                    await self._end(EndReason.SERVER_LOST)
                if can(self._snapshot.phase, Trigger.SIGNALING_LOST):
                    self._move(Trigger.SIGNALING_LOST)
            case ChannelRestored(connection_id=cid, rejoined=rejoined):
                # Our id changed: the peer has seen us leave and cannot reach
                # us any more; a rejoined room makes a fresh call on `ready`.
                if self._call is not None:
                    await self._end(EndReason.SERVER_LOST)
                self._room_peers = [cid] if rejoined else []
                changes: dict[str, Any] = {"connection_id": cid}
                if not rejoined:
                    changes["room"] = None
                if can(self._snapshot.phase, Trigger.SIGNALING_BACK):
                    self._move(Trigger.SIGNALING_BACK, **changes)
                else:
                    self._update(**changes)
            case ChannelClosed():
                if self._call is not None:
                    await self._end(EndReason.SERVER_LOST)
                if can(self._snapshot.phase, Trigger.SIGNALING_GONE):
                    self._move(
                        Trigger.SIGNALING_GONE,
                        connection_id=None,
                        room=None,
                        end_reason=EndReason.SERVER_LOST,
                    )
            case _:
                pass

    async def _on_ready(self, peers: list[str]) -> None:
        me = self._snapshot.connection_id
        self._room_peers = list(peers)
        if me not in peers or len(peers) < 2 or self._call is not None:
            return
        if self._snapshot.phase is not CallPhase.WAITING or self._channel is None:
            return
        if peers[0] == me:
            # With more than two members (group rooms), call the newest.
            await self._start_as_caller(self._channel, peers[-1], in_room=True)
        else:
            call = _Call(peer_id=peers[0], role=Role.CALLEE, in_room=True)
            self._call = call
            self._move(Trigger.EXPECT_OFFER, peer_id=peers[0], role=Role.CALLEE, end_reason=None)
            self._new_peer(call).pregather()
            self._arm(call, self._config.connect_timeout, EndReason.FAILED)

    async def _on_error(self, code: messages.ErrorCode | str, text: str) -> None:
        call = self._call
        if (
            code is messages.ErrorCode.UNKNOWN_PEER
            and call is not None
            and call.role is Role.CALLER
            and not call.answered
        ):
            await self._end(EndReason.FAILED, notice=f"Nobody with id {call.peer_id} is connected.")
        else:
            logger.info("signaling error %s: %s", code, text)

    async def _on_call_message(self, sender: str, message: wire.CallMessage) -> None:
        call = self._call
        ours = call is not None and call.peer_id == sender
        match message:
            case wire.Sdp(type="offer", sdp=sdp):
                await self._on_offer(sender, sdp)
            case wire.Sdp(type="answer", sdp=sdp):
                if call is None or not ours or call.role is not Role.CALLER or call.peer is None:
                    return
                if call.peer.signaling_state != "have-local-offer":
                    return
                call.answered = True
                self._arm(call, self._config.connect_timeout, EndReason.FAILED)
                try:
                    await call.peer.take_answer(sdp)
                except Exception:
                    logger.exception("bad answer from %s", sender)
                    await self._end(EndReason.FAILED, bye=True)
            case wire.Ice():
                if call is not None and ours:
                    if call.peer is not None:
                        await call.peer.add_candidate(message)
                    else:
                        call.candidates.append(message)
                else:
                    self._remember_early(sender, message)
            case wire.Bye():
                if call is None or not ours:
                    return
                declined = call.role is Role.CALLER and not call.answered and not call.connected
                await self._end(EndReason.DECLINED if declined else EndReason.PEER_HUNG_UP)

    def _remember_early(self, sender: str, message: wire.Ice) -> None:
        if sender not in self._early and len(self._early) >= _EARLY_SENDERS:
            self._early.pop(next(iter(self._early)))
        queue = self._early.setdefault(sender, [])
        if len(queue) < _EARLY_CANDIDATES:
            queue.append(message)

    async def _on_offer(self, sender: str, sdp: str) -> None:
        call = self._call
        me = self._snapshot.connection_id or ""
        if call is not None and call.peer_id != sender:
            # Busy with someone else: turn the newcomer away.
            if self._channel is not None:
                with contextlib.suppress(Exception):
                    await self._channel.send(wire.encode(wire.Bye()), to=sender)
            return
        if call is None:
            if self._snapshot.phase is not CallPhase.WAITING:
                return
            call = _Call(
                peer_id=sender,
                role=Role.CALLEE,
                in_room=sender in self._room_peers,
                offer=sdp,
                candidates=self._early.pop(sender, []),
            )
            self._call = call
            if call.in_room or self._config.auto_answer:
                self._move(
                    Trigger.OFFER_ANSWERED, peer_id=sender, role=Role.CALLEE, end_reason=None
                )
                await self._answer(call, sdp)
            else:
                self._move(Trigger.OFFER_RINGS, peer_id=sender, role=Role.CALLEE, end_reason=None)
                self._arm(call, self._config.ring_timeout, EndReason.NO_ANSWER)
            return
        # An offer from the peer we are already dealing with.
        if self._snapshot.phase is CallPhase.RINGING:
            call.offer = sdp  # the caller started over; answer the newest
            return
        peer = call.peer
        if call.role is Role.CALLEE and (peer is None or not peer.has_remote_description):
            await self._answer(call, sdp)  # room callee: the offer we expected
            return
        if call.role is Role.CALLER and not call.answered:
            # Glare: both dialled. The lower id stays caller; the other answers.
            if me < sender:
                return
            if peer is not None:
                await peer.close()
            fresh = _Call(peer_id=sender, role=Role.CALLEE, in_room=call.in_room)
            if call.timer is not None:
                call.timer.cancel()
            self._call = fresh
            self._move(Trigger.OFFER_ANSWERED, role=Role.CALLEE)
            await self._answer(fresh, sdp)
            return
        if peer is not None and peer.signaling_state == "stable":
            # Renegotiation within a live call.
            try:
                answer = await peer.take_offer(sdp)
                if self._channel is not None:
                    await self._channel.send(wire.encode(wire.Sdp("answer", answer)), to=sender)
            except Exception:
                logger.exception("renegotiation with %s failed", sender)


def _client_for(url: str, tls_pin: str | None = None) -> SignalingChannel:
    """The real websockets client for ``url`` (trusting only ``tls_pin`` when given)."""
    context = None
    if tls_pin is not None:
        try:
            context = pinned_client_context(tls_pin)
        except TlsError as exc:
            raise errors.ServerUnavailable(str(exc)) from exc
    with wrap_errors():
        return SignalingClient(url, ssl_context=context)


__all__ = ["CallSession", "Listener"]
