"""``callapp-signaling``: run the signaling server standalone.

::

    callapp-signaling --host 0.0.0.0 --port 8765 --ice-server stun:stun.example.org

Once listening it prints one line with the ``ws://HOST:PORT/ws`` URL (the
real port with ``--port 0``) and flushes stdout, so that scripts can read it.
SIGINT and SIGTERM close every connection with 1001 and exit 0. Bad
arguments print a one-line error and exit 2; a port that cannot be bound,
an unreadable certificate or a ``--redis`` that cannot be reached exits 1.

With ``--redis redis://HOST:PORT/DB`` any number of these processes share
rooms, connection ids and relays (``docs/architecture.md``, "Several server
processes"); put them behind a load balancer that checks ``/healthz``
(``docs/deploy.md``: nginx, with ``--trusted-proxy`` so that the per-address
limits count the clients it forwards for).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from callapp import eventloop
from callapp.signaling.guard import (
    DEFAULT_CONNECTS_PER_SECOND,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
    TrustedProxies,
)
from callapp.signaling.messages import MAX_MESSAGE_BYTES, MAX_ROOM_CAPACITY, MIN_ROOM_CAPACITY
from callapp.signaling.rooms import DEFAULT_MAX_ROOM_CAPACITY, DEFAULT_ROOM_CAPACITY
from callapp.signaling.server import (
    DEFAULT_MAX_INFLATED_BYTES_PER_SECOND,
    DEFAULT_MAX_OUTBOX_BYTES,
    DEFAULT_MAX_QUEUED_BYTES,
    VERSION,
    SignalingServer,
)
from callapp.signaling.tls import TlsError, server_context
from callapp.signaling.turn import DEFAULT_TTL, read_secret, turn_config

PROG = "callapp-signaling"

logger = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: scripts and humans read it.
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, not {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _room_capacity(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not MIN_ROOM_CAPACITY <= value <= MAX_ROOM_CAPACITY:
        raise argparse.ArgumentTypeError(
            f"rooms hold {MIN_ROOM_CAPACITY} to {MAX_ROOM_CAPACITY} people, not {value}"
        )
    return value


def _network(text: str) -> str:
    try:
        TrustedProxies.parse_network(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"ports are 0-65535, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _prefix(bits: int) -> Callable[[str], int]:
    """A parser of a prefix length of 0 to ``bits``."""

    def parse(text: str) -> int:
        try:
            value = int(text.removeprefix("/"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a prefix length: {text!r}") from None
        if not 0 <= value <= bits:
            raise argparse.ArgumentTypeError(f"prefixes are 0-{bits} bits, not {value}")
        return value

    return parse


def _ice_server(text: str) -> dict[str, Any]:
    """``stun:host:port``, or a JSON ``RTCIceServer`` object (for TURN credentials)."""
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not valid JSON: {text!r}") from None
        if not isinstance(value, dict) or "urls" not in value:
            raise argparse.ArgumentTypeError(f"an RTCIceServer object needs 'urls': {text!r}")
        return value
    if not text.startswith(("stun:", "stuns:", "turn:", "turns:")):
        raise argparse.ArgumentTypeError(f"not a stun:/turn: URL: {text!r}")
    return {"urls": text}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``callapp-signaling``."""
    parser = _Parser(
        prog=PROG,
        description="Run the callapp signaling server (protocol v1) on one port.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: %(default)s)")
    parser.add_argument(
        "--port", type=_port, default=8765, help="TCP port, 0 for any (default: %(default)s)"
    )
    parser.add_argument(
        "--room-capacity",
        type=_room_capacity,
        default=DEFAULT_ROOM_CAPACITY,
        metavar="N",
        help=(
            "members that make a room complete, for rooms whose creator asks for no "
            "capacity (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--max-room-capacity",
        type=_room_capacity,
        default=DEFAULT_MAX_ROOM_CAPACITY,
        metavar="N",
        help=(
            f"largest capacity ({MIN_ROOM_CAPACITY}-{MAX_ROOM_CAPACITY}) a client creating "
            "a room may ask for; at least --room-capacity (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--require-room-keys",
        action="store_true",
        help=(
            "open rooms only for joins that carry a room key (made from an invite link's "
            "secret); keyless joins that would create a room are refused as unauthorized "
            "(default: rooms without a key work as in protocol v1)"
        ),
    )
    parser.add_argument(
        "--ice-server",
        type=_ice_server,
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server for clients: a stun:/turn: URL or a JSON RTCIceServer (repeatable)",
    )
    turn = parser.add_argument_group("TURN relay, short-lived credentials (coturn use-auth-secret)")
    turn.add_argument(
        "--turn-url", action="append", default=[], metavar="URL", help="turn:HOST:PORT (repeat)"
    )
    turn.add_argument("--turn-secret", metavar="S", help="the relay's static-auth-secret")
    turn.add_argument("--turn-secret-file", metavar="PATH", help="read the secret from a file")
    turn.add_argument(
        "--turn-ttl",
        type=_positive_int,
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help="lifetime of each credential (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="(default: %(default)s)",
    )
    parser.add_argument("--cert", metavar="PEM", help="TLS certificate chain: serve wss://")
    cluster = parser.add_argument_group(
        "several processes",
        "Servers given the same Redis share rooms, connection ids and relays; "
        "/healthz answers 503 while Redis is unreachable.",
    )
    cluster.add_argument(
        "--redis",
        metavar="URL",
        help="redis://HOST:PORT/DB (rediss:// for TLS) to share with the other servers",
    )
    cluster.add_argument(
        "--redis-namespace",
        metavar="NAME",
        default="callapp",
        help="prefix of every Redis key, so that clusters can share one Redis "
        "(default: %(default)s)",
    )
    parser.add_argument("--key", metavar="PEM", help="TLS private key (with --cert)")
    limits = parser.add_argument_group(
        "limits",
        "Each limit is counted in /metrics (connections_refused_total and "
        "connections_closed_total by reason; limit{name} for the values in force).",
    )
    limits.add_argument(
        "--max-message-bytes",
        type=_positive_int,
        default=MAX_MESSAGE_BYTES,
        metavar="N",
        help=(
            "largest message, in bytes after reassembly; larger ones are answered too-large, "
            "and over four times this the connection is closed with 1009 (default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--rate",
        type=_positive_float,
        default=50.0,
        metavar="PER_SECOND",
        help="messages per second per connection, on average (default: %(default)s)",
    )
    limits.add_argument(
        "--burst",
        type=_positive_int,
        default=200,
        metavar="N",
        help="messages per connection allowed at once above --rate (default: %(default)s)",
    )
    limits.add_argument(
        "--abuse-threshold",
        type=_non_negative_float,
        default=64.0,
        metavar="STRIKES",
        help=(
            "bad-json, bad-message, too-large and rate-limited answers a connection may "
            "collect (less --abuse-decay per second) before it is closed with 1008 "
            "(default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--abuse-decay",
        type=_non_negative_float,
        default=1.0,
        metavar="PER_SECOND",
        help="strikes forgiven per second (default: %(default)s)",
    )
    limits.add_argument(
        "--max-connections",
        type=_positive_int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help=(
            "WebSocket connections the whole server holds; more get HTTP 503 (default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--max-connections-per-address",
        type=_positive_int,
        default=256,
        metavar="N",
        help=(
            "WebSocket connections from one address (grouped by --address-prefix-v4/-v6); "
            "more get HTTP 429 (default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--max-connections-per-network",
        type=_positive_int,
        default=None,
        metavar="N",
        help=(
            "WebSocket connections from one network (grouped by --network-prefix-v4/-v6); "
            "more get HTTP 429 (default: 4 x --max-connections-per-address)"
        ),
    )
    limits.add_argument(
        "--max-handshakes-per-address",
        type=_positive_int,
        default=DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
        metavar="N",
        help=(
            "TCP connections from one address still in their opening handshake; more are "
            "closed before a byte is read (default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--max-sockets",
        type=_positive_int,
        default=None,
        metavar="N",
        help=(
            "TCP connections of every kind the process holds; more are closed unread "
            "(default: the open-file limit less 612, so that accept() never fails)"
        ),
    )
    limits.add_argument(
        "--handshake-timeout",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help=(
            "time from the TCP connection to the end of the opening handshake (TLS gets as "
            "long again) before the socket is closed (default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--connects-per-second",
        type=_non_negative_float,
        default=DEFAULT_CONNECTS_PER_SECOND,
        metavar="N",
        help=(
            "WebSocket connects per second one address may keep up; past the burst more get "
            "HTTP 429 (default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--connect-burst",
        type=_positive_int,
        default=None,
        metavar="N",
        help="connects one address may make at once (default: --max-connections-per-address)",
    )
    limits.add_argument(
        "--address-prefix-v4",
        type=_prefix(32),
        default=32,
        metavar="BITS",
        help="IPv4 addresses that count as one address (default: /%(default)s)",
    )
    limits.add_argument(
        "--address-prefix-v6",
        type=_prefix(128),
        default=64,
        metavar="BITS",
        help="IPv6 addresses that count as one address (default: /%(default)s, one host's LAN)",
    )
    limits.add_argument(
        "--network-prefix-v4",
        type=_prefix(32),
        default=24,
        metavar="BITS",
        help="IPv4 addresses that count as one network (default: /%(default)s)",
    )
    limits.add_argument(
        "--network-prefix-v6",
        type=_prefix(128),
        default=48,
        metavar="BITS",
        help="IPv6 addresses that count as one network (default: /%(default)s, one site)",
    )
    limits.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        type=_network,
        metavar="CIDR",
        help=(
            "a reverse proxy's network (10.0.0.0/8, 2001:db8::/32; an address is one host), "
            "repeatable: a WebSocket upgrade from it is counted for the per-address and "
            "per-network limits, churn and the log under the right-most X-Forwarded-For "
            "address that is not a trusted proxy; a header naming none counts the proxy "
            "(forwarded_for_malformed_total). The handshake cap still counts the proxy. "
            "(default: none; X-Forwarded-For is ignored, so clients cannot choose the "
            "address they are counted under)"
        ),
    )
    limits.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help=(
            "a web origin (https://app.example) whose pages may open WebSocket connections, "
            "repeatable; '*' allows all, 'null' file:// pages (default: only the server's own "
            "page, and clients that send no Origin; others get HTTP 403)"
        ),
    )
    limits.add_argument(
        "--max-outbox",
        type=_positive_int,
        default=1024,
        metavar="N",
        help=(
            "messages queued for one recipient that does not read before it is closed "
            "with 1013 (default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--max-outbox-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_OUTBOX_BYTES,
        metavar="N",
        help="the same in bytes (default: %(default)s)",
    )
    limits.add_argument(
        "--max-queued-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_QUEUED_BYTES,
        metavar="N",
        help=(
            "bytes queued for all recipients together; past it the one holding the most is "
            "closed with 1013 (default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--compression",
        choices=["off", "deflate"],
        default="off",
        help=(
            "offer permessage-deflate; signaling messages are small and deflate costs memory "
            "per connection and lets small frames inflate to large ones (default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--max-inflated-bytes-per-second",
        type=_positive_int,
        default=DEFAULT_MAX_INFLATED_BYTES_PER_SECOND,
        metavar="N",
        help=(
            "with --compression deflate: bytes one connection may send per second once "
            "inflated (bursts of 4x); more are answered rate-limited (default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--max-address-bytes-per-second",
        type=_positive_float,
        default=None,
        metavar="N",
        help=(
            "bytes per second (1 KiB more per message) one address's connections together "
            "get read; past it their reads wait and TCP slows the sender (default: --rate x "
            "(--max-message-bytes + 1024), bursts of --burst such messages)"
        ),
    )
    limits.add_argument(
        "--max-rooms",
        type=_positive_int,
        default=None,
        metavar="N",
        help="rooms that may exist at once; a join that would create one more is answered busy "
        "(default: no limit)",
    )
    limits.add_argument(
        "--max-unanswered-calls",
        type=_count,
        default=10,
        metavar="N",
        help=(
            "dialled calls waiting unanswered per caller, and per callee, in a minute "
            "(0: off; default: %(default)s)"
        ),
    )
    limits.add_argument(
        "--ping-interval",
        type=_positive_float,
        default=20.0,
        metavar="SECONDS",
        help="time between keepalive pings (default: %(default)s)",
    )
    limits.add_argument(
        "--ping-timeout",
        type=_positive_float,
        default=20.0,
        metavar="SECONDS",
        help="time to wait for a pong before the peer is dropped (default: %(default)s)",
    )
    return parser


class _QuietAcceptErrors:
    """A loop exception handler that words failed ``accept()`` calls once a minute.

    asyncio reports every ``accept()`` that fails for want of descriptors
    (EMFILE, ENFILE, ENOBUFS) with a traceback, and under a connection flood
    that is thousands of them. The server's socket budget keeps it from
    happening (``--max-sockets``); should other descriptors run out anyway,
    one line a minute says so. Anything else goes to asyncio's own handler.
    """

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._count = 0
        self._last = -interval

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "accept" not in str(context.get("message", "")):
            loop.default_exception_handler(context)
            return
        self._count += 1
        now = loop.time()
        if now - self._last >= self.interval:
            logger.warning(
                "accept() failed %d times: out of descriptors (%s); raise the open-file limit "
                "or lower --max-sockets",
                self._count,
                context.get("exception"),
            )
            self._count = 0
            self._last = now


async def serve(server: SignalingServer) -> None:
    """Run ``server`` until SIGINT or SIGTERM, then stop it.

    Prints the URL line once listening. Raises :exc:`OSError` if the server
    cannot bind.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.set_exception_handler(_QuietAcceptErrors())
    try:
        await server.start()
        print(f"{PROG} {VERSION} listening on {server.url}", flush=True)
        await stop.wait()
        logger.info("shutting down")
    finally:
        await server.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _cannot_start(exc: OSError, args: argparse.Namespace) -> str:
    """What kept the server from starting, in a line for the command line."""
    if args.redis:
        # Imported only with --redis: redis-py adds 6 MiB to every server.
        from callapp.signaling.backplane import BackplaneUnavailable

        if isinstance(exc, BackplaneUnavailable):
            return str(exc)
    # strerror is the system's sentence ("Address already in use"), without
    # Python's "[Errno 98]" around it.
    return f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``callapp-signaling``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    if args.room_capacity > args.max_room_capacity:
        parser.error(
            f"--room-capacity {args.room_capacity} is above --max-room-capacity "
            f"{args.max_room_capacity}; raise --max-room-capacity too"
        )
    try:
        secret = read_secret(args.turn_secret_file) if args.turn_secret_file else args.turn_secret
        turn = turn_config(args.turn_url, secret, args.turn_ttl)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ssl_context = None
    if args.cert is not None:
        try:
            ssl_context = server_context(args.cert, args.key)
        except TlsError as exc:
            print(f"{PROG}: error: cannot load --cert/--key: {exc}", file=sys.stderr)
            return 1
    server = SignalingServer(
        args.host,
        args.port,
        room_capacity=args.room_capacity,
        max_room_capacity=args.max_room_capacity,
        max_rooms=args.max_rooms,
        max_unanswered_calls=args.max_unanswered_calls,
        require_room_keys=args.require_room_keys,
        ice_servers=args.ice_server,
        turn=turn,
        max_message_bytes=args.max_message_bytes,
        rate=args.rate,
        burst=args.burst,
        abuse_threshold=args.abuse_threshold,
        abuse_decay=args.abuse_decay,
        max_connections_per_address=args.max_connections_per_address,
        max_connections_per_network=args.max_connections_per_network,
        max_connections=args.max_connections,
        max_handshakes_per_address=args.max_handshakes_per_address,
        max_sockets=args.max_sockets,
        connects_per_second=args.connects_per_second,
        connect_burst=args.connect_burst,
        address_prefix_v4=args.address_prefix_v4,
        address_prefix_v6=args.address_prefix_v6,
        network_prefix_v4=args.network_prefix_v4,
        network_prefix_v6=args.network_prefix_v6,
        allowed_origins=args.allow_origin,
        max_outbox=args.max_outbox,
        max_outbox_bytes=args.max_outbox_bytes,
        max_queued_bytes=args.max_queued_bytes,
        compression="deflate" if args.compression == "deflate" else None,
        max_inflated_bytes_per_second=args.max_inflated_bytes_per_second,
        max_address_bytes_per_second=args.max_address_bytes_per_second,
        open_timeout=args.handshake_timeout,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        ssl_context=ssl_context,
        redis=args.redis,
        redis_options={"namespace": args.redis_namespace},
        trusted_proxies=args.trusted_proxy,
    )
    try:
        eventloop.run(serve(server), factory=eventloop.fast_loop_factory())
    except OSError as exc:
        print(f"{PROG}: error: {_cannot_start(exc, args)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
