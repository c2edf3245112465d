"""The window's logic without a window: addresses, names, wording, controls."""

from __future__ import annotations

import random

import pytest

from callapp.call.errors import RoomFullError, ServerUnavailable
from callapp.call.state import CallPhase, CallSnapshot, EndReason
from callapp.call.stats import CallStats
from callapp.ui.address import (
    AddressError,
    choose_lan_address,
    normalize_server_url,
    port_is_free,
    server_url,
)
from callapp.ui.controls import controls_for, ending_message
from callapp.ui.errors import explain
from callapp.ui.names import ROOM_RE, random_room_name, room_problem
from callapp.ui.status import call_duration, format_duration, stats_text, status_text


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        ("ws://192.168.1.20:8765/ws", "ws://192.168.1.20:8765/ws"),
        ("192.168.1.20:8765", "ws://192.168.1.20:8765/ws"),
        ("  localhost:9000  ", "ws://localhost:9000/ws"),
        ("http://example.org:8765/", "ws://example.org:8765/ws"),
        ("https://calls.example.org/ws", "wss://calls.example.org/ws"),
        ("WS://Example.org:1/custom", "ws://example.org:1/custom"),
        ("ws://[::1]:8765/ws", "ws://[::1]:8765/ws"),
        # The browser link Host shows, pasted into the server field.
        ("http://192.168.1.20:8765/?room=blue-fox-42", "ws://192.168.1.20:8765/ws"),
        ("https://10.0.0.7:9000/?room=r#secret=9ysMfMT9xVNbmulSVnJK_A", "wss://10.0.0.7:9000/ws"),
    ],
)
def test_server_urls_are_normalized(typed: str, url: str) -> None:
    assert normalize_server_url(typed) == url


def test_the_ui_and_the_signaling_client_share_one_normalizer() -> None:
    from callapp.signaling import invite

    assert normalize_server_url is invite.normalize_server_url
    assert AddressError is invite.AddressError
    # The pasted link's room is the invite parser's to read.
    assert invite.parse_invite("http://192.168.1.20:8765/?room=blue-fox-42").room == "blue-fox-42"


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("", "Enter the server address"),
        ("ws://host name:8765", "spaces"),
        ("ftp://example.org", "must start with ws://"),
        ("ws://example.org:99999/ws", "not a number from 1 to 65535"),
        ("ws://example.org:abc/ws", "not a number from 1 to 65535"),
        ("ws://:8765/ws", "no host name"),
        ("ws://300.1.1.1:8765/ws", "not a valid host name"),
        ("ws://exa_mple.org/ws", "not a valid host name"),
        ("ws://example.org/ws?x=1", "should not contain"),
        # Not "ws://ws//host": a mistyped scheme is said to be one.
        ("ws//host", "looks mistyped"),
        ("ws//192.168.1.20:8765/ws", "looks mistyped"),
    ],
)
def test_bad_server_urls_are_refused_in_words(typed: str, words: str) -> None:
    with pytest.raises(AddressError, match=words):
        normalize_server_url(typed)


def test_lan_address_prefers_private_ipv4_and_falls_back_to_loopback() -> None:
    assert choose_lan_address(["127.0.0.1", "169.254.3.4", "10.0.0.7"]) == "10.0.0.7"
    assert choose_lan_address(["8.8.4.4", "192.168.1.5"]) == "192.168.1.5"
    assert choose_lan_address(["fe80::1", "8.8.4.4"]) == "8.8.4.4"
    assert choose_lan_address(["127.0.0.1", "::1", "junk"]) == "127.0.0.1"
    assert choose_lan_address([]) == "127.0.0.1"
    assert server_url("10.0.0.7", 8765) == "ws://10.0.0.7:8765/ws"


def test_port_is_free_sees_a_listening_socket() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not port_is_free(sock.getsockname()[1], "127.0.0.1")


def test_room_names_are_readable_and_valid() -> None:
    rng = random.Random(7)
    names = {random_room_name(rng) for _ in range(200)}
    assert len(names) > 150
    for name in names:
        adjective, animal, number = name.split("-")
        assert adjective.isalpha()
        assert animal.isalpha()
        assert 10 <= int(number) <= 99
        assert ROOM_RE.match(name)
        assert room_problem(name) is None
    assert room_problem("") == "Enter a room name."
    assert "no spaces" in (room_problem("my room") or "")
    assert "64" in (room_problem("x" * 65) or "")


