"""A leg's lifecycle as one table, h11-style: the only authority on leg states.

A :class:`~callapp.call.leg.CallLeg` never assigns its state. It names what
happened (a :class:`LegEvent`) and :func:`step` looks ``(state, event)`` up in
:data:`LEG_TRANSITIONS`, which gives the next state and, for events that end
the leg, the :class:`~callapp.call.state.EndReason`. There is no other way to
move a leg, and no ``can()`` side door: code that wants to know whether an
event fits asks :func:`step` and handles the refusal.

A pair missing from the table is refused, and who is to blame decides how:

* events caused by **our own code or user** (:data:`LOCAL_EVENTS`: dial,
  accept, hang up, timers, closing) raise :exc:`LocalProtocolError`, which
  the session turns into :exc:`~callapp.call.errors.InvalidAction` for the
  caller ("you misused me");
* events caused by **the peer** (an offer, an answer, a BYE, its transport
  coming up or failing) raise :exc:`RemoteProtocolError`, which the session
  logs and drops ("the peer misbehaved"): the leg stays as it was.

A connected leg whose media path dies while signaling still works is not
over: ``PATH_LOST`` (our watchdog heard nothing) or ``RESTART_OFFER`` (the
peer's offer for a fresh ICE session) move it to ``RECONNECTING``, where a
fresh peer connection is negotiated (aiortc has no ``restartIce``); its
``MEDIA_UP`` brings it back to ``CONNECTED``, and its ``TIMEOUT``
(``CallConfig.restart_for``) ends it as unreachable.

Glare is decided before the table: an offer that crosses ours is
``GLARE_WON`` (we keep our offer; theirs is dropped) or ``GLARE_LOST`` (we
answer theirs) by comparing connection ids, so both sides pick the same call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from callapp.call.state import EndReason, LegState

S = LegState
R = EndReason


class LegEvent(enum.Enum):
    # How a leg begins (from ``None``: the leg does not exist yet).
    CALL = "call"  # we offer: a dial, or a room member who joined after us
    EXPECT_OFFER = "expect offer"  # a room member who joined before us will offer
    OFFER_RINGS = "offer rings"  # an offer from someone we did not call
    OFFER_ANSWERED = "offer answered"  # an offer we answer at once (auto-answer)
    # Negotiation.
    OFFER = "offer"  # the peer's offer arrived (expected, or a re-offer)
    GLARE_WON = "glare won"  # the peer's offer crossed ours; ours stands
    GLARE_LOST = "glare lost"  # the peer's offer crossed ours; we answer it
    ACCEPT = "accept"  # the user answers a ringing call
    ANSWER_SENT = "answer sent"
    ANSWER = "answer"  # the peer's answer arrived
    MEDIA_UP = "media up"  # ICE and DTLS are up: media flows
    # A media path that died while signaling lives: renegotiate a fresh ICE session.
    PATH_LOST = "path lost"  # our watchdog heard nothing for the silence timeout
    RESTART_OFFER = "restart offer"  # the peer offers a fresh ICE session
    # Endings.
    HANG_UP = "hang up"  # we hang up (or leave the room)
    DECLINE = "decline"  # the user turns a ringing call down
    BYE = "bye"  # the peer hung up (or declined)
    BUSY = "busy"  # the peer is in another call (a BYE saying "busy")
    HOST_LEFT = "host left"  # the host's app went away with its server (see session.py)
    PEER_LEFT = "peer left"  # the peer left the room
    PEER_SILENT = "peer silent"  # nothing arrived for the silence timeout
    TRANSPORT_FAILED = "transport failed"  # ICE or DTLS failed
    TRANSPORT_CLOSED = "transport closed"  # the peer closed DTLS on purpose
    TIMEOUT = "timeout"  # no answer, or no media, in time
    UNKNOWN_PEER = "unknown peer"  # the server says the id we call is not connected
    SERVER_LOST = "server lost"  # signaling lost before media, or our id changed
    INSECURE = "insecure"  # the peer's fingerprint failed its check (see security.py)
    RELAY_FAILED = "relay failed"  # relay-only, and the TURN relay gave us no address
    CLOSE = "close"  # the session closes


#: Events caused by our own code or user; the others come from the peer.
LOCAL_EVENTS: Final = frozenset(
    {
        LegEvent.CALL,
        LegEvent.EXPECT_OFFER,
        LegEvent.ACCEPT,
        LegEvent.ANSWER_SENT,
        LegEvent.HANG_UP,
        LegEvent.DECLINE,
        LegEvent.TIMEOUT,
        LegEvent.SERVER_LOST,
        LegEvent.CLOSE,
        LegEvent.PATH_LOST,
        LegEvent.RELAY_FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class Step:
    """Where an event leads: the next state, and why the leg ended if it did."""

    state: LegState
    reason: EndReason | None = None


_LIVE: Final = (
    S.OFFERING,
    S.AWAITING_OFFER,
    S.RINGING,
    S.ANSWERING,
    S.CONNECTING,
    S.CONNECTED,
    S.RECONNECTING,
)
_BEFORE_MEDIA: Final = (S.OFFERING, S.AWAITING_OFFER, S.RINGING, S.ANSWERING, S.CONNECTING)


def _ending(
    event: LegEvent, reason: EndReason, states: tuple[LegState, ...] = _LIVE
) -> dict[tuple[LegState | None, LegEvent], Step]:
    return {(state, event): Step(S.ENDED, reason) for state in states}


#: (state, event) -> step. ``None`` as the state: the leg is being created.
LEG_TRANSITIONS: Final[dict[tuple[LegState | None, LegEvent], Step]] = {
    (None, LegEvent.CALL): Step(S.OFFERING),
    (None, LegEvent.EXPECT_OFFER): Step(S.AWAITING_OFFER),
    (None, LegEvent.OFFER_RINGS): Step(S.RINGING),
    (None, LegEvent.OFFER_ANSWERED): Step(S.ANSWERING),
    (S.AWAITING_OFFER, LegEvent.OFFER): Step(S.ANSWERING),
    (S.RINGING, LegEvent.OFFER): Step(S.RINGING),  # the caller started over: keep the newest
    (S.RINGING, LegEvent.ACCEPT): Step(S.ANSWERING),
    (S.OFFERING, LegEvent.GLARE_WON): Step(S.OFFERING),
    (S.OFFERING, LegEvent.GLARE_LOST): Step(S.ANSWERING),
    (S.OFFERING, LegEvent.ANSWER): Step(S.CONNECTING),
    (S.ANSWERING, LegEvent.ANSWER_SENT): Step(S.CONNECTING),
    (S.CONNECTING, LegEvent.OFFER): Step(S.CONNECTING),  # a re-offer before media
    (S.CONNECTED, LegEvent.OFFER): Step(S.CONNECTED),  # renegotiation in a live call
    (S.CONNECTING, LegEvent.MEDIA_UP): Step(S.CONNECTED),
    # The media path died with signaling alive: a fresh ICE session, same call.
    (S.CONNECTED, LegEvent.PATH_LOST): Step(S.RECONNECTING),
    (S.CONNECTED, LegEvent.RESTART_OFFER): Step(S.RECONNECTING),
    (S.RECONNECTING, LegEvent.RESTART_OFFER): Step(S.RECONNECTING),  # a retry, or glare
    (S.RECONNECTING, LegEvent.ANSWER): Step(S.RECONNECTING),
    (S.RECONNECTING, LegEvent.ANSWER_SENT): Step(S.RECONNECTING),
    (S.RECONNECTING, LegEvent.MEDIA_UP): Step(S.CONNECTED),
    (S.RECONNECTING, LegEvent.TIMEOUT): Step(S.ENDED, R.PEER_UNREACHABLE),
    (S.RECONNECTING, LegEvent.PEER_SILENT): Step(S.ENDED, R.PEER_UNREACHABLE),
    (S.RECONNECTING, LegEvent.TRANSPORT_FAILED): Step(S.ENDED, R.PEER_UNREACHABLE),
    (S.RECONNECTING, LegEvent.TRANSPORT_CLOSED): Step(S.ENDED, R.PEER_HUNG_UP),
    # The server no longer knows the peer's id: its app is gone (a dialled call).
    (S.RECONNECTING, LegEvent.UNKNOWN_PEER): Step(S.ENDED, R.PEER_UNREACHABLE),
    **_ending(LegEvent.HANG_UP, R.HUNG_UP),
    **_ending(LegEvent.DECLINE, R.DECLINED, (S.RINGING,)),
    # A BYE before the answer is a decline; after it, a hang-up.
    **_ending(LegEvent.BYE, R.PEER_HUNG_UP),
    (S.OFFERING, LegEvent.BYE): Step(S.ENDED, R.DECLINED),
    # "Busy" turns a call away before it starts; later it is a plain hang-up.
    **_ending(LegEvent.BUSY, R.PEER_HUNG_UP),
    (S.OFFERING, LegEvent.BUSY): Step(S.ENDED, R.BUSY),
    (S.AWAITING_OFFER, LegEvent.BUSY): Step(S.ENDED, R.BUSY),
    **_ending(LegEvent.HOST_LEFT, R.HOST_LEFT),
    **_ending(LegEvent.PEER_LEFT, R.PEER_LEFT),
    **_ending(LegEvent.PEER_SILENT, R.PEER_UNREACHABLE, (S.CONNECTED,)),
    **_ending(LegEvent.TRANSPORT_FAILED, R.FAILED, _BEFORE_MEDIA),
    (S.CONNECTED, LegEvent.TRANSPORT_FAILED): Step(S.ENDED, R.PEER_UNREACHABLE),
    **_ending(LegEvent.TRANSPORT_CLOSED, R.FAILED, _BEFORE_MEDIA),
    # A closed DTLS transport in a live call is a hang-up whose BYE is on its way.
    (S.CONNECTED, LegEvent.TRANSPORT_CLOSED): Step(S.ENDED, R.PEER_HUNG_UP),
    (S.OFFERING, LegEvent.TIMEOUT): Step(S.ENDED, R.NO_ANSWER),
    (S.RINGING, LegEvent.TIMEOUT): Step(S.ENDED, R.NO_ANSWER),
    **_ending(LegEvent.TIMEOUT, R.FAILED, (S.AWAITING_OFFER, S.ANSWERING, S.CONNECTING)),
    (S.OFFERING, LegEvent.UNKNOWN_PEER): Step(S.ENDED, R.FAILED),
    **_ending(LegEvent.SERVER_LOST, R.SERVER_LOST),
    **_ending(LegEvent.INSECURE, R.INSECURE),
    **_ending(LegEvent.RELAY_FAILED, R.RELAY_FAILED, (*_BEFORE_MEDIA, S.RECONNECTING)),
    **_ending(LegEvent.CLOSE, R.CLOSED),
}


class LegProtocolError(Exception):
    """An event the leg table does not allow in the leg's state."""

    def __init__(self, state: LegState | None, event: LegEvent) -> None:
        where = state.value if state is not None else "(no leg)"
        super().__init__(f"{event.value!r} is not allowed in state {where!r}")
        self.state = state
        self.event = event


class LocalProtocolError(LegProtocolError):
    """Our own code or user asked for something the leg's state does not allow."""


class RemoteProtocolError(LegProtocolError):
    """The peer sent something the leg's state does not allow."""


def step(state: LegState | None, event: LegEvent) -> Step:
    """Where ``event`` leads from ``state``; raises a :exc:`LegProtocolError` if nowhere."""
    try:
        return LEG_TRANSITIONS[(state, event)]
    except KeyError:
        error = LocalProtocolError if event in LOCAL_EVENTS else RemoteProtocolError
        raise error(state, event) from None


__all__ = [
    "LEG_TRANSITIONS",
    "LOCAL_EVENTS",
    "LegEvent",
    "LegProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Step",
    "step",
]
