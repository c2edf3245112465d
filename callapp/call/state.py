"""What a call session looks like from outside: phases and immutable snapshots.

The call engine (:mod:`callapp.call.session`) publishes a new
:class:`CallSnapshot` whenever anything a user could see changes. Views (the
Qt view-model, the headless CLI, tests) only ever read snapshots; they never
reach into the session's mutable state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Self


class CallPhase(enum.StrEnum):
    """Where the session is; one value at a time.

    ``IDLE`` -> ``CONNECTING`` -> ``WAITING`` <-> (``RINGING`` | ``CALLING``)
    -> ``CONNECTED`` -> ``WAITING`` ...; ``RECONNECTING`` whenever the
    signaling connection is lost; ``CLOSED`` once the session is closed.
    """

    IDLE = "idle"  # not connected to a signaling server
    CONNECTING = "connecting"  # connecting to the signaling server
    WAITING = "waiting"  # connected; alone in a room, or waiting for a call
    RINGING = "ringing"  # an incoming call waits for accept() or decline()
    CALLING = "calling"  # offer/answer and ICE under way
    CONNECTED = "connected"  # media is flowing
    RECONNECTING = "reconnecting"  # signaling lost; retrying with backoff
    CLOSED = "closed"  # the session is closed for good


class Role(enum.StrEnum):
    CALLER = "caller"  # made the offer
    CALLEE = "callee"  # answered it


class EndReason(enum.StrEnum):
    """Why the last call ended, in words a status line can show."""

    HUNG_UP = "you hung up"
    PEER_HUNG_UP = "the other person hung up"
    PEER_LEFT = "the other person left"
    PEER_UNREACHABLE = "the connection to the other person was lost"
    DECLINED = "the call was declined"
    NO_ANSWER = "no answer"
    FAILED = "the call could not be connected"
    SERVER_LOST = "the signaling server went away"
    CLOSED = "the app closed the call"


@dataclass(frozen=True, slots=True)
class CallSnapshot:
    """Everything a view needs to render one moment of a session."""

    phase: CallPhase = CallPhase.IDLE
    server_url: str | None = None
    connection_id: str | None = None
    room: str | None = None
    peer_id: str | None = None
    role: Role | None = None
    #: Why the previous call ended; kept while WAITING so the UI can say it.
    end_reason: EndReason | None = None
    #: Problems the user should know about that do not stop the call, one
    #: per line, e.g. "No camera found: sending a test pattern instead."
    notice: str | None = None
    video_enabled: bool = True
    #: The microphone is muted: the peer hears digital silence.
    muted: bool = False
    #: ``time.monotonic()`` when media started flowing, else None.
    connected_at: float | None = None

    def evolve(self, **changes: object) -> Self:
        """A copy with ``changes`` applied (snapshots are immutable)."""
        return replace(self, **changes)  # type: ignore[arg-type]
