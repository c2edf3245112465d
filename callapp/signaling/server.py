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
queue, written at the end of each loop iteration (all its frames in one
write, up to the transport's limit): deliveries are queued in the order the
router produced them, so messages from one sender reach one receiver in order,
and a slow receiver never stalls the sender's read loop. Complete text frames
are read in the connection's ``data_received`` and handled there; websockets
reads everything else (:meth:`SignalingServer._on_data`).

Room keys (``join``'s ``key``) are opaque strings to the server: the router
compares them, nothing logs them. websockets' own DEBUG log would print
every frame, a keyed ``join`` included, so the server hands it a logger
that never logs at DEBUG (:class:`QuietFrames`); refused joins are counted
in ``callapp_signaling_unauthorized_joins_total``.

With ``redis="redis://HOST:PORT/DB"`` the rooms, connection ids and relays
live in Redis instead, shared by every server given the same URL
(:class:`~callapp.signaling.backplane.Backplane`): the room rules are the
same router's, ``/healthz`` answers 503 while Redis is unreachable.

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
import logging
import mimetypes
import re
import resource
import ssl
import struct
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeAlias
from urllib.parse import urlsplit

from prometheus_client import Counter
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.streams import StreamReader

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

from callapp.signaling.guard import (
    DEFAULT_CONNECTS_PER_SECOND,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
    Admission,
    AdmissionLimits,
    PressureLog,
    Refusal,
    Ticket,
    TrustedProxies,
    address_group,
    origin_allowed,
)
from callapp.signaling.heap import Trimmer, malloc_trim
from callapp.signaling.limits import AbuseCounter, CallAttemptLimiter, Clock, TokenBucket
from callapp.signaling.messages import (
    MAX_MESSAGE_BYTES,
    ApigwPing,
    ApigwSend,
    Error,
    ErrorCode,
    Join,
    ProtocolError,
    QuietFrames,
    Relayed,
    Send,
    ServerMessage,
    Welcome,
    encode,
    encode_apigw,
    encode_apigw_answer,
    encode_relayed,
    new_connection_id,
    parse_apigw_request,
    parse_request,
    request_id,
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
from callapp.signaling.turn import TurnConfig, welcome_servers

if TYPE_CHECKING:
    from callapp.signaling.backplane import Backplane

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


#: Bytes an outbox holds for one recipient before it is closed with 1013.
DEFAULT_MAX_OUTBOX_BYTES: Final = 2**20

#: Bytes all outboxes together hold before the largest is closed with 1013.
DEFAULT_MAX_QUEUED_BYTES: Final = 64 * 2**20

#: Inflated bytes per second one connection may send when it negotiated
#: permessage-deflate (compression is off by default), with a burst of four
#: times that.
DEFAULT_MAX_INFLATED_BYTES_PER_SECOND: Final = 2**20

#: Frames websockets buffers for a connection before it stops reading its
#: socket. The handler reads as fast as frames come, except while its
#: address waits for its inbound share (see ``max_address_bytes_per_second``):
#: then 2 frames of up to ``max_frame_bytes`` each, not websockets' default
#: of 16, wait in memory, and TCP holds back the rest at the sender's end.
_MAX_QUEUE: Final = 2

#: What each message costs in the per-address inbound share besides its
#: length: small messages take the loop's time too.
_MESSAGE_COST: Final = 1024

#: The listening socket's accept queue. asyncio's default of 100 overflows
#: when an attacker opens hundreds of connections at once, and a legitimate
#: client caught in the overflow waits for TCP to retransmit (1-3 s).
_BACKLOG: Final = 512

#: Descriptors kept out of the socket budget: the listening sockets, the
#: selector, logs, files of the web root, and the up to ``_BACKLOG`` sockets
#: asyncio accepts in one go before any of them reaches the server.
_RESERVED_DESCRIPTORS: Final = _BACKLOG + 100

#: Seconds between summary lines of what the limits refused and closed.
PRESSURE_LOG_INTERVAL: Final = 10.0

#: Bytes the server lets wait in a connection's transport (websockets'
#: ``write_limit``, its default) before the rest stays in the outbox.
_WRITE_LIMIT: Final = 2**15

#: Messages an outbox gathers within one loop iteration before it is written
#: at once: a burst from many senders must not look like a slow reader.
_FLUSH_AT: Final = 64

#: Headers of unfragmented text frames with payloads of 0-125 bytes.
_SMALL_HEADERS: Final = tuple(bytes((0x81, n)) for n in range(126))

_OPEN: Final = State.OPEN
_UNPACK_16: Final = struct.Struct("!H").unpack_from
_HEADER_16: Final = struct.Struct("!BBH").pack
#: ``sys.getsizeof`` of a bytes object beyond its content: ``len`` plus this
#: is its size, without the call (two per relayed message).
_BYTES_HEAD: Final = sys.getsizeof(b"")
_UNPACK_64: Final = struct.Struct("!Q").unpack_from

#: What websockets' frame parser waits in when it holds no byte of a frame.
_AT_FRAME_START: Final = StreamReader.at_eof.__code__


@dataclasses.dataclass(eq=False, slots=True)
class _Share:
    """Inbound bytes per second one address group may have handled, shared by its connections."""

    bucket: TokenBucket
    users: int = 0


@dataclasses.dataclass(eq=False, slots=True)
class _Peer:
    """One live connection, as the server sees it.

    ``outbox`` holds the encoded messages (UTF-8 JSON) not yet handed to the
    transport and ``queued`` their size in memory (``sys.getsizeof`` of
    each); ``scheduled`` says it is in the server's list to write at the end
    of this loop iteration. ``share`` is its address group's inbound share.
    ``tap`` says its frames are read in ``data_received``
    (:meth:`SignalingServer._on_data`), ``synced`` that websockets' parser is
    known to sit between two frames, ``rest`` the start of a frame not yet
    complete. The connection points back here (``ws.peer``) until
    :meth:`SignalingServer._forget` breaks that cycle and empties the
    outbox, so a closed connection's memory returns by reference counting
    alone.
    """

    id: str
    endpoint: Endpoint
    ws: ServerConnection
    bucket: TokenBucket
    abuse: AbuseCounter
    source: str
    inflated: TokenBucket | None = None
    #: An empty tuple, not an empty deque (760 bytes), while nothing waits.
    outbox: deque[bytes | _Close] | tuple[()] = ()
    queued: int = 0
    scheduled: bool = False
    share: _Share | None = None
    tap: bool = False
    synced: bool = False
    rest: bytearray | None = None
    closing: bool = False
    gone: bool = False


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
        turn: A TURN relay sharing a secret with us: every ``welcome`` also
            carries a short-lived credential for it (:mod:`callapp.signaling.turn`).
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
            client address group (``address_prefix_v4``/``_v6``); more are
            refused with HTTP 429.
        max_connections_per_network: The same for a network group
            (``network_prefix_v4``/``_v6``); default four times
            ``max_connections_per_address``.
        max_connections: WebSocket connections the whole server holds; more
            are refused with HTTP 503.
        max_handshakes_per_address: TCP connections from one address group
            still in their opening handshake; more are closed unread.
        max_sockets: TCP connections of every kind the server holds; more are
            closed unread. :obj:`None`: the descriptor limit
            (``RLIMIT_NOFILE``) less a reserve, read at :meth:`start`.
        connects_per_second: WebSocket connects one address group may keep
            up per second; past the burst, more are refused with HTTP 429.
        connect_burst: Connects allowed at once (default:
            ``max_connections_per_address``).
        address_prefix_v4, address_prefix_v6: How addresses are grouped for
            the per-address limits (bits: 32 and 64).
        network_prefix_v4, network_prefix_v6: The same for the per-network
            limit (24 and 48).
        allowed_origins: Web origins (``https://app.example``) allowed to
            open WebSocket connections besides the server's own page and
            clients that send no ``Origin`` (non-browser ones); ``"*"``
            allows every origin, ``"null"`` ``file://`` pages. Others get 403.
        max_outbox: Messages queued for one slow recipient before it is
            closed with 1013 (try again later).
        max_outbox_bytes: The same in bytes of memory.
        max_queued_bytes: Bytes queued for all recipients together; past it
            the recipient with the largest queue is closed with 1013.
        compression: ``"deflate"`` to offer permessage-deflate (with small
            windows, and at most ``max_inflated_bytes_per_second`` inflated
            per connection, more answered ``rate-limited``); :obj:`None`
            (the default) sends and reads plain frames. See
            ``docs/protocol.md`` for why it is off.
        max_inflated_bytes_per_second: See ``compression``.
        max_address_bytes_per_second: Bytes per second (each message
            counting 1 KiB more than its length) that the connections of one
            address group together get handled; past it their next frames
            wait, and TCP slows the sender down (nothing is refused).
            Default: ``rate`` times ``max_message_bytes`` (one connection at
            full rate and size, at least 64 KiB/s), with a burst of ``burst``
            such messages (at least 1 MiB).
        ping_interval: Seconds between keepalive pings (:obj:`None`: off).
        ping_timeout: Seconds to wait for a pong before dropping the peer.
        open_timeout: Seconds allowed from the TCP connection to the end of
            the opening handshake (the TLS handshake has as long again);
            then the socket is closed.
        close_timeout: Seconds to wait for a closing handshake; a peer that
            does not read is then cut off.
        ssl_context: Serve ``wss://`` and ``https://`` with this context.
        web_root: Folder of the browser client (default: :data:`WEB_ROOT`).
        clock: Time source of the rate and abuse limits (tests fake it).
        redis: ``redis://HOST:PORT/DB``: share rooms, ids and relays with
            every server on that Redis (:mod:`callapp.signaling.backplane`);
            :meth:`start` raises
            :exc:`~callapp.signaling.backplane.BackplaneUnavailable` if it
            cannot be reached. :obj:`None`: rooms live in this process.
        redis_options: More keyword arguments for
            :class:`~callapp.signaling.backplane.Backplane` (``namespace``,
            ``heartbeat_interval``, ``node_timeout``, ``settle``,
            ``max_pending``, ``retain``).
        trusted_proxies: Networks (``10.0.0.0/8``; a bare address is one
            host) of reverse proxies whose ``X-Forwarded-For`` names the
            client: a WebSocket upgrade from one of them is counted, for
            every limit past the first handshake's, under the right-most
            address of the header that is not a trusted proxy
            (:class:`~callapp.signaling.guard.TrustedProxies`); a header
            naming none is counted in
            ``callapp_signaling_forwarded_for_malformed_total`` and the proxy
            is counted. Empty (the default): the header is ignored.

    Raises:
        ValueError: If a limit is out of range (``room_capacity`` above
            ``max_room_capacity`` included), or a trusted proxy is not a
            network.
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
        turn: TurnConfig | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_frame_bytes: int | None = None,
        rate: float = 50.0,
        burst: int = 200,
        abuse_threshold: float = 64.0,
        abuse_decay: float = 1.0,
        max_connections_per_address: int = 256,
        max_connections_per_network: int | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_handshakes_per_address: int = DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
        max_sockets: int | None = None,
        connects_per_second: float = DEFAULT_CONNECTS_PER_SECOND,
        connect_burst: int | None = None,
        address_prefix_v4: int = 32,
        address_prefix_v6: int = 64,
        network_prefix_v4: int = 24,
        network_prefix_v6: int = 48,
        allowed_origins: Iterable[str] = (),
        max_outbox: int = 1024,
        max_outbox_bytes: int = DEFAULT_MAX_OUTBOX_BYTES,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        compression: Literal["deflate"] | None = None,
        max_inflated_bytes_per_second: int = DEFAULT_MAX_INFLATED_BYTES_PER_SECOND,
        max_address_bytes_per_second: float | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float = 5.0,
        close_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        web_root: Path | None = None,
        clock: Clock = time.monotonic,
        redis: str | None = None,
        redis_options: Mapping[str, Any] | None = None,
        trusted_proxies: Iterable[str] = (),
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
        if max_outbox_bytes < max_frame_bytes or max_queued_bytes < max_outbox_bytes:
            raise ValueError(
                "need max_frame_bytes <= max_outbox_bytes <= max_queued_bytes, so that "
                "one message of the largest size can always be queued"
            )
        if compression not in (None, "deflate"):
            raise ValueError(f"compression is 'deflate' or None, not {compression!r}")
        if max_inflated_bytes_per_second < 1:
            raise ValueError("max_inflated_bytes_per_second must be at least 1")
        if max_address_bytes_per_second is None:
            # Never below 64 KiB/s: a server configured with a tiny message
            # rate must not stall its connections on this share.
            max_address_bytes_per_second = max(rate * (max_message_bytes + _MESSAGE_COST), 2**16)
        if max_address_bytes_per_second <= 0:
            raise ValueError("max_address_bytes_per_second must be above 0")
        self.limits = AdmissionLimits(
            max_connections=max_connections,
            max_connections_per_address=max_connections_per_address,
            max_connections_per_network=max_connections_per_network,
            max_handshakes_per_address=max_handshakes_per_address,
            max_sockets=max_sockets,
            connects_per_second=connects_per_second,
            connect_burst=connect_burst,
            prefix_v4=address_prefix_v4,
            prefix_v6=address_prefix_v6,
            network_prefix_v4=network_prefix_v4,
            network_prefix_v6=network_prefix_v6,
        )
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
        self.turn = turn
        self.max_message_bytes = max_message_bytes
        self.max_frame_bytes = max_frame_bytes
        self.rate = rate
        self.burst = burst
        self.abuse_threshold = abuse_threshold
        self.abuse_decay = abuse_decay
        self.max_connections_per_address = max_connections_per_address
        self.max_outbox = max_outbox
        self.max_outbox_bytes = max_outbox_bytes
        self.max_queued_bytes = max_queued_bytes
        self.allowed_origins = frozenset(allowed_origins)
        self.trusted_proxies = TrustedProxies(trusted_proxies)
        self.compression = compression
        self.max_inflated_bytes_per_second = max_inflated_bytes_per_second
        self.max_address_bytes_per_second = max_address_bytes_per_second
        self._shares: dict[str, _Share] = {}
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
        self.backplane: Backplane | None = None
        if redis is not None:
            # Imported here: a server without --redis (the desktop app's)
            # never loads redis-py.
            from callapp.signaling.backplane import Backplane

            self.backplane = Backplane(
                redis,
                deliver=self._deliver_from_cluster,
                lost=self._lost,
                capacity=room_capacity,
                max_rooms=max_rooms,
                max_room_capacity=max_room_capacity,
                require_keys=require_room_keys,
                **(redis_options or {}),
            )
        self.metrics = SignalingMetrics(
            connections=lambda: (
                self.router.connection_count
                if self.backplane is None
                else self.backplane.connection_count
            ),
            rooms=lambda: (
                self.router.room_count if self.backplane is None else self.backplane.room_count
            ),
            handshakes=lambda: self.admission.handshakes,
            sockets=lambda: self.admission.sockets,
            queued_bytes=lambda: self._queued,
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
        # Replaced at start() once the socket budget is known.
        self.admission = Admission(self.limits, clock)
        self.pressure = PressureLog(PRESSURE_LOG_INTERVAL, clock)
        self._pressure_timer: asyncio.TimerHandle | None = None
        self._trimmer = Trimmer(clock=clock)
        self._trim_timer: asyncio.TimerHandle | None = None
        self._queued = 0
        self._dirty: list[_Peer] = []
        # An outbox this full is written at once, not at the end of the
        # iteration: only one the transport does not take reaches the limits.
        self._flush_at = max(1, min(_FLUSH_AT, max_outbox // 2))
        self._flush_bytes = min(_WRITE_LIMIT, max_outbox_bytes // 2)
        self._encoded_message: ServerMessage | None = None
        self._encoded = b""
        self._internal_errors = 0
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
            callapp.signaling.backplane.BackplaneUnavailable: With ``redis``,
                if Redis cannot be reached (an :exc:`OSError` too).
        """
        if self._server is not None or self._stopped:
            raise RuntimeError("a SignalingServer can be started once")
        if self.backplane is not None:
            await self.backplane.start()
        if self.limits.max_sockets is None:
            # Stay clear of EMFILE: asyncio answers it with a traceback per
            # failed accept() and stops accepting for a second.
            self.limits = dataclasses.replace(self.limits, max_sockets=_socket_budget())
            self.admission = Admission(self.limits, self._clock)
        self._publish_limits()
        guard = self

        class GuardedConnection(ServerConnection):
            """A connection counted from its first byte, refused before any is read.

            Once open, its text frames are read by the server itself
            (:meth:`SignalingServer._on_data`) and its outbox is written again
            when the transport drains.
            """

            ticket: Ticket | None = None
            peer: _Peer | None = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                guard._on_accept(self, transport)

            def data_received(self, data: bytes) -> None:
                peer = self.peer
                if peer is not None and peer.tap:
                    guard._on_data(self, peer, data)
                else:
                    super().data_received(data)

            def resume_writing(self) -> None:
                super().resume_writing()
                peer = self.peer
                if peer is not None and peer.outbox:
                    guard._schedule(peer)

            def connection_lost(self, exc: Exception | None) -> None:
                super().connection_lost(exc)
                if self.ticket is not None:
                    guard.admission.close(self.ticket)
                _untangle(self)

        extensions = []
        if self.compression == "deflate":
            # Small windows: 2 KiB of history each way (the SDP repeats
            # itself within that), and zlib's memLevel 4 for the compressor.
            extensions.append(
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=11,
                    client_max_window_bits=11,
                    compress_settings={"memLevel": 4},
                )
            )
        self._server = await serve(
            self._handle_connection,
            self.host,
            self._requested_port,
            create_connection=GuardedConnection,
            process_request=self._process_request,
            compression=None,
            extensions=extensions or None,
            max_size=self.max_frame_bytes,
            max_queue=_MAX_QUEUE,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            open_timeout=self.open_timeout,
            close_timeout=self.close_timeout,
            ssl=self.ssl_context,
            logger=QuietFrames(logging.getLogger("websockets.server")),
            backlog=_BACKLOG,
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
        if self.backplane is not None:
            # Every handler has run its disconnect: this only unregisters.
            await self.backplane.stop()
        for timer in (self._pressure_timer, self._trim_timer):
            if timer is not None:
                timer.cancel()
        self._pressure_timer = self._trim_timer = None
        self._report_pressure(force=True)
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
        ticket: Ticket | None = getattr(connection, "ticket", None)
        if ticket is not None:
            self.admission.request(ticket)
        path = urlsplit(request.path).path
        upgrade = any("websocket" in value.lower() for value in request.headers.get_all("Upgrade"))
        if path in (NATIVE_PATH, APIGW_PATH):
            if not upgrade:
                return _text(
                    http.HTTPStatus.UPGRADE_REQUIRED,
                    f"{path} is a WebSocket endpoint; connect with a WebSocket client.\n",
                    [("Upgrade", "websocket")],
                )
            return self._admit(connection, request, ticket)
        if upgrade:
            return _text(http.HTTPStatus.NOT_FOUND, f"no WebSocket endpoint at {path}\n")
        if path == "/healthz":
            if self.backplane is not None and not self.backplane.ready:
                return _text(
                    http.HTTPStatus.SERVICE_UNAVAILABLE, "not ready: Redis is unreachable\n"
                )
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

    def _admit(
        self, connection: ServerConnection, request: Request, ticket: Ticket | None
    ) -> Response | None:
        """Count a WebSocket upgrade against the limits, or answer why not (403/429/503).

        The slots it takes are held until the TCP connection is gone,
        whatever happens in between, so concurrent handshakes from one
        address cannot overshoot a cap.
        """
        if ticket is None:  # pragma: no cover - every connection is a GuardedConnection
            return None
        if self.trusted_proxies:
            self._forwarded(connection, request, ticket)
        origin_ok = origin_allowed(
            request.headers.get("Origin"), request.headers.get("Host"), self.allowed_origins
        )
        refusal = self.admission.upgrade(ticket, origin_ok)
        if refusal is None:
            return None
        self._refused(refusal, ticket.address)
        retry = [("Retry-After", "1")]
        if refusal is Refusal.ORIGIN:
            return _text(
                http.HTTPStatus.FORBIDDEN,
                "this server does not accept WebSocket connections from pages of your origin\n",
            )
        if refusal is Refusal.SERVER_FULL:
            return _text(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "the server is busy; try again later\n", retry
            )
        text = {
            Refusal.PER_ADDRESS: "too many connections from your address\n",
            Refusal.PER_NETWORK: "too many connections from your network\n",
            Refusal.CHURN: "too many connects from your address; slow down\n",
        }[refusal]
        return _text(http.HTTPStatus.TOO_MANY_REQUESTS, text, retry)

    def _forwarded(self, connection: ServerConnection, request: Request, ticket: Ticket) -> None:
        """Count ``ticket`` as the client its trusted proxy names in ``X-Forwarded-For``."""
        peer = connection.remote_address
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        forwarded = self.trusted_proxies.client(address, request.headers.get_all("X-Forwarded-For"))
        if forwarded.malformed:
            # A misconfigured proxy, or something impersonating one: counting
            # the proxy keeps every limit, at the cost of sharing its slots.
            self.metrics.forwarded_for_malformed.inc()
            self._pressure("counted-as-proxy", "bad-x-forwarded-for", ticket.address)
        elif forwarded.via is not None:
            self.admission.forwarded(ticket, forwarded.address)

    def _on_accept(self, connection: ServerConnection, transport: asyncio.BaseTransport) -> None:
        """A TCP connection arrived: count it, or close it before reading a byte."""
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        verdict = self.admission.accept(address)
        if isinstance(verdict, Refusal):
            limits = self.limits
            self._refused(verdict, address_group(address, limits.prefix_v4, limits.prefix_v6))
            # websockets' handler sees the connection lost before any request
            # and ends quietly.
            connection.transport.abort()
            return
        connection.ticket = verdict  # type: ignore[attr-defined]

    def _refused(self, refusal: Refusal, source: str) -> None:
        self.metrics.connections_refused.labels(reason=str(refusal)).inc()
        self._pressure("refused", str(refusal), source)

    def _pressure(self, kind: str, reason: str, source: str) -> None:
        """Note a refusal or a close; the summary line goes out at most every few seconds."""
        self.pressure.note(kind, reason, source)
        self._report_pressure()
        if self._pressure_timer is None and self.pressure.pending and not self._stopped:
            # The last events of an attack are reported even if nothing follows.
            loop = asyncio.get_running_loop()
            self._pressure_timer = loop.call_later(self.pressure.interval, self._flush_pressure)

    def _flush_pressure(self) -> None:
        self._pressure_timer = None
        self._report_pressure()
        if self.pressure.pending and not self._stopped:
            self._pressure_timer = asyncio.get_running_loop().call_later(
                self.pressure.interval, self._flush_pressure
            )

    def _report_pressure(self, force: bool = False) -> None:
        line = self.pressure.report(force)
        if line is not None:
            logger.warning("%s", line)

    def _publish_limits(self) -> None:
        limits = self.limits
        self.metrics.set_limits(
            {
                "max_connections": limits.max_connections,
                "max_connections_per_address": limits.max_connections_per_address,
                "max_connections_per_network": limits.per_network,
                "max_handshakes_per_address": limits.max_handshakes_per_address,
                "max_sockets": limits.max_sockets,
                "connects_per_second": limits.connects_per_second,
                "connect_burst": limits.burst,
                "address_prefix_v4": limits.prefix_v4,
                "address_prefix_v6": limits.prefix_v6,
                "network_prefix_v4": limits.network_prefix_v4,
                "network_prefix_v6": limits.network_prefix_v6,
                "handshake_timeout_seconds": self.open_timeout,
                "max_message_bytes": self.max_message_bytes,
                "max_frame_bytes": self.max_frame_bytes,
                "rate": self.rate,
                "burst": self.burst,
                "max_outbox": self.max_outbox,
                "max_outbox_bytes": self.max_outbox_bytes,
                "max_queued_bytes": self.max_queued_bytes,
                "compression": 1.0 if self.compression else 0.0,
                "max_inflated_bytes_per_second": self.max_inflated_bytes_per_second,
                "max_address_bytes_per_second": self.max_address_bytes_per_second,
            }
        )

    # -- WebSocket ---------------------------------------------------------

    async def _handle_connection(self, ws: ServerConnection) -> None:
        assert ws.request is not None  # the handshake is done
        endpoint: Endpoint = "apigw" if urlsplit(ws.request.path).path == APIGW_PATH else "ws"
        connection_id = new_connection_id()
        while connection_id in self._peers or self.router.is_connected(
            connection_id
        ):  # pragma: no cover - 96 random bits
            connection_id = new_connection_id()
        ticket: Ticket | None = getattr(ws, "ticket", None)
        inflated = None
        if ws.protocol.extensions:
            # permessage-deflate: a 300-byte frame can inflate to max_size.
            per_second = self.max_inflated_bytes_per_second
            inflated = TokenBucket(per_second, 4 * per_second, self._clock)
        peer = _Peer(
            id=connection_id,
            endpoint=endpoint,
            ws=ws,
            bucket=TokenBucket(self.rate, self.burst, self._clock),
            abuse=AbuseCounter(self.abuse_threshold, self.abuse_decay, self._clock),
            source=ticket.address if ticket is not None else "",
            inflated=inflated,
        )
        self._peers[connection_id] = peer
        if self.backplane is None:
            self.router.connect(connection_id)
        else:
            # Registered (in _peers first: what other servers send arrives
            # from now on) before the welcome names the id.
            await self.backplane.connect(connection_id)
        self.metrics.connections_opened.labels(endpoint=endpoint).inc()
        # DEBUG, not INFO: a line per connection is what churn turns into a flood.
        via = f" via {ws.remote_address}" if ticket is not None and ticket.client else ""
        source = ticket.client if ticket is not None and ticket.client else ws.remote_address
        logger.debug("%s connected on /%s from %s%s", connection_id, endpoint, source, via)
        share = peer.share = self._share(peer.source)
        if hasattr(ws, "peer"):  # a GuardedConnection: writes resume through it
            ws.peer = peer
            # Frames read in data_received: not with a backplane (each frame is
            # awaited there) nor with compression (websockets inflates).
            peer.tap = self.backplane is None and not ws.protocol.extensions
        # The opening handshake's headers (3.4 KiB) are not read again; its
        # request stays (websockets' parser holds it too), emptied.
        ws.request.headers.clear()
        ws.response = None
        try:
            if endpoint == "ws":
                # Wall-clock time: the relay checks the expiry against its own clock.
                turn = welcome_servers(self.turn, connection_id, time.time())
                welcome = Welcome(connection_id, SERVER_NAME, self.ice_servers + turn)
                self._enqueue(peer, encode(welcome).encode())
            # With the tap, this loop gets only what the tap left to
            # websockets (fragmented, binary or over-share frames), in order.
            while not peer.closing:
                frame = await ws.recv()
                delay = share.bucket.reserve(len(frame) + _MESSAGE_COST)
                if delay > 0:
                    # The address is over its share: this connection reads
                    # nothing more until its turn comes.
                    await asyncio.sleep(delay)
                # Whatever the frame was, its memory goes back once handled.
                self._freed(len(frame))
                try:
                    if self.backplane is None:
                        self._on_frame(peer, frame)
                    else:
                        # Awaited: the next frame of this connection waits,
                        # which keeps per-sender order across servers.
                        await self._on_shared_frame(peer, self.backplane, frame)
                except Exception:
                    self._internal_error(peer)
            # Closing (abuse, a full outbox): the writer or a close task ends
            # the connection. Until then read and drop what still arrives, so
            # that nothing piles up in websockets' buffers.
            while True:
                await ws.recv()
        except ConnectionClosed as exc:
            logger.debug("%s disconnected: %s", connection_id, exc)
        finally:
            self._forget(peer)
            if self.backplane is not None:
                try:
                    self._dispatch(await self.backplane.disconnect(connection_id))
                except Exception:
                    self._internal_error(peer)
            share.users -= 1
            if share.users <= 0:
                del self._shares[peer.source]
            logger.debug("%s forgotten", connection_id)

    def _share(self, source: str) -> _Share:
        share = self._shares.get(source)
        if share is None:
            rate = self.max_address_bytes_per_second
            burst = max(rate, self.burst * (self.max_message_bytes + _MESSAGE_COST), 2**20)
            share = self._shares[source] = _Share(TokenBucket(rate, burst, self._clock))
        share.users += 1
        return share

    def _forget(self, peer: _Peer) -> None:
        """``peer``'s connection ended: drop it everywhere, free its outbox now.

        The connection's link back to ``peer`` is cut here, so that neither
        holds the other once the handler returns.
        """
        peer.gone = True
        del self._peers[peer.id]
        self.calls.forget(peer.id)
        if self.backplane is None:  # else the handler awaits the backplane's
            self._dispatch(self.router.disconnect(peer.id))
        self._drop_outbox(peer)
        peer.rest = None
        if getattr(peer.ws, "peer", None) is peer:
            peer.ws.peer = None
        _untangle(peer.ws)

    # -- the hot path: frames read in data_received, writes once per iteration

    def _on_data(self, ws: ServerConnection, peer: _Peer, data: bytes) -> None:
        """Read the complete, unfragmented text frames in ``data``; leave the rest to websockets.

        Called by the connection's ``data_received`` instead of websockets'
        parser: a text frame read here is handled at once
        (:meth:`_on_frame`), with no task switch, no queue and no future.
        Everything else -- control frames, fragments, binary, RSV bits, a
        frame over ``max_frame_bytes``, invalid UTF-8, a frame over the
        address's inbound share -- goes to websockets whole, which answers
        it as it always did (pongs, closes 1002/1007/1009) or hands it to the
        handler's ``recv()`` loop. The tap reads only while websockets'
        parser sits between two frames and the handler waits for a message
        with none queued (:attr:`_Peer.synced`), so frames are handled in
        the order they came whichever side reads them.
        """
        rest = peer.rest
        if rest is not None:
            rest += data
            buf: bytes | bytearray = rest
        else:
            buf = data
        protocol = ws.protocol
        if not peer.synced:
            if not _between_frames(ws):
                peer.rest = None
                ServerConnection.data_received(ws, bytes(buf))
                return
            peer.synced = True
        end = len(buf)
        pos = 0
        limit = self.max_frame_bytes
        share = peer.share
        # Only websockets' parser changes the state: read again after each
        # frame handed to it, not once per frame (a property, 4 % of the path).
        is_open = protocol.state is _OPEN
        while end - pos >= 2:
            first = buf[pos]
            second = buf[pos + 1]
            length = second & 0x7F
            head = pos + 6  # 2 bytes and the 4-byte mask
            if length == 126:
                head += 2
                if end < head:
                    break
                (length,) = _UNPACK_16(buf, pos + 2)
            elif length == 127:
                head += 8
                if end < head:
                    break
                (length,) = _UNPACK_64(buf, pos + 2)
            stop = head + length
            if length > limit or not second & 0x80:
                # Too large (1009) or unmasked (1002): websockets' to refuse,
                # and what follows is its too.
                peer.synced = False
                break
            if first & 0x0F >= 8:
                # A control frame (ping, pong, close): websockets answers it.
                if end < stop:
                    break
                ServerConnection.data_received(ws, bytes(buf[pos:stop]))
                is_open = protocol.state is _OPEN
                pos = stop
                continue
            if end < stop:
                break
            if first == 0x81 and is_open:
                try:
                    text = apply_mask(buf[head:stop], buf[head - 4 : head]).decode()
                except UnicodeDecodeError:
                    pass  # websockets closes it with 1007
                else:
                    if peer.closing:
                        # Read and dropped, as the handler's loop does once closing.
                        pos = stop
                        continue
                    # Over the address's share, the handler's loop waits its turn.
                    if share is None or share.bucket.allow(len(text) + _MESSAGE_COST):
                        try:
                            self._on_frame(peer, text)
                        except Exception:
                            self._internal_error(peer)
                        pos = stop
                        continue
            # Everything from here is websockets' until the handler has read it.
            peer.synced = False
            break
        if pos:
            # What the frames read here took goes back once handled.
            self._freed(pos)
        if pos == end:
            peer.rest = None
        elif not peer.synced:
            peer.rest = None
            ServerConnection.data_received(ws, bytes(buf[pos:]))
        elif rest is not None:
            del rest[:pos]
        else:
            peer.rest = bytearray(buf[pos:])

    def _schedule(self, peer: _Peer) -> None:
        """Write ``peer``'s outbox at the end of this loop iteration, with whatever else comes."""
        if not peer.scheduled:
            peer.scheduled = True
            self._dirty.append(peer)
            if len(self._dirty) == 1:
                asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        dirty = self._dirty
        self._dirty = []
        for peer in dirty:
            peer.scheduled = False
            self._drain(peer)

    def _drain(self, peer: _Peer) -> None:
        """Hand ``peer``'s outbox to its transport, many frames per write, up to its write limit.

        What the transport does not take (it paused us: the peer reads
        slower than we write) stays in the outbox, counted against the
        outbox limits, until ``resume_writing`` schedules this again.
        """
        ws = peer.ws
        outbox = peer.outbox
        if isinstance(outbox, tuple):
            return
        transport = ws.transport
        protocol = ws.protocol
        while outbox and not peer.gone and not ws.paused:
            if protocol.state is not State.OPEN or transport.is_closing():
                return  # closing: what is left is freed by _forget
            room = _WRITE_LIMIT - transport.get_write_buffer_size()
            payloads: list[bytes] = []
            close: _Close | None = None
            freed = 0
            while outbox:
                item = outbox.popleft()
                if isinstance(item, _Close):
                    close = item
                    break
                payloads.append(item)
                freed += len(item) + _BYTES_HEAD
                room -= len(item)
                if room <= 0:
                    break
            self._unqueue(peer, freed)
            if payloads:
                if protocol.extensions:
                    for payload in payloads:
                        protocol.send_text(payload)
                    ws.send_data()
                else:
                    parts: list[bytes] = []
                    for payload in payloads:
                        size = len(payload)
                        if size < 126:
                            parts.append(_SMALL_HEADERS[size])
                        elif size < 65536:
                            parts.append(_HEADER_16(0x81, 126, size))
                        else:
                            parts.append(b"\x81\x7f" + size.to_bytes(8, "big"))
                        parts.append(payload)
                    transport.write(b"".join(parts))
            if close is not None:
                self._start_close(ws, close)
                return
        if not outbox and peer.outbox is outbox:
            peer.outbox = ()

    def _start_close(self, ws: ServerConnection, close: _Close) -> None:
        task = asyncio.create_task(self._close(ws, close))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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

    def _unqueue(self, peer: _Peer, size: int) -> None:
        peer.queued -= size
        self._queued -= size

    def _drop_outbox(self, peer: _Peer) -> None:
        """Forget everything queued for ``peer`` (it is closing or gone)."""
        freed = peer.queued
        peer.outbox = ()
        self._unqueue(peer, freed)
        self._freed(freed)

    def _freed(self, size: int) -> None:
        """``size`` bytes went back to the allocator: trim the heap once enough have."""
        self._trimmer.freed(size)
        if (
            self._trim_timer is None
            and not self._stopped
            and self._trimmer.pending >= self._trimmer.threshold
        ):
            # Soon, not now: a burst of closes frees its memory within a few
            # milliseconds, and one trim after it is enough.
            self._trim_timer = asyncio.get_running_loop().call_later(0.25, self._trim)

    def _trim(self) -> None:
        self._trim_timer = None
        if self._trimmer.due():
            malloc_trim()
        elif self._trimmer.pending >= self._trimmer.threshold and not self._stopped:
            self._trim_timer = asyncio.get_running_loop().call_later(
                self._trimmer.min_interval, self._trim
            )

    def _enqueue(self, peer: _Peer, item: bytes | _Close) -> None:
        """Queue ``item`` for ``peer``'s transport, or close ``peer`` if it cannot take more.

        Three limits, all answered with 1013 (try again later) and the
        recipient's queue dropped at once: ``max_outbox`` messages or
        ``max_outbox_bytes`` bytes for this recipient; ``max_queued_bytes``
        for all of them together, which closes whoever holds the most.
        Nothing is ever dropped from a connection that stays open, so
        per-sender order holds for every receiver.
        """
        if peer.closing or peer.gone:
            return
        outbox = peer.outbox
        if isinstance(outbox, tuple):
            outbox = peer.outbox = deque()
        if isinstance(item, _Close):
            peer.closing = True
            outbox.append(item)
            self._schedule(peer)
            return
        size = len(item) + _BYTES_HEAD
        if len(outbox) >= self.max_outbox or peer.queued + size > self.max_outbox_bytes:
            # The transport is paused by a peer that does not read: a close
            # queued behind the messages would never be reached. Close now.
            self._shed(peer, "slow-reader", "too many messages queued")
            return
        while self._queued + size > self.max_queued_bytes:
            victim = max(self._peers.values(), key=lambda p: p.queued)
            if victim.queued == 0:  # pragma: no cover - max_queued_bytes >= max_outbox_bytes
                break
            self._shed(victim, "queue-budget", "the server is short of memory for queues")
            if victim is peer:
                return
        outbox.append(item)
        peer.queued += size
        self._queued += size
        if len(outbox) >= self._flush_at or peer.queued >= self._flush_bytes:
            self._drain(peer)
        if not peer.scheduled:  # checked here too: a call per message costs 5 % of the path
            self._schedule(peer)

    def _shed(self, peer: _Peer, reason: str, text: str) -> None:
        """Close ``peer`` with 1013 now, its queue freed, whatever its writer is doing."""
        peer.closing = True
        self._drop_outbox(peer)
        self.metrics.connections_closed.labels(reason=reason).inc()
        self._pressure("closed", reason, peer.source)
        self._start_close(peer.ws, _Close(CloseCode.TRY_AGAIN_LATER, text))

    def _internal_error(self, peer: _Peer) -> None:
        """A bug of ours while handling ``peer``'s message: counted, logged rarely.

        The first one gets its traceback in the log (a bug must be findable);
        later ones only count in the summary line and the metric, so that a
        frame that triggers one cannot flood the log.
        """
        self.metrics.internal_errors.inc()
        self._internal_errors += 1
        if self._internal_errors == 1:
            logger.exception("internal error handling a message from %s", peer.id)
        else:
            self._pressure("failed", "internal-error", peer.source)

    def _on_frame(self, peer: _Peer, frame: str | bytes) -> None:
        """Check, parse and route one message from ``peer``.

        :meth:`_on_shared_frame` is the same with a backplane: keep them alike.
        """
        answer = False
        try:
            self._admit_frame(peer, frame)
            if peer.endpoint == "ws":
                request = parse_request(frame)
                if isinstance(request, Send) and request.to is not None:
                    self._check_call_attempt(peer.id, request)
                deliveries = self.router.handle(peer.id, request)
                if isinstance(request, Join):
                    self._note_join(peer, request, deliveries)
            else:
                deliveries = self._route_apigw(peer, frame)
                answer = self._apigw_answers(peer, deliveries)
        except ProtocolError as exc:
            deliveries = [Deliver(peer.id, exc.to_message())]
        self._after_frame(peer, deliveries, answer)

    async def _on_shared_frame(self, peer: _Peer, backplane: Backplane, frame: str | bytes) -> None:
        """:meth:`_on_frame` with the rooms in Redis: the same steps, awaited."""
        answer = False
        try:
            self._admit_frame(peer, frame)
            if peer.endpoint == "ws":
                request = parse_request(frame)
                if isinstance(request, Send):
                    await self._check_shared_call_attempt(peer.id, backplane, request)
                deliveries = await backplane.handle(peer.id, request)
                if isinstance(request, Join):
                    self._note_join(peer, request, deliveries)
            else:
                apigw = parse_apigw_request(frame)
                deliveries = []
                if isinstance(apigw, ApigwSend):
                    send = Send(data=apigw.message, to=apigw.to)
                    await self._check_shared_call_attempt(peer.id, backplane, send)
                    # One answer per frame, after the relay: held while Redis is away.
                    deliveries = await backplane.handle(peer.id, send, hold=peer.ws.wait_closed)
                answer = self._apigw_answers(peer, deliveries)
        except ProtocolError as exc:
            deliveries = [Deliver(peer.id, exc.to_message())]
        self._after_frame(peer, deliveries, answer)

    @staticmethod
    def _apigw_answers(peer: _Peer, deliveries: Iterable[Deliver]) -> bool:
        """Whether an /apigw frame gets the plain answer: an error answer already
        names the sender; anything else gets it, after the delivery to TO."""
        return not any(d.to == peer.id and isinstance(d.message, Error) for d in deliveries)

    def _admit_frame(self, peer: _Peer, frame: str | bytes) -> None:
        """Count a frame and check its size, then its rate (raise the error that answers)."""
        if peer.endpoint == "ws":
            self.metrics.hot.received_ws += 1
        else:
            self.metrics.hot.received_apigw += 1
        if _too_large(frame, self.max_message_bytes):
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"messages are limited to {self.max_message_bytes} bytes",
            )
        if not peer.bucket.allow() or (
            peer.inflated is not None and not peer.inflated.allow(len(frame))
        ):
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"slow down: {self.rate:g} messages/s, bursts of {self.burst}",
                request_id(frame),
            )

    def _after_frame(self, peer: _Peer, deliveries: list[Deliver], answer: bool) -> None:
        """Send what a frame caused, the /apigw answer, and count the sender's errors."""
        for delivery in deliveries:
            self._deliver(delivery.to, delivery.message)
        if answer:
            self._enqueue(peer, encode_apigw_answer(peer.id).encode())
        for delivery in deliveries:
            if (
                delivery.to == peer.id
                and isinstance(delivery.message, Error)
                and peer.abuse.record(delivery.message.code)
            ):
                self.metrics.connections_closed.labels(reason="abuse").inc()
                self._pressure("closed", "abuse", peer.source)
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
        self._count_call_attempt(
            sender, to, send, self.router.room_of(sender), self.router.room_of(to)
        )

    async def _check_shared_call_attempt(
        self, sender: str, backplane: Backplane, send: Send
    ) -> None:
        """:meth:`_check_call_attempt` with the rooms in Redis (one look-up per SDP)."""
        to = send.to
        if to is None or _sdp_kind(send.data) is None:
            return
        try:
            connected, to_room = await backplane.locate(to)
        except Exception:  # Redis away: the relay is queued unchecked
            return
        if connected:
            self._count_call_attempt(sender, to, send, backplane.room_of(sender), to_room)

    def _count_call_attempt(
        self, sender: str, to: str, send: Send, room: str | None, to_room: str | None
    ) -> None:
        """Count an offer by id to a live ``to`` outside the sender's room; note answers."""
        kind = _sdp_kind(send.data)
        if kind == "answer":
            self.calls.answered(caller=to, callee=sender)
            return
        if kind != "offer" or (room is not None and room == to_room):
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

    def _lost(self, connection_id: str) -> None:
        """The backplane gave a connection up (this server was taken for dead
        during an outage): close it, so that its client reconnects and rejoins."""
        peer = self._peers.get(connection_id)
        if peer is not None:
            self.metrics.connections_closed.labels(reason="cluster").inc()
            self._enqueue(
                peer, _Close(CloseCode.SERVICE_RESTART, "the server lost its cluster; reconnect")
            )

    def _deliver_from_cluster(self, to: str, message: ServerMessage) -> None:
        """:meth:`_deliver` for what the backplane hands over, noting answers to dialled calls.

        A dialled call is counted by the caller's node, where its offer was
        sent; the callee may answer through another node, so the answer is
        noted where it reaches the caller, or the caller would stay limited
        until the window passes.
        """
        if isinstance(message, Relayed) and _sdp_kind(message.data) == "answer":
            self.calls.answered(caller=to, callee=message.sender)
        self._deliver(to, message)

    def _deliver(self, to: str, message: ServerMessage) -> None:
        peer = self._peers.get(to)
        if peer is None:
            return
        if isinstance(message, Relayed):
            self.metrics.hot.relayed += 1
            if peer.endpoint == "ws":
                # Encoded once for all the recipients of a room broadcast.
                if message is not self._encoded_message:
                    self._encoded = encode_relayed(message)
                    self._encoded_message = message
                self._enqueue(peer, self._encoded)
                return
        elif isinstance(message, Error):
            self.metrics.errors.labels(code=str(message.code)).inc()
        text = encode(message) if peer.endpoint == "ws" else encode_apigw(message, peer.id)
        if text is not None:
            self._enqueue(peer, text.encode())


def _untangle(connection: ServerConnection) -> None:
    """Break the cycles websockets leaves through the exceptions a connection keeps.

    A connection keeps the error that ended it (``connection_exc``, and its
    protocol's ``parser_exc``/``handshake_exc``); each one's traceback holds
    the frames that raised it, and those frames hold the connection (or its
    protocol, with its read buffer): a cycle only a full collection frees.
    Dropping the tracebacks (and their chained causes') lets reference
    counting free the connection as soon as nothing else holds it.
    """
    protocol = connection.protocol
    for first in (connection.connection_exc, protocol.parser_exc, protocol.handshake_exc):
        exc: BaseException | None = first
        for _ in range(8):  # chains are short; never loop on a cyclic one
            if exc is None:
                break
            exc.__traceback__ = None
            exc = exc.__cause__ or exc.__context__


def _between_frames(ws: ServerConnection) -> bool:
    """True if websockets holds no byte of a frame and no message the handler has not read.

    Its parser waits in ``StreamReader.at_eof`` exactly when it holds no
    byte of the next frame; the handler waits in ``recv()`` with nothing
    queued and no fragmented message begun.
    """
    protocol = ws.protocol
    if protocol.state is not State.OPEN or protocol.reader.buffer:
        return False
    if protocol.current_size is not None:
        return False
    frames = ws.recv_messages.frames
    waiter = frames.get_waiter
    if len(frames) or waiter is None or waiter.done():
        return False
    generator: Any = protocol.parser
    while (inner := getattr(generator, "gi_yieldfrom", None)) is not None:
        generator = inner
    return getattr(generator, "gi_code", None) is _AT_FRAME_START


def _socket_budget() -> int:
    """Sockets the process may hold: its descriptor limit less :data:`_RESERVED_DESCRIPTORS`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(16, soft - _RESERVED_DESCRIPTORS)


def _sdp_kind(data: object) -> str | None:
    """``"offer"`` or ``"answer"`` for relayed ``{"type": "SDP", ...}`` data, else None."""
    if isinstance(data, dict) and data.get("type") == "SDP":
        payload = data.get("payload")
        if isinstance(payload, dict) and payload.get("type") in ("offer", "answer"):
            return str(payload["type"])
    return None
