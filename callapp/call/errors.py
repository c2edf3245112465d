"""What can go wrong when driving a call, in words a user can read.

Every exception the call engine raises derives from :exc:`CallError`, whose
``str()`` is one human sentence. The signaling client's own errors are
wrapped (see :func:`callapp.call.channel.wrap_errors`), so views never import
:mod:`callapp.signaling`.
"""

from __future__ import annotations

from callapp.call.state import EndReason


class CallError(Exception):
    """Root of the call engine's errors; ``str()`` is a message for people."""


class ServerUnavailable(CallError):
    """The signaling server could not be reached, or stopped answering."""


class BadServerUrl(CallError):
    """The signaling server address is not a ``ws://`` or ``wss://`` URL."""


class RoomFullError(CallError):
    """The room already holds as many people as it can."""

    def __init__(self, message: str | None = None, *, room: str | None = None) -> None:
        if message is None:
            where = f"Room {room!r}" if room else "The room"
            message = (
                f"{where} is full: everyone it has room for is already in the call."
                " Try again when someone leaves, or ask for an invite to another room."
            )
        super().__init__(message)
        self.room = room


class HostBusyError(CallError):
    """The person called (or a room's host) is in another call and turned this call away."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message or "The person you called is in another call. Try again when they have hung up."
        )


class RoomCapacityError(CallError):
    """The room size asked for is not one the server allows."""


class RoomLockedError(CallError):
    """The room needs the invite's secret, and the join did not prove it."""


class BadRoomError(CallError):
    """The room name is not 1-64 letters, digits, ``-``, ``_`` or ``.``."""


class PeerUnknown(CallError):
    """Nobody with that connection id is connected to the server."""


class NotConnected(CallError):
    """The action needs a signaling connection; call ``connect()`` first."""


class InvalidAction(CallError):
    """The action makes no sense in the session's current phase."""


class MediaError(CallError):
    """The video source could not be opened."""


def ending_error(reason: EndReason | None) -> CallError | None:
    """The error to show for a call attempt that ended for ``reason``, if the
    person can act on it (``BUSY``: :exc:`HostBusyError`); else ``None``, and
    the ending's own words (``reason.value``) say enough."""
    if reason is EndReason.BUSY:
        return HostBusyError()
    return None
