"""A closed connection gives its memory back by reference counting alone.

Issue 15: receivers that never read were closed (1013), but each one's
record, writer task, the task's ``CancelledError`` and its traceback held
each other, so their queued messages waited for a full garbage collection.
Here the collector is off while victims are flooded and closed, round after
round; afterwards no server-side connection object is alive, and a
collection run with ``gc.DEBUG_SAVEALL`` finds none among the unreachable.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection

from callapp.signaling.server import _Peer
from tests.signaling.conftest import (
    TIMEOUT,
    ServerFactory,
    native,
    open_ws,
    recv_json,
    send_json,
)


def _ours(objects: list[Any]) -> list[Any]:
    """The server's per-connection objects among ``objects``."""
    # type(), not isinstance(): a dead weak proxy among them raises on isinstance.
    return [
        o
        for o in objects
        if issubclass(type(o), _Peer | ServerConnection)
        or (type(o) is asyncio.Task and o.get_name().startswith("signaling-writer"))
    ]


async def _victim(port: int, url: str) -> tuple[ClientConnection, str]:
    """A client with a small receive buffer (its outbox on the server fills sooner)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    ws = await open_ws(url, sock=sock)
    return ws, (await recv_json(ws))["connectionId"]


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        gc.collect()


@pytest.mark.usefixtures("collector_off")
async def test_closed_victims_leave_nothing_for_the_garbage_collector(
    make_server: ServerFactory,
) -> None:
    server = await make_server(
        rate=1e6,
        burst=10**6,
        max_address_bytes_per_second=1e12,
        max_outbox_bytes=2**18,
        close_timeout=0.2,
    )
    payload = secrets.token_urlsafe(45_000)
    closed = 0
    for _ in range(3):
        sender, _ = await native(server)
        victims = [await _victim(server.port, server.url) for _ in range(4)]
        for ws, _ in victims:
            ws.transport.pause_reading()
        ids = {cid for _, cid in victims}
        async with asyncio.timeout(TIMEOUT):
            n = 0
            while ids & server.connection_ids:
                live = sorted(ids & server.connection_ids)
                await send_json(
                    sender, {"type": "message", "to": live[n % len(live)], "data": payload}
                )
                n += 1
        closed += len(ids)
        # The sender reads none of its answers either: cut it off too.
        for ws, _ in [(sender, ""), *victims]:
            ws.transport.abort()
        async with asyncio.timeout(TIMEOUT):
            while server.connection_ids or server._tasks:  # noqa: ASYNC110 - polls server state
                await asyncio.sleep(0.02)
    assert closed == 12
    await asyncio.sleep(0.3)  # writers and handlers run to their end
    assert server._queued == 0
    # Reference counting alone freed every record, connection and writer task.
    assert _ours(gc.get_objects()) == []
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    assert _ours(gc.garbage) == []
