"""The asyncio signaling client the call engine uses.

:class:`SignalingClient` speaks protocol v1 on the native endpoint (``/ws``)::

    client = SignalingClient("ws://127.0.0.1:8765")
    welcome = await client.connect()
    reply = await client.join("room-1")          # Created or Joined
    reply = await client.join("group", capacity=4)   # a room for 4, if it creates it
    reply = await client.join("ours", key=room_key)  # a keyed room (callapp extension)
    async for event in client.events():
        match event:
            case Ready(peers=peers): ...
            case Relayed(sender=sender, data=data): ...
            case Disconnected(): ...             # reconnecting
            case Reconnected(connection_id=new_id, rejoined=rejoined): ...
            case ClientClosed(): ...             # last event

Requests that have an answer (:meth:`~SignalingClient.join`) are awaited;
everything else the server sends arrives through
:meth:`~SignalingClient.events`, in the order the server sent it.

When the link drops the client emits :class:`Disconnected`, reconnects with
exponential backoff, rejoins the room it was in (asking for that room's
capacity, so that a room a restarted server makes again has its old size,
and with the room key it joined with) and emits :class:`Reconnected` with
its new connection id (the server gives every connection a fresh one). It
emits :class:`ClientClosed`, always the last event, when
:meth:`~SignalingClient.close` is called or when it gives up.

Every failure raises a subclass of :class:`SignalingError`, whose message is
fit to show to a user.

The room key is never logged: it is left out of requests' ``repr()``, and
websockets, which logs every frame at DEBUG, gets a logger that does not
log at DEBUG (:class:`~callapp.signaling.messages.QuietFrames`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeAlias

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.frames import CloseCode
from websockets.uri import parse_uri

from callapp.signaling.invite import AddressError, normalize_server_url, pin_digest
from callapp.signaling.messages import (
    MAX_MESSAGE_BYTES,
    MAX_ROOM_CAPACITY,
    MIN_ROOM_CAPACITY,
    ROOM_KEY_LENGTH,
    Created,
    Error,
    ErrorCode,
    Full,
    Join,
    Joined,
    JsonValue,
    Leave,
    PeerJoined,
    PeerLeft,
    ProtocolError,
    QuietFrames,
    Ready,
    Relayed,
    Send,
    UnknownServerMessage,
    Welcome,
    encode_request,
    is_valid_room_capacity,
    is_valid_room_key,
    is_valid_room_name,
    parse_server_message,
)

# Server messages are re-exported, so that users need only this module.
__all__ = [
    "BadCapacity",
    "BadRoom",
    "BadServerUrl",
    "CertificateMismatch",
    "ClientClosed",
    "ClientEvent",
    "ConnectionLost",
    "Created",
    "Disconnected",
    "Error",
    "ErrorCode",
    "Joined",
    "PeerJoined",
    "PeerLeft",
    "Ready",
    "Reconnected",
    "Relayed",
    "RoomFull",
    "ServerError",
    "ServerUnreachable",
    "SignalingClient",
    "SignalingError",
    "SignalingTimeout",
    "Unauthorized",
    "UntrustedCertificate",
    "Welcome",
    "normalize_url",
]

logger = logging.getLogger(__name__)

# -- errors ---------------------------------------------------------------------


class SignalingError(Exception):
    """Root of every error :class:`SignalingClient` raises; ``str()`` is for users."""


class BadServerUrl(SignalingError):
    """The server address is not a ``ws://`` or ``wss://`` URL."""


class ServerUnreachable(SignalingError):
    """The server could not be reached, or refused the WebSocket handshake."""


class UntrustedCertificate(ServerUnreachable):
    """A ``wss://`` server whose certificate the system does not trust (and no pin)."""


class CertificateMismatch(ServerUnreachable):
    """A ``wss://`` server whose certificate is not the one the invite pins."""


class SignalingTimeout(SignalingError):
    """The server did not answer in time."""


class ConnectionLost(SignalingError):
    """The client is not connected: the link dropped, or it was closed."""


class RoomFull(SignalingError):
    """The room is at capacity (``full``)."""

    def __init__(self, room: str) -> None:
        super().__init__(f"Room {room!r} is full")
        self.room = room


