"""``callapp``: open the desktop window, optionally scripted from the command line.

Builds the QApplication and the qasync loop, the view-models over the real
call engine and embedded server, and the window; then runs until the window
closes (or ``--quit-after`` seconds, writing ``--stats-json`` first). With
``--host``, ``--invite LINK`` or ``--server URL --room NAME`` the window goes
straight to the call screen. Hosting prints ``invite: LINK`` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from callapp import __version__
from callapp.call.config import CallConfig
from callapp.call.report import session_report
from callapp.ui.address import DEFAULT_PORT
from callapp.ui.models.app import AppModel
from callapp.ui.models.call import CallOptions
from callapp.ui.models.hosting import Hosting
from callapp.ui.ports import ServerLike, SessionLike, TlsFiles
from callapp.ui.services import QtUiServices
from callapp.ui.settings import Overrides, SettingsKeeper, SettingsStore
from callapp.ui.views.main_window import MainWindow

log = logging.getLogger(__name__)


EPILOG = """\
how to call:
  Start a call (Host): press "Start a call", or run  callapp --host
      The app starts its own server on port %(port)s (any free port if that
      one is taken) and shows one invite link. Send it to the others.
  Join: paste the invite link into the Join field, or run
      callapp --invite 'http://192.168.1.20:8765/?room=blue-fox-42#secret=...'
  An address and a room work too (a room without a secret):
      callapp --server 192.168.1.20:8765 --room team
  Calls by id: callapp --server HOST:PORT --to CONNECTION_ID

examples:
  callapp --host --name Ana                 host, shown to the others as Ana
  callapp --invite LINK --video test        join with the test pattern
  callapp --host --quit-after 30 --stats-json stats.json   scripted

