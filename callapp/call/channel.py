"""The seam between a call and signaling: what a session needs from a channel.

:class:`SignalingChannel` is the small interface :class:`CallSession` drives.
:class:`callapp.signaling.client.SignalingClient` satisfies it as it is; the
in-memory hub of ``tests/call/memory.py`` satisfies it for tests without
sockets. ``events()`` yields :mod:`callapp.signaling.messages` values
(``PeerJoined``, ``Ready``, ``PeerLeft``, ``Relayed``, ``Error``) and
lifecycle events, which :func:`lifecycle` maps onto this module's
:class:`ChannelLost` / :class:`ChannelRestored` / :class:`ChannelClosed`, so
the session matches one set of types whichever channel it has.

:func:`wrap_errors` turns the client's ``SignalingError`` family into
:mod:`callapp.call.errors`, so views never import :mod:`callapp.signaling`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from callapp.call import errors
from callapp.signaling import client


class SignalingChannel(Protocol):
    """A connection to a signaling server, as a call session uses it."""

    @property
    def connection_id(self) -> str | None:
        """Our id on the server, once welcomed (it changes on reconnect)."""
        ...

    @property
    def ice_servers(self) -> Sequence[Mapping[str, Any]]:
        """The welcome's ``iceServers`` (``RTCIceServer``-shaped dicts)."""
        ...

    async def connect(self) -> Any:
        """Connect and wait for the welcome."""
        ...

    async def join(self, room: str, capacity: int | None = None, key: str | None = None) -> Any:
        """Join ``room`` (``key``: what its secret gives); returns ``created``/``joined``."""
        ...

    async def leave(self) -> None: ...

    async def send(self, data: Any, to: str | None = None) -> None:
        """Relay ``data`` to connection ``to``, or to the room when ``None``."""
        ...

    def events(self) -> AsyncIterator[Any]:
        """Server messages and lifecycle events, in order, until closed."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ChannelLost:
    """The signaling connection dropped; the channel is retrying."""

    reason: str


@dataclass(frozen=True, slots=True)
class ChannelRestored:
    """The channel reconnected, with a new ``connection_id``.

    ``rejoined``: the room was joined again; then ``peers`` are its members
    in join order (ours last) and ``capacity`` its size, as the join answered.
    """

    connection_id: str
    rejoined: bool
    peers: tuple[str, ...] = ()
    capacity: int | None = None


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    """The channel is closed for good (closed by us, or retries gave up)."""

    reason: str


Lifecycle: TypeAlias = ChannelLost | ChannelRestored | ChannelClosed


def lifecycle(event: object) -> Lifecycle | None:
    """``event`` as one of this module's lifecycle events, if it is one."""
    match event:
        case ChannelLost() | ChannelRestored() | ChannelClosed():
            return event
        case client.Disconnected(reason=reason):
            return ChannelLost(reason=reason)
        case client.Reconnected(connection_id=connection_id, rejoined=rejoined):
            if rejoined is None:
                return ChannelRestored(connection_id=connection_id, rejoined=False)
            peers = getattr(rejoined, "peers", None) or (connection_id,)
            return ChannelRestored(
                connection_id=connection_id,
                rejoined=True,
                peers=tuple(peers),
                capacity=rejoined.capacity,
            )
        case client.ClientClosed(reason=reason):
            return ChannelClosed(reason=reason)
    return None


#: The client's errors, most specific first, and the call error each becomes.
_ERROR_MAP: tuple[tuple[type[client.SignalingError], type[errors.CallError]], ...] = (
    (client.BadServerUrl, errors.BadServerUrl),
    (client.ServerUnreachable, errors.ServerUnavailable),
    (client.SignalingTimeout, errors.ServerUnavailable),
    (client.ConnectionLost, errors.ServerUnavailable),
    (client.RoomFull, errors.RoomFullError),
    (client.BadRoom, errors.BadRoomError),
    (client.BadCapacity, errors.RoomCapacityError),
    (client.Unauthorized, errors.RoomLockedError),
    (client.SignalingError, errors.CallError),
)


def translate(exc: BaseException) -> errors.CallError | None:
    """The :exc:`CallError` for a signaling client error, else ``None``."""
    if isinstance(exc, errors.CallError):
        return exc
    if isinstance(exc, client.RoomFull):
        return errors.RoomFullError(room=exc.room)
    for source, target in _ERROR_MAP:
        if isinstance(exc, source):
            return target(str(exc) or "signaling failed")
    if isinstance(exc, OSError):
        return errors.ServerUnavailable(f"the signaling server is unreachable: {exc}")
    return None


@contextlib.contextmanager
def wrap_errors() -> Iterator[None]:
    """Re-raise signaling client errors as :exc:`CallError` subclasses."""
    try:
        yield
    except errors.CallError:
        raise
    except Exception as exc:
        translated = translate(exc)
        if translated is None:
            raise
        raise translated from exc
