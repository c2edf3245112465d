"""What a call session looks like from outside: states and immutable snapshots.

The call engine (:mod:`callapp.call.session`) publishes a new
:class:`SessionSnapshot` whenever anything a user could see changes. Views
(the Qt view-model, the headless CLI, tests) only ever read snapshots; they
never reach into the session's mutable state.

Two independent things are described, and never mixed:

* the **signaling link** (:class:`LinkState`): whether the session can reach
  its signaling server. Media flows peer to peer, so a call can be live while
  the link is reconnecting;
* the **legs** (:class:`LegSnapshot`, one per remote peer, each in a
  :class:`LegState`): the calls themselves.

:attr:`SessionSnapshot.phase` summarises both in one :class:`CallPhase` for
views that show one call (the status line, a 1:1 window, the CLI's phase
lines); it is derived from the link and the legs by :func:`summary_phase`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Self


class LinkState(enum.StrEnum):
    """The signaling connection, separate from any call."""

    OFFLINE = "offline"  # never connected, or a connect failed
    CONNECTING = "connecting"  # the first connect is under way
    CONNECTED = "connected"  # welcomed; we have a connection id
    RECONNECTING = "reconnecting"  # lost; the channel retries, for a bounded time
    GONE = "gone"  # closed for good (by us, retries gave up, the host left): see LinkEnd


class LegState(enum.StrEnum):
    """Where one leg (the call with one remote peer) is; see :mod:`callapp.call.transitions`."""

    OFFERING = "offering"  # our offer is made or on its way; waiting for the answer
    AWAITING_OFFER = "awaiting-offer"  # a room member will offer to us
    RINGING = "ringing"  # an offer from someone we did not call waits for accept()
    ANSWERING = "answering"  # we are making the answer
    CONNECTING = "connecting"  # descriptions exchanged; ICE and DTLS under way
    CONNECTED = "connected"  # media is flowing
    #: The media path died while signaling works: a fresh ICE session is being
    #: negotiated (an ICE restart in effect); the call goes on when it is up.
    RECONNECTING = "reconnecting"
    ENDED = "ended"  # over; the leg is kept only as history


#: Leg states that are not over.
LIVE_LEG_STATES = frozenset(LegState) - {LegState.ENDED}
#: Leg states of a call under way: media flows, or its path is being renegotiated.
LIVE_CALL_STATES = frozenset({LegState.CONNECTED, LegState.RECONNECTING})


class CallPhase(enum.StrEnum):
    """The whole session in one word, for views that show one call.

    ``IDLE`` -> ``CONNECTING`` -> ``WAITING`` <-> (``RINGING`` | ``CALLING``)
    -> ``CONNECTED`` -> ``WAITING`` ...; ``RECONNECTING`` whenever the
    signaling connection is lost; ``CLOSED`` once the session is closed.
    """

    IDLE = "idle"  # not connected to a signaling server
    CONNECTING = "connecting"  # connecting to the signaling server
    WAITING = "waiting"  # connected; alone in a room, or waiting for a call
    RINGING = "ringing"  # an incoming call waits for accept() or decline()
    CALLING = "calling"  # offer/answer and ICE under way
    CONNECTED = "connected"  # media is flowing with at least one peer
    RECONNECTING = "reconnecting"  # signaling lost; retrying with backoff
    CLOSED = "closed"  # the session is closed for good


class Role(enum.StrEnum):
    CALLER = "caller"  # made the offer
    CALLEE = "callee"  # answered it


class EndReason(enum.StrEnum):
    """Why a leg ended, in words a status line can show."""

    HUNG_UP = "you hung up"
    PEER_HUNG_UP = "the other person hung up"
    PEER_LEFT = "the other person left"
    PEER_UNREACHABLE = "the connection to the other person was lost"
    DECLINED = "the call was declined"
    NO_ANSWER = "no answer"
    FAILED = "the call could not be connected"
    SERVER_LOST = "the signaling server went away"
    CLOSED = "the app closed the call"
    INSECURE = "the connection was intercepted: the other side could not prove who it is"
    #: The one whose app runs the signaling server closed it (or its app went
    #: away with its server): the call is over for everyone, and the session
    #: does not try that server again.
    HOST_LEFT = "the host ended the call"
    #: The person called is in another call and turned this one away.
    BUSY = "the other person is in another call"
    #: Relay-only, and the TURN relay gave no address (the notice says why).
    RELAY_FAILED = "the call could not go through the TURN relay"


class LinkEnd(enum.StrEnum):
    """Why the signaling link is :attr:`LinkState.GONE`, in words a view can show."""

    #: :meth:`~callapp.call.session.CallSession.close` closed it.
    CLOSED = "the connection to the server was closed"
    #: The server stayed unreachable for ``CallConfig.reconnect_for`` seconds.
    GAVE_UP = "could not reach the server; gave up"
    #: The server was the host's own and went away with the host.
    HOST_LEFT = "the host ended the call"
    #: The channel ended by itself (it does not reconnect, or it gave up on its own).
    LOST = "the connection to the server was lost"


@dataclass(frozen=True, slots=True)
class Presence:
    """What one side says about itself to the others (the ``PRESENCE`` call message)."""

    name: str = "Guest"
    muted: bool = False
    camera_off: bool = False
    screen: bool = False
    recording: bool = False


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat line, sent or received."""

    #: Connection id of the author (ours for lines we sent).
    sender: str
    #: The author's display name when the line arrived.
    sender_name: str
    text: str
    #: ``time.monotonic()`` when it was sent or received.
    at: float
    #: True for lines we sent.
    mine: bool = False
    #: ``"datachannel"`` or ``"signaling"`` (the fallback); ``None`` for lines we sent.
    via: str | None = None


