"""The invite link and the server address Host shows: schemes, brackets, encoding."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from callapp.ui.address import invite_url, server_url


def test_plain_invite_link_opens_the_browser_client_in_the_room() -> None:
    assert invite_url("192.168.1.20", 8765, "blue-fox-42") == (
        "http://192.168.1.20:8765/?room=blue-fox-42"
    )
    assert server_url("192.168.1.20", 8765) == "ws://192.168.1.20:8765/ws"


def test_tls_makes_both_secure() -> None:
    assert invite_url("10.0.0.7", 9000, "r", tls=True) == "https://10.0.0.7:9000/?room=r"
    assert server_url("10.0.0.7", 9000, tls=True) == "wss://10.0.0.7:9000/ws"


@pytest.mark.parametrize("host", ["fe80::1", "2001:db8::5", "[2001:db8::5]"])
def test_ipv6_literals_are_bracketed_once(host: str) -> None:
    bare = host.strip("[]")
    link = invite_url(host, 8765, "room", tls=True)
    assert link == f"https://[{bare}]:8765/?room=room"
    assert urlsplit(link).hostname == bare
    assert urlsplit(link).port == 8765
    assert server_url(host, 8765) == f"ws://[{bare}]:8765/ws"


@pytest.mark.parametrize("room", ["a b", "x&room=evil", "ü#?", "a/b", "caf.e_-1"])
def test_the_room_survives_the_round_trip(room: str) -> None:
    link = invite_url("h.local", 1, room)
    query = urlsplit(link).query
    assert urlsplit(link).fragment == ""
    assert parse_qs(query) == {"room": [room]}
    if room != "caf.e_-1":
        assert f"room={room}" not in link  # encoded, not pasted raw


def test_valid_room_names_stay_readable() -> None:
    assert invite_url("h", 2, "Team_Call.v2-1").endswith("/?room=Team_Call.v2-1")
