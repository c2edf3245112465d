"""The window's logic without a window: addresses, names, wording, quality, shortcuts,
tiles and the Join field."""

from __future__ import annotations

import random

import pytest

from callapp.call.errors import (
    InvalidAction,
    MediaError,
    RoomFullError,
    RoomLockedError,
    ServerUnavailable,
)
from callapp.call.state import (
    CallPhase,
    CallSnapshot,
    EndReason,
    LegSnapshot,
    LegState,
    Presence,
    Role,
)
from callapp.ui.address import (
    AddressError,
    choose_lan_address,
    normalize_server_url,
    port_is_free,
    server_url,
)
from callapp.ui.logic import quality, shortcuts, tiles, wording
from callapp.ui.logic.join_target import (
    JoinError,
    connection_id_problem,
    looks_like_connection_id,
    mend_scheme,
    parse_join_target,
)
from callapp.ui.names import ROOM_RE, random_room_name, room_problem
from tests.ui.fakes import stats

SECRET = "9ysMfMT9xVNbmulSVnJK_A"


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


# -- wording ------------------------------------------------------------------------------


def leg(
    name: str | None = "Ana", state: LegState = LegState.CONNECTED, **presence: object
) -> LegSnapshot:
    return LegSnapshot(
        peer_id=f"id-{name}",
        state=state,
        role=Role.CALLER,
        in_room=True,
        presence=Presence(name=name, **presence) if name else None,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("snap", "words"),
    [
        (CallSnapshot(), "Not in a call."),
        (CallSnapshot(phase=CallPhase.CONNECTING), "Connecting to the server…"),
        (CallSnapshot(phase=CallPhase.WAITING, room="r"), "Waiting for others to join."),
        (CallSnapshot(phase=CallPhase.WAITING), "Waiting for a call."),
        (
            CallSnapshot(phase=CallPhase.CONNECTED, legs=(leg("Ana"),)),
            "In a call with Ana.",
        ),
        (
            CallSnapshot(phase=CallPhase.CONNECTED, legs=(leg("Ana"), leg("Bo"), leg("Cy"))),
            "In a call with Ana, Bo and Cy.",
        ),
        (
            CallSnapshot(phase=CallPhase.RINGING, legs=(leg("Ana", LegState.RINGING),)),
            "Ana is calling you.",
        ),
        (CallSnapshot(phase=CallPhase.RECONNECTING), "Lost the server; reconnecting…"),
        (
            CallSnapshot(phase=CallPhase.CONNECTED, legs=(leg("Ana", LegState.RECONNECTING),)),
            "In a call with Ana. Lost the connection to Ana; reconnecting…",
        ),
    ],
)
def test_status_lines(snap: CallSnapshot, words: str) -> None:
    assert wording.status_line(snap) == words


def test_badges_placeholder_and_code() -> None:
    peer = leg("Ana", muted=True, camera_off=True, screen=True, recording=True)
    assert wording.badges(peer) == ["Muted", "Camera off", "Sharing the screen", "Recording"]
    assert wording.placeholder_text(peer) == "Ana turned the camera off"
    assert wording.code_text(peer) == "Verification code: not agreed yet"
    assert wording.leg_name(leg(None)).startswith("Guest ")
    assert wording.placeholder_text(leg("Bo", LegState.RECONNECTING)) == "Reconnecting to Bo…"


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        (EndReason.PEER_LEFT, "Ana left the call."),
        (EndReason.DECLINED, "Ana declined the call."),
        (EndReason.NO_ANSWER, "Ana did not answer."),
        (EndReason.SERVER_LOST, "The server went away"),
        (EndReason.INSECURE, "someone may be listening in"),
        (None, "The call ended."),
    ],
)
def test_endings_are_sentences(reason: EndReason | None, words: str) -> None:
    text = wording.ending_text(reason, "Ana")
    assert words in text
    assert not wording.looks_technical(text)


