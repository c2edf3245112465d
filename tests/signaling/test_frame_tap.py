"""The server reads text frames itself (``SignalingServer._on_data``): order and answers hold.

A raw TCP client writes frames in pieces of every size, so that frames are
cut anywhere between ``data_received`` calls, and mixes what the server
reads itself (whole text frames) with what it leaves to websockets
(fragmented messages, binary frames, pings): every answer must come back in
the order the frames were sent, as it did when websockets read everything.
(Pongs are written as soon as websockets reads the ping, as before, so they
keep their own order, not their place among the messages.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from websockets.frames import Close, Frame, Opcode

from callapp.signaling.server import SignalingServer

ServerFactory = Callable[..., Coroutine[Any, Any, SignalingServer]]


@pytest.fixture
def make_server(make_server: ServerFactory) -> ServerFactory:
    """conftest's servers, with the per-connection rate limit out of the way."""

    async def factory(**kwargs: Any) -> SignalingServer:
        kwargs.setdefault("rate", 1e6)
        kwargs.setdefault("burst", 10**6)
        return await make_server(**kwargs)

    return factory


class RawClient:
    """A WebSocket client that writes exactly the bytes it is given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: SignalingServer) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def frame(self) -> Frame:
        """The next frame from the server (unmasked, never fragmented here)."""
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8), "big")
        data = await self.reader.readexactly(length)
        return Frame(Opcode(first & 0x0F), data, fin=bool(first & 0x80))

    async def message(self) -> dict[str, Any]:
        frame = await self.frame()
        assert frame.opcode is Opcode.TEXT, frame
        value: dict[str, Any] = json.loads(bytes(frame.data))
        return value

    async def trickle(self, data: bytes, rng: random.Random) -> None:
        """Write ``data`` in pieces of 1-40 bytes, each its own TCP segment."""
        at = 0
        while at < len(data):
            size = rng.randint(1, 40)
            self.writer.write(data[at : at + size])
            await self.writer.drain()
            await asyncio.sleep(0.0005)
            at += size


def _masked(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=True, extensions=[])


def _text(obj: object) -> bytes:
    return _masked(Opcode.TEXT, json.dumps(obj).encode())


async def test_frames_cut_anywhere_and_mixed_with_websockets_frames_keep_their_order(
    make_server: ServerFactory,
) -> None:
    server = await make_server()
    client = await RawClient.open(server)
    me = (await client.message())["connectionId"]
    rng = random.Random(16)
    stream = b""
    expected: list[object] = []
    pongs: list[bytes] = []
    for i in range(60):
        kind = rng.choice(["whole", "whole", "whole", "fragmented", "binary", "ping", "big"])
        if kind == "whole":
            stream += _text({"type": "message", "to": me, "data": i})
            expected.append(i)
        elif kind == "big":  # a 16-bit length
            data = {"i": i, "pad": "x" * rng.randint(126, 3000)}
            stream += _text({"type": "message", "to": me, "data": data})
            expected.append(data)
        elif kind == "fragmented":
            text = json.dumps({"type": "message", "to": me, "data": [i, "é"]}).encode()
            cut = rng.randint(1, len(text) - 1)
            stream += _masked(Opcode.TEXT, text[:cut], fin=False)
            stream += _masked(Opcode.PING, b"mid%d" % i)  # allowed between fragments
            pongs.append(b"mid%d" % i)
            stream += _masked(Opcode.CONT, text[cut:])
            expected.append([i, "é"])
        elif kind == "binary":
            stream += _masked(Opcode.BINARY, b'{"type": "leave"}')
            expected.append("bad-message")
        else:
            stream += _masked(Opcode.PING, str(i).encode())
            pongs.append(str(i).encode())
    await client.trickle(stream, rng)
    got: list[object] = []
    ponged: list[bytes] = []
    async with asyncio.timeout(10):
        while len(got) < len(expected) or len(ponged) < len(pongs):
            frame = await client.frame()
            if frame.opcode is Opcode.PONG:
                ponged.append(bytes(frame.data))
                continue
            message = json.loads(bytes(frame.data))
            got.append(message["data"] if message["type"] == "message" else message["code"])
    assert got == expected
    assert ponged == pongs
    client.writer.close()


async def test_invalid_utf8_and_oversized_frames_are_still_websockets_to_refuse(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_message_bytes=1000)  # frames up to 4000 bytes
    client = await RawClient.open(server)
    await client.message()  # welcome
    client.writer.write(_masked(Opcode.TEXT, b'{"type": "leave", "x": "\xff"}'))
    frame = await client.frame()
    assert frame.opcode is Opcode.CLOSE
    assert Close.parse(frame.data).code == 1007
    client.writer.close()

    client = await RawClient.open(server)
    await client.message()
    # Only the header of a frame over max_frame_bytes is needed to refuse it.
    client.writer.write(_masked(Opcode.TEXT, b"x" * 5000)[:20])
    frame = await client.frame()
    assert frame.opcode is Opcode.CLOSE
    assert Close.parse(frame.data).code == 1009
    client.writer.close()


async def test_a_frame_over_the_size_limit_is_answered_too_large_and_the_next_is_read(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_message_bytes=1000)
    client = await RawClient.open(server)
    me = (await client.message())["connectionId"]
    data = _text({"type": "message", "to": me, "data": "y" * 1500})
    data += _text({"type": "message", "to": me, "data": "after"})
    await client.trickle(data, random.Random(3))
    assert (await client.message())["code"] == "too-large"
    assert (await client.message())["data"] == "after"
    client.writer.close()


async def test_a_burst_read_at_once_is_no_slow_reader(make_server: ServerFactory) -> None:
    # The frames of one read are handled in one go: a recipient that reads
    # must not be taken for one whose outbox is full (max_outbox=8).
    server = await make_server(max_outbox=8)
    sender = await RawClient.open(server)
    await sender.message()
    receiver = await RawClient.open(server)
    them = (await receiver.message())["connectionId"]
    burst = b"".join(_text({"type": "message", "to": them, "data": i}) for i in range(40))
    sender.writer.write(burst)
    async with asyncio.timeout(10):
        got = [(await receiver.message())["data"] for _ in range(40)]
    assert got == list(range(40))
    sender.writer.close()
    receiver.writer.close()
