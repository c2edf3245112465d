"""Two desktop windows in one process, on one qasync loop, in a real call.

Window A presses "Start a call" (embedded SignalingServer on a free port, a
room with a secret), window B pastes A's invite link into the Join field;
both paint the other's frames. A third window meets the room without its
secret, a bad address and an unreachable server, each said in its lobby
banner. B hangs up and is back in the lobby; A is told and waits with the
invite again. Closing the windows stops the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from callapp.call.state import CallPhase
from callapp.ui.launcher import make_server, make_session
from callapp.ui.logic.wording import looks_technical
from callapp.ui.models.app import AppModel
from callapp.ui.models.call import CallOptions, Screen
from callapp.ui.services import QtUiServices
from callapp.ui.settings import SettingsStore
from callapp.ui.views.main_window import MainWindow
from tests.sizes import assert_received_as_sent
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
    """One window with its own models, over the real engine and server."""

    def __init__(self, qtbot: QtBot, name: str, x: int, audio: str = "none") -> None:
        self.services = QtUiServices()
        self.app = AppModel(
            make_session,
            make_server,
            self.services,
            CallOptions(
                video="test", audio=audio, width=320, height=240, allow_loopback=True, name=name
            ),
            host_port=0,
            bind_host="127.0.0.1",
            lan_address=lambda: "127.0.0.1",
        )
        self.window = MainWindow(self.app, SettingsStore(), allow_loopback=True)
        self.window.lobby.name_edit.setText(name)
        self.services.set_parent(self.window)
        self.window.setWindowTitle(f"callapp {name}")
        qtbot.addWidget(self.window)
        self.window.setGeometry(x, 0, 900, 560)
        self.window.show()

    def describe(self) -> str:
        snap = self.app.snapshot
        return f"{snap.phase.value}, legs {len(snap.legs)}, errors {self.app.errors}"

    def phase(self) -> CallPhase:
        return self.app.snapshot.phase

    @property
    def painted(self) -> int:
        return self.window.call_screen.frames_painted


@pytest.fixture
def apps(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> Iterator[list[App]]:
    """Windows made by a test; any still open at the end are closed cleanly."""
    made: list[App] = []
    yield made
    if all(app.window.closed_cleanly for app in made):
        return
    for app in made:
        app.window.close_without_asking()
    qloop.run_until_complete(until(lambda: all(a.window.closed_cleanly for a in made), 20))


async def close_all(apps: list[App]) -> None:
    for app in apps:
        app.window.close_without_asking()
    await until(lambda: all(a.window.closed_cleanly for a in apps), 20)


def test_two_windows_call_each_other(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, apps: list[App]
) -> None:
    a, b = App(qtbot, "Ana", 0, "tone:440"), App(qtbot, "Bo", 910, "tone:880")
    c = App(qtbot, "Cy", 0)
    apps.extend([a, b, c])
    # One run of the loop for the whole call: qasync's run_until_complete ends
    # with a processEvents() outside the loop, where aiortc's tasks would break.
    qloop.run_until_complete(scenario(a, b, c))


def _fetch_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


async def scenario(a: App, b: App, c: App) -> None:
    # A starts a call: embedded server on a free port, a room with a secret.
    a.window.lobby.start_button.click()
    await until(lambda: a.app.hosting is not None and not a.app.busy, 20)
    hosting = a.app.hosting
    assert hosting is not None, a.app.error
    panel = a.window.call_screen.invite_panel
    assert panel.link_edit.text() == hosting.invite
    assert "#secret=" in hosting.invite
    assert a.phase() is CallPhase.WAITING
    # The link opens the server's web client in that room.
    page = await asyncio.to_thread(_fetch_text, hosting.invite_url)
    assert "/static/app.js" in page

    # B pastes the invite link, asking for a camera that is not there (the test
    # pattern stands in, and the call screen says so).
    b.window.lobby.video_combo.setCurrentText("camera:9")
    b.window.lobby.join_edit.setText(panel.link_edit.text())
    b.window.lobby.join_button.click()
    await until(lambda: a.painted >= FRAMES and b.painted >= FRAMES, 60)
    assert a.phase() is CallPhase.CONNECTED
    assert b.phase() is CallPhase.CONNECTED
    assert a.window.call_screen.status_label.text() == "In a call with Bo."
    assert b.window.call_screen.status_label.text() == "In a call with Ana."
    assert a.window.local_view.frames_painted > 0
    (b_leg,) = b.app.snapshot.legs
    await until(lambda: b.app.snapshot.legs and b.app.snapshot.legs[0].security_code, 15)
    assert b.app.snapshot.legs[0].peer_verified, "the invite's secret proved the peer"
    assert b_leg.peer_id
    notice = b.window.call_screen.notice
    assert notice.isVisible()
    assert "test pattern" in notice.text().lower(), notice.text()

    # Audio both ways, and a quality word with its numbers.
    def audio_received(app: App) -> int:
        stats = app.app.call.last_stats
        return stats.audio_frames_received if stats is not None else 0

    await until(lambda: audio_received(a) > 0 and audio_received(b) > 0, 20)
    assert "connection" in a.window.call_screen.quality_label.text()

    # A mutes from the toolbar; B's tile of A says so.
    a.window.call_screen.toolbar.mute_button.click()
    await until(lambda: a.app.snapshot.muted, 5)
    assert a.window.call_screen.toolbar.mute_button.text() == "Unmute"
    tile = next(iter(b.window.call_screen.tiles.values()))
    await until(lambda: "Muted" in tile.badges_label.text(), 10)

    # C: the room without its secret, a malformed address, an unreachable server.
    await c.app.call.join_text(hosting.invite_url)
    lobby = c.window.lobby
    assert c.app.call.screen is Screen.LOBBY
    assert lobby.banner.isVisible()
    assert "invite link" in lobby.banner.text(), lobby.banner.text()
    await c.app.call.join_text("ws://exa mple.org:8765/ws x")
    assert "spaces" in lobby.banner.text()
    await c.app.call.join_text(f"127.0.0.1:{free_port()}/x")
    assert "reach" in lobby.banner.text().lower(), lobby.banner.text()
    assert not looks_technical(lobby.banner.text())
    assert a.phase() is CallPhase.CONNECTED, "the call survived the third window"

    # B hangs up: back to its lobby; A is told and waits with the invite again.
    b.window.call_screen.toolbar.hang_up_button.click()
    await until(lambda: b.app.call.screen is Screen.LOBBY, 15)
    await until(lambda: a.phase() is CallPhase.WAITING, 15)
    await until(lambda: a.window.call_screen.invite_panel.isVisible(), 5)
    assert "Bo" in a.app.error or a.app.error == "", a.app.error
    assert not a.window.call_screen.tiles

    # Closing the windows hangs up and stops A's server.
    server_port = hosting.port
    await close_all([a, b, c])
    assert a.app.hosting is None
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server_port)) != 0, "the server still listens"


def launch(
    tmp_path: Path, name: str, *flags: str, room: str | None = None, seconds: float
) -> subprocess.Popen[str]:
    """``python -m callapp FLAGS`` offscreen, with its own settings and stats file."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callapp",
            *flags,
            *(["--room", room] if room else []),
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


