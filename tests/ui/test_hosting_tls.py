"""Host with TLS: the invite link, the app trusting its own certificate, bad files in words.

The first tests drive the view-model with fakes (the certificate check is the
real one); the last hosts for real: the embedded server with a self-signed
certificate for 127.0.0.1, the app's own session connected to it over
``wss://``, and the browser page fetched over ``https://``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from callapp.call.state import CallPhase
from callapp.ui.launcher import build_parser, make_server, make_session
from callapp.ui.settings import Settings, SettingsStore
from callapp.ui.viewmodel import CallOptions, CallViewModel
from tests.signaling.test_tls import CertFiles, write_self_signed
from tests.ui.fakes import FakeServices, until
from tests.ui.test_main_window import make_window
from tests.ui.test_viewmodel import Harness, run


@pytest.fixture
def certs(tmp_path: Path) -> CertFiles:
    return write_self_signed(tmp_path)


def tls_harness(cert: Path, key: Path) -> Harness:
    h = Harness()
    h.vm.options = dataclasses.replace(h.vm.options, tls=(str(cert), str(key)))
    return h


def test_plain_host_invites_over_http(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.vm.host("team.call-1"))
    hosting = h.vm.hosting
    assert hosting is not None
    assert not hosting.tls
    assert hosting.invite_url == "http://192.168.7.9:8765/?room=team.call-1"
    assert h.servers[0].tls is None
    assert h.sessions[0].config.tls_pin is None


def test_tls_host_shares_wss_and_https_and_trusts_its_own_cert(
    qloop: asyncio.AbstractEventLoop, certs: CertFiles
) -> None:
    h = tls_harness(certs.cert, certs.key)
    run(qloop, h.vm.host("blue-fox-7"))
    assert h.vm.error == ""
    hosting = h.vm.hosting
    assert hosting is not None
    assert hosting.tls
    assert hosting.share_url == "wss://192.168.7.9:8765/ws"
    assert hosting.local_url == "wss://127.0.0.1:8765/ws"
    assert hosting.invite_url == "https://192.168.7.9:8765/?room=blue-fox-7"
    assert h.servers[0].tls == (str(certs.cert), str(certs.key))
    config = h.sessions[0].config
    assert config.server_url == "wss://127.0.0.1:8765/ws"
    assert config.tls_pin == str(certs.cert)
    # Joining elsewhere afterwards trusts the system store again, not our certificate.
    run(qloop, h.vm.stop_hosting())
    run(qloop, h.vm.join("wss://example.org:443/ws", ""))
    assert h.sessions[-1].config.tls_pin is None


@pytest.mark.parametrize("problem", ["missing key", "foreign key", "key as cert"])
def test_a_bad_cert_or_key_is_said_plainly_and_nothing_starts(
    qloop: asyncio.AbstractEventLoop, certs: CertFiles, tmp_path: Path, problem: str
) -> None:
    other = write_self_signed(tmp_path, name="other")
    cert, key, words = {
        "missing key": (certs.cert, tmp_path / "gone.key", "does not exist"),
        "foreign key": (certs.cert, other.key, "does not belong to the certificate"),
        "key as cert": (certs.key, certs.key, "is not a PEM certificate"),
    }[problem]
    h = tls_harness(cert, key)
    run(qloop, h.vm.host("r"))
    assert h.vm.error.startswith("Cannot host with TLS: ")
    assert words in h.vm.error
    assert "Traceback" not in h.vm.error
    assert "SSLError" not in h.vm.error
    assert h.servers == []
    assert h.sessions == []
    assert h.vm.hosting is None
    assert h.vm.controls.host  # the person can fix the files and try again


def test_window_shows_and_copies_the_invite_and_keeps_the_cert_fields(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, certs: CertFiles, tmp_path: Path
) -> None:
    store = SettingsStore(tmp_path / "s.ini")
    h = Harness()
    h.services.files = [str(certs.cert), None]
    window = make_window(qtbot, h, store)
    QTest.mouseClick(window.cert_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: window.cert_edit.text() == str(certs.cert)))
    QTest.mouseClick(window.key_button, Qt.MouseButton.LeftButton)  # cancelled
    qloop.run_until_complete(until(lambda: len(h.services.file_requests) == 2))
    assert window.key_edit.text() == ""
    window.key_edit.setText(str(certs.key))
    QTest.mouseClick(window.host_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: h.vm.hosting is not None and not h.vm.busy))
    assert window.invite_edit.text() == "https://192.168.7.9:8765/?room=" + window.room_edit.text()
    assert window.share_url_edit.text() == "wss://192.168.7.9:8765/ws"
    assert "warns once" in window.invite_hint_label.text()  # self-signed: what to click
    QTest.mouseClick(window.copy_invite_button, Qt.MouseButton.LeftButton)
    assert h.services.clipboard == [window.invite_edit.text()]
    saved = store.load()
    assert (saved.cert_file, saved.key_file) == (str(certs.cert), str(certs.key))
    assert saved.tls_files == (str(certs.cert), str(certs.key))
    QTest.mouseClick(window.host_button, Qt.MouseButton.LeftButton)  # Stop hosting
    qloop.run_until_complete(until(lambda: h.vm.hosting is None and not h.vm.busy))
    assert window.invite_edit.text() == ""


def test_window_says_a_bad_key_in_the_banner(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, certs: CertFiles, tmp_path: Path
) -> None:
    h = Harness()
    window = make_window(qtbot, h)
    window.cert_edit.setText(str(certs.cert))
    window.key_edit.setText(str(tmp_path / "typo.key"))
    QTest.mouseClick(window.host_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: not h.vm.busy and bool(h.vm.error)))
    assert window.error_label.isVisible()
    assert "typo.key" in window.error_label.text()
    assert "does not exist" in window.error_label.text()
    assert not window.share_box.isVisible()
    assert window.host_button.text() == "Host"


def test_settings_without_a_cert_mean_plain_hosting() -> None:
    assert Settings().tls_files is None
    assert Settings(cert_file="/c.pem").tls_files == ("/c.pem", "/c.pem")  # key inside
    options = CallOptions.from_settings(Settings(cert_file="/c.pem", key_file="/k.pem"))
    assert options.tls == ("/c.pem", "/k.pem")


def test_launcher_flags_for_tls() -> None:
    args = build_parser().parse_args(["--host", "--cert", "c.pem", "--key", "k.pem"])
    assert (args.cert, args.key) == ("c.pem", "k.pem")


def test_real_tls_hosting_serves_the_page_and_connects_the_app(
    qloop: asyncio.AbstractEventLoop, certs: CertFiles
) -> None:
    """The embedded server over TLS, the real call engine connected to it, a browser's GET."""
    vm = CallViewModel(
        make_session,
        make_server,
        FakeServices(),
        CallOptions(video="test", allow_loopback=True, tls=(str(certs.cert), str(certs.key))),
        host_port=0,
        bind_host="127.0.0.1",
        lan_address=lambda: "127.0.0.1",
    )
    try:
        run(qloop, vm.host("tls-room"))
        assert vm.error == ""
        hosting = vm.hosting
        assert hosting is not None
        assert hosting.local_url.startswith("wss://127.0.0.1:")
        link = urlsplit(hosting.invite_url)
        assert (link.scheme, link.hostname, link.port) == ("https", "127.0.0.1", hosting.port)
        assert parse_qs(link.query) == {"room": ["tls-room"]}
        # The app's own session reached its own wss:// server and is in the room.
        qloop.run_until_complete(
            until(lambda: vm.snapshot.phase is CallPhase.WAITING and vm.snapshot.room == "tls-room")
        )
        assert vm.snapshot.connection_id

        def fetch(context: ssl.SSLContext) -> tuple[int, str, str]:
            with urllib.request.urlopen(hosting.invite_url, context=context, timeout=5) as reply:
                return reply.status, reply.headers["Content-Type"], reply.read().decode()

        trusting = ssl.create_default_context(cafile=str(certs.cert))
        status, content_type, page = run(qloop, asyncio.to_thread(fetch, trusting))
        assert status == 200
        assert content_type.startswith("text/html")
        assert "app.js" in page
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            run(qloop, asyncio.to_thread(fetch, ssl.create_default_context()))
    finally:
        run(qloop, vm.shutdown())