@dataclass(frozen=True, slots=True)
class LegSnapshot:
    """One leg at one moment."""

    peer_id: str
    state: LegState
    role: Role
    #: The peer is a member of our room (not a dialled call).
    in_room: bool
    #: What the peer last said about itself; ``None`` until it said anything.
    presence: Presence | None = None
    #: ``time.monotonic()`` when media started flowing, else None.
    connected_at: float | None = None
    end_reason: EndReason | None = None
    #: The chat data channel to this peer is open (else chat goes via signaling).
    chat_open: bool = False
    #: The verification code both sides show ("1234 5678 9012"), once agreed.
    security_code: str | None = None
    #: The room's secret proved the peer's DTLS fingerprint (no one in the middle).
    peer_verified: bool = False
    #: Connection ids the peer had earlier in this call (it came back on
    #: signaling with a new one and said so over the call, see RELINK), oldest first.
    previous_ids: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The peer's display name ("Guest" until it says one)."""
        return self.presence.name if self.presence is not None else "Guest"


def summary_phase(
    link: LinkState, legs: tuple[LegSnapshot, ...], *, closed: bool = False
) -> CallPhase:
    """The one :class:`CallPhase` that sums up ``link`` and the live ``legs``."""
    if closed:
        return CallPhase.CLOSED
    if link is LinkState.OFFLINE or link is LinkState.GONE:
        return CallPhase.IDLE
    if link is LinkState.CONNECTING:
        return CallPhase.CONNECTING
    if link is LinkState.RECONNECTING:
        return CallPhase.RECONNECTING
    states = {leg.state for leg in legs}
    if states & LIVE_CALL_STATES:  # a leg renegotiating its media path is still in the call
        return CallPhase.CONNECTED
    if LegState.RINGING in states:
        return CallPhase.RINGING
    if states & LIVE_LEG_STATES:
        return CallPhase.CALLING
    return CallPhase.WAITING


def focus_leg(legs: tuple[LegSnapshot, ...]) -> LegSnapshot | None:
    """The leg a one-call view shows: the first connected, else ringing, else the first."""
    for wanted in (LegState.CONNECTED, LegState.RECONNECTING, LegState.RINGING):
        for leg in legs:
            if leg.state is wanted:
                return leg
    return legs[0] if legs else None


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """Everything a view needs to render one moment of a session.

    ``legs`` holds the live legs in the order they started. ``phase``,
    ``peer_id``, ``role`` and ``connected_at`` sum them up for one-call views
    (the session keeps them consistent with ``link`` and ``legs``).
    """

    phase: CallPhase = CallPhase.IDLE
    link: LinkState = LinkState.OFFLINE
    server_url: str | None = None
    connection_id: str | None = None
    room: str | None = None
    #: The room's capacity as the server said it (2 for a v1 server).
    room_capacity: int | None = None
    #: Our display name, as sent to the others.
    name: str = "Guest"
    legs: tuple[LegSnapshot, ...] = ()
    #: The focus leg's peer and our role in it (see :func:`focus_leg`).
    peer_id: str | None = None
    role: Role | None = None
    #: Why the last leg ended; kept while WAITING so the UI can say it.
    end_reason: EndReason | None = None
    #: Problems the user should know about that do not stop the call, one
    #: per line, e.g. "No camera found: sending a test pattern instead."
    notice: str | None = None
    video_enabled: bool = True
    #: The microphone is muted: the peers hear digital silence.
    muted: bool = False
    #: A screen is being sent instead of the camera.
    screen_sharing: bool = False
    #: What we receive is being recorded (the peers are told).
    recording: bool = False
    #: ``time.monotonic()`` when media first flowed with a peer still here.
    connected_at: float | None = None
    #: The latest chat lines, oldest first (a bounded tail).
    chat: tuple[ChatMessage, ...] = field(default=())
    #: While RECONNECTING: the ``time.monotonic()`` at which the session stops
    #: retrying (for a countdown). ``None`` otherwise, and also while media
    #: still flows with a peer: the countdown starts when the last such leg ends.
    reconnect_deadline: float | None = None
    #: Why the link is GONE (``None`` while it is not): e.g. ``LinkEnd.GAVE_UP``
    #: ("could not reach the server; gave up") or ``LinkEnd.HOST_LEFT``.
    link_end: LinkEnd | None = None

    def evolve(self, **changes: object) -> Self:
        """A copy with ``changes`` applied (snapshots are immutable)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def leg(self, peer_id: str) -> LegSnapshot | None:
        """The live leg to ``peer_id``, if any."""
        for leg in self.legs:
            if leg.peer_id == peer_id:
                return leg
        return None

    @property
    def in_call(self) -> bool:
        """Media flows with at least one peer (or its path is being renegotiated)."""
        return any(leg.state in LIVE_CALL_STATES for leg in self.legs)


#: The name views and older code use for the session's snapshot.
CallSnapshot = SessionSnapshot
