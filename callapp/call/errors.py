"""What can go wrong when driving a call, in words a user can read.

Every exception the call engine raises derives from :exc:`CallError`, whose
``str()`` is one human sentence. The signaling client's own errors are
wrapped (see :func:`callapp.call.channel.wrap_errors`), so views never import
:mod:`callapp.signaling`.
"""

from __future__ import annotations


class CallError(Exception):
    """Root of the call engine's errors; ``str()`` is a message for people."""


class ServerUnavailable(CallError):
    """The signaling server could not be reached, or stopped answering."""


class BadServerUrl(CallError):
    """The signaling server address is not a ``ws://`` or ``wss://`` URL."""


class RoomFullError(CallError):
    """The room already holds as many people as it can."""


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
