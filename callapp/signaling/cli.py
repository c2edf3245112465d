"""``callapp-signaling``: run the signaling server standalone.

::

    callapp-signaling --host 0.0.0.0 --port 8765 --ice-server stun:stun.example.org

Once listening it prints one line with the ``ws://HOST:PORT/ws`` URL (the
real port with ``--port 0``) and flushes stdout, so that scripts can read it.
SIGINT and SIGTERM close every connection with 1001 and exit 0. Bad
arguments print a one-line error and exit 2; a port that cannot be bound or
an unreadable certificate exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from typing import Any, NoReturn

from callapp import eventloop
from callapp.signaling.messages import MAX_MESSAGE_BYTES, MAX_ROOM_CAPACITY, MIN_ROOM_CAPACITY
from callapp.signaling.rooms import DEFAULT_MAX_ROOM_CAPACITY, DEFAULT_ROOM_CAPACITY
from callapp.signaling.server import VERSION, SignalingServer
from callapp.signaling.tls import TlsError, server_context

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
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="(default: %(default)s)",
    )
    parser.add_argument("--cert", metavar="PEM", help="TLS certificate chain: serve wss://")
    parser.add_argument("--key", metavar="PEM", help="TLS private key (with --cert)")
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-message-bytes", type=_positive_int, default=MAX_MESSAGE_BYTES, metavar="N"
    )
    limits.add_argument("--rate", type=_positive_float, default=50.0, metavar="PER_SECOND")
    limits.add_argument("--burst", type=_positive_int, default=200, metavar="N")
    limits.add_argument(
        "--max-connections-per-address", type=_positive_int, default=256, metavar="N"
    )
    limits.add_argument("--max-rooms", type=_positive_int, default=None, metavar="N")
    limits.add_argument(
        "--max-unanswered-calls",
        type=_count,
        default=10,
        metavar="N",
        help="dialled calls waiting unanswered per caller, and per callee, in a minute (0: off)",
    )
    limits.add_argument("--ping-interval", type=_positive_float, default=20.0, metavar="SECONDS")
    limits.add_argument("--ping-timeout", type=_positive_float, default=20.0, metavar="SECONDS")
    return parser


async def serve(server: SignalingServer) -> None:
    """Run ``server`` until SIGINT or SIGTERM, then stop it.

    Prints the URL line once listening. Raises :exc:`OSError` if the server
    cannot bind.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        print(f"{PROG} {VERSION} listening on {server.url}", flush=True)
        await stop.wait()
        logger.info("shutting down")
    finally:
        await server.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


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
        max_message_bytes=args.max_message_bytes,
        rate=args.rate,
        burst=args.burst,
        max_connections_per_address=args.max_connections_per_address,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        ssl_context=ssl_context,
    )
    try:
        eventloop.run(serve(server))
    except OSError as exc:
        print(f"{PROG}: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