def test_every_ending_reads_well() -> None:
    for reason in EndReason:
        text = wording.ending_text(reason, "Ana")
        assert text.endswith("."), text
        assert not wording.looks_technical(text), text
    if hasattr(EndReason, "HOST_LEFT"):  # the engine's newer reason
        assert wording.ending_text(EndReason["HOST_LEFT"]) == "The host ended the call."


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (ServerUnavailable("Connect call failed ('192.0.2.99', 19502)"), "Could not reach"),
        (RoomFullError("room full"), "This call is full"),
        (RoomLockedError("unauthorized"), "needs its invite link"),
        (InvalidAction("Nobody is in the call to read your message."), "Nobody is in the call"),
        (MediaError("no screen to share"), "No screen to share."),
        (TimeoutError(), "did not answer in time"),
        (ConnectionRefusedError(111, "Connection refused"), "nothing is listening"),
        (OSError(113, "No route to host"), "unreachable"),
        (OSError(98, "Address already in use"), "port is already in use"),
        (RuntimeError("boom <object at 0x7f>"), "Something went wrong. Try again"),
        (KeyError("x"), "Something went wrong"),
        (JoinError("Paste the invite link."), "Paste the invite link."),
    ],
)
def test_errors_are_said_in_plain_words(exc: BaseException, words: str) -> None:
    text = wording.explain(exc, server_url="ws://192.0.2.99:19502/ws")
    assert words in text
    assert not wording.looks_technical(text), text
    assert "boom" not in text


@pytest.mark.parametrize(
    "text",
    [
        "Connect call failed ('192.0.2.99', 19502)",
        'Traceback (most recent call last):\n  File "x.py", line 3',
        "OSError: [Errno 111] Connection refused",
        "ValueError(bad)",
        "TimeoutError()",
        "<callapp.call.session.CallSession object at 0x7f0011>",
    ],
)
def test_technical_text_is_recognised(text: str) -> None:
    assert wording.looks_technical(text)


@pytest.mark.parametrize(
    "text",
    ["In a call with Ana.", "This call is full. Ask the host to make room.", "Code 1234 5678"],
)
def test_plain_text_is_not_technical(text: str) -> None:
    assert not wording.looks_technical(text)


def test_durations_and_reconnect_words() -> None:
    assert wording.format_duration(0) == "0:00"
    assert wording.format_duration(65.9) == "1:05"
    assert wording.format_duration(3600 + 62) == "1:01:02"
    snap = CallSnapshot(phase=CallPhase.CONNECTED, connected_at=100.0, legs=(leg(),))
    assert wording.call_duration(snap, 165.0) == "1:05"
    assert wording.call_duration(CallSnapshot(), 165.0) == ""
    assert wording.reconnect_text(12.2) == "Lost the server. Trying to reconnect for 13 s more…"
    assert wording.reconnect_text(None) == "Lost the server. Trying to reconnect…"
    assert "fps" in wording.stats_text(stats())


# -- quality ------------------------------------------------------------------------------


def test_quality_levels_and_tooltip_numbers() -> None:
    good = quality.assess(stats())
    assert good is not None
    assert good.level is quality.Level.GOOD
    assert good.details == "Loss 0.0% · Round trip 3 ms · 30 fps"
    weak = quality.assess(stats(packet_loss=0.03))
    assert weak is not None
    assert weak.level is quality.Level.WEAK
    bad = quality.assess(stats(rtt_ms=650.0))
    assert bad is not None
    assert bad.level is quality.Level.BAD
    assert bad.label == "Bad connection"
    slow = quality.assess(stats(fps_received=3.0))
    assert slow is not None
    assert slow.level is quality.Level.BAD
    camera_off = quality.assess(stats(fps_received=0.0), video_expected=False)
    assert camera_off is not None
    assert camera_off.level is quality.Level.GOOD
    assert quality.assess(None) is None
    assert quality.worst([good, bad, weak]) is bad
    assert quality.worst([None]) is None


# -- shortcuts ----------------------------------------------------------------------------


def test_one_shortcut_table_covers_every_action_without_clashes() -> None:
    keys = [key for row in shortcuts.SHORTCUTS for key in row.keys]
    assert len(keys) == len(set(keys))
    assert {row.action for row in shortcuts.SHORTCUTS} == set(shortcuts.Action)
    assert shortcuts.keys_text(shortcuts.Action.HELP) == "? or F1"
    assert shortcuts.keys_text(shortcuts.Action.FULL_SCREEN) == "F11"
    assert shortcuts.with_keys("Mute", shortcuts.Action.MUTE) == "Mute (Ctrl+D)"
    assert len(shortcuts.help_rows()) == len(shortcuts.SHORTCUTS)


# -- tiles --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("size", [(1024, 640), (640, 420), (1920, 1080), (800, 800)])
def test_tiles_keep_aspect_stay_inside_and_are_never_covered(n: int, size: tuple[int, int]) -> None:
    w, h = size
    placed = tiles.layout(w, h, [4 / 3] * n)
    area = tiles.Rect(0, 0, w, h)
    assert len(placed.tiles) == n
    assert placed.self_view is not None
    assert area.contains(placed.self_view)
    for i, tile in enumerate(placed.tiles):
        assert area.contains(tile)
        assert abs(tile.w / tile.h - 4 / 3) < 0.02
        assert not tile.intersects(placed.self_view)
        for other in placed.tiles[i + 1 :]:
            assert not tile.intersects(other)