def read_invite(process: subprocess.Popen[str]) -> str:
    """The ``invite: LINK`` line a hosting ``callapp`` prints."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("invite: "):
            link = line.removeprefix("invite: ").strip()
            # The link names the host's LAN address; this machine may have none
            # that answers (a sandbox), so the guest goes through loopback.
            return re.sub(r"//[^/]+:", "//127.0.0.1:", link, count=1)
    pytest.fail("the host printed no invite link")


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
        seconds=30,
    )
    invite = read_invite(host)
    guest = launch(
        tmp_path,
        "guest",
        "--invite",
        invite,
        "--audio",
        "tone:880",
        "--speaker",
        "none",
        seconds=22,
    )
    guest_out = guest.communicate(timeout=60)
    host_out = host.communicate(timeout=60)
    assert guest.returncode == 0, guest_out[1]
    assert host.returncode == 0, host_out[1]
    reports = {
        name: json.loads((tmp_path / f"{name}.json").read_text()) for name in ("host", "guest")
    }
    for name, other in (("host", "guest"), ("guest", "host")):
        data = reports[name]
        # A loaded machine paints few frames a second: some, not a rate.
        assert data["frames_painted"] >= 5, (name, data)
        assert data["codec"] == "VP8"
        target = reports[other].get("video_target_bitrate")
        assert_received_as_sent(data["received_size"], (640, 480), target, (name, data, target))
        # Whichever quits first (the guest, unless it started late) ends the
        # call for the other, which says so; nothing else is said.
        assert set(data["errors"]) <= {"Guest hung up.", "The host ended the call."}, data
        assert data["audio_frames_received"] > 0, (name, data)


def test_a_peer_that_dies_is_said_in_the_hosts_window(tmp_path: Path) -> None:
    """The guest process is killed mid-call: the host says so, in words, and waits again."""
    port = free_port()
    host = launch(tmp_path, "host", "--host", "--port", str(port), room="lost-peer", seconds=30)
    invite = read_invite(host)
    guest = launch(tmp_path, "guest", "--invite", invite, seconds=60)
    time.sleep(16)  # the call is up and painting by now, even on a loaded machine
    guest.kill()
    guest.communicate(timeout=20)
    host_out = host.communicate(timeout=60)
    assert host.returncode == 0, host_out[1]  # it painted frames before the peer died
    assert "Traceback" not in host_out[1]
    data = json.loads((tmp_path / "host.json").read_text())
    assert data["frames_painted"] >= 1, data
    assert data["phase"] == "waiting", data
    assert data["end_reason_text"] in (
        "the other person left",
        "the connection to the other person was lost",
    )
    (said,) = data["errors"]
    assert "left the call" in said or "connection to" in said, said
    assert not looks_technical(said)
    (peer,) = data["peers"]
    assert peer["end_reason"] in ("peer_left", "peer_unreachable")
