"""Hosting makes a room with a secret; the invite is the only way in (real processes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import Procs
from .test_call_cli import LOOPBACK, finished, stats

pytestmark = pytest.mark.e2e

SMALL = ("--size", "320x240", "--audio", "none", "--speaker", "none", LOOPBACK)


def test_the_invite_gets_in_and_both_sides_show_one_verified_code(
    procs: Procs, tmp_path: Path
) -> None:
    host = procs.call(
        "host",
        "--host",
        "--room",
        "den",
        *SMALL,
        "--seconds",
        "3",
        "--stats-json",
        str(tmp_path / "host.json"),
    )
    _, match = host.wait_line(r"invite: (http://\S+)")
    invite = match.group(1)
    assert "#secret=" in invite  # in the fragment: never sent to the server
    _, server = host.wait_line(r"server: (ws://\S+)")

    # Without the secret, and with a wrong one: refused in plain words.
    stranger = procs.call("stranger", "--server", server.group(1), "--room", "den", *SMALL)
    assert stranger.wait_exit(20) == 1
    assert "secret" in stranger.output
    assert "Traceback" not in stranger.output
    wrong = procs.call(
        "wrong",
        "--server",
        server.group(1),
        "--room",
        "den",
        "--room-secret",
        "A" * 21 + "A",
        *SMALL,
    )
    assert wrong.wait_exit(20) == 1

    guest = procs.call(
        "guest", "--invite", invite, *SMALL, "--stats-json", str(tmp_path / "guest.json")
    )
    finished(host)
    finished(guest)
    host_data, guest_data = stats(tmp_path / "host.json"), stats(tmp_path / "guest.json")
    code = host_data["security_code"]
    assert code is not None
    assert re.fullmatch(r"[1-9]\d{3} [1-9]\d{3} [1-9]\d{3}", code)
    assert guest_data["security_code"] == code
    assert host_data["peer_verified"] is True
    assert guest_data["peer_verified"] is True
    assert guest_data["frames_received"] >= 20
    assert (host_data["peers"][0]["security_code"], host_data["peers"][0]["peer_verified"]) == (
        code,
        True,
    )


def test_a_room_without_a_secret_still_shows_matching_codes(
    procs: Procs, server_url: str, tmp_path: Path
) -> None:
    a = procs.call(
        "a",
        "--server",
        server_url,
        "--room",
        "plain",
        *SMALL,
        "--seconds",
        "2",
        "--stats-json",
        str(tmp_path / "a.json"),
    )
    a.wait_line(r"joined room")
    b = procs.call(
        "b",
        "--server",
        server_url,
        "--room",
        "plain",
        *SMALL,
        "--stats-json",
        str(tmp_path / "b.json"),
    )
    finished(a)
    finished(b)
    a_data, b_data = stats(tmp_path / "a.json"), stats(tmp_path / "b.json")
    assert a_data["security_code"] is not None
    assert a_data["security_code"] == b_data["security_code"]
    assert a_data["peer_verified"] is False
    assert b_data["peer_verified"] is False
