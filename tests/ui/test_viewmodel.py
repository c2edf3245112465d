"""The view-model against a fake session: intents become session calls, snapshots become signals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from callapp.call.config import CallConfig
from callapp.call.state import CallPhase, EndReason
from callapp.ui.names import room_problem
from callapp.ui.services import UiServices
from callapp.ui.viewmodel import CallOptions, CallViewModel, Hosting
from tests.ui.fakes import FakeCallSession, FakeDeviceScanner, FakeServer, FakeServices, until


class Harness:
    def __init__(self, services: UiServices | None = None, **session_kwargs: Any) -> None:
        self.sessions: list[FakeCallSession] = []
        self.servers: list[FakeServer] = []
        self.busy_ports: set[int] = set()
        self.services = FakeServices()
        self.scanner = FakeDeviceScanner()
        self.session_kwargs = session_kwargs
        self.vm = CallViewModel(
            self.make_session,
            self.make_server,
            services or self.services,
            CallOptions(video="test", allow_loopback=True),
            lan_address=lambda: "192.168.7.9",
            device_scanner=self.scanner,
        )
        self.seen: dict[str, list[Any]] = {}
        for name in (
            "statusChanged",
            "errorChanged",
            "connectionIdChanged",
            "hostingChanged",
            "remoteActiveChanged",
            "statsChanged",
            "durationChanged",
            "noticeChanged",
            "remoteFrame",
            "localFrame",
            "mutedChanged",
            "devicesChanged",
        ):
            getattr(self.vm, name).connect(self._recorder(name))

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(value: Any) -> None:
            self.seen.setdefault(name, []).append(value)

        return record

    def last(self, name: str) -> Any:
        return self.seen[name][-1]

    def make_session(self, config: CallConfig) -> FakeCallSession:
        session = FakeCallSession(config, **self.session_kwargs)
        self.sessions.append(session)
        return session

    def make_server(self, host: str, port: int, tls: tuple[str, str] | None = None) -> FakeServer:
        server = FakeServer(host, port, self.busy_ports, tls)
        self.servers.append(server)
        return server


def run(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    return loop.run_until_complete(asyncio.wait_for(coro, 5))


def test_host_starts_the_server_on_8765_and_shares_the_lan_address(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    run(qloop, h.vm.host())
    assert h.vm.error == ""
    server = h.servers[0]
    assert (server.host, server.requested) == ("0.0.0.0", 8765)
    hosting = h.last("hostingChanged")
    assert isinstance(hosting, Hosting)
    assert hosting.share_url == "ws://192.168.7.9:8765/ws"
    assert hosting.local_url == "ws://127.0.0.1:8765/ws"
    assert room_problem(hosting.room) is None
    assert hosting.room.count("-") == 2
    session = h.sessions[0]
    assert session.config.server_url == "ws://127.0.0.1:8765/ws"
    assert session.config.allow_loopback
    assert session.config.video == "test"
    assert session.calls == [("connect", None), ("join_room", hosting.room)]
    assert hosting.room in h.last("statusChanged")
    assert h.last("connectionIdChanged") == "self-id-123456"
    assert not h.vm.controls.host
    assert h.vm.controls.call


def test_host_falls_back_to_any_free_port_when_8765_is_taken(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    h.busy_ports.add(8765)
    run(qloop, h.vm.host("my-room"))
    assert [s.requested for s in h.servers] == [8765, 0]
    assert h.vm.hosting is not None
    assert h.vm.hosting.port == 40123
    assert h.vm.hosting.room == "my-room"
    run(qloop, h.vm.stop_hosting())
    assert h.servers[1].stopped
    assert h.sessions[0].closed
    assert h.last("hostingChanged") is None
    assert h.vm.hosting is None


def test_a_failed_host_leaves_no_server_running(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness(unreachable=True)
    run(qloop, h.vm.host("room"))
    assert h.vm.error.startswith("Could not reach the server")
    assert h.servers[0].stopped
    assert h.vm.hosting is None
    assert h.last("hostingChanged") is None
    assert h.vm.controls.host


def test_joining_while_hosting_uses_our_own_server(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.vm.host("first-room"))
    run(qloop, h.vm.join("ws://192.168.7.9:8765/ws", "second-room"))
    assert len(h.sessions) == 1, "the hosting session is reused"
    assert h.sessions[0].calls[-1] == ("join_room", "second-room")
    assert h.vm.error == ""


def test_joining_another_server_replaces_the_session(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.vm.join("ws://10.0.0.1:8765/ws", "one"))
    run(qloop, h.vm.join("ws://10.0.0.2:8765/ws", "two"))
    assert [s.config.server_url for s in h.sessions] == [
        "ws://10.0.0.1:8765/ws",
        "ws://10.0.0.2:8765/ws",
    ]
    assert h.sessions[0].closed
    assert h.sessions[1].calls == [("connect", None), ("join_room", "two")]


def test_a_bad_address_is_refused_before_connecting(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.vm.join("ftp://example.org", "room"))
    assert "must start with ws://" in h.vm.error
    assert h.sessions == []
    run(qloop, h.vm.join("ws://example.org/ws", "bad room"))
    assert "no spaces" in h.vm.error
    assert h.sessions == []


def test_an_unreachable_server_is_said_in_words(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness(unreachable=True)
    run(qloop, h.vm.join("10.9.9.9:8765", "room"))
    assert h.vm.error == "Could not reach the server at ws://10.9.9.9:8765/ws."
    assert h.sessions[0].closed
    assert h.vm.snapshot.phase is CallPhase.IDLE
    assert "Not connected" in h.last("statusChanged")
    assert h.vm.controls.join  # can try again


def test_a_full_room_is_said_in_words(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness(full_rooms=frozenset({"busy"}))
    run(qloop, h.vm.join("ws://127.0.0.1:8765/ws", "busy"))
    assert h.vm.error == "The room “busy” is full."
    # the next action clears the banner
    run(qloop, h.vm.join("ws://127.0.0.1:8765/ws", "other"))
    assert h.vm.error == ""
    assert h.last("errorChanged") == ""
    assert len(h.sessions) == 1, "same server: the connection is reused"


def test_dialing_then_connected_shows_duration_stats_and_frames(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    run(qloop, h.vm.call("ws://127.0.0.1:8765/ws", " peer-xyz "))
    session = h.sessions[0]
    assert session.calls[-1] == ("dial", "peer-xyz")
    assert "Calling peer-xyz" in h.last("statusChanged")
    assert h.vm.controls.hang_up
    assert not h.vm.controls.call
    session.media_up()
    assert h.last("remoteActiveChanged") is True
    assert session.remote_cb is not None
    assert session.local_cb is not None
    session.remote_cb("frame-1")
    session.local_cb("frame-2")
    assert h.seen["remoteFrame"] == ["frame-1"]
    assert h.seen["localFrame"] == ["frame-2"]

    run(qloop, until(lambda: h.seen.get("statsChanged")))  # the view-model's own 1 s timer
    assert h.last("statsChanged").startswith("640×480 · 30 fps · ↓ 1.2 Mbit/s")
    assert h.last("durationChanged") in ("1:05", "1:06")  # connected 65 s ago
    assert h.vm.last_stats is not None
    assert h.vm.last_stats.frames_received == 290
    run(qloop, h.vm.hang_up())
    assert ("hang_up", None) in session.calls
    assert h.vm.snapshot.phase is CallPhase.WAITING
    assert h.last("remoteActiveChanged") is False
    assert h.vm.error == "", "hanging up yourself is not an error"


def test_dialing_yourself_is_refused(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.vm.call("ws://127.0.0.1:8765/ws", "self-id-123456"))
    assert "own connection id" in h.vm.error
    run(qloop, h.vm.call("ws://127.0.0.1:8765/ws", ""))
    assert "Enter the connection id" in h.vm.error


@pytest.mark.parametrize("answer", [True, False])
def test_an_incoming_call_asks_accept_or_decline(
    qloop: asyncio.AbstractEventLoop, answer: bool
) -> None:
    h = Harness()
    h.services.answer = answer
    run(qloop, h.vm.join("ws://127.0.0.1:8765/ws", ""))
    session = h.sessions[0]
    assert session.calls == [("connect", None)]  # no room: connect and wait

    async def ring() -> None:
        session.ring("caller-1")
        await until(lambda: len(session.calls) >= 2)

    run(qloop, ring())
    assert h.services.asked == ["caller-1"]
    assert session.calls[-1] == ("accept" if answer else "decline", None)
    if not answer:
        assert "declined" in h.last("statusChanged")


def test_the_prompt_goes_away_when_the_caller_gives_up(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    h.services.hold = asyncio.Event()
    run(qloop, h.vm.join("ws://127.0.0.1:8765/ws", ""))
    session = h.sessions[0]

    async def ring_then_cancel() -> None:
        session.ring("caller-1")
        await asyncio.sleep(0.01)
        session.end(EndReason.PEER_HUNG_UP)
        await asyncio.sleep(0.01)

    run(qloop, ring_then_cancel())
    assert h.services.dismissed == 1
    assert ("accept", None) not in session.calls
    assert ("decline", None) not in session.calls


def test_a_peer_who_leaves_is_told_in_the_banner(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.vm.join("ws://127.0.0.1:8765/ws", "r"))
    session = h.sessions[0]
    # the room makes the call: simulate its phases
    session.publish(phase=CallPhase.CALLING, peer_id="p")
    session.media_up()
    session.end(EndReason.PEER_LEFT)
    assert h.vm.error == "The call ended: the other person left."
    assert "Waiting for someone to join room “r”" in h.last("statusChanged")


def test_the_camera_notice_reaches_the_window(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.vm.join("ws://127.0.0.1:8765/ws", "r"))
    h.sessions[0].publish(notice="No camera found: sending a test pattern instead.")
    assert h.last("noticeChanged") == "No camera found: sending a test pattern instead."


def test_camera_off_before_connecting_is_applied_to_the_new_session(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    run(qloop, h.vm.set_video_enabled(False))
    run(qloop, h.vm.join("ws://127.0.0.1:8765/ws", "r"))
    session = h.sessions[0]
    assert ("set_video_enabled", False) in session.calls
    assert session.local_cb is not None
    session.local_cb("black-frame")
    assert "localFrame" not in h.seen, "no black self-view while the camera is off"
    run(qloop, h.vm.set_video_enabled(True))
    session.local_cb("frame")
    assert h.seen["localFrame"] == ["frame"]


def test_shutdown_closes_the_session_and_stops_the_server(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    run(qloop, h.vm.host())
    run(qloop, h.vm.shutdown())
    assert h.sessions[0].closed
    assert h.servers[0].stopped
    assert h.vm.session is None
    assert h.vm.hosting is None


def test_copy_goes_through_the_service(qtbot: QtBot) -> None:
    h = Harness()
    h.vm.copy("ws://192.168.7.9:8765/ws")
    h.vm.copy("")
    assert h.services.clipboard == ["ws://192.168.7.9:8765/ws"]
