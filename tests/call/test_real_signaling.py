"""CallSession over the real SignalingClient and SignalingServer (in this process)."""

from __future__ import annotations

import time

import pytest

from callapp.call import errors
from callapp.call.session import CallSession
from callapp.call.state import CallPhase, EndReason, LinkEnd, LinkState
from callapp.signaling.server import SignalingServer

from .conftest import make_config, wait_for, wait_phase


async def test_room_call_survives_a_server_restart() -> None:
    server = SignalingServer("127.0.0.1", 0)
    await server.start()
    port = server.port
    config = make_config(server_url=server.url)
    a, b = CallSession(config), CallSession(config)
    try:
        first_a = await a.connect()
        await b.connect()
        await a.join_room("restart")
        await b.join_room("restart")
        await wait_phase(a, CallPhase.CONNECTED)
        await wait_phase(b, CallPhase.CONNECTED)

        await server.stop()
        await wait_phase(a, CallPhase.RECONNECTING)
        server = SignalingServer("127.0.0.1", port)
        await server.start()

        # Both come back with new ids, rejoin the room and call again.
        snap = await wait_for(
            a,
            lambda s: s.phase is CallPhase.CONNECTED and s.connection_id != first_a,
            within=20,
        )
        assert snap.room == "restart"
        await wait_phase(b, CallPhase.CONNECTED, within=10)
    finally:
        await a.close()
        await b.close()
        await server.stop()


async def test_unreachable_server_is_a_call_error_and_back_to_idle() -> None:
    server = SignalingServer("127.0.0.1", 0)
    await server.start()
    url = server.url
    await server.stop()
    session = CallSession(make_config(server_url=url))
    with pytest.raises(errors.ServerUnavailable):
        await session.connect()
    assert session.snapshot.phase is CallPhase.IDLE
    await session.close()


async def test_a_stopped_server_ends_calls_not_yet_connected() -> None:
    server = SignalingServer("127.0.0.1", 0)
    await server.start()
    a = CallSession(make_config(server_url=server.url))
    try:
        await a.connect()
        await a.dial("somebody-who-never-answers")
        await server.stop()
        snap = await wait_for(a, lambda s: s.end_reason is not None, within=5)
        assert snap.end_reason in (EndReason.SERVER_LOST, EndReason.FAILED)
    finally:
        await a.close()


async def test_a_server_that_stays_down_is_given_up_and_connect_works_again_later() -> None:
    server = SignalingServer("127.0.0.1", 0)
    await server.start()
    port = server.port
    session = CallSession(make_config(server_url=server.url, reconnect_for=1.0))
    try:
        await session.connect()
        await session.join_room("given-up")
        await server.stop()
        snap = await wait_phase(session, CallPhase.RECONNECTING, within=5)
        assert snap.reconnect_deadline is not None
        snap = await wait_for(session, lambda s: s.link is LinkState.GONE, within=5)
        assert (snap.link_end, snap.end_reason) == (LinkEnd.GAVE_UP, EndReason.SERVER_LOST)
        # The server is back: the same session can try again (a fresh client).
        server = SignalingServer("127.0.0.1", port)
        await server.start()
        await session.connect()
        assert session.snapshot.link is LinkState.CONNECTED
        assert session.snapshot.link_end is None
    finally:
        await session.close()
        await server.stop()


async def test_close_while_reconnecting_stops_the_retries_at_once() -> None:
    server = SignalingServer("127.0.0.1", 0)
    await server.start()
    session = CallSession(make_config(server_url=server.url))
    try:
        await session.connect()
        await server.stop()
        await wait_phase(session, CallPhase.RECONNECTING, within=5)
        started = time.monotonic()
        await session.close()
        assert time.monotonic() - started < 3.0
        snap = session.snapshot
        assert (snap.phase, snap.link, snap.link_end) == (
            CallPhase.CLOSED,
            LinkState.GONE,
            LinkEnd.CLOSED,
        )
    finally:
        await session.close()
        await server.stop()


async def test_the_guest_of_a_host_that_closes_and_stops_its_server_ends_host_left() -> None:
    server = SignalingServer("127.0.0.1", 0)
    await server.start()
    host = CallSession(make_config(server_url=server.url, hosting=True))
    guest = CallSession(make_config(server_url=server.url))
    try:
        await host.connect()
        await guest.connect()
        await host.join_room("hosted")
        await guest.join_room("hosted")
        await wait_phase(guest, CallPhase.CONNECTED)
        started = time.monotonic()
        await host.close()  # what the app does when its window closes ...
        await server.stop()  # ... and then its server stops
        snap = await wait_for(guest, lambda s: s.link is LinkState.GONE, within=5)
        took = time.monotonic() - started
        assert (snap.link_end, snap.end_reason) == (LinkEnd.HOST_LEFT, EndReason.HOST_LEFT)
        assert took < 4.0, took
        print(f"\nhost closed -> guest gone (host left) in {took:.3f} s")
    finally:
        await host.close()
        await guest.close()
        await server.stop()
