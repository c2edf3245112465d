"""One leg: the call with one remote peer, from first message to end.

A :class:`CallLeg` holds one :class:`~callapp.call.peer.Peer` (an
``RTCPeerConnection``) at a time and runs its own offer/answer, glare,
candidates, timers, liveness watch and ending. Its state changes only through
:func:`callapp.call.transitions.step`: every method names the event and the
table says where it leads; a refused event raises before anything changes.

The leg does no signaling of its own and knows nothing of other legs: it
talks to its :class:`LegHost` (the :class:`~callapp.call.session.CallSession`),
which sends messages, builds peers with the session's media, publishes
snapshots and forgets the leg once it has ended. Every method runs on the
event loop with the session's lock held, so a leg never sees a half-changed
session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from callapp.call import security, wire
from callapp.call.config import CallConfig
from callapp.call.peer import Peer
from callapp.call.report import LegRecord
from callapp.call.state import EndReason, LegSnapshot, LegState, Presence, Role
from callapp.call.stats import CallStats, StatsMeter
from callapp.call.transitions import LegEvent, step

logger = logging.getLogger(__name__)

#: Candidates kept for a leg whose Peer does not exist yet.
_EARLY_CANDIDATES = 64
#: VERIFY messages kept until this side's Verifier exists.
_EARLY_VERIFY = 8
#: With a room secret, how long after media starts the peer has to prove its
#: fingerprint; its media is held back until then.
VERIFY_TIMEOUT = 5.0
#: While a dead media path is renegotiated, the restarting side makes a fresh
#: offer this often until one connects: aioice's checks back off (0.5, 1, 2,
#: 4 s ...), so a path that comes back late would otherwise wait for the next
#: retransmission of a session started while it was down.
RESTART_RETRY = 2.5
#: A restart the peer has not answered (nor offered one) within this long ends
#: the call: a peer whose signaling is gone too has most likely gone for good
#: (its network, its machine), and the survivor should not wait
#: ``restart_for`` for it. A peer heard on signaling gets the whole ``restart_for``.
UNHEARD_RESTART_S = 6.0


def ice_ufrag(sdp: str) -> str | None:
    """The first ``a=ice-ufrag`` of ``sdp``: a new one means a new ICE session."""
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            return line[len("a=ice-ufrag:") :].strip()
    return None


class LegHost(Protocol):
    """What a leg needs from its session."""

    @property
    def config(self) -> CallConfig: ...

    @property
    def my_id(self) -> str:
        """Our connection id now (glare compares it with the peer's)."""
        ...

    def new_peer(self, leg: CallLeg) -> Peer:
        """A fresh Peer carrying the session's media, wired to ``leg``."""
        ...

    async def send(self, message: wire.CallMessage, to: str) -> None:
        """Relay ``message`` to connection ``to``; raises CallError if it cannot."""
        ...

    def presence_message(self) -> wire.PresenceUpdate:
        """What we say about ourselves to a peer."""
        ...

    @property
    def auth_key(self) -> bytes | None:
        """The room secret's fingerprint-auth key, or None (no secret: code only)."""
        ...

    def leg_changed(self, leg: CallLeg) -> None:
        """Publish ``leg``'s new state (it has not ended)."""
        ...

    async def leg_ended(self, leg: CallLeg) -> None:
        """``leg`` has ended (its Peer is closed): forget it and publish."""
        ...

    def can_renegotiate(self) -> bool:
        """Whether signaling works now, so a dead media path can be renegotiated."""
        ...

    def lost_with_server(self, leg: CallLeg) -> bool:
        """Whether ``leg``'s peer, which has just vanished (silent, transport
        failed), most likely went away together with the signaling server,
        i.e. it hosted that server: the link was lost moments ago and is still
        down. The leg then ends ``HOST_LEFT``."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task the session tracks."""
        ...

    def locked(self, action: Callable[[], Coroutine[Any, Any, Any]]) -> Coroutine[Any, Any, Any]:
        """A coroutine that runs ``action()`` with the session's lock held (not if closed)."""
        ...


class CallLeg:
    """The call with connection ``peer_id``; see the module docstring."""

    def __init__(
        self,
        host: LegHost,
        peer_id: str,
        begin: LegEvent,
        *,
        in_room: bool,
        offer: str | None = None,
        candidates: list[wire.Ice] | None = None,
        presence: Presence | None = None,
    ) -> None:
        start = step(None, begin)
        self._host = host
        self.peer_id = peer_id
        #: A key that never changes (the peer's id may, see CallSession's RELINK):
        #: the speaker's input and the frame callbacks use it.
        self.media_key = peer_id
        #: The peer's earlier ids in this call (RELINK), oldest first.
        self.previous_ids: list[str] = []
        self.state = start.state
        self.role = Role.CALLER if begin is LegEvent.CALL else Role.CALLEE
        #: We made the offer of the current Peer (the caller's, unless a restart swapped it).
        self._offerer = begin is LegEvent.CALL
        self._restart_retry: asyncio.TimerHandle | None = None
        self._path_lost_at: float | None = None
        # What earlier Peers of this leg received (a restart replaces the Peer).
        self._carried_frames = 0
        self._carried_audio = 0
        self._carried_last: float | None = None
        self.in_room = in_room
        self.presence = presence
        self.connected_at: float | None = None
        self.end_reason: EndReason | None = None
        self.peer: Peer | None = None
        #: An offer waiting for accept() (RINGING), or to be answered next.
        self.offer = offer
        self._candidates: list[wire.Ice] = list(candidates or ())[:_EARLY_CANDIDATES]
        self._answered = False
        self._timer: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._meter: StatsMeter | None = None
        self.verifier: security.Verifier | None = None
        self._early_verify: list[dict[str, object]] = []
        self._verify_deadline: asyncio.TimerHandle | None = None
        self.record = LegRecord(peer_id=peer_id, role=self.role, created_at=time.monotonic())
        if presence is not None:
            self._note_presence(presence)

    # -- the table ---------------------------------------------------------------------

    def _fire(self, event: LegEvent) -> None:
        """Move by ``event``; raises LegProtocolError (nothing changes) if the table refuses."""
        result = step(self.state, event)
        self.state = result.state
        if result.reason is not None:
            self.end_reason = result.reason
        if self.state is not LegState.ENDED:
            self._host.leg_changed(self)

    @property
    def live(self) -> bool:
        return self.state is not LegState.ENDED

    def snapshot(self) -> LegSnapshot:
        return LegSnapshot(
            peer_id=self.peer_id,
            state=self.state,
            role=self.role,
            in_room=self.in_room,
            presence=self.presence,
            connected_at=self.connected_at,
            end_reason=self.end_reason,
            chat_open=self.peer is not None and self.peer.chat_open,
            security_code=self.security_code,
            peer_verified=self.peer_verified,
            previous_ids=tuple(self.previous_ids),
        )

    # -- verification ------------------------------------------------------------------

    @property
    def security_code(self) -> str | None:
        verifier = self.verifier
        return verifier.code if verifier is not None and verifier.state == "done" else None

    @property
    def peer_verified(self) -> bool:
        verifier = self.verifier
        return verifier is not None and verifier.state == "done" and verifier.peer_verified

    @property
    def _auth_key(self) -> bytes | None:
        """The room secret's key, for a leg in the room: a dialled caller never
        had the room's secret, so its call is checked by the code alone (as
        outside a keyed room), not turned away as intercepted."""
        return self._host.auth_key if self.in_room else None

    @property
    def media_allowed(self) -> bool:
        """Whether the peer's media may be shown and played.

        In a room with a secret, only once the secret has proved the peer's
        fingerprint: a relay in the middle never gets on screen.
        """
        return self._auth_key is None or self.peer_verified

    async def _start_verifier(self, local_sdp: str, remote_sdp: str) -> None:
        """Begin the verification exchange once both fingerprints are fixed."""
        role: security.Role = "offerer" if self._offerer else "answerer"
        try:
            self.verifier = security.Verifier(
                role,
                local_id=self._host.my_id,
                remote_id=self.peer_id,
                local_fingerprint=security.local_fingerprint(local_sdp),
                remote_fingerprint=security.remote_fingerprint(remote_sdp),
                auth_key=self._auth_key,
            )
        except security.SecurityError as exc:
            logger.warning("no verification with %s: %s", self.peer_id, exc)
            if self._auth_key is not None:
                await self.end(LegEvent.INSECURE, bye=True)
            return
        await self._send_verify(self.verifier.start())
        early, self._early_verify = self._early_verify, []
        for message in early:
            await self.on_verify(message)

    async def _send_verify(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            with contextlib.suppress(Exception):
                await self._host.send(wire.Verify(dict(message["payload"])), self.peer_id)

    async def on_verify(self, payload: dict[str, object]) -> None:
        """One VERIFY step from the peer."""
        verifier = self.verifier
        if verifier is None:
            if len(self._early_verify) < _EARLY_VERIFY:
                self._early_verify.append(payload)
            return
        was = (verifier.state, verifier.code)
        await self._send_verify(verifier.receive({"type": "VERIFY", "payload": payload}))
        await self._verification_changed(was)

    async def _verification_changed(self, was: tuple[str, str | None]) -> None:
        verifier = self.verifier
        assert verifier is not None
        if verifier.state == "failed":
            logger.warning("verification with %s failed: %s", self.peer_id, verifier.message)
            if verifier.authenticated or verifier.reason == "commitment":
                await self.end(LegEvent.INSECURE, bye=True)
                return
        if (verifier.state, verifier.code) != was:
            self.record.security_code = self.security_code
            self.record.peer_verified = self.peer_verified
            if self.peer_verified and self._verify_deadline is not None:
                self._verify_deadline.cancel()
                self._verify_deadline = None
            self._host.leg_changed(self)

    def _arm_verify_deadline(self) -> None:
        if self._auth_key is None or self.peer_verified:
            return
        loop = asyncio.get_running_loop()
        self._verify_deadline = loop.call_later(
            VERIFY_TIMEOUT,
            lambda: self._host.spawn(self._host.locked(self._verify_expired)),
        )

    async def _verify_expired(self) -> None:
        if not self.live or self.peer_verified:
            return
        verifier = self.verifier
        if verifier is not None:
            verifier.timed_out()
        await self.end(LegEvent.INSECURE, bye=True)

    # -- starting ----------------------------------------------------------------------

    async def begin(self) -> None:
        """Do what the leg's first state asks: offer, gather for an offer, answer, or ring."""
        config = self._host.config
        match self.state:
            case LegState.OFFERING:
                timeout = config.connect_timeout if self.in_room else config.ring_timeout
                self._arm(timeout, LegEvent.TIMEOUT)
                await self._say_presence()
                await self._offer()
            case LegState.AWAITING_OFFER:
                self._arm(config.connect_timeout, LegEvent.TIMEOUT)
                await self._say_presence()
                self._ensure_peer().pregather()
            case LegState.ANSWERING:
                await self._say_presence()
                await self._answer(self.offer or "")
            case LegState.RINGING:
                self._arm(config.ring_timeout, LegEvent.TIMEOUT)

    async def _say_presence(self) -> None:
        with contextlib.suppress(Exception):
            await self._host.send(self._host.presence_message(), self.peer_id)

    def _ensure_peer(self) -> Peer:
        if self.peer is None:
            self.peer = self._host.new_peer(self)
            self.peer.remote_camera_off = self.record.peer_camera_off
        return self.peer

    async def _offer(self) -> None:
        peer = self._ensure_peer()
        try:
            sdp = await peer.make_offer()
            if await self._relay_failed(peer):
                return
            await self._host.send(wire.Sdp("offer", sdp), self.peer_id)
        except Exception:
            logger.exception("could not offer to %s", self.peer_id)
            await self.end(LegEvent.TRANSPORT_FAILED)

    async def _relay_failed(self, peer: Peer) -> bool:
        """Relay-only and the relay gave nothing: end now, saying why (not after a timeout)."""
        why = peer.relay_problem
        if why is None or peer.pc.localDescription is None:
            return False
        if "typ relay" in str(peer.pc.localDescription.sdp):
            return False  # another relay URL did work
        logger.warning("no relayed candidate for the call with %s: %s", self.peer_id, why)
        self.record.relay_problem = why
        await self.end(LegEvent.RELAY_FAILED, bye=True)
        return True

    async def _answer(self, offer: str) -> None:
        """Answer ``offer`` (state ANSWERING) and move on to CONNECTING."""
        peer = self._ensure_peer()
        candidates, self._candidates = self._candidates, []
        for candidate in candidates:
            await peer.add_candidate(candidate)
        if self.state is not LegState.RECONNECTING:  # that has its own deadline
            self._arm(self._host.config.connect_timeout, LegEvent.TIMEOUT)
        try:
            answer = await peer.take_offer(offer)
            if not self.live:
                return
            if await self._relay_failed(peer):
                return
            await self._host.send(wire.Sdp("answer", answer), self.peer_id)
        except Exception:
            logger.exception("could not answer the offer from %s", self.peer_id)
            if self.live:
                await self.end(LegEvent.TRANSPORT_FAILED)
            return
        self.offer = None
        self._fire(LegEvent.ANSWER_SENT)
        # Both fingerprints are fixed now; the answer is on its way first, so
        # the offerer has its Verifier before our first VERIFY reaches it.
        await self._start_verifier(answer, offer)

    # -- actions -----------------------------------------------------------------------

    async def accept(self) -> None:
        """Answer the ringing offer; raises LocalProtocolError unless RINGING."""
        self._fire(LegEvent.ACCEPT)
        await self._say_presence()
        await self._answer(self.offer or "")

    async def decline(self) -> None:
        """Turn the ringing call down; raises LocalProtocolError unless RINGING."""
        await self.end(LegEvent.DECLINE, bye=True)

    async def hang_up(
        self, event: LegEvent = LegEvent.HANG_UP, *, reason: str | None = None
    ) -> None:
        """End the leg by ``event`` and tell the peer (a BYE saying ``reason``, if any)."""
        await self.end(event, bye=True, bye_reason=reason)

    async def send_chat(self, message: wire.Chat) -> str:
        """Send ``message`` over the data channel, or through signaling; returns which."""
        text = wire.encode_json(message)
        if self.peer is not None and self.peer.send_chat(text):
            return "datachannel"
        await self._host.send(message, self.peer_id)
        return "signaling"

    # -- messages from the peer --------------------------------------------------------

    async def on_offer(self, sdp: str, *, restart: bool = False) -> None:
        """The peer's offer; raises RemoteProtocolError where the table has no place for it.

        ``restart``: the offer says it comes from a fresh peer connection (its
        media path died). An offer with new ICE credentials but no such word
        is a browser's ``restartIce()``.
        """
        live_call = (LegState.CONNECTED, LegState.RECONNECTING)
        if self.state in live_call and (restart or self._ice_changed(sdp)):
            await self._take_restart(sdp, fresh=restart)
            return
        if self.state is LegState.OFFERING and not self._answered:
            # Glare: both sides offered. The lower id stays the caller.
            if self._host.my_id < self.peer_id:
                self._fire(LegEvent.GLARE_WON)
                return
            self._fire(LegEvent.GLARE_LOST)
            self.role = self.record.role = Role.CALLEE
            self._offerer = False
            old, self.peer = self.peer, None
            if old is not None:
                await old.close()
            await self._answer(sdp)
            return
        if self.state in (LegState.CONNECTING, LegState.CONNECTED):
            self._fire(LegEvent.OFFER)
            await self._renegotiate(sdp)
            return
        self._fire(LegEvent.OFFER)
        if self.state is LegState.RINGING:
            self.offer = sdp  # the caller started over; answer the newest
        else:
            await self._answer(sdp)

    async def _renegotiate(self, sdp: str) -> None:
        peer = self.peer
        if peer is None or peer.signaling_state != "stable":
            logger.info("ignoring an offer from %s mid-negotiation", self.peer_id)
            return
        try:
            answer = await peer.take_offer(sdp)
            await self._host.send(wire.Sdp("answer", answer), self.peer_id)
        except Exception:
            logger.exception("renegotiation with %s failed", self.peer_id)

    async def on_answer(self, sdp: str) -> None:
        """The peer's answer to our offer."""
        peer = self.peer
        if self.state is LegState.OFFERING and (
            peer is None or peer.signaling_state != "have-local-offer"
        ):
            return  # our offer is still being made; the table would accept a stray answer
        if self.state is LegState.RECONNECTING and (
            peer is None or peer.signaling_state != "have-local-offer"
        ):
            return  # the answer to an earlier restart attempt: the retry is under way
        self._fire(LegEvent.ANSWER)
        assert peer is not None
        self._answered = True
        self._peer_heard()
        if self.state is not LegState.RECONNECTING:  # that has its own deadline
            self._arm(self._host.config.connect_timeout, LegEvent.TIMEOUT)
        try:
            await peer.take_answer(sdp)
        except Exception:
            if self.state is LegState.RECONNECTING:
                logger.info("ignoring a restart answer from %s that does not fit", self.peer_id)
                return
            logger.exception("bad answer from %s", self.peer_id)
            await self.end(LegEvent.TRANSPORT_FAILED, bye=True)
            return
        await self._start_verifier(str(peer.pc.localDescription.sdp), sdp)

    async def on_candidate(self, candidate: wire.Ice) -> None:
        if self.peer is not None:
            await self.peer.add_candidate(candidate)
        elif len(self._candidates) < _EARLY_CANDIDATES:
            self._candidates.append(candidate)

    def on_presence(self, presence: Presence) -> None:
        self._note_presence(presence)
        if self.live:
            self._host.leg_changed(self)

    def _note_presence(self, presence: Presence) -> None:
        self.presence = presence
        self.record.name = presence.name
        self.record.peer_muted = presence.muted
        self.record.peer_camera_off = presence.camera_off
        self.record.peer_camera_was_off |= presence.camera_off
        if self.peer is not None:
            self.peer.remote_camera_off = presence.camera_off
        self.record.peer_screen = presence.screen
        self.record.peer_recording = presence.recording

    async def on_bye(self, reason: str | None = None) -> None:
        """The peer's BYE; ``reason`` (callapp) tells a host closing its server, or "busy"."""
        if reason == wire.HOST_ENDED:
            await self.end(LegEvent.HOST_LEFT)
        elif reason == wire.BUSY:
            await self.end(LegEvent.BUSY)
        else:
            await self.end(LegEvent.BYE)

    # -- events from the peer connection -----------------------------------------------

    async def on_connection_state(self, peer: Peer, state: str) -> None:
        if peer is not self.peer or not self.live:
            return
        if state == "connected" and self.state is not LegState.CONNECTED:
            step(self.state, LegEvent.MEDIA_UP)  # refused: raises before anything changes
            self._cancel_timer()
            self._cancel_restart_retry()
            if self.connected_at is None:  # after a restart the call goes on: keep its start
                self.connected_at = self.record.connected_at = time.monotonic()
            else:
                logger.info("media path to %s renegotiated", self.peer_id)
            self._fire(LegEvent.MEDIA_UP)
            self._arm_verify_deadline()
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog = asyncio.ensure_future(
                peer.watch(
                    self._host.config.silence_timeout,
                    lambda: self._host.spawn(self._host.locked(lambda: self._silent(peer))),
                )
            )
        elif state == "failed" and self.state is LegState.RECONNECTING:
            pass  # a restart attempt that failed: the next one (or the deadline) follows
        elif state == "failed" and self._may_restart():
            await self._lose_path(LegEvent.PATH_LOST)
        elif state == "failed":
            await self.end(LegEvent.TRANSPORT_FAILED)
        elif state == "closed":
            # The peer closed DTLS on purpose (a crash sends nothing): a hang-up
            # whose BYE is still on its way through the server.
            await self.end(LegEvent.TRANSPORT_CLOSED)

    async def _silent(self, peer: Peer) -> None:
        """Nothing arrived from the peer for the silence timeout."""
        if not self.live or peer is not self.peer:
            return
        if self._may_restart():
            # Signaling works, so the peer may well be there behind a dead path
            # (a link down, a new address): renegotiate rather than hang up.
            await self._lose_path(LegEvent.PATH_LOST)
            return
        await self.end(LegEvent.PEER_SILENT)

    def _may_restart(self) -> bool:
        return (
            self.state is LegState.CONNECTED
            and self._host.config.restart_for > 0
            and self._host.can_renegotiate()
        )

    # -- a dead media path: a fresh ICE session -----------------------------------------

    def _ice_changed(self, sdp: str) -> bool:
        peer = self.peer
        remote = peer.pc.remoteDescription if peer is not None else None
        if remote is None:
            return False
        return ice_ufrag(sdp) != ice_ufrag(str(remote.sdp))

    async def _lose_path(self, event: LegEvent) -> None:
        """CONNECTED -> RECONNECTING: count it, arm the deadline; the caller re-offers."""
        self._fire(event)
        self.record.ice_restarts += 1
        logger.info("media path to %s lost (%s): renegotiating", self.peer_id, event.value)
        self._path_lost_at = time.monotonic()
        self._arm(min(self._host.config.restart_for, UNHEARD_RESTART_S), LegEvent.TIMEOUT)
        if event is LegEvent.PATH_LOST and self.role is Role.CALLER:
            # One side restarts (the caller, as in the browser client), so the
            # two never offer at once; the callee waits for the offer.
            await self._offer_restart()
        elif event is LegEvent.PATH_LOST and not self.in_room:
            # A dialled callee has no room to hear peer-left from. Something
            # sent to the peer's id makes the server answer unknown-peer at
            # once if the peer's app is gone (crashed, killed), instead of
            # waiting out the restart deadline for an offer that cannot come.
            with contextlib.suppress(Exception):
                await self._host.send(self._host.presence_message(), self.peer_id)

    async def _fresh_peer(self) -> Peer:
        """Retire the Peer (keeping what it counted) and make a new one."""
        old, self.peer = self.peer, None
        if old is not None:
            self._copy_counters(old)
            self._carried_frames = self.record.frames_received
            self._carried_audio = self.record.audio_frames_received
            self._carried_last = self.record.last_frame_at
            # In the background: its transports are dead and the call must not wait.
            self._host.spawn(old.close())
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._verify_deadline is not None:
            self._verify_deadline.cancel()
            self._verify_deadline = None
        # A new DTLS session has new fingerprints: they are verified afresh.
        self.verifier = None
        self._early_verify = []
        self._meter = None
        self._candidates = []
        peer = self._ensure_peer()
        if old is not None:
            # The freeze across the restart is counted (freeze_max_ms, freezes).
            peer.resumes = old.video_sink or old.resumes
        return peer

    async def _offer_restart(self) -> None:
        """Offer a fresh peer connection for this call, and retry until one connects."""
        if self.state is not LegState.RECONNECTING:
            return
        self._cancel_restart_retry()
        loop = asyncio.get_running_loop()
        self._restart_retry = loop.call_later(
            RESTART_RETRY, lambda: self._host.spawn(self._host.locked(self._offer_restart))
        )
        peer = await self._fresh_peer()
        self._offerer = True
        self._answered = False
        try:
            sdp = await peer.make_offer()
            if await self._relay_failed(peer):
                return
            await self._host.send(wire.Sdp("offer", sdp, restart=True), self.peer_id)
        except Exception:
            logger.info("restart offer to %s failed; retrying", self.peer_id, exc_info=True)

    async def _take_restart(self, sdp: str, *, fresh: bool) -> None:
        """The peer offers a new ICE session for this call."""
        if self.state is LegState.CONNECTED:
            await self._lose_path(LegEvent.RESTART_OFFER)
        else:
            self._fire(LegEvent.RESTART_OFFER)
        self._peer_heard()
        self._cancel_restart_retry()  # the peer's offer stands; ours would cross it
        if not fresh:
            # A browser's restartIce(): a new ICE session inside its old
            # connection, which aiortc cannot do. Offer a fresh connection
            # instead; the browser client takes a "restart" offer by making
            # a fresh one of its own.
            await self._offer_restart()
            return
        await self._fresh_peer()
        self._offerer = False
        await self._answer(sdp)

    def _peer_heard(self) -> None:
        """The peer answered (or offered) a restart through signaling: it is there,
        so the restart gets the whole ``restart_for``, counted from the loss."""
        if self.state is not LegState.RECONNECTING or self._path_lost_at is None:
            return
        left = self._path_lost_at + self._host.config.restart_for - time.monotonic()
        self._arm(max(left, 0.0), LegEvent.TIMEOUT)

    def _cancel_restart_retry(self) -> None:
        if self._restart_retry is not None:
            self._restart_retry.cancel()
            self._restart_retry = None

    def chat_state_changed(self) -> None:
        if self.live:
            self._host.leg_changed(self)

    # -- timers ------------------------------------------------------------------------

    def _arm(self, delay: float, event: LegEvent) -> None:
        """(Re)start the leg's one timer: ``event`` after ``delay`` s unless connected."""
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(
            delay, lambda: self._host.spawn(self._host.locked(lambda: self._expire(event)))
        )

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _expire(self, event: LegEvent) -> None:
        if self.live and self.state is not LegState.CONNECTED:
            await self.end(event, bye=True)

    def send_relink(self, new_id: str) -> bool:
        """Tell the peer our new connection id over the data channel; False if it is closed."""
        peer = self.peer
        return peer is not None and peer.send_chat(wire.encode_json(wire.Relink(new_id)))

    # -- numbers -----------------------------------------------------------------------

    async def stats(self) -> CallStats | None:
        """The leg's numbers now, rates since the previous sample; None before a Peer."""
        peer = self.peer
        if peer is None or peer.closed:
            return None
        if self._meter is None:
            self._meter = StatsMeter(self.connected_at or time.monotonic())
        report = await peer.get_stats()
        stats = self._meter.sample(report, peer.counters(), peer.codec())
        self.record.stats, self.record.stats_at = stats, time.monotonic()
        self._copy_counters(peer)
        return stats

    def _copy_counters(self, peer: Peer) -> None:
        record = self.record
        if record.first_frame_at is None:
            record.first_frame_at = peer.first_frame_at
        record.last_frame_at = peer.last_frame_at or self._carried_last
        record.frames_received = self._carried_frames + peer.frames_received
        record.audio_frames_received = self._carried_audio + peer.audio_frames_received

    # -- ending ------------------------------------------------------------------------

    async def end(
        self, event: LegEvent, *, bye: bool = False, bye_reason: str | None = None
    ) -> None:
        """End the leg by ``event`` (raises LegProtocolError if the table refuses it).

        Sends BYE (saying ``bye_reason``, if any) first when asked, closes the
        Peer, then tells the host.
        """
        vanished = event in (LegEvent.PEER_SILENT, LegEvent.TRANSPORT_FAILED)
        peer_ended = (
            LegEvent.BYE,
            LegEvent.TRANSPORT_CLOSED,
            LegEvent.PEER_SILENT,
            LegEvent.HOST_LEFT,
        )
        if (
            event in peer_ended
            and self._auth_key is not None
            and self.connected_at is not None
            and not self.peer_verified
        ):
            # An honest peer's MAC comes before its BYE (one sender, in order):
            # media came up and the secret never vouched for it.
            event = LegEvent.INSECURE
        elif vanished and self.connected_at is not None and self._host.lost_with_server(self):
            # Gone at the same moment as the server: its app hosted that server.
            event = LegEvent.HOST_LEFT
        elif (
            event in (LegEvent.BYE, LegEvent.TIMEOUT, LegEvent.TRANSPORT_FAILED)
            and self.connected_at is None
            and self.peer is not None
            and self.peer.relay_problem is not None
        ):
            # Our relay said no too (the peer's BYE is most likely its own
            # relay failing): that is the news, not "declined".
            self.record.relay_problem = self.peer.relay_problem
            event = LegEvent.RELAY_FAILED
        self._fire(event)
        self._cancel_timer()
        self._cancel_restart_retry()
        if self._verify_deadline is not None:
            self._verify_deadline.cancel()
            self._verify_deadline = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if bye:
            with contextlib.suppress(Exception):
                await self._host.send(wire.Bye(bye_reason), self.peer_id)
        peer, self.peer = self.peer, None
        if peer is not None:
            self._copy_counters(peer)
            try:
                await asyncio.wait_for(peer.close(), timeout=3.0)
            except Exception:
                logger.exception("closing the peer connection to %s failed", self.peer_id)
        self.record.ended_at = time.monotonic()
        self.record.end_reason = self.end_reason
        await self._host.leg_ended(self)


__all__ = ["VERIFY_TIMEOUT", "CallLeg", "LegHost"]
