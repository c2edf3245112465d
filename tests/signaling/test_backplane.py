"""The Redis backplane: several nodes (here, in one process) sharing rooms over a real Redis.

Every test starts its own ``redis-server`` (``redis_fixture``) and two or
three :class:`Backplane` nodes on it, each with an inbox of what reached its
connections, as the server's ``_deliver`` would see it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from callapp.signaling.backplane import Backplane, BackplaneUnavailable
from callapp.signaling.messages import (
    Created,
    Error,
    ErrorCode,
    Full,
    Join,
    Joined,
    Leave,
    PeerJoined,
    PeerLeft,
    Ready,
    Relayed,
    Send,
    ServerMessage,
)
from callapp.signaling.rooms import Deliver
from tests.signaling.redis_fixture import CutLink, RedisServer, redis_server

__all__ = ["redis_server"]

ROOT = Path(__file__).resolve().parents[2]

#: Fast liveness, for the tests of dead nodes: one is noticed within about a
#: second. The others keep the defaults, so that a loaded machine's stalls
#: never pass for a death.
FAST: dict[str, Any] = {"heartbeat_interval": 0.2, "node_timeout": 1.0}

_ids = itertools.count()


class Node:
    """One backplane node and what reached each of its connections, in order."""

    def __init__(self, url: str, name: str, **options: Any) -> None:
        self.name = name
        self.got: dict[str, list[ServerMessage]] = {}
        self.lost: list[str] = []
        self.bp = Backplane(url, deliver=self._on_deliver, lost=self.lost.append, **options)

    def _on_deliver(self, to: str, message: ServerMessage) -> None:
        self.got.setdefault(to, []).append(message)

    def take(self, deliveries: list[Deliver]) -> None:
        """What the server would do with handle()'s answer: deliver it here."""
        for d in deliveries:
            assert self.bp.is_local(d.to), f"{d} is not for {self.name}"
            self._on_deliver(d.to, d.message)

    async def connect(self) -> str:
        cid = f"{self.name}-{next(_ids)}"
        await self.bp.connect(cid)
        self.got[cid] = []
        return cid

    async def do(self, cid: str, request: Join | Leave | Send) -> list[ServerMessage]:
        """Handle ``request``; what it answered locally (also recorded)."""
        deliveries = await self.bp.handle(cid, request)
        self.take(deliveries)
        return [d.message for d in deliveries if d.to == cid]

    async def bye(self, cid: str) -> None:
        self.take(await self.bp.disconnect(cid))


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``condition()`` holds (fail after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[Callable[..., Any]]:
    """Start nodes on the test's Redis; stop them after."""
    started: list[Node] = []

    async def factory(name: str, url: str | None = None, **options: Any) -> Node:
        node = Node(url or redis_server.url, name, **options)
        await node.bp.start()
        started.append(node)
        return node

    yield factory
    for node in started:
        if node.bp._running:
            await node.bp.stop()


async def test_two_nodes_share_one_room(nodes: Any) -> None:
    n1, n2 = await nodes("n1"), await nodes("n2")
    a, b = await n1.connect(), await n2.connect()
    assert await n1.do(a, Join("r")) == [Created("r", a, 2)]
    assert await n2.do(b, Join("r")) == [Joined("r", b, (a, b), 2), Ready("r", (a, b))]
    await until(lambda: len(n1.got[a]) == 3)
    assert n1.got[a] == [Created("r", a, 2), PeerJoined("r", b), Ready("r", (a, b))]
    # A third, on either node, finds the room full.
    c = await n1.connect()
    assert await n1.do(c, Join("r")) == [Full("r")]
    # Rejoining one's room answers joined with the peers, as in one process.
    assert await n2.do(b, Join("r")) == [Joined("r", b, (a, b), 2)]
    assert n1.bp.room_of(a) == "r"
    assert await n1.bp.locate(b) == (True, "r")


async def test_room_relay_leave_and_disconnect_cross_nodes(nodes: Any) -> None:
    n1, n2 = await nodes("n1"), await nodes("n2")
    a, b, c = await n1.connect(), await n2.connect(), await n2.connect()
    await n1.do(a, Join("g", capacity=3))
    await n2.do(b, Join("g"))
    await n2.do(c, Join("g"))
    assert await n2.do(b, Send({"hi": [1, 2]})) == []
    await until(lambda: Relayed(b, {"hi": [1, 2]}) in n1.got[a])
    assert Relayed(b, {"hi": [1, 2]}) in n2.got[c]
    assert Relayed(b, {"hi": [1, 2]}) not in n2.got[b]  # no echo
    assert await n2.do(b, Leave()) == []
    await until(lambda: PeerLeft("g", b) in n1.got[a])
    assert PeerLeft("g", b) in n2.got[c]
    await n1.bye(a)
    await until(lambda: PeerLeft("g", a) in n2.got[c])
    # b left: outside a room, a message to the room is refused.
    [error] = await n2.do(b, Send("x", id=7))
    assert isinstance(error, Error)
    assert (error.code, error.ref) == (ErrorCode.NOT_IN_ROOM, 7)
    await asyncio.sleep(0.2)
    assert n1.got[a].count(PeerLeft("g", b)) == 1
    assert n2.got[c].count(PeerLeft("g", a)) == 1


async def test_a_message_by_id_reaches_the_node_that_holds_it(nodes: Any) -> None:
    n1, n2 = await nodes("n1"), await nodes("n2")
    a, b = await n1.connect(), await n2.connect()
    # Neither is in a room: an id is enough.
    assert await n1.do(a, Send({"type": "SDP"}, to=b)) == []
    await until(lambda: n2.got[b] == [Relayed(a, {"type": "SDP"})])
    # from is stamped by the sender's node, never taken from the client.
    assert n2.got[b][0].sender == a  # type: ignore[union-attr]
    [error] = await n1.do(a, Send(1, to="nobody-has-this", id="q"))
    assert isinstance(error, Error)
    assert (error.code, error.ref) == (ErrorCode.UNKNOWN_PEER, "q")
    # Once b is gone no node has it.
    await n2.bye(b)
    [error] = await n1.do(a, Send(1, to=b))
    assert isinstance(error, Error)
    assert error.code == ErrorCode.UNKNOWN_PEER
    # One's own id is a live connection too.
    assert await n1.do(a, Send("me", to=a)) == [Relayed(a, "me")]


async def test_many_joins_through_both_nodes_never_overfill_a_room(nodes: Any) -> None:
    n1, n2 = await nodes("n1"), await nodes("n2")
    for capacity in (2, 4):
        joiners = [(node, await node.connect()) for node in (n1, n2) for _ in range(15)]
        answers = await asyncio.gather(
            *(node.do(cid, Join(f"race{capacity}", capacity=capacity)) for node, cid in joiners)
        )
        firsts = [answer[0] for answer in answers]
        created = [m for m in firsts if isinstance(m, Created)]
        joined = [m for m in firsts if isinstance(m, Joined)]
        full = [m for m in firsts if isinstance(m, Full)]
        assert len(created) == 1
        assert len(joined) == capacity - 1
        assert len(full) == 30 - capacity
        # The last one in saw every member, in join order, the creator first.
        last = max(joined, key=lambda m: len(m.peers))
        assert len(last.peers) == capacity
        assert last.peers[0] == created[0].connection_id
        # Everyone in the room got ready exactly once.
        members = set(last.peers)
        await until(
            lambda members=members, joiners=joiners: all(
                sum(isinstance(m, Ready) for m in node.got[cid]) == 1
                for node, cid in joiners
                if cid in members
            )
        )


async def test_max_rooms_counts_the_rooms_of_every_node(nodes: Any) -> None:
    n1, n2 = await nodes("n1", max_rooms=3), await nodes("n2", max_rooms=3)
    joiners = [(node, await node.connect()) for node in (n1, n2) for _ in range(5)]
    answers = await asyncio.gather(
        *(node.do(cid, Join(f"room-{i}")) for i, (node, cid) in enumerate(joiners))
    )
    created = [a for [a] in answers if isinstance(a, Created)]
    busy = [a for [a] in answers if isinstance(a, Error) and a.code == ErrorCode.BUSY]
    assert (len(created), len(busy)) == (3, 7)
    # A room that empties frees its place.
    node, cid = next((n, c) for n, c in joiners if n.got[c][0] in created)
    await node.do(cid, Leave())
    node, cid = next((n, c) for n, c in joiners if n.got[c][0] in busy)
    assert await node.do(cid, Join("late")) == [Created("late", cid, 2)]


async def test_per_sender_order_across_nodes_over_thousands_of_messages(nodes: Any) -> None:
    n1, n2 = await nodes("n1"), await nodes("n2")
    a, b, c = await n1.connect(), await n2.connect(), await n1.connect()
    await n1.do(a, Join("o", capacity=3))
    await n2.do(b, Join("o"))
    await n1.do(c, Join("o"))
    count = 2000

    async def talk(node: Node, sender: str, to: str | None) -> None:
        for i in range(count):
            await node.do(sender, Send({"from": sender, "n": i}, to=to))

    # a by id to b, c to the room (b on the other node, a on its own), at once.
    await asyncio.gather(talk(n1, a, b), talk(n1, c, None))
    await until(lambda: len(n2.got[b]) >= 2 * count + 2, within=20)

    def numbers(got: list[ServerMessage], sender: str) -> list[int]:
        return [m.data["n"] for m in got if isinstance(m, Relayed) and m.sender == sender]

    assert numbers(n2.got[b], a) == list(range(count))
    assert numbers(n2.got[b], c) == list(range(count))
    assert numbers(n1.got[a], c) == list(range(count))


async def test_relays_of_many_senders_share_round_trips_and_keep_each_senders_order(
    nodes: Any,
) -> None:
    n1, n2 = await nodes("n1"), await nodes("n2")
    senders = [await n1.connect() for _ in range(20)]
    receivers = [await n2.connect() for _ in range(20)]
    for i, (a, b) in enumerate(zip(senders, receivers, strict=True)):
        await n1.do(a, Join(f"p{i}"))
        await n2.do(b, Join(f"p{i}"))
    batches: list[int] = []
    batch = n1.bp._relay_batch

    async def counted(items: list[tuple[str, Send]]) -> Any:
        batches.append(len(items))
        return await batch(items)

    n1.bp._relay_batch = counted  # type: ignore[method-assign]
    count = 50

    async def talk(sender: str, to: str | None) -> None:
        for i in range(count):
            await n1.do(sender, Send({"n": i}, to=to))

    # Half to the room, half by id: both kinds share the batches.
    pairs = list(zip(senders, receivers, strict=True))
    await asyncio.gather(*(talk(a, b if i % 2 else None) for i, (a, b) in enumerate(pairs)))
    assert sum(batches) == 20 * count
    # Relays waiting while a batch is out go in the next one, not one by one.
    assert len(batches) <= 20 * count / 5, batches
    for a, b in zip(senders, receivers, strict=True):
        await until(lambda b=b: len(n2.got[b]) >= count + 2)
        assert [m.data["n"] for m in n2.got[b] if isinstance(m, Relayed)] == list(range(count))
        assert all(m.sender == a for m in n2.got[b] if isinstance(m, Relayed))


async def test_a_node_that_stops_its_heartbeat_leaves_its_rooms_once(
    nodes: Any, redis_server: RedisServer
) -> None:
    n1, n2, n3 = await nodes("n1", **FAST), await nodes("n2", **FAST), await nodes("n3", **FAST)
    a, b = await n1.connect(), await n2.connect()
    x, y = await n3.connect(), await n3.connect()
    await n1.do(a, Join("one"))
    await n3.do(x, Join("one"))
    await n2.do(b, Join("two"))
    await n3.do(y, Join("two"))
    await n3.bp.abandon()  # no goodbye: as kill -9 would leave it
    gone = time.monotonic()
    await until(lambda: PeerLeft("one", x) in n1.got[a] and PeerLeft("two", y) in n2.got[b])
    noticed = time.monotonic() - gone
    assert noticed < FAST["node_timeout"] + 4 * FAST["heartbeat_interval"] + 1.0
    # Both survivors looked; one claimed; nobody heard it twice.
    await asyncio.sleep(4 * FAST["heartbeat_interval"])
    assert n1.got[a].count(PeerLeft("one", x)) == 1
    assert n2.got[b].count(PeerLeft("two", y)) == 1
    # The dead node's ids are gone, and its places free.
    [error] = await n1.do(a, Send(1, to=x))
    assert isinstance(error, Error)
    assert error.code == ErrorCode.UNKNOWN_PEER
    z = await n2.connect()
    assert (await n2.do(z, Join("one")))[0] == Joined("one", z, (a, z), 2)
    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert await r.smembers("callapp:nodes") == {n1.bp.node_id, n2.bp.node_id}
        assert await r.hgetall("callapp:claims") == {}
        assert not await r.exists(f"callapp:inbox:{n3.bp.node_id}")
    finally:
        await r.aclose()


_KILLED_NODE = """
import asyncio, sys
from callapp.signaling.backplane import Backplane
from callapp.signaling.messages import Join

async def main():
    bp = Backplane(sys.argv[1], deliver=lambda to, m: None,
                   heartbeat_interval=0.2, node_timeout=1.0)
    await bp.start()
    await bp.connect("victim")
    await bp.handle("victim", Join("k"))
    print("joined", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_process_killed_with_sigkill_leaves_its_rooms(
    nodes: Any, redis_server: RedisServer
) -> None:
    # Two survivors compete for the dead node's claim; one wins.
    n1, _n2 = await nodes("n1", **FAST), await nodes("n2", **FAST)
    a = await n1.connect()
    await n1.do(a, Join("k"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLED_NODE,
        redis_server.url,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line.strip() == b"joined"
        await until(lambda: PeerJoined("k", "victim") in n1.got[a])
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 5)
        killed = time.monotonic()
        await until(lambda: PeerLeft("k", "victim") in n1.got[a])
        assert time.monotonic() - killed < 4.0
        await asyncio.sleep(1.0)
        assert n1.got[a].count(PeerLeft("k", "victim")) == 1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_redis_restarted_mid_relay_loses_no_message_nor_the_room(
    nodes: Any, redis_server: RedisServer
) -> None:
    n1, n2 = await nodes("n1", settle=1.0), await nodes("n2", settle=1.0)
    a, b = await n1.connect(), await n2.connect()
    await n1.do(a, Join("r"))
    await n2.do(b, Join("r"))
    sent = 0
    refused = 0
    unready: list[float] = []

    async def talk() -> None:
        nonlocal sent, refused
        for i in range(1500):
            answer = await n1.do(a, Send({"n": i}, to=b if i % 2 else None))
            if answer:
                refused += 1
            else:
                sent += 1
            if not n1.bp.ready:
                unready.append(time.monotonic())
            await asyncio.sleep(0.001)

    talker = asyncio.create_task(talk())
    await asyncio.sleep(0.4)
    redis_server.restart()  # SIGKILL, then an empty Redis on the same port
    restarted = time.monotonic()
    await until(lambda: not n1.bp.ready or not n2.bp.ready, within=5)
    noticed = time.monotonic() - restarted
    await until(lambda: n1.bp.ready and n2.bp.ready, within=15)
    recovered = time.monotonic() - restarted
    await talker

    def arrived() -> list[int]:
        return [m.data["n"] for m in n2.got[b] if isinstance(m, Relayed)]

    await until(lambda: len(set(arrived())) >= sent, within=15)
    got = arrived()
    print(
        f"sent {sent}, refused {refused}, arrived {len(got)} ({len(set(got))} distinct),"
        f" {len(unready)} sent while not ready; outage noticed after {noticed:.2f}s,"
        f" ready again after {recovered:.2f}s"
    )
    assert unready
    assert refused == 0
    # Every message, once, in order: writes the crash cut off (or that b's
    # node had not read yet) were sent again, and the copies dropped.
    assert got == list(range(1500))
    # The room outlived the restart: full, both members, in their join order.
    c = await n2.connect()
    assert await n2.do(c, Join("r")) == [Full("r")]
    await n2.do(b, Leave())
    await until(lambda: PeerLeft("r", b) in n1.got[a])
    assert await n2.do(c, Join("r")) == [Joined("r", c, (a, c), 2), Ready("r", (a, c))]


async def test_while_redis_is_away_joins_are_busy_and_relays_wait_in_a_bounded_queue(
    nodes: Any, redis_server: RedisServer
) -> None:
    n1, n2 = await nodes("n1", max_pending=5), await nodes("n2")
    a, b = await n1.connect(), await n2.connect()
    redis_server.stop()
    await n1.do(a, Send("probe", to=b))  # finds Redis gone
    await until(lambda: not n1.bp.ready)
    [busy] = await n1.do(a, Join("r", id=1))
    assert isinstance(busy, Error)
    assert (busy.code, busy.ref) == (ErrorCode.BUSY, 1)
    answers = [await n1.do(a, Send(i, to=b, id=i)) for i in range(6)]
    assert answers[:4] == [[]] * 4
    [overflow] = answers[5]
    assert isinstance(overflow, Error)
    assert (overflow.code, overflow.ref) == (ErrorCode.BUSY, 5)
    redis_server.start()  # empty: both nodes write themselves back
    await until(lambda: n1.bp.ready and n2.bp.ready, within=15)
    await until(lambda: len(n2.got[b]) >= 5)
    assert [m.data for m in n2.got[b] if isinstance(m, Relayed)] == ["probe", 0, 1, 2, 3]


async def test_a_node_cut_off_briefly_carries_on_where_it_was(
    nodes: Any, redis_server: RedisServer
) -> None:
    link = CutLink(redis_server.port)
    await link.start()
    try:
        n1, n2 = await nodes("n1", url=link.url), await nodes("n2")
        a, b = await n1.connect(), await n2.connect()
        await n1.do(a, Join("p"))
        await n2.do(b, Join("p"))
        link.cut()
        await n1.do(a, Send("during", to=b))  # queued (or notices the cut)
        await n2.do(b, Send("to a meanwhile", to=a))  # waits in a's inbox
        await until(lambda: not n1.bp.ready)
        await n1.do(a, Send("still during", to=b))
        await asyncio.sleep(0.3)  # well under node_timeout
        link.restore()
        await until(lambda: n1.bp.ready, within=10)
        await until(lambda: Relayed(b, "to a meanwhile") in n1.got[a])
        await until(lambda: len([m for m in n2.got[b] if isinstance(m, Relayed)]) >= 2)
        assert [m.data for m in n2.got[b] if isinstance(m, Relayed)] == ["during", "still during"]
        assert PeerLeft("p", a) not in n2.got[b]
        assert n1.lost == []
    finally:
        await link.stop()


async def test_a_node_cut_off_too_long_is_given_up_and_starts_afresh(
    nodes: Any, redis_server: RedisServer
) -> None:
    link = CutLink(redis_server.port)
    await link.start()
    try:
        n1, n2 = await nodes("n1", url=link.url, **FAST), await nodes("n2", **FAST)
        a, b = await n1.connect(), await n2.connect()
        await n1.do(a, Join("p"))
        await n2.do(b, Join("p"))
        old_id = n1.bp.node_id
        link.cut()
        await until(lambda: PeerLeft("p", a) in n2.got[b])  # n2 took n1 for dead
        link.restore()
        await until(lambda: n1.bp.ready and n1.lost == [a], within=10)
        assert n1.bp.node_id != old_id
        # The server closes a (its client reconnects); its calls find nothing left.
        assert await n1.bp.handle(a, Send("late")) == []
        assert await n1.bp.disconnect(a) == []
        # The node works on under its new id.
        c = await n1.connect()
        assert await n1.do(c, Join("p")) == [Joined("p", c, (b, c), 2), Ready("p", (b, c))]
        await asyncio.sleep(0.5)
        assert n2.got[b].count(PeerLeft("p", a)) == 1
    finally:
        await link.stop()


async def test_start_fails_clearly_without_redis(tmp_path: Path) -> None:
    from tests.signaling.redis_fixture import free_port

    bp = Backplane(f"redis://127.0.0.1:{free_port()}/0", deliver=lambda to, m: None)
    with pytest.raises(BackplaneUnavailable, match="cannot reach Redis"):
        await bp.start()


async def test_a_password_in_the_url_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    from tests.signaling.redis_fixture import free_port

    port = free_port()
    bp = Backplane(f"redis://ops:s3cret-pw@127.0.0.1:{port}/0", deliver=lambda to, m: None)
    with caplog.at_level(logging.DEBUG), pytest.raises(BackplaneUnavailable) as raised:
        await bp.start()
    said = str(raised.value)
    assert said == (
        f"cannot reach Redis at redis://ops:***@127.0.0.1:{port}/0: nothing answers there;"
        " is redis-server running, and is the URL right?"
    )
    assert "s3cret-pw" not in caplog.text


async def test_stored_rooms_are_plain_json_in_join_order(
    nodes: Any, redis_server: RedisServer
) -> None:
    n1, n2 = await nodes("n1"), await nodes("n2")
    a, b = await n1.connect(), await n2.connect()
    await n2.do(b, Join("j"))
    await n1.do(a, Join("j"))
    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        stored = json.loads(await r.get("callapp:room:j"))
        assert [m[:2] for m in stored["m"]] == [[b, n2.bp.node_id], [a, n1.bp.node_id]]
        assert stored["c"] == 2
        assert await r.hget("callapp:conns", a) == n1.bp.node_id
        assert await r.hget("callapp:roomof", b) == "j"
        await n1.bye(a)
        await n2.bye(b)
        assert not await r.exists("callapp:room:j")
        assert await r.scard("callapp:rooms") == 0
        assert await r.hlen("callapp:conns") == 0
    finally:
        await r.aclose()


async def test_two_nodes_answer_every_event_as_one_router_would(nodes: Any) -> None:
    """A seeded random run of events over two nodes, against one RoomRouter."""
    import random

    from callapp.signaling.rooms import RoomRouter

    rng = random.Random(16)
    n1, n2 = await nodes("n1", max_room_capacity=4), await nodes("n2", max_room_capacity=4)
    reference = RoomRouter(max_room_capacity=4)
    expected: dict[str, list[ServerMessage]] = {}
    where: dict[str, Node] = {}
    key = "s" * 42 + "A"

    def received() -> dict[str, list[ServerMessage]]:
        return {cid: node.got[cid] for cid, node in where.items()}

    for step in range(600):
        live = sorted(where)
        kind = rng.choice(["connect"] * 2 + ["join"] * 4 + ["leave", "bye"] + ["send"] * 4)
        if kind == "connect" or not live:
            node = rng.choice([n1, n2])
            cid = await node.connect()
            reference.connect(cid)
            where[cid] = node
            expected[cid] = []
            continue
        cid = rng.choice(live)
        node = where[cid]
        request: Join | Leave | Send | None
        if kind == "join":
            request = Join(
                rng.choice(["a", "b", "c"]),
                capacity=rng.choice([None, 2, 3, 4]),
                key=key if rng.random() < 0.2 else None,
                id=step,
            )
        elif kind == "leave":
            request = Leave()
        elif kind == "send":
            to = rng.choice([None, None, rng.choice(live), "nobody"])
            request = Send({"step": step}, to=to, id=step)
        else:
            request = None
        if request is None:
            deliveries = reference.disconnect(cid)
            await node.bye(cid)
            del where[cid]
        else:
            deliveries = reference.handle(cid, request)
            await node.do(cid, request)
        for d in deliveries:
            expected[d.to].append(d.message)
        want = {c: expected[c] for c in where}
        await until(lambda want=want: received() == want, within=5)
    # The run went through every kind of answer, across nodes.
    kinds = {type(m).__name__ for got in expected.values() for m in got}
    assert kinds >= {"Created", "Joined", "PeerJoined", "Ready", "Full", "PeerLeft", "Relayed"}
    codes = {m.code for got in expected.values() for m in got if isinstance(m, Error)}
    assert codes >= {ErrorCode.UNKNOWN_PEER, ErrorCode.NOT_IN_ROOM, ErrorCode.UNAUTHORIZED}


async def test_a_node_that_stops_cleanly_tells_the_rooms_at_once(nodes: Any) -> None:
    n1, n2 = await nodes("n1"), await nodes("n2")
    a, b = await n1.connect(), await n2.connect()
    await n1.do(a, Join("s"))
    await n2.do(b, Join("s"))
    await n2.bp.stop()
    await until(lambda: PeerLeft("s", b) in n1.got[a], within=2)
    [error] = await n1.do(a, Send(1, to=b))
    assert isinstance(error, Error)
    assert error.code == ErrorCode.UNKNOWN_PEER
    assert n1.bp.room_count == 1
    assert n1.bp.connection_count == 1


def cut_after_exec(monkeypatch: pytest.MonkeyPatch, node: Node) -> None:
    """The next room event of ``node`` is applied by Redis, but its reply is lost."""
    from redis.asyncio.client import Pipeline
    from redis.exceptions import ConnectionError as RedisConnectionError

    real_execute = Pipeline.execute
    armed = True

    async def execute(self: Pipeline, raise_on_error: bool = True) -> Any:
        nonlocal armed
        watched = self.watching  # a room event (reset by execute)
        result = await real_execute(self, raise_on_error)
        if armed and watched and self.connection_pool is node.bp._redis.connection_pool:
            armed = False
            raise RedisConnectionError("cut after EXEC")
        return result

    monkeypatch.setattr(Pipeline, "execute", execute)


async def test_a_join_whose_answer_was_lost_is_taken_back(
    nodes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXEC applied, but the reply lost with the connection: busy, then peer-left."""
    n1, n2 = await nodes("n1"), await nodes("n2")
    a, b = await n1.connect(), await n2.connect()
    await n1.do(a, Join("u"))
    cut_after_exec(monkeypatch, n2)
    [answer] = await n2.do(b, Join("u", id="j"))
    assert isinstance(answer, Error)
    assert (answer.code, answer.ref) == (ErrorCode.BUSY, "j")
    assert n2.bp.room_of(b) is None
    # The room heard the join that did happen, then b leave again.
    await until(lambda: PeerLeft("u", b) in n1.got[a])
    assert n1.got[a] == [
        Created("u", a, 2),
        PeerJoined("u", b),
        Ready("u", (a, b)),
        PeerLeft("u", b),
    ]
    await until(lambda: n2.bp.ready)
    assert await n2.do(b, Join("u")) == [Joined("u", b, (a, b), 2), Ready("u", (a, b))]


async def test_a_move_whose_answer_was_lost_is_undone_in_both_rooms(
    nodes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    n1, n2 = await nodes("n1"), await nodes("n2")
    p, o, q = await n1.connect(), await n1.connect(), await n2.connect()
    await n1.do(p, Join("A"))
    await n2.do(q, Join("A"))
    await n1.do(o, Join("B"))
    await until(lambda: Ready("A", (p, q)) in n1.got[p])
    cut_after_exec(monkeypatch, n2)
    [answer] = await n2.do(q, Join("B"))
    assert isinstance(answer, Error)
    assert answer.code == ErrorCode.BUSY
    # q was told it stayed in A: B hears it leave, A hears it come back.
    await until(lambda: PeerLeft("B", q) in n1.got[o] and Ready("A", (p, q)) in n1.got[p][3:])
    assert n1.got[p][3:] == [PeerLeft("A", q), PeerJoined("A", q), Ready("A", (p, q))]
    assert n1.got[o][1:] == [PeerJoined("B", q), Ready("B", (o, q)), PeerLeft("B", q)]
    assert n2.bp.room_of(q) == "A"
    # q itself heard nothing but busy after its first ready.
    assert n2.got[q][-2:] == [Ready("A", (p, q)), answer]
    assert n2.lost == []


async def test_what_a_node_had_not_read_when_redis_lost_its_data_is_sent_again(
    nodes: Any, redis_server: RedisServer
) -> None:
    n1, n2 = await nodes("n1", settle=0.5), await nodes("n2", settle=0.5)
    a, b = await n1.connect(), await n2.connect()
    # b's node stops reading its inbox (a stalled loop, say)...
    gate = asyncio.Event()
    read = n2.bp._reader.xread

    async def stalled(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await read(*args, **kwargs)

    await n1.do(a, Send(0, to=b))
    await until(lambda: len(n2.got[b]) == 1)  # the reader is back in xread, stalled
    n2.bp._reader.xread = stalled
    await asyncio.sleep(0.1)
    for i in range(1, 101):
        assert await n1.do(a, Send(i, to=b)) == []
    # ...and Redis dies with the 100 entries still unread.
    redis_server.restart()
    gate.set()
    await until(lambda: n1.bp.ready and n2.bp.ready)
    await until(lambda: len(n2.got[b]) >= 101)
    await asyncio.sleep(0.3)
    assert [m.data for m in n2.got[b] if isinstance(m, Relayed)] == list(range(101))