class BadRoom(SignalingError):
    """The room name is not allowed (``bad-room``)."""

    def __init__(self, room: str) -> None:
        super().__init__(f"Bad room name {room!r}: use 1-64 letters, digits, '-', '_' or '.'")
        self.room = room


class BadCapacity(SignalingError):
    """The room capacity asked for is not allowed.

    Either it is not an integer from 2 to 8 (checked before sending), or the
    server allows less (its ``bad-message`` answer; ``reason`` is then the
    server's own words, such as "this server allows rooms of 2 to 4 people").
    """

    def __init__(self, capacity: object, reason: str) -> None:
        super().__init__(f"Room capacity {capacity!r} is not allowed: {reason}")
        self.capacity = capacity
        self.reason = reason


class Unauthorized(SignalingError):
    """The room is keyed and the join's key did not open it (``unauthorized``).

    Either the join carried no key or another one, or it carried a key into
    a room made without one. ``reason`` is the server's own words, such as
    "this room needs the invite link's secret". The client stays where it
    was.
    """

    def __init__(self, room: str, reason: str) -> None:
        super().__init__(f"Not let into room {room!r}: {reason}")
        self.room = room
        self.reason = reason


#: Seconds between the rejoins a reconnected client retries while they are answered ``busy``.
REJOIN_BUSY_BACKOFF = (0.25, 0.5, 1.0, 2.0, 2.0)


class ServerError(SignalingError):
    """The server answered a request with an ``error`` (other than the above).

    ``code`` is the protocol error code (``busy``, ``rate-limited``, ...) or
    ``bad-message`` when the server itself broke the protocol.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"The signaling server answered {code}: {message}")
        self.code = code
        self.message = message


# -- client-side events ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The link to the server dropped; the client is reconnecting."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The client reconnected, with a new ``connection_id``.

    ``rejoined`` is the answer to the automatic rejoin of the room the client
    was in, or :obj:`None` when it was in no room or the room could not be
    rejoined (full meanwhile, or a room of that name with another key, or
    none, was made meanwhile); then :attr:`SignalingClient.room` is
    :obj:`None` too.
    """

    welcome: Welcome
    connection_id: str
    rejoined: Created | Joined | None


@dataclass(frozen=True, slots=True)
class ClientClosed:
    """The client stopped for good; the last event of :meth:`SignalingClient.events`."""

    reason: str


#: What :meth:`SignalingClient.events` yields. ``Error`` is an ``error`` the
#: server sent that answers no awaited request (``unknown-peer`` after a
#: :meth:`~SignalingClient.send`, for instance).
ClientEvent: TypeAlias = (
    PeerJoined | Ready | PeerLeft | Relayed | Error | Disconnected | Reconnected | ClientClosed
)


