"""The signaling link's lifecycle as a table, apart from the calls.

:class:`~callapp.call.session.CallSession` moves its :class:`LinkState` only
through :func:`next_link_state`. Losing the link does not end a call whose
media already flows (that is the legs' business, :mod:`callapp.call.transitions`);
a view reads the two separately and never has to guess.
"""

from __future__ import annotations

import enum
from typing import Final

from callapp.call.state import LinkState

L = LinkState


class LinkEvent(enum.Enum):
    CONNECT = "connect"  # connect() called
    WELCOMED = "welcomed"  # the server's welcome arrived
    CONNECT_FAILED = "connect failed"
    LOST = "lost"  # the connection dropped; the channel retries
    RESTORED = "restored"  # reconnected, with a new connection id
    GONE = "gone"  # the channel closed for good


#: (state, event) -> next state. Pairs not listed are invalid.
LINK_TRANSITIONS: Final[dict[tuple[LinkState, LinkEvent], LinkState]] = {
    (L.OFFLINE, LinkEvent.CONNECT): L.CONNECTING,
    (L.GONE, LinkEvent.CONNECT): L.CONNECTING,
    (L.CONNECTING, LinkEvent.WELCOMED): L.CONNECTED,
    (L.CONNECTING, LinkEvent.CONNECT_FAILED): L.OFFLINE,
    (L.CONNECTED, LinkEvent.LOST): L.RECONNECTING,
    (L.RECONNECTING, LinkEvent.LOST): L.RECONNECTING,
    (L.RECONNECTING, LinkEvent.RESTORED): L.CONNECTED,
    (L.CONNECTED, LinkEvent.GONE): L.GONE,
    (L.RECONNECTING, LinkEvent.GONE): L.GONE,
}


class InvalidLinkTransition(RuntimeError):
    """Our own code asked for a link transition the table does not allow."""

    def __init__(self, state: LinkState, event: LinkEvent) -> None:
        super().__init__(f"no link transition from {state.value!r} on {event.value!r}")
        self.state = state
        self.event = event


def next_link_state(state: LinkState, event: LinkEvent) -> LinkState:
    """The link state ``event`` leads to from ``state``."""
    try:
        return LINK_TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidLinkTransition(state, event) from None