def test_one_peer_fills_most_of_the_window() -> None:
    placed = tiles.layout(1024, 640, [4 / 3])
    assert placed.tiles[0].area / (1024 * 640) >= 0.7


def test_the_large_tile_is_the_largest() -> None:
    placed = tiles.layout(1280, 720, [4 / 3, 16 / 9, 4 / 3], large=1)
    sizes = [t.area for t in placed.tiles]
    assert sizes[1] == max(sizes)
    assert sizes[1] > 3 * sizes[0]
    assert tiles.layout(0, 0, [1.0]).self_view is None


# -- the Join field -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "server", "room", "kind"),
    [
        (
            f"http://192.168.1.20:8765/?room=blue-fox-42#secret={SECRET}",
            "ws://192.168.1.20:8765/ws",
            "blue-fox-42",
            "invite",
        ),
        ("http://192.168.1.20:8765/?room=x", "ws://192.168.1.20:8765/ws", "x", "link"),
        ("192.168.1.20:8765/team", "ws://192.168.1.20:8765/ws", "team", "address"),
        ("ws://h:1/ws team", "ws://h:1/ws", "team", "address"),
        ("ws://h:1/ws/team", "ws://h:1/ws", "team", "address"),
        ("ws//h:1/ws/team", "ws://h:1/ws", "team", "address"),
        ("https:/calls.example.org/team", "wss://calls.example.org/ws", "team", "link"),
        ("h:8765", "ws://h:8765/ws", None, "address"),
        ("  ws://h:8765/ws  ", "ws://h:8765/ws", None, "address"),
    ],
)
def test_the_join_field_takes_what_people_paste(
    text: str, server: str, room: str | None, kind: str
) -> None:
    target = parse_join_target(text)
    assert (target.server_url, target.room, target.kind) == (server, room, kind)
    if kind == "invite":
        assert target.secret == SECRET
        assert SECRET not in repr(target)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "Paste the invite link"),
        ("ftp://example.org/x", "starts with http://"),
        ("a b c", "spaces"),
        ("http://h:1/?room=x#secret=short", "secret"),
        ("http://h:1/?room=bad%20room", "not a valid room name"),
        ("h:99999/x", "not a number from 1 to 65535"),
        ("h:1/a+b", "room name"),
    ],
)
def test_the_join_field_refuses_in_plain_words(text: str, words: str) -> None:
    with pytest.raises(JoinError, match=words) as info:
        parse_join_target(text)
    assert not wording.looks_technical(str(info.value))


def test_a_bare_connection_id_is_read_as_someone_to_call() -> None:
    from callapp.signaling.messages import new_connection_id

    ids = [new_connection_id() for _ in range(200)]
    ids = [i for i in ids if "_" in i or any(c.isupper() for c in i)]
    assert len(ids) > 190
    for peer in ids:
        target = parse_join_target(f"  {peer} ")
        assert (target.kind, target.peer_id, target.room) == ("peer", peer, None)
    # Host names are not ids, even 16 characters long.
    for host in ("mycomputerserver", "localhost", "calls.example.or", "192.168.1.20"):
        assert not looks_like_connection_id(host)
        assert parse_join_target(host).kind == "address"
    assert not looks_like_connection_id("Ab3dEfGh1jKlMnO")  # 15 characters
    assert not looks_like_connection_id("Ab3dEfGh1jKlMnOp/x")


def test_what_a_connection_id_needs_is_said_in_words() -> None:
    assert connection_id_problem(connected=True) == ""
    offline = connection_id_problem(connected=False)
    assert "connection id" in offline
    assert "192.168.1.20:8765" in offline
    assert "Hang up first" in connection_id_problem(connected=True, in_call=True)
    for words in (offline, connection_id_problem(connected=True, in_call=True)):
        assert not wording.looks_technical(words)


def test_a_mistyped_scheme_is_mended_not_read_as_a_host() -> None:
    assert mend_scheme("ws//host:1/ws") == "ws://host:1/ws"
    assert mend_scheme("https:host") == "https://host"
    assert mend_scheme("ws:8765/x") == "ws:8765/x"  # a host called ws, with its port
    assert parse_join_target("ws//host/ws").server_url == "ws://host/ws"