# -- URLs -------------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """Turn what a user typed into the server's native endpoint URL.

    The rules are :func:`callapp.signaling.invite.normalize_server_url`'s
    (the one normalizer the app's address field uses too): ``ws://h:p``
    becomes ``ws://h:p/ws`` (a URL without a path gets ``/ws``); ``http://``
    and ``https://`` become ``ws://`` and ``wss://`` (a browser link such as
    an invite gives its server's ``/ws``); ``h:p`` alone is taken as
    ``ws://h:p/ws``. Other paths are kept. The result is also one that
    websockets accepts.

    Raises:
        BadServerUrl: If no usable ``ws://`` or ``wss://`` URL results; the
            message says why and how to write one.
    """
    hint = "use ws://HOST:PORT or wss://HOST:PORT"
    try:
        result = normalize_server_url(url)
    except AddressError as exc:
        raise BadServerUrl(f"{str(exc).rstrip('.')} ({hint}).") from None
    try:
        parse_uri(result)
    except InvalidURI:
        raise BadServerUrl(f"Not a signaling server address: {url!r} ({hint}).") from None
    return result


def _pin_context() -> ssl.SSLContext:
    """TLS that checks nothing by itself: the pin check after the handshake is the trust.

    A self-signed certificate names no CA and often no usable host name, so
    the usual checks would refuse it; comparing the whole certificate with
    the pin is stronger than both.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its TLS certificate was not accepted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    return exc.strerror or str(exc) or type(exc).__name__


def _describe_close(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return "the connection was lost"
    try:
        name = CloseCode(frame.code).name.lower().replace("_", " ")
    except ValueError:
        name = "closed"
    return f"{frame.reason or name} (code {frame.code})"


@dataclass(slots=True)
class _PendingJoin:
    ref: str
    room: str
    capacity: int | None
    future: asyncio.Future[Created | Joined]


_END: Final = "end"


class SignalingClient:
    """A protocol v1 client that reconnects and rejoins on its own.

    Args:
        url: The server, as :func:`normalize_url` accepts it
            (``ws://host:port``, ``wss://host/ws``, ...).
        connect_timeout: Seconds allowed for TCP, TLS, the WebSocket
            handshake and the ``welcome``.
        request_timeout: Seconds allowed for the server to answer a join.
        reconnect: Reconnect when the link drops; without it, a drop ends
            the client (:class:`ClientClosed`).
        backoff_initial: Seconds before the first reconnection attempt; it
            doubles after each failure, up to ``backoff_max`` (with jitter,
            so that many clients of a restarted server spread out).
        backoff_max: Longest wait between attempts.
        max_reconnect_attempts: Failed attempts in a row after which the
            client gives up; :obj:`None` retries until :meth:`close`.
        ping_interval: Seconds between keepalive pings (:obj:`None`: off).
        ping_timeout: Seconds to wait for a pong before calling the link dead.
        ssl_context: TLS settings for ``wss://`` (default: system trust).
        pin: Trust exactly the server certificate whose SHA-256 (of its DER
            bytes) is this invite pin (:mod:`callapp.signaling.invite`), and
            no other: for self-signed hosts. Not with ``ssl_context``.
        proxy: Passed to websockets; the default connects directly, since
            signaling servers are usually on the LAN or the same host.

    Raises:
        BadServerUrl: If ``url`` is not usable.

    Attributes:
        url: The normalized native endpoint URL.
        connection_id: This connection's id, or :obj:`None` before
            :meth:`connect`; changes on every reconnection.
        ice_servers: ``RTCIceServer`` objects from the latest ``welcome``.
        room: The room joined, or :obj:`None`. Kept while reconnecting, so
            that it can be rejoined.
        room_capacity: The capacity of :attr:`room` from the server's latest
            ``created``/``joined``, or :obj:`None` when in no room. A rejoin
            asks for it, whoever created the room.
        welcome: The latest ``welcome``, or :obj:`None`.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        request_timeout: float = 5.0,
        reconnect: bool = True,
        backoff_initial: float = 0.25,
        backoff_max: float = 5.0,
        max_reconnect_attempts: int | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        ssl_context: ssl.SSLContext | None = None,
        pin: str | None = None,
        proxy: str | Literal[True] | None = None,
    ) -> None:
        self.url = normalize_url(url)
        self._pin: bytes | None = None
        if pin is not None:
            if ssl_context is not None:
                raise ValueError("give a pin or an ssl_context, not both")
            self._pin = pin_digest(pin)  # ValueError (InviteError) for a malformed pin
            ssl_context = _pin_context()
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_reconnect_attempts = max_reconnect_attempts
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.ssl_context = ssl_context
        self.proxy = proxy

        self.connection_id: str | None = None
        self.ice_servers: tuple[dict[str, Any], ...] = ()
        self.room: str | None = None
        self.room_capacity: int | None = None
        self.welcome: Welcome | None = None
        # The key :attr:`room` was joined with, for rejoins; never logged.
        self._room_key: str | None = None

        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[ClientEvent | Literal["end"]] = asyncio.Queue()
        # While rejoining after a reconnection, room events are held back so
        # that Reconnected comes before the Ready that the rejoin causes.
        self._held: list[ClientEvent] | None = None
        self._lock = asyncio.Lock()  # one join or leave at a time
        self._pending: _PendingJoin | None = None
        self._next_ref = 0
        self._closed = False
        self._ended = False

    # -- public API ----------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a link to the server is open."""
        return self._ws is not None

    @property
    def closed(self) -> bool:
        """True once the client stopped (:meth:`close`, or it gave up)."""
        return self._closed

    async def connect(self) -> Welcome:
        """Connect and return the server's ``welcome``.

        A first connection is not retried: the caller sees why it failed.
        Calling it while connected returns the current ``welcome``.

        Raises:
            ServerUnreachable: Connection refused, unknown host, TLS
                failure, HTTP refusal (``429`` when the server has too many
                connections from this address), ...
            SignalingTimeout: Nothing answered within ``connect_timeout``.
            ServerError: The server did not speak protocol v1.
            ConnectionLost: The client was closed.
        """
        if self._closed:
            raise ConnectionLost("The signaling client is closed")
        if self._ws is not None and self.welcome is not None:
            return self.welcome
        if self._reconnector is not None and not self._reconnector.done():
            # A second link beside the reconnector's would be attached twice.
            raise ConnectionLost(self._not_connected())
        ws, welcome = await self._open()
        if self.closed:  # close() ran meanwhile (the property stops mypy narrowing)
            await ws.close()
            raise ConnectionLost("The signaling client is closed")
        self._attach(ws, welcome)
        return welcome

    async def join(
        self, room: str, capacity: int | None = None, key: str | None = None
    ) -> Created | Joined:
        """Join ``room`` (leaving the current room if the join succeeds).

        ``capacity`` (2-8, callapp extension) is the room's size should this
        join create it; an existing room keeps its own, and :obj:`None`
        leaves it to the server's default. Returns ``Created`` when first
        in, else ``Joined`` with every member in join order; joining the
        current room again returns ``Joined``. Either carries the room's
        ``capacity`` (2 from a server without the extension).
        ``PeerJoined``/``Ready`` that follow arrive through :meth:`events`.

        ``key`` (callapp extension) is the room key derived from the room's
        secret (``callapp.call.security.room_key``): a join that creates the
        room makes it a keyed room, and joining a keyed room needs the same
        key. :obj:`None` joins as protocol v1 does. Rejoins after a
        reconnection send it again.

        Raises:
            BadRoom: ``room`` is not a valid name (checked before sending).
            BadCapacity: ``capacity`` is not an integer from 2 to 8 (checked
                before sending), or is above what the server allows.
            RoomFull: The room is at capacity; the client stays where it was.
            Unauthorized: The room's key is another one (or the room has
                none, or needs one); the client stays where it was.
            ValueError: ``key`` is not shaped like a room key
                (:data:`~callapp.signaling.messages.ROOM_KEY_LENGTH`
                base64url characters): a bug of the caller, not the user.
            SignalingTimeout: No answer within ``request_timeout``.
            ServerError: Any other ``error`` answer (``busy``, ...).
            ConnectionLost: Not connected, or the link dropped meanwhile.
        """
        if not is_valid_room_name(room):
            raise BadRoom(room)
        if capacity is not None and not is_valid_room_capacity(capacity):
            raise BadCapacity(
                capacity, f"rooms hold {MIN_ROOM_CAPACITY} to {MAX_ROOM_CAPACITY} people"
            )
        if key is not None and not is_valid_room_key(key):
            # Not quoted: whatever it is, it may be close to a real key.
            raise ValueError(
                f"a room key is {ROOM_KEY_LENGTH} base64url characters (32 bytes, unpadded)"
            )
        async with self._lock:
            return await self._join(room, capacity, key)

    async def leave(self) -> None:
        """Leave the current room, if any. The server sends no answer.

        While disconnected this only forgets the room (so that it is not
        rejoined): the server already dropped the old connection.
        """
        async with self._lock:
            self.room = None
            self.room_capacity = None
            self._room_key = None
            ws = self._ws
            if ws is not None:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(encode_request(Leave()))

    async def send(self, data: JsonValue, to: str | None = None) -> None:
        """Relay ``data`` (any JSON value) to connection ``to``, or to the room.

        There is no acknowledgement; an ``unknown-peer`` or ``not-in-room``
        answer arrives as an ``Error`` event.

        Raises:
            ConnectionLost: Not connected (reconnecting, or closed).
            TypeError: ``data`` cannot be serialized to JSON.
        """
        ws = self._ws
        if ws is None:
            raise ConnectionLost(self._not_connected())
        try:
            await ws.send(encode_request(Send(data=data, to=to)))
        except ConnectionClosed as exc:
            raise ConnectionLost(
                f"Lost the connection to the signaling server: {_describe_close(exc)}"
            ) from None

    def events(self) -> AsyncIterator[ClientEvent]:
        """Iterate over server and client events, in order.

        Yields ``PeerJoined``, ``Ready``, ``PeerLeft``, ``Relayed``,
        unmatched ``Error`` and the client events :class:`Disconnected`,
        :class:`Reconnected` and :class:`ClientClosed`; ends right after
        :class:`ClientClosed`. Meant for a single consumer. Events are queued
        from :meth:`connect` on, so none are lost before iteration starts.
        """
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ClientEvent]:
        while True:
            item = await self._events.get()
            if item is _END:
                # Leave the marker for any later iterator, so it ends too.
                self._events.put_nowait(_END)
                return
            assert not isinstance(item, str)
            yield item

    async def close(self) -> None:
        """Close the link and stop reconnecting; idempotent.

        :meth:`events` then yields ``ClientClosed("closed by the client")``
        (unless the client had already given up) and ends.
        """
        if self._closed:
            return
        self._closed = True
        if self._reconnector is not None and not self._reconnector.done():
            self._reconnector.cancel()
            # asyncio.wait, not await: a cancellation of close() itself must
            # not be swallowed along with the reconnector's.
            await asyncio.wait([self._reconnector])
        self._fail_pending(ConnectionLost("The signaling client was closed"))
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            await asyncio.wait([self._reader])
        self._end("closed by the client")

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- connection ------------------------------------------------------------

    async def _open(self) -> tuple[ClientConnection, Welcome]:
        """Open a WebSocket and read its ``welcome``."""
        url = self.url
        ws: ClientConnection | None = None
        # websockets refuses ssl=None for wss:// (it means "no TLS"); leave
        # it out to get the default context.
        tls: dict[str, Any] = {} if self.ssl_context is None else {"ssl": self.ssl_context}
        try:
            async with asyncio.timeout(self.connect_timeout):
                ws = await connect(
                    url,
                    open_timeout=None,  # the timeout above covers it all
                    ping_interval=self.ping_interval,
                    ping_timeout=self.ping_timeout,
                    close_timeout=self.connect_timeout,
                    max_size=4 * MAX_MESSAGE_BYTES,
                    proxy=self.proxy,
                    logger=QuietFrames(logging.getLogger("websockets.client")),
                    **tls,
                )
                self._check_pin(ws)
                frame = await ws.recv()
        except CertificateMismatch:
            await self._discard(ws)
            raise
        except TimeoutError:
            await self._discard(ws)
            raise SignalingTimeout(
                f"The signaling server at {url} did not answer within {self.connect_timeout:g} s"
            ) from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            why = {
                429: "too many connections from this address",
                404: "no signaling endpoint at this path",
                503: "the server is shutting down",
            }.get(status, exc.response.reason_phrase)
            raise ServerUnreachable(
                f"The signaling server at {url} refused the connection: HTTP {status} ({why})"
            ) from None
        except InvalidURI:
            raise BadServerUrl(f"Not a signaling server address: {url!r}") from None
        except InvalidHandshake:
            raise ServerUnreachable(
                f"Could not reach the signaling server at {url}: not a WebSocket server"
            ) from None
        except ssl.SSLCertVerificationError:
            raise UntrustedCertificate(
                f"The signaling server at {url} has a certificate this computer does not"
                " trust (a self-signed one?). Join with the host's invite link: it carries"
                " the certificate's pin."
            ) from None
        except OSError as exc:
            raise ServerUnreachable(
                f"Could not reach the signaling server at {url}: {_describe_os_error(exc)}"
            ) from None
        except ConnectionClosed as exc:
            raise ServerUnreachable(
                f"The signaling server at {url} closed the connection: {_describe_close(exc)}"
            ) from None
        try:
            welcome = parse_server_message(frame)
        except ProtocolError as exc:
            welcome = None
            problem = exc.message
        else:
            problem = f"sent {type(welcome).__name__} first"
        if not isinstance(welcome, Welcome):
            await self._discard(ws)
            raise ServerError(
                ErrorCode.BAD_MESSAGE,
                f"{url} is not a callapp signaling server ({problem}, not a welcome)",
            )
        return ws, welcome

    def _check_pin(self, ws: ClientConnection) -> None:
        """With a pin, refuse any server certificate but the pinned one."""
        if self._pin is None:
            return
        tls = ws.transport.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        if not der or not hmac.compare_digest(hashlib.sha256(der).digest(), self._pin):
            raise CertificateMismatch(
                f"The signaling server at {self.url} is not the one the invite names: its"
                " certificate does not match the invite's pin. Ask the host for a new link."
            )

    @staticmethod
    async def _discard(ws: ClientConnection | None) -> None:
        if ws is not None:
            # Don't wait for a closing handshake from a server that misbehaves.
            ws.transport.abort()
            await ws.wait_closed()

    def _attach(self, ws: ClientConnection, welcome: Welcome) -> None:
        self._ws = ws
        self.welcome = welcome
        self.connection_id = welcome.connection_id
        self.ice_servers = welcome.ice_servers
        self._reader = asyncio.create_task(self._read(ws), name="signaling-client-reader")
        logger.info("connected to %s as %s", self.url, welcome.connection_id)

    def _not_connected(self) -> str:
        if self._closed:
            return "The signaling client is closed"
        if self.welcome is None:
            return "Not connected to the signaling server yet"
        return f"Not connected to the signaling server at {self.url} (reconnecting)"

    async def _read(self, ws: ClientConnection) -> None:
        """Dispatch frames from ``ws`` until it closes."""
        try:
            async for frame in ws:
                self._on_frame(frame)
            reason = _describe_close(ws.protocol.close_exc)
        except ConnectionClosed as exc:
            reason = _describe_close(exc)
        self._on_link_lost(ws, reason)

    def _on_frame(self, frame: str | bytes) -> None:
        try:
            message = parse_server_message(frame)
        except ProtocolError as exc:
            logger.warning("ignored a malformed server message: %s", exc)
            return
        pending = self._pending
        match message:
            case Created() | Joined() if pending is not None and message.room == pending.room:
                if not pending.future.done():
                    pending.future.set_result(message)
            case Full() if pending is not None and message.room == pending.room:
                if not pending.future.done():
                    pending.future.set_exception(RoomFull(message.room))
            case Error() if pending is not None and message.ref == pending.ref:
                if pending.future.done():
                    return
                if message.code == ErrorCode.BAD_ROOM:
                    pending.future.set_exception(BadRoom(pending.room))
                elif message.code == ErrorCode.UNAUTHORIZED:
                    pending.future.set_exception(Unauthorized(pending.room, message.message))
                elif message.code == ErrorCode.BAD_MESSAGE and pending.capacity is not None:
                    # The join is well formed but for its capacity: above
                    # what this server allows.
                    pending.future.set_exception(BadCapacity(pending.capacity, message.message))
                else:
                    pending.future.set_exception(ServerError(message.code, message.message))
            case PeerJoined() | Ready() | PeerLeft() | Relayed() | Error():
                self._emit(message)
            case UnknownServerMessage() | Welcome() | Created() | Joined() | Full():
                # Unknown types are ignored by design; stray answers (a join
                # that already timed out) have nobody to go to.
                logger.debug("ignored %r", message)

    def _on_link_lost(self, ws: ClientConnection, reason: str) -> None:
        if ws is not self._ws:
            return  # a link we already gave up on, or close() did this
        self._ws = None
        self._fail_pending(ConnectionLost(f"Lost the connection to the signaling server: {reason}"))
        logger.info("lost %s: %s", self.url, reason)
        if self._closed:
            return
        if self._reconnector is not None and not self._reconnector.done():
            return  # dropped again while rejoining: the reconnector retries
        if not self.reconnect:
            self._closed = True
            self._end(f"connection lost: {reason}")
            return
        self._emit(Disconnected(reason))
        self._reconnector = asyncio.create_task(
            self._reconnect(), name="signaling-client-reconnect"
        )

    async def _reconnect(self) -> None:
        """Reconnect with backoff, rejoin the room, emit Reconnected."""
        delay = self.backoff_initial
        failures = 0
        last_error = ""
        while True:
            # Jitter spreads the clients of a restarted server over time.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(self.backoff_max, delay * 2)
            try:
                ws, welcome = await self._open()
            except SignalingError as exc:
                failures += 1
                last_error = str(exc)
                logger.info("reconnection attempt %d failed: %s", failures, exc)
                if (
                    self.max_reconnect_attempts is not None
                    and failures >= self.max_reconnect_attempts
                ):
                    self._closed = True
                    self._end(f"gave up after {failures} reconnection attempts: {last_error}")
                    return
                continue
            async with self._lock:
                self._held = []
                try:
                    self._attach(ws, welcome)
                    rejoined = await self._rejoin()
                    if self._ws is not ws:
                        continue  # dropped while rejoining: try again
                    held, self._held = self._held, None
                    self._emit(Reconnected(welcome, welcome.connection_id, rejoined))
                    for event in held:
                        self._emit(event)
                    return
                except ConnectionLost:
                    continue
                finally:
                    self._held = None

    async def _rejoin(self) -> Created | Joined | None:
        room = self.room
        if room is None:
            return None
        # A capacity this client could not ask for (a newer server's larger
        # room) is left to the server's default.
        capacity = self.room_capacity if is_valid_room_capacity(self.room_capacity) else None
        try:
            for delay in (*REJOIN_BUSY_BACKOFF, None):
                try:
                    return await self._join(room, capacity, self._room_key)
                except ServerError as exc:
                    # busy is passing (a server whose Redis is coming back
                    # holds joins): ask again, a few times, before giving up.
                    if exc.code != "busy" or delay is None:
                        raise
                    logger.info("rejoin of room %r answered busy; again in %g s", room, delay)
                    await asyncio.sleep(delay)
            raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
        except (RoomFull, BadRoom, BadCapacity, Unauthorized, ServerError, SignalingTimeout) as exc:
            logger.warning("could not rejoin room %r: %s", room, exc)
            self.room = None
            self.room_capacity = None
            self._room_key = None
            return None

    async def _join(
        self, room: str, capacity: int | None = None, key: str | None = None
    ) -> Created | Joined:
        ws = self._ws
        if ws is None:
            raise ConnectionLost(self._not_connected())
        self._next_ref += 1
        ref = f"join-{self._next_ref}"
        future: asyncio.Future[Created | Joined] = asyncio.get_running_loop().create_future()
        self._pending = _PendingJoin(ref, room, capacity, future)
        try:
            await ws.send(encode_request(Join(room=room, capacity=capacity, id=ref, key=key)))
            async with asyncio.timeout(self.request_timeout):
                reply = await future
        except TimeoutError:
            raise SignalingTimeout(
                f"The signaling server did not answer the join of room {room!r} "
                f"within {self.request_timeout:g} s"
            ) from None
        except ConnectionClosed as exc:
            raise ConnectionLost(
                f"Lost the connection to the signaling server: {_describe_close(exc)}"
            ) from None
        finally:
            self._pending = None
        self.room = room
        self.room_capacity = reply.capacity
        self._room_key = key
        return reply

    def _fail_pending(self, exc: SignalingError) -> None:
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_exception(exc)

    # -- events ------------------------------------------------------------------

    def _emit(self, event: ClientEvent) -> None:
        if self._ended:
            return
        if self._held is not None and not isinstance(event, Reconnected):
            self._held.append(event)
            return
        self._events.put_nowait(event)

    def _end(self, reason: str) -> None:
        if self._ended:
            return
        self._held = None
        self._emit(ClientClosed(reason))
        self._ended = True
        self._events.put_nowait(_END)
