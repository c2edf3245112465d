"""The seam between a call and signaling: what a session needs from a channel.

:class:`SignalingChannel` is the small interface :class:`CallSession` drives.
:class:`callapp.signaling.client.SignalingClient` satisfies it as it is; the
in-memory hub of :mod:`callapp.call.memory` satisfies it for tests without
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

    async def join(self, room: str) -> Any:
        """Join ``room``; returns the ``created``/``joined`` message."""
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
    """The channel reconnected, with a new ``connection_id``."""

    connection_id: str
    rejoined: bool


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    """The channel is closed for good (closed by us, or retries gave up)."""

    reason: str


Lifecycle: TypeAlias = ChannelLost | ChannelRestored | ChannelClosed


def lifecycle(event: object) -> Lifecycle | None:
    """``event`` as one of this module's lifecycle events, if it is one."""
    if isinstance(event, ChannelLost | ChannelRestored | ChannelClosed):
        return event
    try:
        from callapp.signaling import client
    except ImportError:  # pragma: no cover - the client is part of the package
        return None
    disconnected = getattr(client, "Disconnected", None)
    reconnected = getattr(client, "Reconnected", None)
    closed = getattr(client, "ClientClosed", None)
    if disconnected is not None and isinstance(event, disconnected):
        return ChannelLost(reason=str(getattr(event, "reason", "")))
    if reconnected is not None and isinstance(event, reconnected):
        return ChannelRestored(
            connection_id=str(getattr(event, "connection_id", "")),
            rejoined=bool(getattr(event, "rejoined", False)),
        )
    if closed is not None and isinstance(event, closed):
        return ChannelClosed(reason=str(getattr(event, "reason", "")))
    return None


#: (client error class name, call error class, message when the original has none)
_ERROR_MAP: tuple[tuple[str, type[errors.CallError], str], ...] = (
    ("BadServerUrl", errors.BadServerUrl, "the server address is not a ws:// URL"),
    ("ServerUnreachable", errors.ServerUnavailable, "the signaling server is unreachable"),
    ("SignalingTimeout", errors.ServerUnavailable, "the signaling server did not answer"),
    ("ConnectionLost", errors.ServerUnavailable, "the connection to the server was lost"),
    ("RoomFull", errors.RoomFullError, "the room is full"),
    ("BadRoom", errors.BadRoomError, "that is not a valid room name"),
    ("ServerError", errors.CallError, "the signaling server refused the request"),
    ("SignalingError", errors.CallError, "signaling failed"),
)


def translate(exc: BaseException) -> errors.CallError | None:
    """The :exc:`CallError` for a signaling client error, else ``None``."""
    if isinstance(exc, errors.CallError):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "SignalingError" not in names:
        if isinstance(exc, OSError):
            return errors.ServerUnavailable(f"the signaling server is unreachable: {exc}")
        return None
    for name, call_error, fallback in _ERROR_MAP:
        if name in names:
            return call_error(str(exc) or fallback)
    return None  # pragma: no cover - SignalingError itself is in the map


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
