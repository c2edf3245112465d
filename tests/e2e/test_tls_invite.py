"""Joining a self-signed TLS host through its invite: the pin is the trust (real processes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from callapp.call.security import new_room_secret
from callapp.signaling.invite import certificate_pin, format_invite
from tests.signaling.test_tls import write_self_signed

from .conftest import Procs
from .test_call_cli import LOOPBACK, finished, stats

pytestmark = pytest.mark.e2e

SMALL = ("--size", "320x240", "--audio", "none", "--speaker", "none", LOOPBACK)


def tls_server(procs: Procs, tmp_path: Path) -> tuple[str, str]:
    """A ``callapp-signaling`` with a fresh self-signed certificate: its wss:// URL and pin."""
    files = write_self_signed(tmp_path)
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    server = procs.start(
        [
            *("-m", "callapp.signaling.cli", "--host", "127.0.0.1", "--port", "0"),
            *("--cert", str(files.cert), "--key", str(files.key)),
        ],
        "server",
    )
    _, match = server.wait_line(r"(wss://127\.0\.0\.1:\d+/ws)", within=20)
    return match.group(1), certificate_pin(der)


def test_the_invites_pin_lets_two_apps_in_and_a_wrong_one_is_refused(
    procs: Procs, tmp_path: Path
) -> None:
    url, pin = tls_server(procs, tmp_path)
    secret = new_room_secret()
    invite = format_invite(url, "tls-den", secret=secret, pin=pin)
    assert invite.startswith("https://")
    assert "pin=" in invite.split("#", 1)[1]

    # A typed wss:// address: the certificate is not trusted, and it says how.
    typed = procs.call("typed", "--server", url, "--room", "x", *SMALL)
    assert typed.wait_exit(20) == 1
    assert "invite link" in typed.output
    assert "Traceback" not in typed.output

    # Someone else's pin: refused in plain words.
    other = write_self_signed(tmp_path, name="other")
    other_der = x509.load_pem_x509_certificate(other.cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    forged = format_invite(url, "tls-den", secret=secret, pin=certificate_pin(other_der))
    wrong = procs.call("wrong", "--invite", forged, *SMALL)
    assert wrong.wait_exit(20) == 1
    assert re.search(r"does not match the invite's pin", wrong.output)

    a = procs.call(
        "a", "--invite", invite, *SMALL, "--seconds", "2", "--stats-json", str(tmp_path / "a.json")
    )
    a.wait_line(r"joined room: tls-den")
    b = procs.call("b", "--invite", invite, *SMALL, "--stats-json", str(tmp_path / "b.json"))
    finished(a)
    finished(b)
    a_data, b_data = stats(tmp_path / "a.json"), stats(tmp_path / "b.json")
    assert b_data["frames_received"] >= 20
    assert a_data["peer_verified"] is True
    assert a_data["security_code"] == b_data["security_code"]
