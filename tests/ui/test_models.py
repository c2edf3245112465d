"""The view-models with fakes: hosting and invites, joining, ending well, chat, quality."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from callapp.call.state import CallPhase, EndReason, LegState
from callapp.signaling.invite import parse_invite
from callapp.ui.logic.quality import Level
from callapp.ui.models.call import Screen
from tests.signaling.test_tls import CertFiles, write_self_signed
from tests.ui.fakes import stats
from tests.ui.harness import Harness, run


def test_host_makes_a_room_with_a_secret_and_one_invite_link(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    run(qloop, h.app.call.host("team-call"))
    hosting = h.app.hosting
    assert hosting is not None
    assert h.app.error == ""
    invite = parse_invite(hosting.invite)
    assert invite.server_url == "ws://192.168.7.9:8765/ws"
    assert invite.room == "team-call"
    assert invite.secret is not None
    assert invite.secret == hosting.secret
    assert hosting.invite_url == "http://192.168.7.9:8765/?room=team-call"  # no secret
    assert h.session.calls[1] == ("join_room", ("team-call", 4, invite.secret))
    assert h.session.config.server_url == "ws://127.0.0.1:8765/ws"
    assert h.session.config.hosting is True  # closing says "the host ended the call"
    assert h.app.call.screen is Screen.CALL
    assert "secret" not in str(hosting.report()).replace("'secret': True", "")


def test_two_hosts_get_different_secrets(qloop: asyncio.AbstractEventLoop) -> None:
    a, b = Harness(), Harness()
    run(qloop, a.app.call.host("r"))
    run(qloop, b.app.call.host("r"))
    assert a.app.hosting is not None
    assert b.app.hosting is not None
    assert a.app.hosting.secret != b.app.hosting.secret


def test_host_falls_back_to_any_free_port(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness(busy_ports={8765})
    run(qloop, h.app.call.host(""))
    assert h.app.hosting is not None
    assert h.app.hosting.port == 40123


def test_tls_host_pins_its_certificate_in_the_invite(
    qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    certs: CertFiles = write_self_signed(tmp_path)
    h = Harness()
    h.app.options = dataclasses.replace(h.app.options, tls=(str(certs.cert), str(certs.key)))
    run(qloop, h.app.call.host("r"))
    hosting = h.app.hosting
    assert hosting is not None
    invite = parse_invite(hosting.invite)
    assert invite.server_url == "wss://192.168.7.9:8765/ws"
    assert invite.pin is not None
    assert invite.pin == hosting.pin
    assert h.session.config.tls_pin == str(certs.cert)


def test_a_bad_certificate_starts_nothing_and_says_why(
    qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    h = Harness()
    h.app.options = dataclasses.replace(h.app.options, tls=(str(tmp_path / "gone.pem"),) * 2)
    run(qloop, h.app.call.host("r"))
    assert h.app.error.startswith("Cannot host with TLS: ")
    assert h.app.hosting is None
    assert h.sessions == []
    assert h.app.call.screen is Screen.LOBBY


def test_joining_an_invite_passes_secret_and_pin(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    secret = "9ysMfMT9xVNbmulSVnJK_A"
    run(qloop, h.app.call.join_text(f"http://10.0.0.7:9000/?room=blue#secret={secret}"))
    assert h.session.config.server_url == "ws://10.0.0.7:9000/ws"
    assert ("join_room", ("blue", None, secret)) in h.session.calls
    assert h.session.config.hosting is False
    assert h.app.call.screen is Screen.CALL


@pytest.mark.parametrize(
    ("kw", "text", "words"),
    [
        (
            {"unreachable": True},
            "10.0.0.7:9000/blue",
            "Could not reach the server at 10.0.0.7:9000",
        ),
        ({"full_rooms": frozenset({"blue"})}, "10.0.0.7:9000/blue", "This call is full"),
        ({"locked_rooms": frozenset({"blue"})}, "10.0.0.7:9000/blue", "needs its invite link"),
        ({}, "ws://exa mple.org/ws x", "spaces"),
        ({}, "ftp://x", "starts with http://"),
        ({}, "", "Paste the invite link"),
    ],
)
def test_a_join_that_fails_says_why_in_the_lobby(
    qloop: asyncio.AbstractEventLoop, kw: dict[str, object], text: str, words: str
) -> None:
    h = Harness(**kw)
    run(qloop, h.app.call.join_text(text))
    assert words in h.app.error
    assert "192.0.2.99" not in h.app.error
    assert h.app.call.screen is Screen.LOBBY
    assert h.app.session is None


@pytest.mark.parametrize("state", ["waiting", "calling", "connected", "ringing", "reconnecting"])
def test_hang_up_works_in_every_state_and_returns_to_the_lobby(
    qloop: asyncio.AbstractEventLoop, state: str
) -> None:
    h = Harness()
    run(qloop, h.app.call.join_text("h:1/room"))
    session = h.session
    if state == "calling":
        session.add_peer("p", "Ana", state=LegState.OFFERING)
    elif state == "connected":
        session.add_peer("p", "Ana")
    elif state == "ringing":
        session.ring("p")
    elif state == "reconnecting":
        session.add_peer("p", "Ana")
        session.reconnecting()
        assert h.app.snapshot.phase is CallPhase.RECONNECTING
    run(qloop, h.app.call.hang_up())
    assert h.app.call.screen is Screen.LOBBY
    assert session.closed
    assert h.app.session is None
    assert h.app.error == ""


def test_hang_up_that_hangs_still_returns(
    qloop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("callapp.ui.models.call.LEAVE_TIMEOUT", 0.2)
    h = Harness(hang_up_hangs=True)
    run(qloop, h.app.call.join_text("h:1/room"))
    run(qloop, h.app.call.hang_up())
    assert h.app.call.screen is Screen.LOBBY


def test_a_host_is_asked_before_ending_the_call_for_everyone(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    run(qloop, h.app.call.host("r"))
    h.session.add_peer("p", "Ana")
    h.services.answer = False
    run(qloop, h.app.call.hang_up())
    assert h.services.questions == ["End the call?"]
    assert h.app.call.screen is Screen.CALL
    h.services.answer = True
    run(qloop, h.app.call.hang_up())
    assert h.app.call.screen is Screen.LOBBY
    assert h.app.hosting is None
    assert h.servers[0].stopped


def test_the_server_gone_for_good_ends_the_call_in_words(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    run(qloop, h.app.call.join_text("h:1/room"))
    h.session.add_peer("p", "Ana")
    h.session.gone()
    qloop.run_until_complete(asyncio.sleep(0.05))
    assert h.app.call.screen is Screen.LOBBY
    assert h.app.error.startswith("The server went away")


def test_the_host_ending_the_call_is_said(qloop: asyncio.AbstractEventLoop) -> None:
    if not hasattr(EndReason, "HOST_LEFT"):
        pytest.skip("the engine has no EndReason.HOST_LEFT yet")
    h = Harness()
    run(qloop, h.app.call.join_text("h:1/room"))
    h.session.add_peer("p", "Host")
    h.session.leaves("p", EndReason["HOST_LEFT"])
    qloop.run_until_complete(asyncio.sleep(0.05))
    assert h.app.call.screen is Screen.LOBBY
    assert h.app.error == "The host ended the call."


def test_someone_leaving_a_group_is_said_and_the_call_goes_on(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    run(qloop, h.app.call.join_text("h:1/room"))
    h.session.add_peer("a", "Ana")
    h.session.add_peer("b", "Bo")
    h.session.leaves("a", EndReason.PEER_LEFT)
    assert h.app.error == "Ana left the call."
    assert h.app.call.screen is Screen.CALL
    assert h.app.snapshot.in_call


def test_a_dialled_call_that_is_declined_goes_back_to_the_lobby(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    run(qloop, h.app.call.dial("h:1", "peer-x"))
    assert ("dial", "peer-x") in h.session.calls
    h.session.leaves("peer-x", EndReason.DECLINED)
    qloop.run_until_complete(asyncio.sleep(0.05))
    assert h.app.call.screen is Screen.LOBBY
    assert "declined the call" in h.app.error


def test_ringing_accept_and_decline(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    names: list[str] = []
    h.app.call.ringingChanged.connect(names.append)
    run(qloop, h.app.call.join_text("h:1"))
    h.session.ring("p", "Ana")
    assert names == ["Ana"]
    run(qloop, h.app.call.accept())
    assert names == ["Ana", ""]
    assert h.app.snapshot.in_call
    h.session.ring("q", "Cy")
    run(qloop, h.app.call.decline())
    assert ("decline", None) in h.session.calls


def test_mute_and_camera_carry_over_to_the_next_session(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.app.call.set_muted(True))
    run(qloop, h.app.call.set_video_enabled(False))
    run(qloop, h.app.call.join_text("h:1/room"))
    assert ("set_muted", True) in h.session.calls
    assert ("set_video_enabled", False) in h.session.calls
    assert h.app.call.muted


def test_sharing_and_recording_go_to_the_session(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.app.call.join_text("h:1/room"))
    run(qloop, h.app.call.share_screen(True))
    run(qloop, h.app.call.set_recording(True))
    run(qloop, h.app.call.share_screen(False))
    assert ("share_screen", "screen") in h.session.calls
    assert ("share_screen", None) in h.session.calls
    assert h.app.snapshot.recording


def test_chat_sends_receives_and_counts_unread(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    chat = h.app.chat
    run(qloop, h.app.call.join_text("h:1/room"))
    run(qloop, chat.send("hello?"))
    assert chat.error == "Nobody is in the call to read your message."
    h.session.add_peer("a", "Ana")
    run(qloop, chat.send("hi Ana"))
    assert chat.error == ""
    h.session.receive_chat("a", "Ana", "hi!")
    h.session.receive_chat("a", "Ana", "can you hear me?")
    assert chat.unread == 2
    chat.set_panel_open(True)
    assert chat.unread == 0
    h.session.receive_chat("a", "Ana", "good")
    assert chat.unread == 0
    assert [line.text for line in chat.lines] == ["hi Ana", "hi!", "can you hear me?", "good"]


def test_quality_comes_from_every_legs_stats(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.app.call.join_text("h:1/room"))
    h.session.add_peer("a", "Ana")
    h.session.add_peer("b", "Bo")
    h.session.peer_stats["b"] = stats(packet_loss=0.2)
    h.app.call._tick()
    qloop.run_until_complete(asyncio.sleep(0.05))
    assert h.app.call.qualities["a"].level is Level.GOOD
    assert h.app.call.qualities["b"].level is Level.BAD
    assert h.app.call.last_stats is not None


def test_shutdown_stops_the_session_and_the_server(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.app.call.host("r"))
    run(qloop, h.app.shutdown())
    assert h.sessions[0].closed
    assert h.servers[0].stopped
    assert h.app.hosting is None


def test_devices_are_listed_off_the_gui_thread(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.app.devices.refresh())
    assert h.app.devices.devices is not None
    assert h.scanner.asked == [(True, True)]
