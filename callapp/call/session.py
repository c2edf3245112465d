"""A call session: one signaling link, the local media, and one leg per remote peer.

:class:`CallSession` is what the Qt view-model and the headless CLI drive. It
owns the :class:`~callapp.call.channel.SignalingChannel`, the capture (one
video source and one audio source, each read once and fanned out to every
leg), the speaker (one playback mixing every leg's audio) and a
:class:`~callapp.call.leg.CallLeg` per remote peer. Everything a view may
show is published as an immutable :class:`~callapp.call.state.SessionSnapshot`.

The link and the legs are separate: the link moves through
:mod:`callapp.call.link`'s table, each leg through
:mod:`callapp.call.transitions`'s. A lost link ends only legs whose media has
not started; media already flowing goes on peer to peer.

Calls always end, and say how:

* **Bounded reconnection.** While the link is lost the channel retries; once
  no media flows with anyone, the session gives it ``reconnect_for`` more
  seconds (the snapshot's ``reconnect_deadline``), then stops: the link is
  GONE with ``LinkEnd.GAVE_UP`` and what was live ends ``SERVER_LOST``.
  :meth:`CallSession.close` stops retrying at once, in any state.
* **The host going away.** A session that hosts its signaling server
  (``CallConfig.hosting``, :meth:`CallSession.set_hosting`) says so when it
  closes: its BYEs carry ``host-ended``, to every leg and room member, before
  the server stops. The others end ``HOST_LEFT`` and, when the link then
  drops, do not retry that server (``LinkEnd.HOST_LEFT``). A host that
  vanishes without a word (killed, crashed) is recognised too: a peer whose
  media stops while the link to the server has just dropped and is still
  down went away with its server.
* **Signaling outages.** Media already flowing goes on while the server is
  away, and goes on untouched when the link comes back: the channel rejoins
  with a new connection id, and each connected leg tells its peer that id
  over the leg's own data channel (``RELINK``: the peer's DTLS session, so
  nobody on the server can claim to be it). The peer re-keys its leg; room
  members hold back a new call to an id they do not know while a leg of
  theirs waits for its peer's new id (``_RELINK_WAIT``).
* **Dead media paths.** A connected leg whose media stops while signaling
  works renegotiates a fresh ICE session (``LegState.RECONNECTING``, see
  :mod:`callapp.call.leg`) instead of ending, for ``restart_for`` seconds.
* **Busy.** A dialled offer reaching a session already in a call is turned
  away with a BYE saying ``busy`` (the caller ends ``BUSY``). Room members
  are never turned away: a member who is in a dialled call still connects
  to whoever joins its room (the mesh), so nobody waits in a room for a call
  that never comes.

Ways into a call:

* **Room** (:meth:`CallSession.join_room`, optionally creating a group room
  of up to ``capacity`` people): every member connects to every other, and
  the earlier member (in join order) always offers to the later one, so there
  is never glare. In a room of 2 the cue is ``ready`` (protocol v1); in a
  bigger room each member offers to a newcomer on ``peer-joined``. A
  newcomer expects one offer from each member already there and starts
  gathering for it at once.
* **Dial** (:meth:`CallSession.dial`) a connection id. An offer from someone
  we are not calling rings until :meth:`accept` or :meth:`decline`, unless
  ``auto_answer`` is set. When both dial each other at once (glare) the lower
  connection id stays the caller.

All actions and all incoming events are serialized by one lock, so handlers
never see a half-changed session.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

import av
from aiortc import MediaStreamTrack

from callapp.call import errors, ice, security, sources, wire
from callapp.call.channel import (
    ChannelClosed,
    ChannelLost,
    ChannelRestored,
    SignalingChannel,
    lifecycle,
    wrap_errors,
)
from callapp.call.config import CallConfig
from callapp.call.leg import CallLeg
from callapp.call.link import LinkEvent, next_link_state
from callapp.call.peer import AudioCallback, FrameCallback, Peer
from callapp.call.report import LegRecord
from callapp.call.state import (
    ChatMessage,
    EndReason,
    LegState,
    LinkEnd,
    LinkState,
    Presence,
    SessionSnapshot,
    focus_leg,
    summary_phase,
)
from callapp.call.stats import CallStats
from callapp.call.transitions import LegEvent, LegProtocolError, LocalProtocolError
from callapp.media import memory
from callapp.media.audio_sources import MutableAudioTrack
from callapp.media.fanout import TrackFanout
from callapp.media.pcm import Pcm
from callapp.media.playback import AudioPlayback
from callapp.media.switcher import SwitchableVideoTrack
from callapp.signaling import messages
from callapp.signaling.client import SignalingClient
from callapp.signaling.tls import TlsError, pinned_client_context

logger = logging.getLogger(__name__)

Listener = Callable[[SessionSnapshot], None]
PeerFrameCallback = Callable[[str, av.VideoFrame], None]

#: Senders with no leg yet whose early candidates/presence are remembered, and how many each.
_EARLY_SENDERS = 8
_EARLY_CANDIDATES = 64
#: How long after we left a room an offer from one of its members is taken as stale.
_STALE_OFFER_S = 5.0
#: Chat lines kept in snapshots.
_CHAT_TAIL = 200
#: Audio frames (20 ms) a leg's consumer of the microphone may fall behind.
_AUDIO_QUEUE = 5
#: Largest group room the engine itself will create (the server may allow fewer).
MAX_CAPACITY = 8
#: After a peer said its server goes away with it (BYE ``host-ended``), a link
#: loss within this long is that server going: it is not retried.
_HOST_ENDED_S = 10.0
#: A peer whose media stops within the silence timeout plus this long after
#: the link dropped (still down) went away together with the server.
_GONE_TOGETHER_S = 1.5
#: Legs that end for these reasons are reported even if media never started.
_REPORTED_WITHOUT_MEDIA = frozenset(
    {EndReason.INSECURE, EndReason.BUSY, EndReason.HOST_LEFT, EndReason.RELAY_FAILED}
)
#: Longest wait between two reconnection attempts to the signaling server.
_BACKOFF_MAX_S = 1.0
#: After our link came back, how long a room member we do not know is taken
#: to be (maybe) a peer of ours that will say its new id, before we call it.
_RELINK_WAIT = 5.0


class CallSession:
    """One user's calls through one signaling server; see the module docstring."""

    def __init__(self, config: CallConfig, *, channel: SignalingChannel | None = None) -> None:
        self._config = config
        self._channel = channel
        #: The session made its channel (and may make another after the link is GONE).
        self._owns_channel = channel is None
        self._name = wire.clean_name(config.name)
        self._snapshot = SessionSnapshot(server_url=config.server_url, name=self._name)
        self._listeners: list[Listener] = []
        self._remote_callback: FrameCallback | None = None
        self._remote_by_peer: PeerFrameCallback | None = None
        self._local_callback: FrameCallback | None = None
        self._remote_audio_callback: AudioCallback | None = None
        self._mixed_audio: Callable[[Pcm], None] | None = None
        self._link = LinkState.OFFLINE
        self._legs: dict[str, CallLeg] = {}
        self._records: list[LegRecord] = []
        self._last_end: EndReason | None = None
        self._room: str | None = None
        self._capacity: int | None = None
        #: The room secret's fingerprint-auth key while in a room with a secret.
        self._auth_key: bytes | None = None
        self._room_peers: list[str] = []
        #: Members of the room we last left, and when: their late room offers are not calls.
        self._former_peers: set[str] = set()
        self._left_at = 0.0
        self._early: OrderedDict[str, list[wire.Ice]] = OrderedDict()
        self._early_presence: OrderedDict[str, Presence] = OrderedDict()
        self._chat: list[ChatMessage] = []
        self._video_enabled = True
        self._muted = False
        self._recording = False
        self._volume = config.volume
        # What each device (and the last failed call) wants the user to know;
        # the snapshot's notice is all of them, in this order.
        self._notices: dict[str, str] = {}
        # The capture: one source each, read once, fanned out to every leg.
        self._camera: MediaStreamTrack | None = None
        self._screen: MediaStreamTrack | None = None
        self._video: SwitchableVideoTrack | None = None
        self._video_fanout: TrackFanout | None = None
        self._audio_source: MediaStreamTrack | None = None
        self._audio: MutableAudioTrack | None = None
        self._audio_fanout: TrackFanout | None = None
        self._speaker: AudioPlayback | None = None
        self._lock = asyncio.Lock()
        self._events: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._closed = False
        #: We run the signaling server we use (see CallConfig.hosting).
        self._hosting = config.hosting
        #: Why the link is GONE, once it is.
        self._link_end: LinkEnd | None = None
        #: When the link was lost (None unless RECONNECTING).
        self._lost_at: float | None = None
        #: When retries stop (None: not counting down) and the timer that stops them.
        self._reconnect_deadline: float | None = None
        self._reconnect_timer: asyncio.TimerHandle | None = None
        #: When a peer last told us its server goes away with it.
        self._host_ended_at: float | None = None
        #: Times the signaling link came back after a loss (``--stats-json``).
        self.signaling_reconnects = 0
        #: Until when unknown room members wait for a RELINK (see _reconcile).
        self._relink_until = 0.0
        self._relink_timer: asyncio.TimerHandle | None = None

    # -- observing ---------------------------------------------------------------

    @property
    def snapshot(self) -> SessionSnapshot:
        """The current state; a new object after every visible change."""
        return self._snapshot

    @property
    def config(self) -> CallConfig:
        return self._config

    @property
    def my_id(self) -> str:
        return self._snapshot.connection_id or ""

    @property
    def hosting(self) -> bool:
        """Whether this session runs (hosts) the signaling server it uses."""
        return self._hosting

    def set_hosting(self, hosting: bool) -> None:
        """Say whether this app runs the signaling server this session uses.

        A hosting session's closing takes the server away: :meth:`close` then
        tells every peer (BYE ``host-ended``) before the server stops, and
        their calls end ``HOST_LEFT`` instead of reconnecting. Same as
        ``CallConfig.hosting``; may change at any time.
        """
        self._hosting = hosting

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
        remote_by_peer: PeerFrameCallback | None = None,
        mixed_audio: Callable[[Pcm], None] | None = None,
    ) -> None:
        """Receive decoded frames on the loop thread, as they come (never queued).

        ``remote`` gets the focus leg's video (the one a one-call view shows),
        ``remote_by_peer(peer_id, frame)`` every leg's, ``local`` each frame
        of the self-view (in and out of calls), ``remote_audio`` each 20 ms of
        the focus leg's audio (it is played regardless). Keep callbacks short:
        store the latest frame and return.

        ``mixed_audio`` is the exception to the loop thread: it gets every
        block of the speaker's mix (every leg, at the speaker's volume: what
        the person hears; int16, 48 kHz stereo, 10 ms) on PortAudio's thread,
        or the loop's when there is no speaker. Hand the block on with
        ``loop.call_soon_threadsafe``.
        """
        self._remote_callback = remote
        self._local_callback = local
        self._remote_audio_callback = remote_audio
        self._remote_by_peer = remote_by_peer
        self._mixed_audio = mixed_audio
        if self._speaker is not None:
            self._speaker.capture = mixed_audio

    def records(self) -> list[LegRecord]:
        """Every leg that ever reached media, oldest first, then the live ones that did not."""
        return [dataclasses.replace(r) for r in self._records]

    def _publish(self) -> None:
        for leg in self._legs.values():
            if not leg.live:  # ended, still closing its Peer: its reason is the news
                self._last_end = leg.end_reason
        legs = tuple(leg.snapshot() for leg in self._legs.values() if leg.live)
        focus = focus_leg(legs)
        connected = [leg.connected_at for leg in legs if leg.connected_at is not None]
        snapshot = self._snapshot.evolve(
            phase=summary_phase(self._link, legs, closed=self._closed),
            link=self._link,
            room=self._room,
            room_capacity=self._capacity if self._room is not None else None,
            name=self._name,
            legs=legs,
            peer_id=focus.peer_id if focus is not None else None,
            role=focus.role if focus is not None else None,
            end_reason=self._last_end,
            connected_at=min(connected) if connected else None,
            video_enabled=self._video_enabled,
            muted=self._muted,
            screen_sharing=self._screen is not None,
            recording=self._recording,
            notice="\n".join(self._notices.values()) or None,
            chat=tuple(self._chat[-_CHAT_TAIL:]),
            reconnect_deadline=(
                self._reconnect_deadline if self._link is LinkState.RECONNECTING else None
            ),
            link_end=self._link_end if self._link is LinkState.GONE else None,
        )
        if snapshot == self._snapshot:
            return
        self._snapshot = snapshot
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:
                logger.exception("snapshot listener failed")

    def _move_link(self, event: LinkEvent, **changes: Any) -> None:
        self._link = next_link_state(self._link, event)
        if changes:
            self._snapshot = self._snapshot.evolve(**changes)
        self._publish()

    # -- connection --------------------------------------------------------------

    def _require_channel(self) -> SignalingChannel:
        if self._channel is None or self._link is not LinkState.CONNECTED:
            raise errors.NotConnected("not connected to a signaling server")
        return self._channel

    async def connect(self) -> str:
        """Connect to the signaling server; returns our connection id.

        Raises :exc:`~callapp.call.errors.ServerUnavailable` (and the link
        goes back to offline) if the server cannot be reached.
        """
        if self._closed or self._link not in (LinkState.OFFLINE, LinkState.GONE):
            raise errors.InvalidAction(f"cannot connect while {self._snapshot.phase.value}")
        self._last_end = None
        self._link_end = None
        self._lost_at = None
        self._host_ended_at = None
        self._move_link(LinkEvent.CONNECT)
        try:
            with wrap_errors():
                if self._channel is None:
                    self._channel = _client_for(
                        self._config.server_url, self._config.tls_pin, self._config.server_pin
                    )
                await self._channel.connect()
        except BaseException:
            self._move_link(LinkEvent.CONNECT_FAILED)
            raise
        connection_id = self._channel.connection_id
        assert connection_id is not None, "a connected channel has an id"
        # Open the capture now rather than on the first call: opening a camera
        # (or importing what draws the test pattern) takes long enough to
        # delay the first frame noticeably, and the self-view wants it anyway.
        self._open_capture()
        self._move_link(LinkEvent.WELCOMED, connection_id=connection_id)
        self._events = asyncio.ensure_future(self._pump_events(self._channel))
        return connection_id

    async def join_room(
        self, room: str, capacity: int | None = None, *, secret: str | None = None
    ) -> None:
        """Join ``room``; calls start with whoever is (or gets) there.

        ``capacity`` (2-8) makes a group room if this join creates it; the
        server ignores it otherwise and may allow less. With ``secret`` (the
        invite's, see :mod:`callapp.call.security`) the server sees only a key
        derived from it, and every leg must prove its DTLS fingerprint with
        it before its media is shown. Raises
        :exc:`~callapp.call.errors.RoomFullError`,
        :exc:`~callapp.call.errors.BadRoomError` or ``Unauthorized``; the
        session stays usable.
        """
        if capacity is not None and not 2 <= capacity <= MAX_CAPACITY:
            raise errors.InvalidAction(f"a room holds 2 to {MAX_CAPACITY} people, not {capacity}")
        key_args: dict[str, str] = {}
        auth_key = None
        if secret is not None:
            try:
                key_args["key"] = security.room_key(secret, room)
                auth_key = security.fingerprint_auth_key(secret, room)
            except security.SecurityError as exc:
                raise errors.InvalidAction(str(exc)) from exc
        async with self._lock:
            channel = self._require_channel()
            if any(not leg.in_room for leg in self._live_legs()):
                raise errors.InvalidAction("hang up before joining a room")
            with wrap_errors():
                reply = await channel.join(room, capacity=capacity, **key_args)
            self._auth_key = auth_key
            peers = list(getattr(reply, "peers", None) or [self.my_id])
            self._room = room
            self._capacity = int(getattr(reply, "capacity", None) or 2)
            self._room_peers = peers
            self._former_peers -= set(peers)
            self._last_end = None
            self._publish()
            # A newcomer expects an offer from everyone already here.
            await self._reconcile(peers)

    async def leave_room(self) -> None:
        """Leave the room (hanging up every leg in it)."""
        async with self._lock:
            await self._leave_room()

    async def _leave_room(self) -> None:
        for leg in [leg for leg in self._live_legs() if leg.in_room]:
            await leg.hang_up()
        if self._room is not None and self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.leave()
        # An offer they sent before they heard we left is still on its way:
        # it is the old room's, not a call to ring.
        self._former_peers = set(self._room_peers[-_EARLY_SENDERS:]) - {self.my_id}
        self._left_at = time.monotonic()
        self._room = None
        self._room_peers = []
        self._auth_key = None
        self._publish()

    # -- actions -----------------------------------------------------------------

    async def dial(self, peer_id: str) -> None:
        """Call connection ``peer_id``; returns once the offer is on its way.

        The outcome shows in snapshots: a connected leg, or the leg gone with
        ``DECLINED`` / ``NO_ANSWER`` / ``FAILED`` as the end reason.
        """
        async with self._lock:
            self._require_channel()
            if not peer_id:
                raise errors.InvalidAction("no connection id to call")
            if peer_id == self.my_id:
                raise errors.InvalidAction("you cannot call yourself")
            if self._live_legs():
                raise errors.InvalidAction("hang up before calling someone else")
            self._last_end = None
            await self._start_leg(peer_id, LegEvent.CALL, in_room=False)

    def _ringing(self) -> CallLeg | None:
        return next((leg for leg in self._live_legs() if leg.state is LegState.RINGING), None)

    async def accept(self) -> None:
        """Answer the ringing call."""
        async with self._lock:
            leg = self._ringing()
            if leg is None:
                raise errors.InvalidAction("no incoming call to accept")
            await self._local(leg.accept())

    async def decline(self) -> None:
        """Turn the ringing call down (the caller sees ``DECLINED``)."""
        async with self._lock:
            leg = self._ringing()
            if leg is None:
                raise errors.InvalidAction("no incoming call to decline")
            await self._local(leg.decline())

    async def hang_up(self) -> None:
        """End every leg (declining a ringing one) and leave the room.

        Leaving matters: the room would otherwise stay complete, and nobody
        could be called again from it; whoever joins next starts afresh with
        those who stayed.
        """
        async with self._lock:
            for leg in self._live_legs():
                event = LegEvent.DECLINE if leg.state is LegState.RINGING else LegEvent.HANG_UP
                await leg.hang_up(event)
            if self._room is not None:
                await self._leave_room()

    async def _local(self, action: Coroutine[Any, Any, None]) -> None:
        try:
            await action
        except LocalProtocolError as exc:
            raise errors.InvalidAction(str(exc)) from exc

    async def set_video_enabled(self, enabled: bool) -> None:
        """Send video, or black frames while off (the peers still see us alive)."""
        self._video_enabled = enabled
        if self._video is not None:
            self._video.enabled = enabled
        await self._presence_changed()

    async def set_muted(self, muted: bool) -> None:
        """Mute the microphone (the peers hear digital silence) or unmute it."""
        self._muted = muted
        if self._audio is not None:
            self._audio.muted = muted
        await self._presence_changed()

    async def set_recording(self, recording: bool) -> None:
        """Say whether we record what we receive (the peers are told)."""
        self._recording = recording
        await self._presence_changed()

    async def set_name(self, name: str) -> None:
        """Our display name from now on (cleaned as :func:`wire.clean_name` says)."""
        self._name = wire.clean_name(name)
        await self._presence_changed()

    async def share_screen(self, spec: str | None = "screen") -> None:
        """Send a screen (``screen`` or ``screen:N``) instead of the camera; ``None`` stops.

        Every leg switches at once without renegotiation: the legs' tracks
        read one switchable source. Raises :exc:`~callapp.call.errors.MediaError`
        in plain words if there is no screen to share.
        """
        video = self._video
        if video is None:
            raise errors.NotConnected("connect before sharing a screen")
        if spec is None:
            if self._screen is not None:
                self._screen = None
                video.set_source(self._camera_source(), stop_previous=True)
        else:
            screen = sources.open_source(dataclasses.replace(self._config, video=spec))
            previous = video.set_source(screen, stop_previous=False)
            if self._screen is not None and previous is self._screen:
                previous.stop()
            elif previous is not None:
                self._camera = previous
            self._screen = screen
        await self._presence_changed()

    def _camera_source(self) -> MediaStreamTrack:
        if self._camera is None or self._camera.readyState != "live":
            self._camera = self._open_camera()
        return self._camera

    async def send_chat(self, text: str) -> ChatMessage:
        """Send ``text`` to everyone in the call; returns the line as shown.

        Raises :exc:`~callapp.call.errors.InvalidAction` with a sentence for
        an empty or too long message, or when nobody is there to read it.
        """
        try:
            message = wire.Chat(wire.clean_chat_text(text))
        except ValueError as exc:
            raise errors.InvalidAction(str(exc)) from exc
        async with self._lock:
            legs = [leg for leg in self._live_legs() if leg.state is not LegState.RINGING]
            if not legs:
                raise errors.InvalidAction("Nobody is in the call to read your message.")
            for leg in legs:
                try:
                    await leg.send_chat(message)
                except errors.CallError:
                    logger.info("chat to %s could not be sent", leg.peer_id)
            line = ChatMessage(
                sender=self.my_id,
                sender_name=self._name,
                text=message.text,
                at=time.monotonic(),
                mine=True,
            )
            self._chat.append(line)
            self._publish()
            return line

    async def set_volume(self, volume: float) -> None:
        """Speaker volume for the peers' audio, 0 (silent) to 2; kept for later calls."""
        if not 0.0 <= volume <= 2.0:
            raise errors.InvalidAction(f"volume must be between 0 and 2, not {volume}")
        self._volume = volume
        if self._speaker is not None:
            self._speaker.volume = volume

    async def stats(self) -> CallStats | None:
        """The focus leg's numbers now, rates since the previous sample; None outside a call."""
        peer_id = self._snapshot.peer_id
        leg = self._legs.get(peer_id) if peer_id is not None else None
        return await leg.stats() if leg is not None else None

    async def all_stats(self) -> dict[str, CallStats]:
        """Every live leg's numbers now (kept in :meth:`records` too)."""
        result = {}
        for leg in self._live_legs():
            stats = await leg.stats()
            if stats is not None:
                result[leg.peer_id] = stats
        return result

    async def close(self) -> None:
        """Hang up, leave, disconnect and release the capture and speaker. Idempotent.

        Works in every state; while reconnecting it is how to stop retrying
        (the link is then GONE with ``LinkEnd.CLOSED``). A hosting session
        first tells every peer and room member that its server goes too
        (BYE ``host-ended``), so that they end ``HOST_LEFT`` at once.
        """
        if self._closing:
            return
        self._closing = True
        async with self._lock:
            self._cancel_reconnect_deadline()
            if self._relink_timer is not None:
                self._relink_timer.cancel()
            legs = self._live_legs()
            if self._hosting and self._link is LinkState.CONNECTED:
                # Everyone hears it before any Peer is closed (that takes a while each).
                targets = [leg.peer_id for leg in legs] + self._room_peers
                for peer_id in dict.fromkeys(targets):
                    if peer_id != self.my_id:
                        with contextlib.suppress(errors.CallError):
                            await self.send(wire.Bye(wire.HOST_ENDED), peer_id)
                for leg in legs:
                    with contextlib.suppress(LegProtocolError):
                        await leg.end(LegEvent.CLOSE)
            else:
                for leg in legs:
                    with contextlib.suppress(LegProtocolError):
                        await leg.hang_up(LegEvent.CLOSE)
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
            await self._close_media()
            if self._link in (LinkState.CONNECTED, LinkState.RECONNECTING):
                self._link_end = LinkEnd.CLOSED
                self._link = next_link_state(self._link, LinkEvent.GONE)
            self._closed = True
            self._publish()

    async def _close_media(self) -> None:
        if self._speaker is not None:
            await self._speaker.stop()
            self._speaker = None
        for fanout in (self._video_fanout, self._audio_fanout):
            if fanout is not None:
                fanout.stop()
        self._video_fanout = self._audio_fanout = None
        for track in (self._video, self._camera, self._screen, self._audio, self._audio_source):
            if track is not None:
                track.stop()
        self._video = self._camera = self._screen = None
        self._audio = self._audio_source = None

    # -- the capture ---------------------------------------------------------------

    def _open_capture(self) -> None:
        if self._video is None:
            memory.map_large_buffers()  # frames' memory goes back when they do
            self._camera = self._open_camera()
            self._video = SwitchableVideoTrack(
                self._camera,
                width=self._config.width,
                height=self._config.height,
                on_preview=self._preview_frame,
            )
            self._video.enabled = self._video_enabled
            self._video.start()
            self._video_fanout = TrackFanout(self._video, max_queue=1)
        if self._audio is None:
            self._audio_source = self._open_or_fall_back(
                "microphone",
                sources.open_audio,
                dataclasses.replace(self._config, audio="none"),
                "Sending silence",
            )
            self._audio = MutableAudioTrack(self._audio_source, muted=self._muted)
            self._audio_fanout = TrackFanout(self._audio, max_queue=_AUDIO_QUEUE)

    def _open_camera(self) -> MediaStreamTrack:
        """The camera (or file, or test pattern) the config names; a test pattern if it fails."""
        return self._open_or_fall_back(
            "video",
            sources.open_source,
            dataclasses.replace(self._config, video="test"),
            "Sending a test pattern",
        )

    def _preview_frame(self, frame: av.VideoFrame | None) -> None:
        # With video off the peers get black frames; the self-view gets none
        # (a view says "Camera off" rather than paint a black square).
        callback = self._local_callback
        if callback is not None and frame is not None and self._video_enabled:
            callback(frame)

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

    def _set_notice(self, key: str, notice: str | None) -> None:
        """Set (or clear, with None) what ``key`` wants said; publish them all."""
        if notice is None:
            self._notices.pop(key, None)
        else:
            self._notices[key] = notice
        self._publish()

    def _speaker_for_legs(self) -> AudioPlayback:
        if self._speaker is None:
            device: int | str | None = self._config.speaker
            if isinstance(device, str) and device.isdigit():
                device = int(device)
            self._speaker = AudioPlayback(
                None,
                device=device,
                volume=self._volume,
                on_status=lambda status: self._set_notice("speaker", sources.audio_notice(status)),
                capture=self._mixed_audio,
            )
            self._speaker.start()
        return self._speaker

    # -- LegHost: what legs ask of the session ---------------------------------------

    def new_peer(self, leg: CallLeg) -> Peer:
        self._open_capture()
        assert self._video_fanout is not None
        assert self._audio_fanout is not None
        channel = self._channel
        servers = ice.ice_servers(
            channel.ice_servers if channel is not None else (), self._config.ice_servers
        )
        # The peer's id can change under a live call (RELINK): callbacks read
        # it when they run; the speaker's input has the leg's fixed key.
        key = leg.media_key
        speaker = self._speaker_for_legs()
        speaker.remove_input(key)  # a leg that lost glare, or restarted, replaces its Peer
        play = speaker.add_feed(key)  # on_audio hands it each frame: no task, no queue

        def on_video(frame: av.VideoFrame) -> None:
            if not leg.media_allowed:
                return
            by_peer = self._remote_by_peer
            if by_peer is not None:
                by_peer(leg.peer_id, frame)
            remote = self._remote_callback
            if remote is not None and self._snapshot.peer_id == leg.peer_id:
                remote(frame)

        def on_audio(frame: av.AudioFrame) -> None:
            if not leg.media_allowed:
                return
            play(frame)
            callback = self._remote_audio_callback
            if callback is not None and self._snapshot.peer_id == leg.peer_id:
                callback(frame)

        peer_holder: list[Peer] = []

        def on_state(state: str) -> None:
            self.spawn(self.locked(lambda: leg.on_connection_state(peer_holder[0], state)))

        def on_chat(text: str) -> None:
            message = wire.parse_json(text)
            if message is not None and leg.live:
                self.spawn(self.locked(lambda: self._on_leg_message(leg, message)))

        peer = Peer(
            self._config,
            servers,
            self._video_fanout.subscribe(),
            audio=self._audio_fanout.subscribe(),
            on_video=on_video,
            on_audio=on_audio,
            on_connection_state=on_state,
            on_chat=on_chat,
            on_chat_open=lambda _open: leg.chat_state_changed(),
        )
        peer_holder.append(peer)
        return peer

    async def send(self, message: wire.CallMessage, to: str) -> None:
        channel = self._channel
        if channel is None:
            raise errors.NotConnected("not connected to a signaling server")
        with wrap_errors():
            await channel.send(wire.encode(message), to=to)

    @property
    def auth_key(self) -> bytes | None:
        return self._auth_key

    def presence_message(self) -> wire.PresenceUpdate:
        return wire.PresenceUpdate(
            Presence(
                name=self._name,
                muted=self._muted,
                camera_off=not self._video_enabled,
                screen=self._screen is not None,
                recording=self._recording,
            )
        )

    async def _presence_changed(self) -> None:
        async with self._lock:
            self._publish()
            if self._link is not LinkState.CONNECTED:
                return
            message = self.presence_message()
            for leg in self._live_legs():
                if leg.state is not LegState.RINGING:
                    with contextlib.suppress(errors.CallError):
                        await self.send(message, leg.peer_id)

    async def _on_leg_message(self, leg: CallLeg, message: wire.CallMessage) -> None:
        """A message on ``leg``'s data channel: from its peer, whatever its id now."""
        if leg.live and self._legs.get(leg.peer_id) is leg:
            await self._on_call_message(leg.peer_id, message, "datachannel")

    def can_renegotiate(self) -> bool:
        return self._link is LinkState.CONNECTED and not self._closing

    def leg_changed(self, leg: CallLeg) -> None:
        if leg.state is LegState.CONNECTED and leg.record not in self._records:
            self._records.append(leg.record)
        self._publish()

    async def leg_ended(self, leg: CallLeg) -> None:
        if self._legs.get(leg.peer_id) is leg:
            del self._legs[leg.peer_id]
        if self._speaker is not None:
            self._speaker.remove_input(leg.media_key)
        self._early.pop(leg.peer_id, None)
        self._last_end = leg.end_reason
        if leg.end_reason is EndReason.RELAY_FAILED and leg.record.relay_problem:
            self._set_notice("call", f"No call through the TURN relay: {leg.record.relay_problem}.")
        if leg.end_reason in _REPORTED_WITHOUT_MEDIA and leg.record not in self._records:
            # It never reached media, but how it ended is the news (--stats-json).
            self._records.append(leg.record)
        if leg.end_reason is EndReason.HOST_LEFT and not self._hosting:
            self._host_ended_at = time.monotonic()
            if self._link is LinkState.RECONNECTING:
                # The server went with the host: stop retrying it (not from
                # inside this leg's ending; the lock is held).
                self.spawn(self.locked(self._host_left))
        elif self._link is LinkState.RECONNECTING:
            self._arm_reconnect_deadline()
        self._publish()

    def lost_with_server(self, leg: CallLeg) -> bool:
        lost_at = self._lost_at
        if self._hosting or self._link is not LinkState.RECONNECTING or lost_at is None:
            return False
        # How long the leg took to call its peer silent (see Peer.watch).
        peer = leg.peer
        heard = peer is not None and (peer.frames_received or peer.audio_frames_received)
        quiet = self._config.silence_timeout if heard else max(self._config.silence_timeout, 5.0)
        return time.monotonic() - lost_at <= quiet + _GONE_TOGETHER_S

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def locked(self, action: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        async with self._lock:
            if self._closed:
                return None
            try:
                return await action()
            except LegProtocolError as exc:
                logger.warning("leg event refused: %s", exc)
                return None

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("session task failed", exc_info=task.exception())

    # -- legs ------------------------------------------------------------------------

    def _live_legs(self) -> list[CallLeg]:
        return [leg for leg in self._legs.values() if leg.live]

    async def _start_leg(
        self, peer_id: str, begin: LegEvent, *, in_room: bool, offer: str | None = None
    ) -> CallLeg:
        leg = CallLeg(
            self,
            peer_id,
            begin,
            in_room=in_room,
            offer=offer,
            candidates=self._early.pop(peer_id, None),
            presence=self._early_presence.pop(peer_id, None),
        )
        self._legs[peer_id] = leg
        self._publish()
        await leg.begin()
        return leg

    async def _reconcile(self, peers: list[str]) -> None:
        """Make sure there is a leg to every other member of ``peers`` (join order).

        To an earlier member we are the callee (it offers); to a later one
        we are the caller.
        """
        me = self.my_id
        if me not in peers:
            return
        if self._waiting_for_relink(peers):
            return  # _relink_timer (or the RELINK) runs this again
        mine = peers.index(me)
        for index, peer_id in enumerate(peers):
            if peer_id == me or peer_id in self._legs:
                continue
            begin = LegEvent.EXPECT_OFFER if index < mine else LegEvent.CALL
            await self._start_leg(peer_id, begin, in_room=True)

    def _waiting_for_relink(self, peers: list[str]) -> bool:
        """Whether to hold back calls to unknown members: a connected leg of ours
        in the room has a peer id the room no longer has, so one of the
        unknown ids is probably that peer, back with a new id (RELINK)."""
        if time.monotonic() >= self._relink_until:
            return False
        stale = [
            leg
            for leg in self._live_legs()
            if leg.in_room and leg.state is LegState.CONNECTED and leg.peer_id not in peers
        ]
        unknown = [p for p in peers if p != self.my_id and p not in self._legs]
        return bool(stale and unknown)

    def _hold_for_relink(self) -> None:
        self._relink_until = time.monotonic() + _RELINK_WAIT
        if self._relink_timer is not None:
            self._relink_timer.cancel()
        self._relink_timer = asyncio.get_running_loop().call_later(
            _RELINK_WAIT + 0.05,
            lambda: self.spawn(self.locked(lambda: self._reconcile(list(self._room_peers)))),
        )

    async def _relink(self, leg: CallLeg, new_id: str) -> None:
        """The peer of ``leg`` is back on signaling as ``new_id``: re-key the leg."""
        old_id = leg.peer_id
        if new_id == old_id or new_id == self.my_id:
            return
        other = self._legs.get(new_id)
        if other is not None and other is not leg and other.live:
            # A call we started to that id before its RELINK came: the same
            # person, whose call goes on in ``leg``. No BYE: it would reach them.
            await other.end(LegEvent.CLOSE)
        if self._legs.get(old_id) is leg:
            del self._legs[old_id]
        leg.previous_ids.append(old_id)
        leg.peer_id = leg.record.peer_id = new_id
        self._legs[new_id] = leg
        if old_id in self._room_peers:  # gone from the server with its old link
            self._room_peers.remove(old_id)
        for store in (self._early, self._early_presence):
            store.pop(new_id, None)
        logger.info("peer %s is back on signaling as %s; the call goes on", old_id, new_id)
        self._publish()
        if leg.in_room and self._room_peers and self._link is LinkState.CONNECTED:
            # Calls held back for this RELINK may go ahead now (while our own
            # link is still down, the room list is the old server's: wait).
            await self._reconcile(list(self._room_peers))

    # -- events from signaling ---------------------------------------------------

    async def _pump_events(self, channel: SignalingChannel) -> None:
        async for event in channel.events():
            try:
                async with self._lock:
                    await self._handle(event)
            except LegProtocolError as exc:
                logger.warning("protocol error from the other side: %s", exc)
            except Exception:
                logger.exception("failed to handle %r", event)
            if isinstance(lifecycle(event), ChannelClosed):
                return

    async def _handle(self, event: object) -> None:
        if self._closing:
            return
        match lifecycle(event) or event:
            case messages.Relayed(sender=sender, data=data):
                message = wire.parse(data)
                if message is not None and sender != self.my_id:
                    await self._on_call_message(sender, message, "signaling")
            case messages.Ready(room=room) | messages.PeerJoined(room=room) if room != self._room:
                pass  # the room we left: what it says now is not about us
            case messages.Ready(peers=peers):
                self._room_peers = list(peers)
                await self._reconcile(list(peers))
            case messages.PeerJoined(connection_id=cid):
                if cid not in self._room_peers:
                    self._room_peers.append(cid)
                if (self._capacity or 2) > 2:
                    await self._reconcile(self._room_peers)
            case messages.PeerLeft(connection_id=cid):
                if cid in self._room_peers:
                    self._room_peers.remove(cid)
                self._early.pop(cid, None)
                self._early_presence.pop(cid, None)
                leg = self._legs.get(cid)
                if leg is not None and leg.live:
                    await leg.end(LegEvent.PEER_LEFT)
            case messages.Error(code=code, message=text):
                await self._on_error(code, text)
            case ChannelLost():
                for leg in self._live_legs():
                    if leg.state is not LegState.CONNECTED:
                        await leg.end(LegEvent.SERVER_LOST)
                now = time.monotonic()
                if self._lost_at is None:
                    self._lost_at = now
                # Published below, with the countdown if one starts.
                self._link = next_link_state(self._link, LinkEvent.LOST)
                ended_at = self._host_ended_at
                if not self._hosting and ended_at is not None and now - ended_at <= _HOST_ENDED_S:
                    # The host said its server goes with it, and it went.
                    await self._end_link(LinkEnd.HOST_LEFT)
                else:
                    self._arm_reconnect_deadline()
                    self._publish()
            case ChannelRestored(connection_id=cid, rejoined=rejoined, peers=peers, capacity=cap):
                # Our id changed. A call whose media flows goes on: its peer
                # learns the new id over the call's own data channel (RELINK).
                # The others cannot reach us any more; in a rejoined room we
                # are the newest member, so everyone there offers to us afresh.
                self.signaling_reconnects += 1
                kept = []
                for leg in self._live_legs():
                    if leg.state is LegState.CONNECTED and leg.send_relink(cid):
                        kept.append(leg)
                    else:
                        await leg.end(LegEvent.SERVER_LOST)
                if kept:
                    self._hold_for_relink()
                self._lost_at = None
                self._cancel_reconnect_deadline()  # after the legs: their ending arms it
                self._room_peers = list(peers) if rejoined else []
                if rejoined:
                    self._capacity = cap or self._capacity
                else:
                    self._room = None
                self._move_link(LinkEvent.RESTORED, connection_id=cid)
                if rejoined:
                    await self._reconcile(self._room_peers)
            case ChannelClosed():
                # The channel ended by itself (one that does not reconnect, or gave up).
                await self._end_link(LinkEnd.LOST)
            case _:
                pass

    # -- the link's end ------------------------------------------------------------

    async def _end_link(self, why: LinkEnd) -> None:
        """Stop using the signaling server for good: what is live ends, the link is GONE.

        Idempotent. With ``HOST_LEFT`` the legs end ``HOST_LEFT`` (the call is
        over for everyone: its server is gone); otherwise ``SERVER_LOST``.
        """
        if self._link not in (LinkState.CONNECTED, LinkState.RECONNECTING):
            return
        self._link_end = why
        host_left = why is LinkEnd.HOST_LEFT
        event = LegEvent.HOST_LEFT if host_left else LegEvent.SERVER_LOST
        for leg in self._live_legs():
            await leg.end(event)
        self._cancel_reconnect_deadline()  # after the legs: their ending arms it
        self._room = None
        self._room_peers = []
        self._auth_key = None
        self._lost_at = None
        self._last_end = EndReason.HOST_LEFT if host_left else EndReason.SERVER_LOST
        self._move_link(LinkEvent.GONE, connection_id=None)
        channel = self._channel
        if self._owns_channel:
            self._channel = None  # connect() makes a fresh one
        if channel is not None:
            # Stops its retries; its ChannelClosed then finds the link GONE already.
            with contextlib.suppress(Exception):
                await channel.close()

    async def _host_left(self) -> None:
        if self._link is LinkState.RECONNECTING:
            await self._end_link(LinkEnd.HOST_LEFT)

    def _arm_reconnect_deadline(self) -> None:
        """While RECONNECTING with no media flowing, start the countdown (once)."""
        if self._link is not LinkState.RECONNECTING or self._reconnect_timer is not None:
            return
        if any(leg.state is LegState.CONNECTED for leg in self._live_legs()):
            return  # a live peer-to-peer call keeps the retries going
        delay = self._config.reconnect_for
        if math.isinf(delay):
            return
        self._reconnect_deadline = time.monotonic() + delay
        self._reconnect_timer = asyncio.get_running_loop().call_later(
            delay, lambda: self.spawn(self.locked(self._reconnect_expired))
        )
        self._publish()

    def _cancel_reconnect_deadline(self) -> None:
        if self._reconnect_timer is not None:
            self._reconnect_timer.cancel()
        self._reconnect_timer = None
        self._reconnect_deadline = None

    async def _reconnect_expired(self) -> None:
        deadline = self._reconnect_deadline
        if self._link is not LinkState.RECONNECTING or deadline is None:
            return  # restored (or gone) meanwhile
        if time.monotonic() < deadline - 0.05:
            return  # a timer of an earlier countdown; the current one has its own
        logger.info("signaling server unreachable for %g s: giving up", self._config.reconnect_for)
        await self._end_link(LinkEnd.GAVE_UP)

    async def _on_error(self, code: messages.ErrorCode | str, text: str) -> None:
        if code is messages.ErrorCode.UNKNOWN_PEER:
            # Only a dialled call can name a peer that is not there.
            for leg in self._live_legs():
                if leg.state is LegState.OFFERING and not leg.in_room:
                    self._set_notice("call", f"Nobody with id {leg.peer_id} is connected.")
                    await leg.end(LegEvent.UNKNOWN_PEER)
                    return
            for leg in self._live_legs():
                # A dialled call whose media went quiet, and whose peer the
                # server no longer knows: that app is gone, not reconnecting.
                if leg.state is LegState.RECONNECTING and not leg.in_room:
                    await leg.end(LegEvent.UNKNOWN_PEER)
                    return
        logger.info("signaling error %s: %s", code, text)

    def _known(self, sender: str) -> bool:
        return sender in self._legs or sender in self._room_peers

    async def _on_call_message(self, sender: str, message: wire.CallMessage, via: str) -> None:
        leg = self._legs.get(sender)
        if leg is not None and not leg.live:
            leg = None
        match message:
            case wire.Sdp(type="offer", sdp=sdp, restart=restart):
                if leg is not None:
                    await leg.on_offer(sdp, restart=restart)
                else:
                    await self._on_new_offer(sender, sdp)
            case wire.Relink(id=new_id):
                # Only over the leg's data channel: signaling could be anyone.
                if leg is not None and via == "datachannel":
                    await self._relink(leg, new_id)
            case wire.Sdp(type="answer", sdp=sdp):
                if leg is not None:
                    await leg.on_answer(sdp)
            case wire.Ice():
                if leg is not None:
                    await leg.on_candidate(message)
                else:
                    self._remember(self._early, sender, message)
            case wire.Bye(reason=reason):
                if leg is not None:
                    await leg.on_bye(reason)
                elif reason == wire.HOST_ENDED and self._known(sender) and not self._hosting:
                    # A room member with no call to us yet: its server goes too.
                    self._host_ended_at = time.monotonic()
                    self._last_end = EndReason.HOST_LEFT
                    self._publish()
            case wire.Verify(payload=payload):
                if leg is not None:
                    await leg.on_verify(payload)
            case wire.PresenceUpdate(presence=presence):
                if leg is not None:
                    leg.on_presence(presence)
                elif self._known(sender) or len(self._early_presence) < _EARLY_SENDERS:
                    self._early_presence[sender] = presence
                    while len(self._early_presence) > _EARLY_SENDERS:
                        self._early_presence.popitem(last=False)
            case wire.Chat(text=text):
                if leg is None and sender not in self._room_peers:
                    return  # strangers cannot write into our call
                name = leg.presence.name if leg is not None and leg.presence else wire.DEFAULT_NAME
                self._chat.append(
                    ChatMessage(
                        sender=sender, sender_name=name, text=text, at=time.monotonic(), via=via
                    )
                )
                self._publish()

    def _remember(
        self, store: OrderedDict[str, list[wire.Ice]], sender: str, item: wire.Ice
    ) -> None:
        if sender not in store and len(store) >= _EARLY_SENDERS:
            store.popitem(last=False)
        queue = store.setdefault(sender, [])
        if len(queue) < _EARLY_CANDIDATES:
            queue.append(item)

    async def _on_new_offer(self, sender: str, sdp: str) -> None:
        """An offer from someone we have no leg to: a room member, or a dialled call."""
        in_room = sender in self._room_peers
        stale = sender in self._former_peers and time.monotonic() - self._left_at < _STALE_OFFER_S
        busy = bool(self._live_legs())
        if not in_room and (busy or stale):
            # Busy with someone else: turn the newcomer away, saying so (a late
            # offer from the room we left gets a plain BYE: we just left).
            with contextlib.suppress(errors.CallError):
                await self.send(wire.Bye(wire.BUSY if busy else None), sender)
            return
        if self._link is not LinkState.CONNECTED:
            return
        self._last_end = None
        answer_now = in_room or self._config.auto_answer
        begin = LegEvent.OFFER_ANSWERED if answer_now else LegEvent.OFFER_RINGS
        await self._start_leg(sender, begin, in_room=in_room, offer=sdp)


def _client_for(
    url: str, tls_pin: str | None = None, server_pin: str | None = None
) -> SignalingChannel:
    """The real websockets client for ``url``.

    ``tls_pin`` (a PEM file) or ``server_pin`` (an invite's pin) makes it
    trust only that certificate.
    """
    context = None
    if tls_pin is not None:
        try:
            context = pinned_client_context(tls_pin)
        except TlsError as exc:
            raise errors.ServerUnavailable(str(exc)) from exc
    with wrap_errors():
        try:
            # Backoff up to 1 s (jittered): a restarted server is rejoined within
            # about a second of its return, while a call's media goes on meanwhile.
            return SignalingClient(
                url, ssl_context=context, pin=server_pin, backoff_max=_BACKOFF_MAX_S
            )
        except ValueError as exc:  # a malformed pin: the invite said it
            raise errors.ServerUnavailable(str(exc)) from exc


__all__ = ["MAX_CAPACITY", "CallSession", "Listener", "PeerFrameCallback"]
