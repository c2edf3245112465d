"""Two desktop windows in one process, on one qasync loop, in a real call.

Window A hosts (embedded SignalingServer on a free port), window B joins A's
room; both paint the other's frames. A third window meets a full room, a bad
address and an unreachable server, each said in its error banner. Hanging up
in B returns both to waiting; B then dials A by connection id and A accepts
in the real incoming-call box. Closing the windows stops the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from callapp.call.state import CallPhase
from callapp.ui.launcher import make_server, make_session
from callapp.ui.main_window import MainWindow
from callapp.ui.services import QtUiServices
from callapp.ui.settings import SettingsStore
from callapp.ui.viewmodel import CallOptions, CallViewModel
from tests.ui.conftest import qloop, temporary_settings
from tests.ui.fakes import until

__all__ = ["qloop", "temporary_settings"]  # fixtures shared with tests/ui

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]

FRAMES = 30
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class App:
    """One window with its own view-model, over the real engine and server."""

    def __init__(self, qtbot: QtBot, name: str, x: int, audio: str = "none") -> None:
        self.services = QtUiServices()
        self.vm = CallViewModel(
            make_session,
            make_server,
            self.services,
            CallOptions(video="test", audio=audio, width=320, height=240, allow_loopback=True),
            host_port=0,
            bind_host="127.0.0.1",
            lan_address=lambda: "127.0.0.1",
        )
        self.window = MainWindow(self.vm, SettingsStore(), allow_loopback=True)
        self.services.set_parent(self.window)
        self.window.setWindowTitle(f"callapp {name}")
        qtbot.addWidget(self.window)
        self.window.setGeometry(x, 0, 900, 480)
        self.window.show()

    def describe(self) -> str:
        snap = self.vm.snapshot
        return f"{snap.phase.value}, peer {snap.peer_id}, errors {self.vm.errors}"

    def phase(self) -> CallPhase:
        return self.vm.snapshot.phase

    @property
    def painted(self) -> int:
        return self.window.remote_view.frames_painted


@pytest.fixture
def apps(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> Iterator[list[App]]:
    """Windows made by a test; any still open at the end are closed cleanly."""
    made: list[App] = []
    yield made
    if all(app.window.closed_cleanly for app in made):
        return
    for app in made:
        app.window.close()
    qloop.run_until_complete(until(lambda: all(a.window.closed_cleanly for a in made), 20))


async def close_all(apps: list[App]) -> None:
    for app in apps:
        app.window.close()
    await until(lambda: all(a.window.closed_cleanly for a in apps), 20)


def test_two_windows_call_each_other(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, apps: list[App]
) -> None:
    a, b = App(qtbot, "A", 0, "tone:440"), App(qtbot, "B", 910, "tone:880")
    c = App(qtbot, "C", 0)
    apps.extend([a, b, c])
    # One run of the loop for the whole call: qasync's run_until_complete ends
    # with a processEvents() outside the loop, where aiortc's tasks would break.
    qloop.run_until_complete(scenario(a, b, c))


def _fetch_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


async def scenario(a: App, b: App, c: App) -> None:

    # A hosts: embedded server on a free port, a readable room.
    await a.vm.host()
    hosting = a.vm.hosting
    assert hosting is not None, a.vm.error
    assert a.window.share_url_edit.text() == hosting.share_url
    assert a.phase() is CallPhase.WAITING
    # The browser link A shows opens the server's web client in that room.
    assert a.window.invite_edit.text() == hosting.invite_url
    assert hosting.invite_url == f"http://127.0.0.1:{hosting.port}/?room={hosting.room}"
    page = await asyncio.to_thread(_fetch_text, hosting.invite_url)
    assert "/static/app.js" in page
    assert hosting.room in a.window.status_label.text()

    # B joins A's room through the address A shows, asking for a camera that
    # is not there (the test pattern stands in, and the window says so).
    b.window.video_combo.setCurrentText("camera:9")
    b.window.server_edit.setText(a.window.share_url_edit.text())
    b.window.room_edit.setText(a.window.share_room_edit.text())
    b.window.join_button.click()
    await until(lambda: a.painted >= FRAMES and b.painted >= FRAMES, 60)
    assert a.phase() is CallPhase.CONNECTED
    assert b.phase() is CallPhase.CONNECTED
    assert "Connected to" in a.window.status_label.text()
    assert a.window.local_view.frames_painted > 0
    await until(lambda: a.window.stats_label.text() and b.window.stats_label.text(), 10)
    assert "fps" in b.window.stats_label.text()
    assert b.window.notice_label.isVisible()
    assert "camera" in b.window.notice_label.text().lower(), b.window.notice_label.text()
    assert "test pattern" in b.window.notice_label.text().lower()

    # Audio both ways: each window's tone reaches the other.
    def audio_received(app: App) -> int:
        stats = app.vm.last_stats
        return stats.audio_frames_received if stats is not None else 0

    await until(lambda: audio_received(a) > 0 and audio_received(b) > 0, 15)

    # A mutes: the button, the status area and A's own snapshot say so.
    a.window.mute_button.click()
    await until(lambda: a.vm.snapshot.muted, 5)
    assert a.window.mute_button.isChecked()
    assert a.window.mute_button.text() == "Unmute"
    assert a.window.muted_label.isVisible()
    assert not b.vm.snapshot.muted, "muting is A's own business"

    # C: a full room, a malformed address, an unreachable server -- in words.
    await c.vm.join(hosting.share_url, hosting.room)
    assert "full" in c.window.error_label.text().lower(), c.window.error_label.text()
    assert c.window.error_label.isVisible()
    await c.vm.join("ws://exa mple.org:8765/ws", "x")
    assert "spaces" in c.window.error_label.text()
    await c.vm.join(f"ws://127.0.0.1:{free_port()}/ws", "x")
    unreachable = c.window.error_label.text()
    assert "reach" in unreachable.lower(), unreachable
    assert "Traceback" not in unreachable
    assert a.phase() is CallPhase.CONNECTED, "the call survived the third window"

    # B hangs up: both go back to waiting, and the pictures go away.
    b.window.hang_up_button.click()
    await until(lambda: a.phase() is CallPhase.WAITING and b.phase() is CallPhase.WAITING, 15)
    assert not a.window.remote_view.has_picture
    assert "ended" in a.window.status_label.text()

    # B dials A by id; A accepts in the incoming-call box.
    b.window.peer_edit.setText(a.window.id_edit.text())
    await until(b.window.call_button.isEnabled, 15)  # enabled once the hang-up is done
    b.window.call_button.click()

    def incoming_box() -> QMessageBox | None:
        return a.window.findChild(QMessageBox, "incomingCallBox")

    def box_shown() -> bool:
        box = incoming_box()
        return box is not None and box.isVisible()

    try:
        await until(box_shown, 15)
    except TimeoutError:
        pytest.fail(f"no incoming-call box: A {a.describe()}; B {b.describe()}")
    box = incoming_box()
    assert box is not None
    accept = next(btn for btn in box.buttons() if btn.text() == "Accept")
    accept.click()
    before = a.painted
    await until(lambda: a.phase() is CallPhase.CONNECTED and a.painted >= before + FRAMES, 60)
    assert b.phase() is CallPhase.CONNECTED
    assert a.vm.snapshot.muted, "A is still muted in the next call"
    assert a.window.mute_button.text() == "Unmute"

    # Closing the windows hangs up and stops A's server.
    server_port = hosting.port
    await close_all([a, b, c])
    assert a.vm.hosting is None
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server_port)) != 0, "the server still listens"


def launch(
    tmp_path: Path, name: str, *flags: str, room: str, seconds: float
) -> subprocess.Popen[str]:
    """``python -m callapp FLAGS`` offscreen, with its own settings and stats file."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callapp",
            *flags,
            "--room",
            room,
            "--video",
            "test",
            "--allow-loopback",
            "--quit-after",
            str(seconds),
            "--stats-json",
            str(tmp_path / f"{name}.json"),
            "--settings",
            str(tmp_path / f"{name}.ini"),
        ],
        cwd=ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_port(port: int, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on port {port}")


def test_two_launcher_processes_call_each_other(tmp_path: Path) -> None:
    """``callapp --host`` in one process and ``callapp --server --room`` in another."""
    port = free_port()
    host = launch(
        tmp_path,
        "host",
        "--host",
        "--port",
        str(port),
        "--audio",
        "tone:440",
        room="two-procs",
        seconds=14,
    )
    wait_for_port(port)
    guest = launch(
        tmp_path,
        "guest",
        "--server",
        f"127.0.0.1:{port}",
        "--audio",
        "tone:880",
        "--speaker",
        "none",
        room="two-procs",
        seconds=10,
    )
    guest_out = guest.communicate(timeout=60)
    host_out = host.communicate(timeout=60)
    assert guest.returncode == 0, guest_out[1]
    assert host.returncode == 0, host_out[1]
    for name in ("host", "guest"):
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert data["frames_painted"] >= FRAMES, (name, data)
        assert data["codec"] == "VP8"
        assert data["received_size"] == [640, 480]
        assert data["errors"] == []
        assert data["audio_frames_received"] > 0, (name, data)


def test_a_peer_that_dies_is_said_in_the_hosts_window(tmp_path: Path) -> None:
    """The guest process is killed mid-call: the host says so, in words, and waits again."""
    port = free_port()
    host = launch(tmp_path, "host", "--host", "--port", str(port), room="lost-peer", seconds=14)
    wait_for_port(port)
    guest = launch(tmp_path, "guest", "--server", f"127.0.0.1:{port}", room="lost-peer", seconds=60)
    time.sleep(7)  # the call is up and painting by now
    guest.kill()
    guest.communicate(timeout=20)
    host_out = host.communicate(timeout=60)
    assert host.returncode == 0, host_out[1]  # it painted frames before the peer died
    assert "Traceback" not in host_out[1]
    data = json.loads((tmp_path / "host.json").read_text())
    assert data["frames_painted"] >= FRAMES, data
    assert data["phase"] == "waiting", data
    assert data["end_reason_text"] in (
        "the other person left",
        "the connection to the other person was lost",
    )
    assert data["errors"] == [f"The call ended: {data['end_reason_text']}."]
    (peer,) = data["peers"]
    assert peer["end_reason"] in ("peer_left", "peer_unreachable")
