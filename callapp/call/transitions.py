"""The session's phases as a table of transitions, h11-style.

:class:`~callapp.call.session.CallSession` never assigns a phase directly: it
names what happened (a :class:`Trigger`) and :func:`next_phase` looks the
pair up in :data:`TRANSITIONS`. A pair missing from the table is a bug in our
own code (h11's "local error"), so :func:`next_phase` raises
:exc:`InvalidTransition` rather than guessing. What the *peer* does wrong
never reaches this table: the session drops such messages first.
"""

from __future__ import annotations

import enum
from typing import Final

from callapp.call.state import CallPhase

P = CallPhase


class Trigger(enum.Enum):
    CONNECT = "connect"  # connect() called
    WELCOMED = "welcomed"  # the server sent its welcome
    CONNECT_FAILED = "connect failed"
    DIAL = "dial"  # dial(), or `ready` made us the caller
    EXPECT_OFFER = "expect offer"  # `ready` made us the callee
    OFFER_RINGS = "offer rings"  # an offer from someone we did not call
    OFFER_ANSWERED = "offer answered"  # an offer we answer at once (room, auto, glare)
    ACCEPT = "accept"  # accept() while ringing
    MEDIA_UP = "media up"  # the peer connection is connected
    CALL_ENDED = "call ended"  # hang-up, BYE, decline, peer left, failure, timeouts
    SIGNALING_LOST = "signaling lost"
    SIGNALING_BACK = "signaling back"  # reconnected (with a new connection id)
    SIGNALING_GONE = "signaling gone"  # the channel closed for good
    CLOSE = "close"


_IN_CALL: Final = (P.RINGING, P.CALLING, P.CONNECTED)

#: (phase, trigger) -> next phase. Pairs not listed are invalid.
TRANSITIONS: Final[dict[tuple[CallPhase, Trigger], CallPhase]] = {
    (P.IDLE, Trigger.CONNECT): P.CONNECTING,
    (P.CONNECTING, Trigger.WELCOMED): P.WAITING,
    (P.CONNECTING, Trigger.CONNECT_FAILED): P.IDLE,
    (P.WAITING, Trigger.DIAL): P.CALLING,
    (P.WAITING, Trigger.EXPECT_OFFER): P.CALLING,
    (P.WAITING, Trigger.OFFER_RINGS): P.RINGING,
    (P.WAITING, Trigger.OFFER_ANSWERED): P.CALLING,
    (P.CALLING, Trigger.OFFER_ANSWERED): P.CALLING,  # glare: we yield and answer
    (P.RINGING, Trigger.ACCEPT): P.CALLING,
    (P.CALLING, Trigger.MEDIA_UP): P.CONNECTED,
    (P.RECONNECTING, Trigger.MEDIA_UP): P.RECONNECTING,
    **{(phase, Trigger.CALL_ENDED): P.WAITING for phase in _IN_CALL},
    (P.RECONNECTING, Trigger.CALL_ENDED): P.RECONNECTING,
    **{(phase, Trigger.SIGNALING_LOST): P.RECONNECTING for phase in (P.WAITING, *_IN_CALL)},
    (P.RECONNECTING, Trigger.SIGNALING_LOST): P.RECONNECTING,
    (P.RECONNECTING, Trigger.SIGNALING_BACK): P.WAITING,
    **{(phase, Trigger.SIGNALING_GONE): P.IDLE for phase in (P.WAITING, P.RECONNECTING)},
    **{(phase, Trigger.CLOSE): P.CLOSED for phase in P},
}


class InvalidTransition(RuntimeError):
    """Our own code asked for a transition the table does not allow."""

    def __init__(self, phase: CallPhase, trigger: Trigger) -> None:
        super().__init__(f"no transition from {phase.value!r} on {trigger.value!r}")
        self.phase = phase
        self.trigger = trigger


def next_phase(phase: CallPhase, trigger: Trigger) -> CallPhase:
    """The phase that ``trigger`` leads to from ``phase``."""
    try:
        return TRANSITIONS[(phase, trigger)]
    except KeyError:
        raise InvalidTransition(phase, trigger) from None


def can(phase: CallPhase, trigger: Trigger) -> bool:
    """Whether ``trigger`` is allowed in ``phase``."""
    return (phase, trigger) in TRANSITIONS
