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

from callapp.call.state import CallPhase
from callapp.ui.launcher import build_parser, make_server, make_session
from callapp.ui.models.app import AppModel
from callapp.ui.models.call import CallOptions
from callapp.ui.settings import Settings
from tests.signaling.test_tls import CertFiles, write_self_signed
from tests.ui.fakes import FakeServices, until
from tests.ui.harness import Harness, run


@pytest.fixture
def certs(tmp_path: Path) -> CertFiles:
    return write_self_signed(tmp_path)


def tls_harness(cert: Path, key: Path) -> Harness:
    h = Harness()
    h.app.options = dataclasses.replace(h.app.options, tls=(str(cert), str(key)))
    return h


def test_plain_host_invites_over_http(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.app.call.host("team.call-1"))
    hosting = h.app.hosting
    assert hosting is not None
    assert not hosting.tls
    assert hosting.invite_url == "http://192.168.7.9:8765/?room=team.call-1"
    assert hosting.invite.startswith(hosting.invite_url + "#secret=")
    assert h.servers[0].tls is None
    assert h.sessions[0].config.tls_pin is None


def test_tls_host_shares_wss_and_https_and_trusts_its_own_cert(
    qloop: asyncio.AbstractEventLoop, certs: CertFiles
) -> None:
    h = tls_harness(certs.cert, certs.key)
    run(qloop, h.app.call.host("blue-fox-7"))
    assert h.app.error == ""
    hosting = h.app.hosting
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
    run(qloop, h.app.call.hang_up())
    run(qloop, h.app.join("wss://example.org:443/ws", ""))
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
    run(qloop, h.app.call.host("r"))
    assert h.app.error.startswith("Cannot host with TLS: ")
    assert words in h.app.error
    assert "Traceback" not in h.app.error
    assert "SSLError" not in h.app.error
    assert h.servers == []
    assert h.sessions == []
    assert h.app.hosting is None
    assert h.app.call.screen.value == "lobby"  # the person can fix the files and try again


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
    vm = AppModel(
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