settings live in %(settings)s
(or the INI file given with --settings, or $CALLAPP_SETTINGS); flags given on
the command line apply to this run only.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callapp",
        description="Peer-to-peer video calls: start a call and send the link, or join one.",
        epilog=EPILOG % {"port": DEFAULT_PORT, "settings": _settings_location()},
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"callapp {__version__}")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--host", action="store_true", help="start a call hosted here")
    where.add_argument(
        "--server", metavar="URL", help="signaling server: HOST:PORT or ws://HOST:PORT/ws"
    )
    where.add_argument("--invite", metavar="LINK", help="join the call this invite link opens")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--room", metavar="NAME", help="room to join (or host)")
    who.add_argument("--to", metavar="ID", help="connection id to dial")
    parser.add_argument("--name", metavar="NAME", help="your name, as the others see it")
    parser.add_argument("--video", metavar="camera|test|PATH", help="video source")
    parser.add_argument(
        "--audio", metavar="mic|tone:HZ|none|PATH", help="audio source (also mic:DEVICE)"
    )
    parser.add_argument(
        "--speaker",
        metavar="DEVICE",
        help="play the others' audio here: an index or part of a name, or none",
    )
    parser.add_argument("--quit-after", type=float, metavar="SECONDS", help="close after this")
    parser.add_argument("--stats-json", type=Path, metavar="PATH", help="write stats on quit")
    parser.add_argument(
        "--allow-loopback", action="store_true", help="offer 127.0.0.1 ICE candidates"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port to host on (0: any free one; default {DEFAULT_PORT}, or as in Preferences)",
    )
    parser.add_argument("--settings", type=Path, metavar="PATH", help="settings INI file")
    parser.add_argument(
        "--cert", metavar="PEM", help="host with TLS (wss://, https://): certificate file"
    )
    parser.add_argument("--key", metavar="PEM", help="private key of --cert (if not in it)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser


def _settings_location() -> str:
    try:
        return SettingsStore().location
    except Exception:  # the parser must build even where QSettings cannot
        return "the platform's settings folder (callapp/callapp.ini)"


def make_session(config: CallConfig) -> SessionLike:
    """The real call engine."""
    from callapp.call.session import CallSession

    return CallSession(config)


def make_server(host: str, port: int, tls: TlsFiles | None = None) -> ServerLike:
    """The embedded signaling server Host starts (serving TLS with ``tls``).

    Raises ``callapp.signaling.tls.TlsError`` (a ValueError, in plain words)
    if the certificate or key cannot be used.
    """
    from callapp.signaling.server import SignalingServer
    from callapp.signaling.tls import server_context

    context = server_context(*tls) if tls is not None else None
    return SignalingServer(host, port, ssl_context=context)


def make_loop(app: QApplication) -> asyncio.AbstractEventLoop:
    """qasync's loop on ``app``; the selector flavour on Windows.

    qasync picks a Proactor loop on Windows, whose UDP transport can stop
    receiving after an ICMP port-unreachable (CPython #91227, #127057).
    """
    import qasync

    factory = qasync.QSelectorEventLoop if sys.platform == "win32" else qasync.QEventLoop
    return cast(asyncio.AbstractEventLoop, factory(app))


def stats_report(window: MainWindow, started: float) -> dict[str, Any]:
    """``--stats-json``: ``callapp call``'s report, plus what the window painted."""
    app = window.app
    snap = app.snapshot
    session = app.session
    screen = window.call_screen
    painted = screen.frames_painted
    first = screen.first_frame_at
    report = session_report(
        snap.connection_id,
        session.records() if session is not None else [],
        started_at=started,
        chat=snap.chat,
    )
    report.update(
        {
            # what only the window knows
            "muted": snap.muted,
            "phase": snap.phase.value,
            "screen": app.call.screen.value,
            "room": snap.room,
            "peer_id": snap.peer_id,
            "notice": snap.notice,
            "end_reason_text": snap.end_reason.value if snap.end_reason else None,
            "hosting": app.hosting.report() if app.hosting else None,
            "frames_painted": painted,
            "frames_dropped": screen.frames_dropped,
            "first_frame_painted_ms": (round((first - started) * 1000, 1) if first else None),
            "local_frames_painted": window.local_view.frames_painted,
            "paint_ms_per_frame": (
                round(screen.paint_seconds * 1000 / painted, 3) if painted else None
            ),
            "errors": list(app.errors),
            "window_size": [window.width(), window.height()],
            "video_area_fraction": round(screen.video_fraction(), 4),
            "video_area_fraction_in_call": round(screen.last_video_fraction, 4),
            "ran_for_s": round(time.monotonic() - started, 3),
        }
    )
    return report


def main(argv: list[str]) -> int:
    """Run the desktop app; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.key and not args.cert:
        parser.error("--key goes with --cert")
    if args.room and not (args.host or args.server):
        parser.error("--room goes with --host or --server (an invite link names its room)")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "callapp"])
    assert isinstance(app, QApplication)
    app.setApplicationName("callapp")
    app.setOrganizationName("callapp")
    loop = make_loop(app)
    asyncio.set_event_loop(loop)

    # One-off flags apply to this run only; the window saves what the person changes.
    keeper = SettingsKeeper(SettingsStore(args.settings), Overrides.from_args(args))
    settings = keeper.current
    options = CallOptions.from_settings(settings, allow_loopback=args.allow_loopback)
    options = dataclasses.replace(options, name=settings.name or "Guest")

    services = QtUiServices()
    model = AppModel(make_session, make_server, services, options, host_port=settings.host_port)
    window = MainWindow(model, keeper=keeper, allow_loopback=args.allow_loopback)
    services.set_parent(window)
    scripted = bool(args.host or args.room or args.to or args.invite)
    model.devices.preview.held = scripted  # straight to the call: no preview first
    window.resize(window.sizeHint())
    window.show()
    started = time.monotonic()

    def say_invite(hosting: object) -> None:
        if isinstance(hosting, Hosting) and hosting.invite:
            print(f"invite: {hosting.invite}", flush=True)

    model.hosting_model.hostingChanged.connect(say_invite)

    def start() -> None:
        if args.host:
            model.call.host(args.room or "")
        elif args.invite:
            model.call.join_text(args.invite)
        elif args.to:
            model.call.dial(args.server or settings.server_url, args.to)
        elif args.server:
            model.join(args.server, args.room or "")

    async def finish() -> None:
        if model.session is not None:
            try:
                model.call.last_stats = await model.session.stats() or model.call.last_stats
            except Exception as exc:
                log.debug("final stats failed: %s", exc)
        if args.stats_json is not None:
            report = stats_report(window, started)
            args.stats_json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        window.close_without_asking()

    def list_devices_then_start() -> None:
        # The pickers fill in first: probing a camera while a call opens it could
        # disturb the call (with no camera here this takes milliseconds).
        model.devices.refresh().add_done_callback(lambda _: start())

    loop.call_soon(list_devices_then_start)
    if args.quit_after is not None:
        loop.call_later(args.quit_after, lambda: asyncio.ensure_future(finish()))

    # Ctrl+C closes the window cleanly; the timer lets Python see the signal.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: window.close_without_asking())
        wake = QTimer()
        wake.start(250)
        wake.timeout.connect(lambda: None)

    try:
        loop.run_forever()
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    painted = window.call_screen.frames_painted
    if args.quit_after is not None and scripted and painted == 0:
        return 1
    return 0


__all__ = ["main", "make_loop", "make_server", "make_session", "stats_report"]
