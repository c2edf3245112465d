"""CallSession over the real SignalingClient and SignalingServer (in this process)."""

from __future__ import annotations

import pytest

from callapp.call import errors
from callapp.call.session import CallSession
from callapp.call.state import CallPhase, EndReason
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
