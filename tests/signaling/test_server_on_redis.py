"""The server's protocol tests again, every server on a real Redis (``--redis``).

The same test functions as ``test_server.py``, ``test_room_secrets.py``,
``test_call_spam.py`` and ``test_client.py``, collected here with
``make_server`` replaced: each server it starts shares the test's own
``redis-server`` (and with it one cluster), so every room rule, relay, limit
and client behaviour is checked through the backplane too. Each test runs
twice: on one node, and on two nodes with its clients spread over both in
turn (:class:`_TwoNodes`), so what one client sends another reaches through
Redis from the other node. The two nodes share this process (each with its
own backplane, node id and Redis connections: to Redis, two servers);
``test_server_cluster.py`` and ``tests/e2e`` run them as separate processes.

Where a test looks at ``server.router`` (whose dicts a server on Redis does
not use), it reads the cluster instead: :class:`_ClusterView` answers
``room_of``, ``members``, ``is_keyed`` and ``room_count`` from Redis, and
``connect``/``handle``/``disconnect`` go to the backplane.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import ChainMap
from collections.abc import AsyncIterator, Coroutine
from typing import Any, cast

import pytest
import redis

from callapp.signaling.backplane import Backplane
from callapp.signaling.messages import Request
from callapp.signaling.rooms import Deliver, RoomRouter
from callapp.signaling.server import SignalingServer
from tests.signaling import test_call_spam, test_client, test_room_secrets, test_server
from tests.signaling.conftest import (
    TIMEOUT,
    ServerFactory,
    apigw,
    native,
    open_ws,
    recv_json,
    send_json,
)
from tests.signaling.redis_fixture import RedisServer, redis_server

__all__ = ["redis_server"]

#: Tests of one process's own dicts, which a server on Redis does not use
#: (none: what they read of ``server.router`` is read from the cluster).
_LOCAL_ONLY: set[str] = set()

for _module in (test_server, test_room_secrets, test_call_spam, test_client):
    for _name in dir(_module):
        if _name.startswith("test_") and _name not in _LOCAL_ONLY:
            globals()[_name] = getattr(_module, _name)

#: test_client's fixture, which its tests above need.
clients = test_client.clients


class _ClusterView:
    """``server.router`` for a server on Redis: the tests' look-ups read the cluster.

    Anything else (the server's own ``is_connected`` check on new ids, the
    settings) goes to the server's unused router.
    """

    def __init__(self, router: RoomRouter, backplane: Backplane, url: str) -> None:
        self._router = router
        self._backplane = backplane
        self._redis: Any = redis.Redis.from_url(url, decode_responses=True)
        self._chain: asyncio.Task[None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router, name)

    def _key(self, *parts: str) -> str:
        return ":".join((self._backplane.namespace, *parts))

    def _room(self, room: str) -> dict[str, Any] | None:
        raw = self._redis.get(self._key("room", room))
        return None if raw is None else cast(dict[str, Any], json.loads(raw))

    def room_of(self, connection_id: str) -> str | None:
        return cast(str | None, self._redis.hget(self._key("roomof"), connection_id))

    def members(self, room: str) -> tuple[str, ...]:
        stored = self._room(room)
        return () if stored is None else tuple(m[0] for m in stored["m"])

    def is_keyed(self, room: str) -> bool:
        stored = self._room(room)
        return stored is not None and stored["k"] is not None

    @property
    def room_count(self) -> int:
        return int(self._redis.scard(self._key("rooms")))

    # A test's own connections, straight on the backplane, one after the other.

    def _later(self, step: Coroutine[Any, Any, object]) -> None:
        previous = self._chain

        async def run() -> None:
            if previous is not None:
                await previous
            await step

        self._chain = asyncio.ensure_future(run())

    def connect(self, connection_id: str) -> None:
        self._later(self._backplane.connect(connection_id))

    def handle(self, connection_id: str, request: Request) -> list[Deliver]:
        self._later(self._backplane.handle(connection_id, request))
        return []

    def disconnect(self, connection_id: str) -> list[Deliver]:
        self._later(self._backplane.disconnect(connection_id))
        return []

    async def close(self) -> None:
        if self._chain is not None:
            await self._chain
        self._redis.close()


class _TwoNodes:
    """Two servers on one Redis standing in for one server: its clients spread over both.

    Every ``url``/``apigw_url`` asked for names the other node than the one
    before, so a test's clients land on both nodes in turn, and whatever
    passes between them passes through Redis. Everything else a test reads
    is the first node's (its port, metrics, HTTP routes), except what
    belongs to both: the connection ids, the peers, and ``stop``.
    """

    def __init__(self, first: SignalingServer, second: SignalingServer) -> None:
        self.nodes = (first, second)
        self._turn = itertools.cycle(self.nodes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.nodes[0], name)

    @property
    def url(self) -> str:
        return next(self._turn).url

    @property
    def apigw_url(self) -> str:
        return next(self._turn).apigw_url

    @property
    def connection_ids(self) -> frozenset[str]:
        return self.nodes[0].connection_ids | self.nodes[1].connection_ids

    @property
    def _peers(self) -> ChainMap[str, Any]:
        return ChainMap(self.nodes[0]._peers, self.nodes[1]._peers)

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes))


#: Tests of what one process owns, run on one node only, and why.
_ONE_NODE_ONLY: dict[str, str] = {
    # Prometheus scrapes each process: its counters are its own clients'.
    "test_metrics_move": "each process counts its own metrics",
    "test_unauthorized_joins_are_counted": "each process counts its own metrics",
    # docs/deploy.md: an address may hold the cap on each process.
    "test_per_address_cap_answers_429": "the per-address cap is per process",
    "test_refused_handshake_and_non_callapp_endpoint": "the per-address cap is per process",
    # The clients come back to the port they left; on a cluster they come back
    # through another process (tests/e2e/test_behind_nginx.py).
    "test_reconnects_and_rejoins_after_a_server_restart": "a restart on one port",
    "test_a_rejoin_asks_for_the_rooms_capacity": "a restart on one port",
}


@pytest.fixture(params=["one node", "two nodes"])
async def make_server(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[ServerFactory]:
    """Start servers sharing the test's Redis; stop them all after the test.

    With ``two nodes`` each server a test asks for is a pair of them, its
    clients spread over both (:class:`_TwoNodes`).
    """
    two_nodes = request.param == "two nodes"
    if two_nodes and request.function.__name__ in _ONE_NODE_ONLY:
        pytest.skip(_ONE_NODE_ONLY[request.function.__name__])
    servers: list[SignalingServer] = []
    views: list[_ClusterView] = []

    async def node(options: dict[str, Any]) -> SignalingServer:
        server = SignalingServer(redis=redis_server.url, **options)
        assert server.backplane is not None
        view = _ClusterView(server.router, server.backplane, redis_server.url)
        server.router = cast(RoomRouter, view)
        await server.start()
        servers.append(server)
        views.append(view)
        return server

    async def factory(**options: Any) -> SignalingServer:
        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
        first = await node(options)
        if not two_nodes:
            return first
        # A port a test names is the first node's: the second takes any.
        second = await node({**options, "port": 0})
        return cast(SignalingServer, _TwoNodes(first, second))

    yield factory
    for server in servers:
        await server.stop()
    for view in views:
        await view.close()


# -- what only a server on Redis does -----------------------------------------

#: Redis restarted empty: every node writes its rooms back within this.
_SETTLE: dict[str, Any] = {"settle": 0.2}


async def _until_not_ready(server: SignalingServer) -> None:
    assert server.backplane is not None
    async with asyncio.timeout(TIMEOUT):
        while server.backplane.ready:  # noqa: ASYNC110 (polling the backplane's state)
            await asyncio.sleep(0.01)


async def test_an_apigw_message_held_through_an_outage_is_answered_once(
    make_server: ServerFactory, redis_server: RedisServer
) -> None:
    """Sent while Redis is away, an /apigw message gets its one answer once it is
    relayed: ``unknown-peer`` for an id no server holds, not a plain answer
    at once and the error later (two answers to one message)."""
    server = await make_server(redis_options=_SETTLE)
    g, g_id = await apigw(server)
    b, b_id = await native(server)
    redis_server.stop()
    await _until_not_ready(server)
    await send_json(g, {"connectionId": "nobody-has-this-id", "message": 1})
    await send_json(g, {"connectionId": b_id, "message": 2})
    await asyncio.sleep(0.2)
    await asyncio.to_thread(redis_server.start)
    assert await recv_json(g) == {"connectionId": g_id, "error": "unknown-peer"}
    assert await recv_json(b) == {"type": "message", "from": g_id, "data": 2}
    assert await recv_json(g) == {"connectionId": g_id}
    # Nothing more: each message was answered once.
    await send_json(g, {"connectionId": b_id, "message": 3})
    assert await recv_json(b) == {"type": "message", "from": g_id, "data": 3}
    assert await recv_json(g) == {"connectionId": g_id}


async def test_a_held_apigw_message_does_not_hold_up_stop(
    make_server: ServerFactory, redis_server: RedisServer
) -> None:
    server = await make_server()
    g, _ = await apigw(server)
    redis_server.stop()
    await _until_not_ready(server)
    await send_json(g, {"connectionId": "nobody-has-this-id", "message": 1})
    await asyncio.sleep(0.1)
    async with asyncio.timeout(TIMEOUT):
        await server.stop()
    await asyncio.to_thread(redis_server.start)  # for the fixture's own stop


async def test_a_held_apigw_sender_that_closes_is_forgotten(
    make_server: ServerFactory, redis_server: RedisServer
) -> None:
    server = await make_server(redis_options=_SETTLE)
    b, b_id = await native(server)
    g = await open_ws(server.apigw_url)
    redis_server.stop()
    await _until_not_ready(server)
    await send_json(g, {"connectionId": b_id, "message": "bye"})
    await asyncio.sleep(0.1)
    await g.close()
    await asyncio.to_thread(redis_server.start)
    # The relay was accepted before g left: it still arrives.
    message = await recv_json(b)
    assert message["type"] == "message"
    assert message["data"] == "bye"
    assert server.backplane is not None
    async with asyncio.timeout(TIMEOUT):
        while server.backplane.connection_count != 1:  # noqa: ASYNC110 (as above)
            await asyncio.sleep(0.01)