@pytest.mark.parametrize(
    ("snap", "words"),
    [
        (CallSnapshot(), "Not connected"),
        (
            CallSnapshot(phase=CallPhase.CONNECTING, server_url="ws://h:1/ws"),
            "Connecting to the server at ws://h:1/ws",
        ),
        (CallSnapshot(phase=CallPhase.WAITING, room="amber-otter-42"), "amber-otter-42"),
        (CallSnapshot(phase=CallPhase.WAITING), "Waiting for a call"),
        (CallSnapshot(phase=CallPhase.CALLING, peer_id="abcdefghijkl"), "Calling abcdefgh…"),
        (CallSnapshot(phase=CallPhase.RINGING, peer_id="x"), "Incoming call from x"),
        (CallSnapshot(phase=CallPhase.CONNECTED, peer_id="p"), "Connected to p"),
        (CallSnapshot(phase=CallPhase.RECONNECTING), "reconnecting"),
        (
            CallSnapshot(phase=CallPhase.WAITING, room="r", end_reason=EndReason.PEER_LEFT),
            "Call ended: the other person left. Waiting",
        ),
        (CallSnapshot(phase=CallPhase.CLOSED), "closed"),
    ],
)
def test_status_words(snap: CallSnapshot, words: str) -> None:
    assert words in status_text(snap)


def test_durations() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(65.9) == "1:05"
    assert format_duration(3600 + 62) == "1:01:02"
    assert format_duration(-3) == "0:00"
    snap = CallSnapshot(phase=CallPhase.CONNECTED, connected_at=100.0)
    assert call_duration(snap, 130.0) == "0:30"
    assert call_duration(snap.evolve(phase=CallPhase.WAITING), 130.0) == ""


def _stats(**changes: object) -> CallStats:
    base = {
        "codec": "video/VP8",
        "frames_sent": 1,
        "frames_received": 1,
        "sent_size": (640, 480),
        "received_size": (1280, 720),
        "fps_sent": 30.0,
        "fps_received": 29.7,
        "bytes_sent": 1,
        "bytes_received": 1,
        "bitrate_sent": 850_000.0,
        "bitrate_received": 1_250_000.0,
        "rtt_ms": 2.6,
        "packet_loss": 0.0,
        "remote_packet_loss": None,
        "packets_received": 1,
        "packets_lost": 0,
        "window": 1.0,
    }
    base.update(changes)
    return CallStats(**base)  # type: ignore[arg-type]


def test_stats_line() -> None:
    line = stats_text(_stats())
    assert line == "1280×720 · 30 fps · ↓ 1.2 Mbit/s · ↑ 850 kbit/s · RTT 3 ms · VP8"
    lossy = stats_text(_stats(packet_loss=0.025, rtt_ms=None, received_size=None, codec=None))
    assert lossy == "30 fps · ↓ 1.2 Mbit/s · ↑ 850 kbit/s · loss 2.5%"
    assert stats_text(None) == ""


def test_error_wording_never_shows_a_traceback() -> None:
    assert explain(AddressError("Bad address.")) == "Bad address."
    assert explain(RoomFullError("The room is full.")) == "The room is full."
    assert "could not" in explain(ServerUnavailable("Could not reach it.")).lower()
    refused = explain(ConnectionRefusedError(111, "refused"), server_url="ws://h:1/ws")
    assert "Could not reach the server at ws://h:1/ws" in refused
    assert "did not answer in time" in explain(TimeoutError())
    weird = explain(KeyError("boom"))
    assert weird.startswith("Something went wrong")
    assert "Traceback" not in weird


def test_controls_follow_the_phase() -> None:
    idle = controls_for(CallSnapshot(), busy=False, hosting=False)
    assert idle.host
    assert idle.join
    assert idle.call
    assert not idle.hang_up
    busy = controls_for(CallSnapshot(), busy=True, hosting=False)
    assert not busy.host
    assert not busy.join
    assert not busy.call
    calling = controls_for(CallSnapshot(phase=CallPhase.CALLING), busy=False, hosting=False)
    assert calling.hang_up
    assert not calling.call
    assert not calling.join
    hosting = controls_for(CallSnapshot(phase=CallPhase.WAITING), busy=False, hosting=True)
    assert hosting.join  # rejoin a room on our own server
    assert hosting.call
    assert not hosting.host
    assert not hosting.edit_server
    assert hosting.edit_room
    waiting = controls_for(CallSnapshot(phase=CallPhase.WAITING), busy=False, hosting=False)
    assert waiting.edit_server, "waiting on one server, one may type another"
    assert not calling.edit_server
    assert not calling.edit_room


def test_only_endings_worth_telling_make_a_banner() -> None:
    connected = CallSnapshot(phase=CallPhase.CONNECTED)
    left = CallSnapshot(phase=CallPhase.WAITING, end_reason=EndReason.PEER_LEFT)
    mine = CallSnapshot(phase=CallPhase.WAITING, end_reason=EndReason.HUNG_UP)
    assert ending_message(connected, left) == "The call ended: the other person left."
    assert ending_message(connected, mine) is None
    assert ending_message(left, left) is None  # not a new ending
    assert ending_message(None, left) is None
