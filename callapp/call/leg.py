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
        self.state = start.state
        self.role = Role.CALLER if begin is LegEvent.CALL else Role.CALLEE
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
        role: security.Role = "offerer" if self.role is Role.CALLER else "answerer"
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
        return self.peer

    async def _offer(self) -> None:
        peer = self._ensure_peer()
        try:
            sdp = await peer.make_offer()
            await self._host.send(wire.Sdp("offer", sdp), self.peer_id)
        except Exception:
            logger.exception("could not offer to %s", self.peer_id)
            await self.end(LegEvent.TRANSPORT_FAILED)

    async def _answer(self, offer: str) -> None:
        """Answer ``offer`` (state ANSWERING) and move on to CONNECTING."""
        peer = self._ensure_peer()
        candidates, self._candidates = self._candidates, []
        for candidate in candidates:
            await peer.add_candidate(candidate)
        self._arm(self._host.config.connect_timeout, LegEvent.TIMEOUT)
        try:
            answer = await peer.take_offer(offer)
            if not self.live:
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

    async def on_offer(self, sdp: str) -> None:
        """The peer's offer; raises RemoteProtocolError where the table has no place for it."""
        if self.state is LegState.OFFERING and not self._answered:
            # Glare: both sides offered. The lower id stays the caller.
            if self._host.my_id < self.peer_id:
                self._fire(LegEvent.GLARE_WON)
                return
            self._fire(LegEvent.GLARE_LOST)
            self.role = self.record.role = Role.CALLEE
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
        self._fire(LegEvent.ANSWER)
        assert peer is not None
        self._answered = True
        self._arm(self._host.config.connect_timeout, LegEvent.TIMEOUT)
        try:
            await peer.take_answer(sdp)
        except Exception:
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
            self.connected_at = self.record.connected_at = time.monotonic()
            self._fire(LegEvent.MEDIA_UP)
            self._arm_verify_deadline()
            self._watchdog = asyncio.ensure_future(
                peer.watch(
                    self._host.config.silence_timeout,
                    lambda: self._host.spawn(self._host.locked(lambda: self._end_if_live(peer))),
                )
            )
        elif state == "failed":
            await self.end(LegEvent.TRANSPORT_FAILED)
        elif state == "closed":
            # The peer closed DTLS on purpose (a crash sends nothing): a hang-up
            # whose BYE is still on its way through the server.
            await self.end(LegEvent.TRANSPORT_CLOSED)

    async def _end_if_live(self, peer: Peer) -> None:
        if self.live and peer is self.peer:
            await self.end(LegEvent.PEER_SILENT)

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
        record.first_frame_at = peer.first_frame_at
        record.last_frame_at = peer.last_frame_at
        record.frames_received = peer.frames_received
        record.audio_frames_received = peer.audio_frames_received

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
        self._fire(event)
        self._cancel_timer()
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
