"""The signaling server: a websockets loop around the sans-I/O room router.

:class:`SignalingServer` listens on one port and serves:

* ``/ws`` -- protocol v1, the native endpoint;
* ``/apigw`` -- the API Gateway compatibility endpoint; its connections share
  the native connection namespace, so each side can reach the other by id;
* plain HTTP: ``GET /`` (the browser client), ``GET /static/<name>``,
  ``GET /healthz`` and ``GET /metrics``; ``/ws`` or ``/apigw`` without an
  upgrade answers 426, anything else 404.

For each message the server checks size, then rate, then JSON, then schema
(the first failure answers an ``error``), asks
:class:`~callapp.signaling.rooms.RoomRouter` what to deliver, and encodes each
delivery for the recipient's endpoint. Every connection has one outbound
queue drained by one writer task: deliveries are queued in the order the
router produced them, so messages from one sender reach one receiver in order,
and a slow receiver never stalls the sender's read loop.

Room keys (``join``'s ``key``) are opaque strings to the server: the router
compares them, nothing logs them. websockets' own DEBUG log would print
every frame, a keyed ``join`` included, so the server hands it a logger
that never logs at DEBUG (:class:`QuietFrames`); refused joins are counted
in ``callapp_signaling_unauthorized_joins_total``.

The server runs inside whatever asyncio loop is already running (the desktop
app runs it on qasync)::

    async with SignalingServer(port=0) as server:
        print(server.url)
        ...
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import http
import json
import logging
import mimetypes
import re
import ssl
import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeAlias
from urllib.parse import urlsplit

from prometheus_client import Counter
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from callapp.signaling.limits import AbuseCounter, CallAttemptLimiter, Clock, TokenBucket
from callapp.signaling.messages import (
    ABSENT,
    MAX_MESSAGE_BYTES,
    ApigwPing,
    ApigwSend,
    Error,
    ErrorCode,
    Join,
    JsonValue,
    ProtocolError,
    QuietFrames,
    Relayed,
    Send,
    ServerMessage,
    Welcome,
    encode,
    encode_apigw,
    encode_apigw_answer,
    new_connection_id,
    parse_apigw_request,
    parse_request,
)
from callapp.signaling.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from callapp.signaling.metrics import PREFIX as METRICS_PREFIX
from callapp.signaling.metrics import SignalingMetrics
from callapp.signaling.rooms import (
    DEFAULT_MAX_ROOM_CAPACITY,
    DEFAULT_ROOM_CAPACITY,
    Deliver,
    RoomRouter,
)

__all__ = ["SERVER_NAME", "VERSION", "WEB_ROOT", "SignalingServer"]

logger = logging.getLogger(__name__)


def _installed_version() -> str:
    # Read from the distribution rather than ``callapp.__version__``: an
    # editable install made before callapp/__init__.py existed imports
    # ``callapp`` as a namespace package, which has no attributes.
    try:
        return version("callapp")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "0.0.0"


#: The version of callapp, as ``welcome`` and ``--version`` report it.
VERSION: Final = _installed_version()

#: The ``server`` field of ``welcome``.
SERVER_NAME: Final = f"callapp/{VERSION}"

#: Where ``GET /`` and ``GET /static/<name>`` find their files by default.
WEB_ROOT: Final = Path(__file__).resolve().parent / "web"

NATIVE_PATH: Final = "/ws"
APIGW_PATH: Final = "/apigw"

# A static file name is one path component: no separators, no leading dot,
# so neither "../x" nor "%2e%2e" (never decoded here) can leave WEB_ROOT.
_STATIC_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")

Endpoint: TypeAlias = Literal["ws", "apigw"]


@dataclasses.dataclass(frozen=True, slots=True)
class _Close:
    """Outbox sentinel: close the connection once what precedes it is written."""

    code: int
    reason: str


@dataclasses.dataclass(eq=False, slots=True)
class _Peer:
    """One live connection, as the server sees it."""

    id: str
    endpoint: Endpoint
    ws: ServerConnection
    bucket: TokenBucket
    abuse: AbuseCounter
    outbox: asyncio.Queue[str | _Close]
    writer: asyncio.Task[None] | None = None
    closing: bool = False


def _too_large(frame: str | bytes, limit: int) -> bool:
    """True if ``frame`` takes more than ``limit`` bytes (UTF-8 for text)."""
    if not isinstance(frame, str):
        return len(frame) > limit
    # UTF-8 takes 1-4 bytes per code point: only strings between limit/4 and
    # limit code points long need encoding to know.
    if len(frame) > limit:
        return True
    if 4 * len(frame) <= limit:
        return False
    return len(frame.encode("utf-8", "surrogatepass")) > limit


def _peek_ref(frame: str | bytes) -> JsonValue:
    """The request ``id`` of a frame that failed before parsing, if it has one."""
    if not isinstance(frame, str):
        return ABSENT
    try:
        value = json.loads(frame)
    except (ValueError, RecursionError):
        return ABSENT
    return value.get("id", ABSENT) if isinstance(value, dict) else ABSENT


def _response(
    status: http.HTTPStatus,
    body: bytes,
    content_type: str,
    extra: Iterable[tuple[str, str]] = (),
) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            *extra,
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _text(status: http.HTTPStatus, text: str, extra: Iterable[tuple[str, str]] = ()) -> Response:
    return _response(status, text.encode(), "text/plain; charset=utf-8", extra)


def _content_type(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    kind = guessed or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        kind += "; charset=utf-8"
    return kind


class SignalingServer:
    """A protocol v1 signaling server on one TCP port.

    Args:
        host: Interface to bind; ``127.0.0.1`` keeps the server local.
        port: TCP port; ``0`` picks a free one (read it back from
            :attr:`port` after :meth:`start`).
        room_capacity: Members that make a room complete (and full) when
            its creator's ``join`` asks for no ``capacity``; at most
            ``max_room_capacity``.
        max_room_capacity: The largest ``capacity`` (2-8) a ``join`` may
            ask for (it sizes the room only if the join creates it); more is
            answered ``bad-message`` ("this server allows rooms of 2 to N
            people") and joins nothing.
        max_rooms: Rooms that may exist at once; a join that would create one
            more is answered ``busy``. :obj:`None` means no limit.
        require_room_keys: Only joins that carry a room ``key`` may create
            rooms (a keyless one is answered ``unauthorized``). Off by
            default: rooms without a key work as in protocol v1.
        max_unanswered_calls: Offers relayed by id outside a room (dialled
            calls) that may wait unanswered per caller, and per callee, in
            any minute; one more is answered ``rate-limited``. 0: no limit.
        ice_servers: ``RTCIceServer`` objects sent in every ``welcome``.
        max_message_bytes: Largest message accepted, in bytes after
            reassembly (the limit itself is allowed); larger ones are answered
            ``too-large``.
        max_frame_bytes: Largest message websockets reads at all; anything
            larger closes the connection with 1009. Defaults to four times
            ``max_message_bytes`` so that moderately oversized messages get a
            ``too-large`` answer rather than a closed connection.
        rate: Messages per second allowed per connection, on average.
        burst: Messages allowed at once per connection.
        abuse_threshold: Strikes (``bad-json``, ``bad-message``,
            ``too-large``, ``rate-limited`` answers, draining at
            ``abuse_decay`` per second) after which the connection is closed
            with 1008.
        abuse_decay: Strikes forgiven per second.
        max_connections_per_address: WebSocket connections allowed from one
            client IP address; more are refused with HTTP 429.
        max_outbox: Messages queued for one slow recipient before it is
            closed with 1013 (try again later).
        ping_interval: Seconds between keepalive pings (:obj:`None`: off).
        ping_timeout: Seconds to wait for a pong before dropping the peer.
        open_timeout: Seconds allowed for an opening handshake (or any HTTP
            request) to arrive.
        close_timeout: Seconds to wait for a closing handshake; a peer that
            does not read is then cut off.
        ssl_context: Serve ``wss://`` and ``https://`` with this context.
        web_root: Folder of the browser client (default: :data:`WEB_ROOT`).
        clock: Time source of the rate and abuse limits (tests fake it).

    Raises:
        ValueError: If a limit is out of range (``room_capacity`` above
            ``max_room_capacity`` included).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        room_capacity: int = DEFAULT_ROOM_CAPACITY,
        max_room_capacity: int = DEFAULT_MAX_ROOM_CAPACITY,
        max_rooms: int | None = None,
        require_room_keys: bool = False,
        max_unanswered_calls: int = 10,
        ice_servers: Iterable[Mapping[str, Any]] = (),
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_frame_bytes: int | None = None,
        rate: float = 50.0,
        burst: int = 200,
        abuse_threshold: float = 64.0,
        abuse_decay: float = 1.0,
        max_connections_per_address: int = 256,
        max_outbox: int = 1024,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float = 10.0,
        close_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        web_root: Path | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be at least 1")
        if max_frame_bytes is None:
            max_frame_bytes = 4 * max_message_bytes
        if max_frame_bytes < max_message_bytes:
            raise ValueError("max_frame_bytes must be at least max_message_bytes")
        if max_connections_per_address < 1:
            raise ValueError("max_connections_per_address must be at least 1")
        if max_outbox < 1:
            raise ValueError("max_outbox must be at least 1")
        # Fail now, not on the first connection, if the limits are unusable.
        TokenBucket(rate, burst, clock)
        AbuseCounter(abuse_threshold, abuse_decay, clock)
        servers = []
        for entry in ice_servers:
            if "urls" not in entry:
                raise ValueError(f"an ICE server needs 'urls': {entry!r}")
            servers.append(dict(entry))

        self.host = host
        self._requested_port = port
        self.ice_servers: tuple[dict[str, Any], ...] = tuple(servers)
        self.max_message_bytes = max_message_bytes
        self.max_frame_bytes = max_frame_bytes
        self.rate = rate
        self.burst = burst
        self.abuse_threshold = abuse_threshold
        self.abuse_decay = abuse_decay
        self.max_connections_per_address = max_connections_per_address
        self.max_outbox = max_outbox
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.ssl_context = ssl_context
        self.web_root = (web_root or WEB_ROOT).resolve()
        self._clock = clock

        self.router = RoomRouter(
            capacity=room_capacity,
            max_rooms=max_rooms,
            max_room_capacity=max_room_capacity,
            require_keys=require_room_keys,
        )
        self.metrics = SignalingMetrics(
            connections=lambda: self.router.connection_count,
            rooms=lambda: self.router.room_count,
        )
        self.unauthorized_joins = Counter(
            f"{METRICS_PREFIX}_unauthorized_joins",
            "Joins refused because their room key was missing or wrong",
            registry=self.metrics.registry,
        )
        self.calls = CallAttemptLimiter(max_unanswered_calls, 60.0, clock)
        self.calls_refused = Counter(
            f"{METRICS_PREFIX}_calls_refused",
            "Dialled calls refused: too many unanswered from that caller or to that callee",
            registry=self.metrics.registry,
        )
        self._peers: dict[str, _Peer] = {}
        self._per_address: Tally[str] = Tally()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Server | None = None
        self._port: int | None = None
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving in the running event loop.

        Raises:
            RuntimeError: If the server was already started.
            OSError: If the address cannot be bound (port in use, ...).
        """
        if self._server is not None or self._stopped:
            raise RuntimeError("a SignalingServer can be started once")
        self._server = await serve(
            self._handle_connection,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            max_size=self.max_frame_bytes,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            open_timeout=self.open_timeout,
            close_timeout=self.close_timeout,
            ssl=self.ssl_context,
            logger=QuietFrames(logging.getLogger("websockets.server")),
        )
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info("signaling server listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection with 1001 "server shutting down" and stop.

        Returns once every connection handler has finished. Idempotent; a
        server that was never started just becomes unusable.
        """
        self._stopped = True
        server = self._server
        if server is None:
            return
        server.close(code=CloseCode.GOING_AWAY, reason="server shutting down")
        try:
            async with asyncio.timeout(self.close_timeout + 1.0):
                await server.wait_closed()
        except TimeoutError:
            # Peers that stopped reading hold their closing handshake forever
            # (see _close); cut them off.
            for peer in list(self._peers.values()):
                peer.ws.transport.abort()
            await server.wait_closed()
        logger.info("signaling server on port %s stopped", self._port)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when started with port 0).

        Raises:
            RuntimeError: Before :meth:`start`.
        """
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def _authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The native endpoint, ``ws://HOST:PORT/ws`` (``wss://`` with TLS)."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self._authority}{NATIVE_PATH}"

    @property
    def apigw_url(self) -> str:
        """The compatibility endpoint, ``ws://HOST:PORT/apigw``."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self._authority}{APIGW_PATH}"

    @property
    def http_url(self) -> str:
        """The browser client's page, ``http://HOST:PORT/`` (``https://`` with TLS)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self._authority}/"

    @property
    def connection_ids(self) -> frozenset[str]:
        """Ids of the live connections on both endpoints."""
        return frozenset(self._peers)

    # -- HTTP --------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        upgrade = any("websocket" in value.lower() for value in request.headers.get_all("Upgrade"))
        if path in (NATIVE_PATH, APIGW_PATH):
            if not upgrade:
                return _text(
                    http.HTTPStatus.UPGRADE_REQUIRED,
                    f"{path} is a WebSocket endpoint; connect with a WebSocket client.\n",
                    [("Upgrade", "websocket")],
                )
            return self._admit(connection)
        if upgrade:
            return _text(http.HTTPStatus.NOT_FOUND, f"no WebSocket endpoint at {path}\n")
        if path == "/healthz":
            return _text(http.HTTPStatus.OK, "ok")
        if path == "/metrics":
            return _response(http.HTTPStatus.OK, self.metrics.render(), METRICS_CONTENT_TYPE)
        if path == "/":
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        return _text(http.HTTPStatus.NOT_FOUND, "not found\n")

    def _static(self, name: str) -> Response:
        missing = _text(http.HTTPStatus.NOT_FOUND, "not found\n")
        if not _STATIC_NAME.fullmatch(name):
            return missing
        path = self.web_root / name
        try:
            # Small files, read on demand: the page is edited during development.
            body = path.read_bytes()
        except OSError:
            return missing
        return _response(http.HTTPStatus.OK, body, _content_type(path))

    def _admit(self, connection: ServerConnection) -> Response | None:
        """Reserve a per-address slot for a WebSocket handshake, or refuse it."""
        address = str(connection.remote_address[0])
        if self._per_address[address] >= self.max_connections_per_address:
            self.metrics.connections_refused.labels(reason="per-address").inc()
            logger.warning(
                "refused a connection from %s: %d connections already open",
                address,
                self._per_address[address],
            )
            return _text(
                http.HTTPStatus.TOO_MANY_REQUESTS,
                "too many connections from your address\n",
            )
        self._per_address[address] += 1

        def release(_: object) -> None:
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]

        # The slot is held from the handshake until the TCP connection is
        # gone, whatever happens in between, so concurrent handshakes from
        # one address cannot overshoot the cap.
        connection.connection_lost_waiter.add_done_callback(release)
        return None

    # -- WebSocket ---------------------------------------------------------

    async def _handle_connection(self, ws: ServerConnection) -> None:
        assert ws.request is not None  # the handshake is done
        endpoint: Endpoint = "apigw" if urlsplit(ws.request.path).path == APIGW_PATH else "ws"
        connection_id = new_connection_id()
        while self.router.is_connected(connection_id):  # pragma: no cover - 96 random bits
            connection_id = new_connection_id()
        peer = _Peer(
            id=connection_id,
            endpoint=endpoint,
            ws=ws,
            bucket=TokenBucket(self.rate, self.burst, self._clock),
            abuse=AbuseCounter(self.abuse_threshold, self.abuse_decay, self._clock),
            outbox=asyncio.Queue(),
        )
        self.router.connect(connection_id)
        self._peers[connection_id] = peer
        self.metrics.connections_opened.labels(endpoint=endpoint).inc()
        logger.info("%s connected on /%s from %s", connection_id, endpoint, ws.remote_address)
        peer.writer = asyncio.create_task(self._write(peer), name=f"signaling-writer-{peer.id}")
        try:
            if endpoint == "ws":
                welcome = Welcome(connection_id, SERVER_NAME, self.ice_servers)
                self._enqueue(peer, encode(welcome))
            while not peer.closing:
                frame = await ws.recv()
                self._on_frame(peer, frame)
            # Abuse: the writer flushes the last error, then closes with 1008.
            await ws.wait_closed()
        except ConnectionClosed as exc:
            logger.info("%s disconnected: %s", connection_id, exc)
        finally:
            del self._peers[connection_id]
            self.calls.forget(connection_id)
            self._dispatch(self.router.disconnect(connection_id))
            if not peer.writer.done():
                peer.writer.cancel()
            logger.debug("%s forgotten", connection_id)

    async def _write(self, peer: _Peer) -> None:
        """Drain ``peer``'s outbox into its socket, in order."""
        try:
            while True:
                item = await peer.outbox.get()
                if isinstance(item, _Close):
                    await self._close(peer.ws, item)
                    return
                await peer.ws.send(item)
        except ConnectionClosed:
            return

    async def _close(self, ws: ServerConnection, close: _Close) -> None:
        """Close ``ws``, aborting it if the peer does not read.

        websockets waits for the write buffer to drain before its close
        timeout starts; a peer that stopped reading would hold the close (and
        the handler) forever.
        """
        try:
            async with asyncio.timeout(self.close_timeout):
                await ws.close(close.code, close.reason)
        except TimeoutError:
            ws.transport.abort()

    def _enqueue(self, peer: _Peer, item: str | _Close) -> None:
        if peer.closing:
            return
        if isinstance(item, _Close):
            peer.closing = True
            peer.outbox.put_nowait(item)
        elif peer.outbox.qsize() < self.max_outbox:
            peer.outbox.put_nowait(item)
        else:
            # The writer is stuck behind a peer that does not read: queueing
            # a close behind it would never be reached. Close it now.
            logger.warning("%s is not reading its messages; closing it", peer.id)
            peer.closing = True
            close = _Close(CloseCode.TRY_AGAIN_LATER, "too many messages queued")
            task = asyncio.create_task(self._close(peer.ws, close))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _on_frame(self, peer: _Peer, frame: str | bytes) -> None:
        """Check, parse and route one message from ``peer``."""
        self.metrics.messages_received.labels(endpoint=peer.endpoint).inc()
        answer = False
        try:
            if _too_large(frame, self.max_message_bytes):
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"messages are limited to {self.max_message_bytes} bytes",
                )
            if not peer.bucket.allow():
                raise ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    f"slow down: {self.rate:g} messages/s, bursts of {self.burst}",
                    _peek_ref(frame),
                )
            if peer.endpoint == "ws":
                request = parse_request(frame)
                if isinstance(request, Send):
                    self._check_call_attempt(peer.id, request)
                deliveries = self.router.handle(peer.id, request)
                if isinstance(request, Join):
                    self._note_join(peer, request, deliveries)
            else:
                deliveries = self._route_apigw(peer, frame)
                # An error answer already names the sender; anything else
                # gets the plain answer, after the delivery to TO.
                answer = not any(
                    d.to == peer.id and isinstance(d.message, Error) for d in deliveries
                )
        except ProtocolError as exc:
            deliveries = [Deliver(peer.id, exc.to_message())]
        self._dispatch(deliveries)
        if answer:
            self._enqueue(peer, encode_apigw_answer(peer.id))
        for delivery in deliveries:
            if (
                delivery.to == peer.id
                and isinstance(delivery.message, Error)
                and peer.abuse.record(delivery.message.code)
            ):
                logger.warning("%s keeps sending bad messages; closing it", peer.id)
                self._enqueue(peer, _Close(CloseCode.POLICY_VIOLATION, "too many bad messages"))
                break

    def _check_call_attempt(self, sender: str, send: Send) -> None:
        """Count a dialled call's offer (raise ``rate-limited`` past the limit); note answers.

        The server reads no SDP: it only looks whether relayed ``data`` is a
        call message of PROTOCOL.md's shape with an offer or an answer in it.
        """
        to = send.to
        if to is None or not self.router.is_connected(to):
            return
        kind = _sdp_kind(send.data)
        if kind == "answer":
            self.calls.answered(caller=to, callee=sender)
            return
        room = self.router.room_of(sender)
        if kind != "offer" or (room is not None and room == self.router.room_of(to)):
            return
        if not self.calls.attempt(sender, to):
            self.calls_refused.inc()
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                "too many unanswered calls: wait a minute before calling again",
                send.id,
            )

    def _note_join(self, peer: _Peer, join: Join, deliveries: Iterable[Deliver]) -> None:
        """Count and log (without its key, ever) a join the router refused as unauthorized."""
        for delivery in deliveries:
            message = delivery.message
            if (
                delivery.to == peer.id
                and isinstance(message, Error)
                and message.code == ErrorCode.UNAUTHORIZED
            ):
                self.unauthorized_joins.inc()
                logger.debug(
                    "%s was refused room %r (%s)",
                    peer.id,
                    join.room,
                    "its key does not open it" if join.key is not None else "no key",
                )

    def _route_apigw(self, peer: _Peer, frame: str | bytes) -> list[Deliver]:
        """Route one /apigw frame (its answer is the caller's to send)."""
        request = parse_apigw_request(frame)
        if isinstance(request, ApigwSend):
            send = Send(data=request.message, to=request.to)
            self._check_call_attempt(peer.id, send)
            return self.router.handle(peer.id, send)
        assert isinstance(request, ApigwPing)
        return []

    def _dispatch(self, deliveries: Iterable[Deliver]) -> None:
        for delivery in deliveries:
            self._deliver(delivery.to, delivery.message)

    def _deliver(self, to: str, message: ServerMessage) -> None:
        peer = self._peers.get(to)
        if peer is None:
            return
        if isinstance(message, Error):
            self.metrics.errors.labels(code=str(message.code)).inc()
        elif isinstance(message, Relayed):
            self.metrics.messages_relayed.inc()
        text = encode(message) if peer.endpoint == "ws" else encode_apigw(message, peer.id)
        if text is not None:
            self._enqueue(peer, text)


def _sdp_kind(data: object) -> str | None:
    """``"offer"`` or ``"answer"`` for relayed ``{"type": "SDP", ...}`` data, else None."""
    if isinstance(data, dict) and data.get("type") == "SDP":
        payload = data.get("payload")
        if isinstance(payload, dict) and payload.get("type") in ("offer", "answer"):
            return str(payload["type"])
    return None
