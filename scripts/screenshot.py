"""Screenshot of two callapp windows in a call, on a private Xvfb display.

Starts Xvfb, opens window A (hosting, embedded server) and window B (joined
to A's room) in this one process on one qasync loop, waits until both paint
the other's video and show stats, and saves the screen region holding both
windows to docs/screenshot.png (or the path given).

Usage: .venv/bin/python scripts/screenshot.py [OUTPUT.png]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCREEN = (1840, 620)


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb on a free display; returns the process and ``:N``."""
    if shutil.which("Xvfb") is None:
        sys.exit("screenshot: Xvfb is not installed (scripts/setup.sh installs it)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            f"{SCREEN[0]}x{SCREEN[1]}x24",
            "-nolisten",
            "tcp",
        ],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        sys.exit("screenshot: Xvfb did not start")
    return proc, f":{number}"


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot.png"
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    os.environ["CALLAPP_SETTINGS"] = str(Path(tempfile.mkdtemp()) / "callapp.ini")
    try:
        return asyncio_main(output)
    finally:
        xvfb.terminate()
        xvfb.wait(5)


def asyncio_main(output: Path) -> int:
    import qasync
    from PySide6.QtCore import QRect
    from PySide6.QtWidgets import QApplication

    from callapp.ui.launcher import make_server, make_session
    from callapp.ui.main_window import MainWindow
    from callapp.ui.services import QtUiServices
    from callapp.ui.settings import SettingsStore
    from callapp.ui.viewmodel import CallOptions, CallViewModel

    app = QApplication(["callapp-screenshot"])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    def window(name: str, x: int) -> MainWindow:
        services = QtUiServices()
        vm = CallViewModel(
            make_session,
            make_server,
            services,
            CallOptions(video="test", width=640, height=480, allow_loopback=True),
            host_port=0,
        )
        win = MainWindow(vm, SettingsStore(), allow_loopback=True)
        services.set_parent(win)
        win.setWindowTitle(f"callapp — {name}")
        win.setGeometry(x, 0, 910, 600)
        win.show()
        return win

    a = window("Alice (host)", 0)
    b = window("Bob", 925)

    async def scenario() -> None:
        # Alice sends the test pattern; Bob asks for a camera this machine lacks.
        a.video_combo.setCurrentText("test")
        a.room_edit.setText("amber-otter-42")
        a.host_button.click()
        while a.vm.hosting is None or a.vm.busy:  # noqa: ASYNC110 - plain flags
            await asyncio.sleep(0.05)
        b.server_edit.setText(a.share_url_edit.text())
        b.room_edit.setText(a.share_room_edit.text())
        b.join_button.click()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = a.remote_view.frames_painted >= 60 and b.remote_view.frames_painted >= 60
            if ready and a.stats_label.text() and b.stats_label.text():
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("screenshot: the two windows did not get into a call")
        await asyncio.sleep(1.5)  # a second stats refresh, a running duration
        for win in (a, b):
            win.repaint()
        screen = app.primaryScreen()
        area = a.frameGeometry().united(b.frameGeometry()).intersected(QRect(0, 0, *SCREEN))
        shot = screen.grabWindow(0, area.x(), area.y(), area.width(), area.height())
        output.parent.mkdir(parents=True, exist_ok=True)
        if not shot.save(str(output), "PNG"):
            raise SystemExit(f"screenshot: could not write {output}")
        print(
            f"screenshot: {output} ({shot.width()}x{shot.height()}); frames painted "
            f"A={a.remote_view.frames_painted} B={b.remote_view.frames_painted}"
        )
        a.close()
        b.close()
        while not (a.closed_cleanly and b.closed_cleanly):  # noqa: ASYNC110 - plain flags
            await asyncio.sleep(0.05)

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
