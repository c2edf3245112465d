"""Fuzzing the signaling server: mutated frames of every message type, sans-I/O and on sockets.

Two harnesses share one mutator (:func:`mutate`, seeded, so a failure can be
replayed):

* :func:`core` feeds frames to the sans-I/O core the way the server does
  (size, ``request_id`` for a rate-limited frame, parse, route through a
  :class:`~callapp.signaling.rooms.RoomRouter`, encode every delivery for
  both endpoints) and fails on any exception other than ``ProtocolError``;
* :func:`sockets` sends frames over real WebSocket connections to a running
  server on ``/ws`` and ``/apigw``, reads every answer (each must be JSON a
  client can parse), reconnects when the server closes a connection for
  abuse, and at the end checks that a fresh client still gets its
  ``welcome`` and ``created``.

``python -m bench.fuzz`` runs 100,000 frames on sockets against a
``callapp-signaling`` process (with its rate limits raised, and a part with
the default ones so that the rate-limited path is fuzzed too) and 100,000
through the core, and prints frames per second, the server's RSS before and
after, and what its log held. ``tests/signaling/test_fuzz.py`` runs a few
thousand of each.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callapp.signaling.messages import (
    ABSENT,
    Error,
    ProtocolError,
    encode,
    encode_apigw,
    parse_apigw_request,
    parse_request,
    parse_server_message,
    request_id,
)
from callapp.signaling.rooms import RoomRouter

KEY = "A" * 42 + "A"

#: Valid frames of every message type, both endpoints: what the mutator starts from.
_SEED_VALUES: tuple[Any, ...] = (
    {"type": "join", "room": "r1"},
    {"type": "join", "room": "r1", "id": 1},
    {"type": "join", "room": "r.2-x_", "capacity": 3, "id": "j"},
    {"type": "join", "room": "keyed", "key": KEY, "id": None},
    {"type": "leave"},
    {"type": "leave", "id": [1, {"a": 2}]},
    {"type": "message", "data": {"type": "BYE"}},
    {"type": "message", "to": "PEER", "data": {"type": "SDP", "payload": {"type": "offer"}}},
    {"type": "message", "to": "PEER", "data": {"type": "ICE", "payload": {"candidate": ""}}},
    {"type": "message", "data": {"type": "CHAT", "payload": {"text": "héllo \ud83d\ude00"}}},
    {"connectionId": "PEER", "message": {"type": "SDP", "payload": {"type": "answer"}}},
    {"connectionId": "PEER", "message": 1},
    {"connectionId": None},
    {"type": "welcome", "connectionId": "x"},
    [1, 2, 3],
    "text",
    3.5,
)
SEEDS: tuple[str, ...] = (*(json.dumps(value) for value in _SEED_VALUES), "")

_PUNCTUATION = '{}[]:,"\\ntfu0123456789.eE+-'
_NASTY = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "9" * 5000,
    '"\\ud800"',
    '"\\udfff\\ud800"',
    "null",
    "true",
    '"' + "x" * 70_000 + '"',
    "\u0000",
    "\ufeff",
)


def _nest(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def _value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value, now and then nested deep."""
    roll = rng.random()
    if roll < 0.05:
        # Built in a loop (json.loads would recurse); deeper ones come as text (op 5).
        value: Any = 1
        for _ in range(rng.choice((64, 126, 127, 128, 129, 200))):
            value = [value]
        return value
    if depth > 3 or roll < 0.5:
        return rng.choice(
            (None, True, False, 0, -1, 2**53, 2**64, 1.5, -0.0, "", "x", "\ud800", "PEER", KEY)
        )
    if roll < 0.75:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ("type", "room", "id", "to", "data", "key", "capacity", "connectionId", "message", "z")
    return {rng.choice(keys): _value(rng, depth + 1) for _ in range(rng.randrange(5))}


def mutate(rng: random.Random, peer: str = "PEER") -> str | bytes:
    """One fuzz frame: a seed of any type, mutated by one to three operations."""
    text = rng.choice(SEEDS).replace("PEER", peer)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(10)
        if op == 0 and text:  # flip a character
            i = rng.randrange(len(text))
            text = text[:i] + chr(rng.randrange(0x20, 0x7F)) + text[i + 1 :]
        elif op == 1:  # insert JSON punctuation
            i = rng.randrange(len(text) + 1)
            text = text[:i] + rng.choice(_PUNCTUATION) + text[i:]
        elif op == 2 and text:  # cut a slice out, or truncate
            i = rng.randrange(len(text))
            text = text[:i] + text[rng.randrange(i, len(text) + 1) :]
        elif op == 3:  # replace a field's value (or the whole frame) with anything
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError):
                obj = None
            if isinstance(obj, dict) and obj:
                obj[rng.choice(list(obj))] = _value(rng)
                text = json.dumps(obj)
            else:
                text = json.dumps(_value(rng))
        elif op == 4:  # a nasty token somewhere
            i = rng.randrange(len(text) + 1)
            text = text[:i] + rng.choice(_NASTY) + text[i:]
        elif op == 5:  # a deeply nested id (issue 15: 980 levels after a rate limit)
            depth = rng.choice((1, 126, 127, 128, 300, 980, 5000))
            text = text.rstrip("}") + f', "id": {_nest(depth)}' + "}"
        elif op == 6:  # splice two seeds
            other = rng.choice(SEEDS)
            text = text[: rng.randrange(len(text) + 1)] + other[rng.randrange(len(other) + 1) :]
        elif op == 7:  # duplicate keys
            text = text.rstrip("}") + ', "type": "leave", "type": "message"}'
        elif op == 8:  # unicode and escapes
            text = text.replace("r1", rng.choice(("\u00e9", "\\u0000", "\\ud800", "r" * 65, "")))
        else:
            pass
    if rng.random() < 0.03:
        return text.encode("utf-8", "surrogatepass")  # a binary frame
    return text


