"""Fixtures for the signaling tests: real servers on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from callapp.signaling.server import SignalingServer

#: Generous: only a hang should ever hit it.
TIMEOUT = 10.0

ServerFactory = Callable[..., Awaitable[SignalingServer]]


@pytest.fixture
async def make_server() -> AsyncIterator[ServerFactory]:
    """Start servers with the given options; stop them all after the test."""
    servers: list[SignalingServer] = []

    async def factory(**options: Any) -> SignalingServer:
        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
        server = SignalingServer(**options)
        await server.start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.stop()


@pytest.fixture
async def server(make_server: ServerFactory) -> SignalingServer:
    """A server with the default limits."""
    return await make_server()


async def open_ws(url: str, **options: Any) -> ClientConnection:
    """A raw websockets client (no proxy: tests talk to 127.0.0.1 only)."""
    options.setdefault("open_timeout", TIMEOUT)
    return await connect(url, proxy=None, **options)


async def recv_json(ws: ClientConnection) -> Any:
    """The next message on ``ws``, decoded from JSON (a hang fails after TIMEOUT)."""
    async with asyncio.timeout(TIMEOUT):
        frame = await ws.recv()
    assert isinstance(frame, str), f"expected a text frame, got {frame!r}"
    return json.loads(frame)


async def send_json(ws: ClientConnection, value: Any) -> None:
    await ws.send(json.dumps(value))


async def native(server: SignalingServer) -> tuple[ClientConnection, str]:
    """A connected /ws client and the connection id from its ``welcome``."""
    ws = await open_ws(server.url)
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome"
    return ws, welcome["connectionId"]


async def apigw(server: SignalingServer) -> tuple[ClientConnection, str]:
    """A connected /apigw client and its connection id (asked with an empty frame)."""
    ws = await open_ws(server.apigw_url)
    await ws.send("")
    answer = await recv_json(ws)
    return ws, answer["connectionId"]


async def joined(server: SignalingServer, room: str) -> tuple[ClientConnection, str, Any]:
    """A /ws client that joined ``room``, its id and the created/joined reply."""
    ws, cid = await native(server)
    await send_json(ws, {"type": "join", "room": room})
    reply = await recv_json(ws)
    assert reply["type"] in ("created", "joined"), reply
    return ws, cid, reply


async def http_get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP/1.1 GET to 127.0.0.1: status, headers (lower-cased), body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(TIMEOUT):
            raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return status, parsed, body
