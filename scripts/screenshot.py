"""The README's pictures: the lobby, a 1:1 call, a 3-person call with chat, ringing,
and the browser client.

The desktop pictures are the real window (``callapp.ui.views.main_window``)
rendered offscreen at its default size, over the fake sessions the UI tests
use (``tests/ui/fakes.py``): the peers send test-pattern frames labelled with
their names, so every state can be shown without a network or a camera. The
lobby's self-preview is the real preview service showing the test pattern,
and its meter measures a test tone. The browser picture is headless Chromium
(``tests/e2e/chromium.py``) in a real call with a second page, on a real
signaling server on 127.0.0.1.

Usage: .venv/bin/python scripts/screenshot.py [--out DIR] [--skip-browser]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: How long a picture may take to get ready (the machine may be loaded).
READY_WITHIN = 60.0


async def until(predicate: Callable[[], object], what: str, within: float = READY_WITHIN) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshot: timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Feeder:
    """Sends each peer's labelled test pattern (and ours) to the window, 15 times a second."""

    def __init__(self, session: Any, peers: dict[str, str]) -> None:
        from callapp.media.testpattern import PatternRenderer

        self.session = session
        self.renderers = {pid: PatternRenderer(640, 360, label=name) for pid, name in peers.items()}
        self.me = PatternRenderer(640, 360, label="You")
        self.index = 0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            for pid, renderer in self.renderers.items():
                self.session.frame(pid, renderer.render(self.index, elapsed, time.time()))
            if self.session.local_cb is not None:
                self.session.local_cb(self.me.render(self.index, elapsed, time.time()))
            self.index += 1
            await asyncio.sleep(1 / 15)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def save(widget: Any, path: Path) -> None:
    from PySide6.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
    widget.repaint()
    pixmap = widget.grab()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not pixmap.save(str(path), "PNG"):
        raise SystemExit(f"screenshot: could not write {path}")
    print(f"screenshot: {path} ({pixmap.width()}x{pixmap.height()})")


async def desktop_pictures(out: Path) -> None:
    from callapp.ui.settings import SettingsStore
    from callapp.ui.views.main_window import MainWindow
    from tests.ui.harness import Harness

    async def settle(seconds: float = 0.6) -> None:
        await asyncio.sleep(seconds)

    async def picture(name: str, scene: Callable[[Harness, MainWindow], Awaitable[None]]) -> None:
        h = Harness()
        store = SettingsStore()
        saved = store.load().with_changes(name="Ana", video="test", audio="tone:440")
        window = MainWindow(h.app, store, saved)
        window.resize(window.sizeHint())
        window.show()
        try:
            await scene(h, window)
            save(window, out / f"screenshot-{name}.png")
        finally:
            window.close_without_asking()
            await until(lambda: window.closed_cleanly, "the window to close")
            window.hide()
            window.deleteLater()

    async def lobby(h: Harness, window: MainWindow) -> None:
        window.lobby.name_edit.setText("Ana")
        window.lobby.video_combo.set_spec("test")
        window.lobby.mic_combo.set_spec("tone:440")
        window.lobby.start_preview()
        await until(lambda: window.lobby.preview_view.frames_painted >= 10, "the self-preview")
        await until(lambda: window.lobby.mic_meter.value() > 0, "the level meter")
        await settle()

    async def call(h: Harness, window: MainWindow) -> None:
        await h.app.call.join_text("127.0.0.1:8765/blue-fox-42")
        h.session.add_peer("id-bo", "Bo")
        feeder = Feeder(h.session, {"id-bo": "Bo"})
        tile = window.call_screen.tiles["id-bo"]
        await until(lambda: tile.video.frames_painted >= 10, "Bo's video")
        h.app.call._tick()  # the timer and the quality line, as each second does
        await settle(1.2)
        await feeder.stop()

    async def group_chat(h: Harness, window: MainWindow) -> None:
        await h.app.call.join_text("127.0.0.1:8765/blue-fox-42")
        peers = {"id-bo": "Bo", "id-cy": "Cy", "id-di": "Di"}
        for pid, name in peers.items():
            h.session.add_peer(pid, name, muted=name == "Cy")
        feeder = Feeder(h.session, peers)
        await until(
            lambda: all(t.video.frames_painted >= 5 for t in window.call_screen.tiles.values()),
            "three peers' video",
        )
        window.call_screen.set_chat_open(True)
        h.session.receive_chat("id-bo", "Bo", "Hi all! Can you hear me?")
        h.session.receive_chat("id-cy", "Cy", "Loud and clear. I'm muted, typing here.")
        await h.app.chat.send("Great, let's start.")
        h.app.call._tick()
        await settle(1.2)
        await feeder.stop()

    async def ringing(h: Harness, window: MainWindow) -> None:
        await h.app.call.join_text("127.0.0.1:8765")  # connected, waiting to be called
        h.session.ring("id-bo", "Bo")
        await until(lambda: window.call_screen.ringing_panel.isVisible(), "the ringing panel")
        await settle()

    for name, scene in (
        ("lobby", lobby),
        ("call", call),
        ("group-chat", group_chat),
        ("ringing", ringing),
    ):
        await picture(name, scene)


async def browser_picture(out: Path) -> None:
    from callapp.signaling.server import SignalingServer
    from tests.e2e.chromium import Chromium, find_chromium

    if find_chromium() is None:
        raise SystemExit("screenshot: no Chromium found (set $CHROMIUM)")
    server = SignalingServer("127.0.0.1", 0)
    await server.start()
    try:
        async with Chromium.launch() as browser:
            first, second = await browser.new_page(), await browser.new_page()
            for page in (first, second):
                await page.set_viewport(1024, 640)
            await first.navigate(f"{server.http_url}?room=blue-fox-42&name=Ana")
            await first.wait_for("window.callapp.state === 'waiting'", within=30)
            await second.navigate(f"{server.http_url}?room=blue-fox-42&name=Bo")
            await first.wait_for(
                "window.callapp.state === 'connected' && window.callapp.framesRendered >= 30",
                within=READY_WITHIN,
            )
            await asyncio.sleep(2)  # the call timer moves, the quality settles
            png = await first.screenshot()
            path = out / "screenshot-browser.png"
            path.write_bytes(png)
            print(f"screenshot: {path} ({len(png)} bytes)")
            for page in (second, first):
                await page.close()
    finally:
        await server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the PNGs go")
    parser.add_argument("--skip-browser", action="store_true", help="no Chromium picture")
    parser.add_argument("--browser-only", action="store_true", help="only the Chromium picture")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["CALLAPP_SETTINGS"] = str(Path(tempfile.mkdtemp()) / "callapp.ini")

    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication(["callapp-screenshot"])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    async def everything() -> None:
        if not args.browser_only:
            await desktop_pictures(args.out)
        if not args.skip_browser:
            await browser_picture(args.out)

    try:
        loop.run_until_complete(everything())
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
