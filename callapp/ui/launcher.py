"""``callapp``: open the desktop window, optionally scripted from the command line.

Builds the QApplication and the qasync loop, the view-model over the real
call engine and embedded server, and the window; then runs until the window
closes (or ``--quit-after`` seconds, writing ``--stats-json`` first).
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

from callapp.call.config import CallConfig
from callapp.call.report import session_report
from callapp.ui.main_window import MainWindow
from callapp.ui.ports import ServerLike, SessionLike, TlsFiles
from callapp.ui.services import QtUiServices
from callapp.ui.settings import SettingsStore
from callapp.ui.viewmodel import CallOptions, CallViewModel

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callapp", description="Peer-to-peer video calls: host or join a call."
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--host", action="store_true", help="start a server here and host")
    where.add_argument("--server", metavar="URL", help="signaling server, ws://HOST:PORT/ws")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--room", metavar="NAME", help="room to join (or host)")
    who.add_argument("--to", metavar="ID", help="connection id to dial")
    parser.add_argument("--video", metavar="camera|test|PATH", help="video source")
    parser.add_argument(
        "--audio", metavar="mic|tone:HZ|none|PATH", help="audio source (also mic:DEVICE)"
    )
    parser.add_argument(
        "--speaker",
        metavar="DEVICE",
        help="play the peer's audio here: an index or part of a name, or none",
    )
    parser.add_argument("--quit-after", type=float, metavar="SECONDS", help="close after this")
    parser.add_argument("--stats-json", type=Path, metavar="PATH", help="write stats on quit")
    parser.add_argument(
        "--allow-loopback", action="store_true", help="offer 127.0.0.1 ICE candidates"
    )
    parser.add_argument("--port", type=int, default=8765, help="port to host on (0: any)")
    parser.add_argument("--settings", type=Path, metavar="PATH", help="settings INI file")
    parser.add_argument(
        "--cert", metavar="PEM", help="host with TLS (wss://, https://): certificate file"
    )
    parser.add_argument("--key", metavar="PEM", help="private key of --cert (if not in it)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser


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
    vm = window.vm
    snap = vm.snapshot
    session = vm.session
    view = window.remote_view
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
            "room": snap.room,
            "peer_id": snap.peer_id,
            "notice": snap.notice,
            "end_reason_text": snap.end_reason.value if snap.end_reason else None,
            "hosting": dataclasses.asdict(vm.hosting) if vm.hosting else None,
            "frames_painted": view.frames_painted,
            "frames_dropped": view.frames_dropped,
            "first_frame_painted_ms": (
                round((view.first_frame_at - started) * 1000, 1) if view.first_frame_at else None
            ),
            "local_frames_painted": window.local_view.frames_painted,
            "paint_ms_per_frame": (
                round(view.paint_seconds * 1000 / view.frames_painted, 3)
                if view.frames_painted
                else None
            ),
            "errors": list(vm.errors),
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

    store = SettingsStore(args.settings)
    settings = store.load()
    if args.server:
        settings = settings.with_changes(server_url=args.server)
    if args.room:
        settings = settings.with_changes(room=args.room)
    if args.video:
        settings = settings.with_changes(video=args.video)
    if args.audio:
        settings = settings.with_changes(audio=args.audio)
    if args.speaker is not None:
        settings = settings.with_changes(speaker=args.speaker)
    if args.cert:
        settings = settings.with_changes(cert_file=args.cert, key_file=args.key or "")

    services = QtUiServices()
    vm = CallViewModel(
        make_session,
        make_server,
        services,
        CallOptions.from_settings(settings, allow_loopback=args.allow_loopback),
        host_port=args.port,
    )
    window = MainWindow(vm, store, settings, allow_loopback=args.allow_loopback)
    services.set_parent(window)
    window.resize(window.sizeHint())
    window.show()
    started = time.monotonic()
    scripted = bool(args.host or args.room or args.to)

    def start() -> None:
        if args.host:
            vm.host(args.room or "")
        elif args.to:
            vm.call(window.server_edit.text(), args.to)
        elif args.server or args.room:
            vm.join(window.server_edit.text(), args.room or "")

    async def finish() -> None:
        if vm.session is not None:
            try:
                vm.last_stats = await vm.session.stats() or vm.last_stats
            except Exception as exc:
                log.debug("final stats failed: %s", exc)
        if args.stats_json is not None:
            report = stats_report(window, started)
            args.stats_json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        window.close()

    def list_devices_then_start() -> None:
        # The pickers fill in first: probing a camera while a call opens it could
        # disturb the call (with no camera here this takes milliseconds).
        vm.refresh_devices().add_done_callback(lambda _: start())

    loop.call_soon(list_devices_then_start)
    if args.quit_after is not None:
        loop.call_later(args.quit_after, lambda: asyncio.ensure_future(finish()))

    # Ctrl+C closes the window cleanly; the timer lets Python see the signal.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: window.close())
        wake = QTimer()
        wake.start(250)
        wake.timeout.connect(lambda: None)

    try:
        loop.run_forever()
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    painted = window.remote_view.frames_painted
    if args.quit_after is not None and scripted and painted == 0:
        return 1
    return 0


__all__ = ["main", "make_loop", "make_server", "make_session", "stats_report"]
