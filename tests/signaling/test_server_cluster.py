"""Two SignalingServers sharing one real Redis (``--redis``), real WebSocket clients on each.

The servers run in the test's loop (each with its own Backplane, as two
processes would have); ``test_two_processes_*`` starts real
``callapp-signaling`` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from callapp.signaling.server import SignalingServer
from tests.signaling.conftest import (
    ServerFactory,
    apigw,
    http_get,
    joined,
    native,
    open_ws,
    recv_json,
    send_json,
)
from tests.signaling.redis_fixture import RedisServer, redis_server

__all__ = ["redis_server"]

ROOT = Path(__file__).resolve().parents[2]

FAST: dict[str, Any] = {"heartbeat_interval": 0.2, "node_timeout": 1.0, "settle": 0.5}


@pytest.fixture
async def pair(
    make_server: ServerFactory, redis_server: RedisServer
) -> tuple[SignalingServer, SignalingServer]:
    """Two servers on one Redis."""
    one = await make_server(redis=redis_server.url, redis_options=FAST)
    two = await make_server(redis=redis_server.url, redis_options=FAST)
    return one, two


async def test_a_room_spans_two_servers(pair: tuple[SignalingServer, SignalingServer]) -> None:
    one, two = pair
    a, a_id, created = await joined(one, "spread")
    assert created["type"] == "created"
    b, b_id, reply = await joined(two, "spread")
    assert reply == {
        "type": "joined",
        "room": "spread",
        "connectionId": b_id,
        "peers": [a_id, b_id],
        "capacity": 2,
    }
    assert await recv_json(b) == {"type": "ready", "room": "spread", "peers": [a_id, b_id]}
    assert await recv_json(a) == {"type": "peer-joined", "room": "spread", "connectionId": b_id}
    assert await recv_json(a) == {"type": "ready", "room": "spread", "peers": [a_id, b_id]}
    # The room relay and the relay by id cross servers; from is stamped.
    await send_json(a, {"type": "message", "data": {"type": "SDP"}, "from": "forged"})
    assert await recv_json(b) == {"type": "message", "from": a_id, "data": {"type": "SDP"}}
    await send_json(b, {"type": "message", "to": a_id, "data": [1, 2, 3]})
    assert await recv_json(a) == {"type": "message", "from": b_id, "data": [1, 2, 3]}
    # A third, on either server, finds it full.
    c, _ = await native(one)
    await send_json(c, {"type": "join", "room": "spread"})
    assert await recv_json(c) == {"type": "full", "room": "spread"}
    await b.close()
    assert await recv_json(a) == {"type": "peer-left", "room": "spread", "connectionId": b_id}
    for ws in (a, c):
        await ws.close()


async def test_unknown_peer_when_no_server_holds_the_id(
    pair: tuple[SignalingServer, SignalingServer],
) -> None:
    one, two = pair
    a, _ = await native(one)
    b, b_id = await native(two)
    await b.close()
    await asyncio.sleep(0.1)
    await send_json(a, {"type": "message", "to": b_id, "data": 1, "id": 9})
    answer = await recv_json(a)
    assert (answer["type"], answer["code"], answer["ref"]) == ("error", "unknown-peer", 9)
    await a.close()


async def test_an_apigw_client_reaches_a_native_one_on_the_other_server(
    pair: tuple[SignalingServer, SignalingServer],
) -> None:
    one, two = pair
    g, g_id = await apigw(one)
    n, n_id = await native(two)
    await send_json(g, {"connectionId": n_id, "message": {"hi": 1}})
    assert await recv_json(g) == {"connectionId": g_id}
    assert await recv_json(n) == {"type": "message", "from": g_id, "data": {"hi": 1}}
    await send_json(n, {"type": "message", "to": g_id, "data": "back"})
    assert await recv_json(g) == {"message": "back", "from": n_id}
    for ws in (g, n):
        await ws.close()


async def test_many_clients_racing_into_one_room_through_both_servers(
    pair: tuple[SignalingServer, SignalingServer],
) -> None:
    clients = [await native(pair[i % 2]) for i in range(16)]
    await asyncio.gather(
        *(send_json(ws, {"type": "join", "room": "race", "capacity": 4}) for ws, _ in clients)
    )
    answers = [await recv_json(ws) for ws, _ in clients]
    kinds = sorted(a["type"] for a in answers)
    assert kinds.count("created") == 1
    assert kinds.count("joined") == 3
    assert kinds.count("full") == 12
    for ws, _ in clients:
        await ws.close()


async def test_healthz_says_not_ready_while_redis_is_away(
    pair: tuple[SignalingServer, SignalingServer], redis_server: RedisServer
) -> None:
    one, _ = pair
    status, _, body = await http_get(one.port, "/healthz")
    assert (status, body) == (200, b"ok")
    a, _ = await native(one)
    redis_server.stop()
    deadline = time.monotonic() + 5
    while (await http_get(one.port, "/healthz"))[0] == 200:
        assert time.monotonic() < deadline, "still ready without Redis"
        await asyncio.sleep(0.05)
    status, _, body = await http_get(one.port, "/healthz")
    assert status == 503
    assert b"Redis" in body
    await send_json(a, {"type": "join", "room": "later", "id": 1})
    answer = await recv_json(a)
    assert (answer["code"], answer["ref"]) == ("busy", 1)
    redis_server.start()
    deadline = time.monotonic() + 10
    while (await http_get(one.port, "/healthz"))[0] != 200:
        assert time.monotonic() < deadline, "not ready again with Redis back"
        await asyncio.sleep(0.05)
    await send_json(a, {"type": "join", "room": "later", "id": 2})
    assert (await recv_json(a))["type"] == "created"
    await a.close()


def _signaling(redis_url: str, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callapp.signaling.cli",
            "--port",
            "0",
            "--redis",
            redis_url,
            *options,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


@contextlib.contextmanager
def _processes(redis_url: str, *options: str) -> Iterator[list[subprocess.Popen[str]]]:
    """Two ``callapp-signaling --redis`` processes, killed (if still up) at the end."""
    procs = [_signaling(redis_url, *options) for _ in range(2)]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


async def _url_of(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        assert line, "the server exited"
        if "ws://" in line:
            return "ws://" + line.split("ws://", 1)[1].split()[0]


@pytest.mark.e2e
async def test_two_processes_and_one_killed_with_sigkill(redis_server: RedisServer) -> None:
    with _processes(redis_server.url) as procs:
        one, two = [await _url_of(p) for p in procs]
        a = await open_ws(one)
        a_id = (await recv_json(a))["connectionId"]
        await send_json(a, {"type": "join", "room": "k"})
        assert (await recv_json(a))["type"] == "created"
        b = await open_ws(two)
        b_id = (await recv_json(b))["connectionId"]
        await send_json(b, {"type": "join", "room": "k"})
        assert (await recv_json(b))["type"] == "joined"
        assert (await recv_json(a))["type"] == "peer-joined"
        await recv_json(a)  # ready
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait(5)
        killed = time.monotonic()
        async with asyncio.timeout(10):
            while (message := await recv_json(a))["type"] != "peer-left":
                pass
        assert message == {"type": "peer-left", "room": "k", "connectionId": b_id}
        assert time.monotonic() - killed < 6.0  # the default 3 s node timeout, plus a look
        # b's client comes back through the surviving process and rejoins.
        b2 = await open_ws(one)
        b2_id = (await recv_json(b2))["connectionId"]
        await send_json(b2, {"type": "join", "room": "k"})
        reply = await recv_json(b2)
        assert reply["peers"] == [a_id, b2_id]
        for ws in (a, b, b2):
            await ws.close()


@pytest.mark.e2e
async def test_two_processes_race_clients_into_rooms_and_out_again(
    redis_server: RedisServer,
) -> None:
    """Joins and leaves from both processes at once: each room gets one creator,
    never more members than its capacity, and is empty again once they go."""
    with _processes(redis_server.url, "--connects-per-second", "1000") as procs:
        urls = [await _url_of(p) for p in procs]
        rooms = ("race-1", "race-2", "race-3")
        clients = [await open_ws(urls[n % 2]) for n in range(30)]
        ids = [(await recv_json(ws))["connectionId"] for ws in clients]
        # Ten for each room, five through each process, all sent before any answer.
        await asyncio.gather(
            *(
                send_json(ws, {"type": "join", "room": rooms[n % 3], "capacity": 4})
                for n, ws in enumerate(clients)
            )
        )
        answers = [await recv_json(ws) for ws in clients]
        for index, room in enumerate(rooms):
            mine = [n for n in range(len(clients)) if n % 3 == index]
            kinds = sorted(answers[n]["type"] for n in mine)
            assert kinds == ["created"] + ["full"] * 6 + ["joined"] * 3, (room, kinds)
            members = [n for n in mine if answers[n]["type"] != "full"]
            assert {n % 2 for n in mine} == {0, 1}  # the room's clients were on both
            last = max(members, key=lambda n: len(answers[n].get("peers", [])))
            assert sorted(answers[last]["peers"]) == sorted(ids[n] for n in members)
        # Every member leaves at once, through whichever process holds it; a
        # process tells Redis once its handler is done, after the close.
        members_of_all = [n for n in range(len(clients)) if answers[n]["type"] != "full"]
        await asyncio.gather(*(clients[n].close() for n in members_of_all))
        store = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            async with asyncio.timeout(5):
                keys = [f"callapp:room:{room}" for room in rooms]
                while await store.exists(*keys):  # noqa: ASYNC110 (polling Redis)
                    await asyncio.sleep(0.02)
        finally:
            await store.aclose()
        for index, room in enumerate(rooms):
            newcomer = await open_ws(urls[index % 2])
            await recv_json(newcomer)  # welcome
            await send_json(newcomer, {"type": "join", "room": room})
            reply = await recv_json(newcomer)
            assert reply["type"] == "created", (room, reply)  # nobody left behind
            await newcomer.close()
        for n, ws in enumerate(clients):
            if n not in members_of_all:
                await ws.close()
