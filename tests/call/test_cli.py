"""The call CLI's pieces that need no processes: flags, lines, the stats record."""

from __future__ import annotations

import pytest

from callapp.call import cli
from callapp.call.state import (
    CallPhase,
    CallSnapshot,
    ChatMessage,
    LegSnapshot,
    LegState,
    LinkEnd,
    LinkState,
    Presence,
    Role,
)


def test_flags() -> None:
    args = cli.build_parser().parse_args(
        [
            *("--server", "ws://127.0.0.1:1/ws", "--room", "r", "--size", "1280x720"),
            *("--ice-server", "stun:a", "--ice-server", "turn:b", "--codec", "h264"),
            *("--allow-loopback", "--seconds", "2.5"),
        ]
    )
    assert args.size == (1280, 720)
    assert args.ice_server == ["stun:a", "turn:b"]
    assert (args.codec, args.allow_loopback, args.seconds) == ("h264", True, 2.5)
    assert cli.build_parser().parse_args(["--host"]).host == "127.0.0.1"


@pytest.mark.parametrize(
    "argv",
    [
        [],  # neither --server nor --host
        ["--server", "ws://x", "--host"],
        ["--server", "ws://x", "--room", "r", "--to", "id"],
        ["--server", "ws://x", "--size", "640by480"],
        ["--server", "ws://x", "--codec", "av1"],
        ["--server", "ws://x", "--reconnect-for", "-1"],
        ["--server", "ws://x", "--reconnect-for", "soon"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2


def test_unreachable_server_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--server", "ws://127.0.0.1:9/ws", "--timeout", "3"])
    out, err = capsys.readouterr()
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ")
    assert "phase: idle" in out


def test_phase_lines() -> None:
    snap = CallSnapshot(phase=CallPhase.CONNECTED, role=Role.CALLER, peer_id="abc")
    assert cli.describe(snap) == "phase: connected role=caller peer=abc"
    assert cli.describe(CallSnapshot(phase=CallPhase.WAITING)) == "phase: waiting"


def test_chat_lines_new_since_the_last_snapshot() -> None:
    def line(text: str) -> ChatMessage:
        return ChatMessage(sender="x", sender_name="Ana", text=text, at=0.0)

    a, b, c = line("a"), line("b"), line("c")
    before = CallSnapshot(chat=(a, b))
    assert cli.new_chat(before, CallSnapshot(chat=(a, b, c))) == (c,)
    assert cli.new_chat(before, CallSnapshot(chat=(b, c))) == (c,)  # the tail moved on
    assert cli.new_chat(CallSnapshot(), CallSnapshot(chat=(a,))) == (a,)
    assert cli.new_chat(before, before) == ()


@pytest.mark.parametrize(
    "argv",
    [
        ["--server", "ws://x", "--capacity", "3"],  # without --room
        ["--server", "ws://x", "--room", "r", "--capacity", "9"],
        ["--server", "ws://x", "--room", "r", "--capacity", "1"],
    ],
)
def test_capacity_goes_with_a_room_of_2_to_8(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2


def test_presence_lines_say_only_what_is_on() -> None:
    assert cli.describe_presence("x", Presence(name="Ana")) == "presence: x (Ana)"
    line = cli.describe_presence("x", Presence(name="Bo", muted=True, screen=True))
    assert line == "presence: x (Bo) muted screen"


def test_an_invite_becomes_server_room_and_secret() -> None:
    from callapp.call.security import new_room_secret
    from callapp.signaling.invite import format_invite

    secret = new_room_secret()
    link = format_invite("ws://127.0.0.1:5000/ws", "den", secret=secret)
    parser = cli.build_parser()
    args = parser.parse_args(["--invite", link])
    cli.apply_invite(args, parser)
    assert (args.server, args.room, args.room_secret) == ("ws://127.0.0.1:5000/ws", "den", secret)


@pytest.mark.parametrize(
    "argv",
    [
        ["--invite", "http://127.0.0.1:5000/"],  # no room
        ["--invite", "http://127.0.0.1:5000/?room=a#secret=short"],
        ["--invite", "http://127.0.0.1:5000/?room=a", "--room", "b"],
        ["--server", "ws://x", "--room-secret", "AAAAAAAAAAAAAAAAAAAAAA"],  # without --room
        ["--server", "ws://x", "--room", "r", "--room-secret", "nope"],
    ],
)
def test_bad_invites_and_secrets_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error:" in err


def test_reconnect_for_flag() -> None:
    parse = cli.build_parser().parse_args
    assert parse(["--server", "ws://x"]).reconnect_for == 30.0
    assert parse(["--server", "ws://x", "--reconnect-for", "2.5"]).reconnect_for == 2.5


def test_a_call_lasts_while_a_leg_is_live_also_while_reconnecting() -> None:
    leg = LegSnapshot(peer_id="p", state=LegState.CONNECTED, role=Role.CALLER, in_room=True)
    reconnecting = CallSnapshot(phase=CallPhase.RECONNECTING, link=LinkState.RECONNECTING)
    assert cli.in_a_call(reconnecting.evolve(legs=(leg,)))
    assert not cli.in_a_call(reconnecting)
    assert not cli.in_a_call(CallSnapshot(phase=CallPhase.WAITING))


@pytest.mark.parametrize(
    ("end", "words"),
    [
        (LinkEnd.HOST_LEFT, "the host ended the call"),
        (LinkEnd.GAVE_UP, "could not reach the signaling server; gave up after 2 s of retrying"),
        (LinkEnd.LOST, "lost the signaling server"),
        (None, "lost the signaling server"),
    ],
)
def test_why_the_server_is_gone(end: LinkEnd | None, words: str) -> None:
    snap = CallSnapshot(link=LinkState.GONE, link_end=end)
    assert cli.gone_reason(snap, 2.0) == words