def _check_encodes(message: Any, own: str) -> None:
    json.loads(encode(message))
    out = encode_apigw(message, own)
    if out is not None:
        json.loads(out)


def core(frames: int, seed: int = 15) -> dict[str, Any]:
    """Feed ``frames`` mutated frames to the sans-I/O core; anything but ProtocolError raises."""
    rng = random.Random(seed)
    router = RoomRouter(capacity=2, max_room_capacity=4)
    ids = ["me", "PEER", "third"]
    for cid in ids:
        router.connect(cid)
    codes: Counter[str] = Counter()
    started = time.perf_counter()
    for n in range(frames):
        frame = mutate(rng)
        sender = ids[n % len(ids)]
        # The rate-limited path reads only the id, with the same strict rules.
        ref = request_id(frame)
        _check_encodes(Error("rate-limited", "slow down", ref), sender)
        try:
            deliveries = router.handle(sender, parse_request(frame))
        except ProtocolError as exc:
            codes[str(exc.code)] += 1
            # A ref is the request's id, read with the same strict rules.
            if exc.ref is not ABSENT and not isinstance(frame, bytes) and exc.ref != ref:
                raise AssertionError(f"ref {exc.ref!r} is not the id {ref!r}") from None
            deliveries = []
            _check_encodes(exc.to_message(), sender)
        for delivery in deliveries:
            _check_encodes(delivery.message, delivery.to)
        try:
            parse_apigw_request(frame)
        except ProtocolError as exc:
            codes["apigw:" + str(exc.code)] += 1
    elapsed = time.perf_counter() - started
    return {
        "frames": frames,
        "seconds": round(elapsed, 2),
        "frames_per_s": round(frames / elapsed),
        "errors_by_code": dict(codes.most_common()),
    }


async def _drain(ws: ClientConnection, endpoint: str, seen: Counter[str]) -> None:
    """Read every answer until the connection closes; each must be readable JSON."""
    try:
        async for answer in ws:
            assert isinstance(answer, str), answer
            if endpoint == "ws":
                message = parse_server_message(answer)
                seen[type(message).__name__] += 1
            else:
                value = json.loads(answer)
                assert isinstance(value, dict), answer
                seen["apigw:" + ("error" if "error" in value else "answer")] += 1
    except ConnectionClosed:
        pass


async def sockets(
    url: str, apigw_url: str, frames: int, seed: int = 15, window: int = 64
) -> dict[str, Any]:
    """Send ``frames`` mutated frames over /ws and /apigw connections of a running server."""
    rng = random.Random(seed)
    seen: Counter[str] = Counter()
    closes: Counter[int] = Counter()
    sent = 0
    started = time.perf_counter()
    while sent < frames:
        endpoint = "ws" if (sent // 500) % 2 == 0 else "apigw"
        async with connect(
            url if endpoint == "ws" else apigw_url,
            proxy=None,
            max_size=None,
            ping_interval=None,
            close_timeout=1,
        ) as ws:
            reader = asyncio.create_task(_drain(ws, endpoint, seen))
            try:
                for _ in range(500):
                    if sent >= frames:
                        break
                    await ws.send(mutate(rng))
                    sent += 1
                    if sent % window == 0:
                        await asyncio.sleep(0)
            except ConnectionClosed:
                pass
            await ws.close()
            await reader
            closes[ws.close_code or 0] += 1
    elapsed = time.perf_counter() - started
    # The server still works.
    async with connect(url, proxy=None) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        await ws.send(json.dumps({"type": "join", "room": "after-the-fuzz", "id": 1}))
        reply = json.loads(await ws.recv())
        assert reply["type"] == "created", reply
    return {
        "frames": sent,
        "seconds": round(elapsed, 2),
        "frames_per_s": round(sent / elapsed),
        "answers": dict(seen.most_common()),
        "close_codes": {str(k): v for k, v in sorted(closes.items())},
    }


async def _received(port: int) -> int:
    """Messages the server handled, from its ``/metrics``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    body = (await reader.read()).decode()
    writer.close()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in body.splitlines()
        if line.startswith("callapp_signaling_messages_received_total{")
    )


def run(frames: int = 100_000) -> dict[str, Any]:
    """The full run: the core, then sockets against a server process, RSS before and after."""
    from bench.attacks import target
    from bench.common import log, peak_rss_bytes, rss_bytes

    results: dict[str, Any] = {}
    log(f"fuzz: {frames} frames through the sans-I/O core")
    results["core"] = core(frames)
    for name, args, share in (
        (
            "sockets",
            ("--rate", "1000000", "--burst", "1000000", "--abuse-threshold", "1e9"),
            0.9,
        ),
        ("sockets_default_limits", (), 0.1),
    ):
        count = int(frames * share)
        log(f"fuzz: {count} frames on sockets ({name})")
        with target(*args, "--log-level", "INFO", name=f"fuzz-{name}") as server:
            time.sleep(0.3)
            before = rss_bytes(server.pid)
            figures = asyncio.run(sockets(server.url, f"ws://127.0.0.1:{server.port}/apigw", count))
            time.sleep(0.5)
            after = rss_bytes(server.pid)
            received = asyncio.run(_received(server.port))
            text = server.log()
            figures.update(
                rss_before_mib=round(before / 2**20, 1),
                rss_after_mib=round(after / 2**20, 1),
                rss_peak_mib=round(peak_rss_bytes(server.pid) / 2**20, 1),
                frames_handled=received,
                tracebacks=text.count("Traceback"),
                log_lines=len(server.proc.lines),
            )
        results[name] = figures
    return results


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps(run(count), indent=2))
