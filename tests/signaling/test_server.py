"""SignalingServer against real websockets clients on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from callapp.signaling.limits import AbuseCounter, TokenBucket
from callapp.signaling.messages import ErrorCode
from callapp.signaling.server import SERVER_NAME, SignalingServer
from tests.signaling.conftest import (
    TIMEOUT,
    ServerFactory,
    apigw,
    http_get,
    joined,
    native,
    open_ws,
    recv_json,
    send_json,
)

# -- limits (sans-I/O, fake clock) -------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_refills_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.4  # 0.8 token: still not one
    assert not bucket.allow()
    clock.now += 0.1  # 1.0 token
    assert bucket.allow()
    assert not bucket.allow()
    clock.now += 100  # refills only up to the burst
    assert bucket.tokens == pytest.approx(3.0)
    clock.now -= 50  # a clock going backwards changes nothing
    assert bucket.tokens == pytest.approx(3.0)


def test_token_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=-1, burst=1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(rate=1, burst=0)


def test_abuse_counter_closes_past_threshold_and_forgives_over_time() -> None:
    clock = FakeClock()
    abuse = AbuseCounter(threshold=3, decay=1.0, clock=clock)
    # Honest-client errors never count.
    assert not any(abuse.record(ErrorCode.UNKNOWN_PEER) for _ in range(100))
    assert not any(abuse.record(ErrorCode.NOT_IN_ROOM) for _ in range(100))
    assert [abuse.record(ErrorCode.BAD_JSON) for _ in range(4)] == [False, False, False, True]
    clock.now += 1.5  # 4 - 1.5 = 2.5 strikes
    assert abuse.strikes == pytest.approx(2.5)
    assert abuse.record("bad-message")  # 3.5 > 3; plain strings count too


def test_abuse_counter_threshold_arithmetic() -> None:
    clock = FakeClock()
    abuse = AbuseCounter(threshold=3, decay=1.0, clock=clock)
    for _ in range(3):
        assert not abuse.record(ErrorCode.TOO_LARGE)
    assert abuse.record(ErrorCode.RATE_LIMITED)  # 4 > 3
    clock.now += 2.0  # 2 strikes left
    assert not abuse.record(ErrorCode.BAD_MESSAGE)  # 3, not above 3
    assert abuse.record(ErrorCode.BAD_MESSAGE)  # 4


# -- lifecycle ---------------------------------------------------------------


async def test_port_and_urls_after_start() -> None:
    server = SignalingServer("127.0.0.1", 0)
    with pytest.raises(RuntimeError):
        _ = server.port
    async with server:
        assert server.port > 0
        assert server.url == f"ws://127.0.0.1:{server.port}/ws"
        assert server.apigw_url == f"ws://127.0.0.1:{server.port}/apigw"
        assert server.http_url == f"http://127.0.0.1:{server.port}/"
        status, _, _ = await http_get(server.port, "/healthz")
        assert status == 200
    with pytest.raises(RuntimeError):
        await server.start()


async def test_stop_closes_clients_with_1001(server: SignalingServer) -> None:
    a, _ = await native(server)
    b, _ = await apigw(server)
    await server.stop()
    for ws in (a, b):
        with pytest.raises(ConnectionClosed):
            await recv_json(ws)
        assert ws.close_code == 1001
        assert ws.close_reason == "server shutting down"
    await server.stop()  # idempotent


# -- welcome, rooms, relay ----------------------------------------------------


async def test_welcome(make_server: ServerFactory) -> None:
    ice = [{"urls": "stun:stun.example.org:3478"}, {"urls": ["turn:t"], "username": "u"}]
    server = await make_server(ice_servers=ice)
    ws = await open_ws(server.url)
    welcome = await recv_json(ws)
    assert welcome == {
        "type": "welcome",
        "connectionId": welcome["connectionId"],
        "protocol": 1,
        "server": SERVER_NAME,
        "iceServers": ice,
    }
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,}", welcome["connectionId"])
    assert SERVER_NAME.startswith("callapp/")
    _other, other_id = await native(server)
    assert other_id != welcome["connectionId"]


async def test_room_flow_and_relay_both_ways(server: SignalingServer) -> None:
    a, a_id, created = await joined(server, "room-1")
    assert created == {"type": "created", "room": "room-1", "connectionId": a_id, "capacity": 2}
    b, b_id, reply = await joined(server, "room-1")
    assert reply == {
        "type": "joined",
        "room": "room-1",
        "connectionId": b_id,
        "peers": [a_id, b_id],
        "capacity": 2,
    }
    assert await recv_json(a) == {"type": "peer-joined", "room": "room-1", "connectionId": b_id}
    ready = {"type": "ready", "room": "room-1", "peers": [a_id, b_id]}
    assert await recv_json(a) == ready
    assert await recv_json(b) == ready

    # The server stamps "from", overwriting a forged one.
    offer = {"type": "SDP", "payload": {"type": "offer", "sdp": "v=0\r\n"}}
    await send_json(a, {"type": "message", "data": offer, "from": "forged"})
    assert await recv_json(b) == {"type": "message", "from": a_id, "data": offer}
    await send_json(b, {"type": "message", "to": a_id, "data": {"type": "BYE"}})
    assert await recv_json(a) == {"type": "message", "from": b_id, "data": {"type": "BYE"}}

    c, c_id = await native(server)
    await send_json(c, {"type": "join", "room": "room-1", "id": 7})
    assert await recv_json(c) == {"type": "full", "room": "room-1"}

    await send_json(b, {"type": "leave"})
    assert await recv_json(a) == {"type": "peer-left", "room": "room-1", "connectionId": b_id}
    await b.close()
    # A closed connection leaves its room too.
    await send_json(c, {"type": "join", "room": "room-1"})
    assert (await recv_json(c))["type"] == "joined"
    assert (await recv_json(a))["type"] == "peer-joined"
    await c.close()
    assert (await recv_json(a))["type"] == "ready"
    assert await recv_json(a) == {"type": "peer-left", "room": "room-1", "connectionId": c_id}


# -- room capacity chosen by the creator (callapp extension) --------------------


async def test_the_creator_chooses_the_capacity(server: SignalingServer) -> None:
    a, a_id = await native(server)
    await send_json(a, {"type": "join", "room": "trio", "capacity": 3})
    assert await recv_json(a) == {
        "type": "created",
        "room": "trio",
        "connectionId": a_id,
        "capacity": 3,
    }
    b, b_id = await native(server)
    # A later joiner's capacity is ignored.
    await send_json(b, {"type": "join", "room": "trio", "capacity": 2})
    assert await recv_json(b) == {
        "type": "joined",
        "room": "trio",
        "connectionId": b_id,
        "peers": [a_id, b_id],
        "capacity": 3,
    }
    assert await recv_json(a) == {"type": "peer-joined", "room": "trio", "connectionId": b_id}
    c, c_id, reply = await joined(server, "trio")
    assert (reply["peers"], reply["capacity"]) == ([a_id, b_id, c_id], 3)
    # Had a ready gone out at two members, a and b would read it first.
    ready = {"type": "ready", "room": "trio", "peers": [a_id, b_id, c_id]}
    assert await recv_json(a) == {"type": "peer-joined", "room": "trio", "connectionId": c_id}
    assert await recv_json(a) == ready
    assert await recv_json(b) == {"type": "peer-joined", "room": "trio", "connectionId": c_id}
    assert await recv_json(b) == ready
    assert await recv_json(c) == ready
    d, _ = await native(server)
    await send_json(d, {"type": "join", "room": "trio", "capacity": 4})
    assert await recv_json(d) == {"type": "full", "room": "trio"}


async def test_a_capacity_above_the_servers_maximum_is_refused(server: SignalingServer) -> None:
    a, a_id = await native(server)
    await send_json(a, {"type": "join", "room": "big", "capacity": 5, "id": "j1"})
    assert await recv_json(a) == {
        "type": "error",
        "code": "bad-message",
        "message": "this server allows rooms of 2 to 4 people",
        "ref": "j1",
    }
    assert server.router.room_of(a_id) is None
    assert server.router.room_count == 0
    # Nothing was joined: the room does not exist, and a is still usable.
    _b, b_id, reply = await joined(server, "big")
    assert reply == {"type": "created", "room": "big", "connectionId": b_id, "capacity": 2}
    await send_json(a, {"type": "join", "room": "own", "capacity": 4})
    assert (await recv_json(a))["capacity"] == 4


async def test_max_room_capacity_is_a_server_setting(make_server: ServerFactory) -> None:
    server = await make_server(max_room_capacity=6, room_capacity=3)
    assert server.router.max_room_capacity == 6
    ws, _, reply = await joined(server, "default")
    assert reply["capacity"] == 3
    await send_json(ws, {"type": "join", "room": "six", "capacity": 6})
    assert (await recv_json(ws))["capacity"] == 6
    await send_json(ws, {"type": "join", "room": "seven", "capacity": 7, "id": 1})
    reply = await recv_json(ws)
    assert (reply["code"], reply["message"]) == (
        "bad-message",
        "this server allows rooms of 2 to 6 people",
    )


@pytest.mark.parametrize("capacity", ["3", 3.0, True, 1, 9, [3]], ids=repr)
async def test_a_malformed_capacity_is_bad_message(
    server: SignalingServer, capacity: object
) -> None:
    ws, me = await native(server)
    await send_json(ws, {"type": "join", "room": "g", "capacity": capacity, "id": 2})
    reply = await recv_json(ws)
    assert (reply["type"], reply["code"], reply["ref"]) == ("error", "bad-message", 2)
    assert "2 to 8" in reply["message"]
    assert server.router.room_of(me) is None


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"room_capacity": 5}, "above max_room_capacity"),
        ({"max_room_capacity": 9}, "2 to 8"),
        ({"max_room_capacity": 1}, "2 to 8"),
        ({"room_capacity": 1}, "at least 2"),
    ],
)
def test_capacity_settings_are_checked_at_construction(
    options: dict[str, int], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        SignalingServer(**options)  # type: ignore[arg-type]


async def test_native_and_apigw_talk_both_ways(server: SignalingServer) -> None:
    n, n_id = await native(server)
    g, g_id = await apigw(server)
    assert g_id != n_id
    # /apigw -> native: delivered as a native relay, then the sender's answer.
    await send_json(g, {"connectionId": n_id, "message": {"type": "SDP", "payload": 1}})
    assert await recv_json(n) == {
        "type": "message",
        "from": g_id,
        "data": {"type": "SDP", "payload": 1},
    }
    assert await recv_json(g) == {"connectionId": g_id}
    # native -> /apigw: arrives in the API Gateway shape.
    await send_json(n, {"type": "message", "to": g_id, "data": ["ice", 2]})
    assert await recv_json(g) == {"message": ["ice", 2], "from": n_id}
    # /apigw to itself: the delivery goes out before the answer.
    await send_json(g, {"connectionId": g_id, "message": "me"})
    assert await recv_json(g) == {"message": "me", "from": g_id}
    assert await recv_json(g) == {"connectionId": g_id}
    # Any other JSON is a ping.
    await send_json(g, {"action": "sendmessage"})
    assert await recv_json(g) == {"connectionId": g_id}


async def test_apigw_errors(make_server: ServerFactory) -> None:
    server = await make_server(rate=0.001, burst=4, max_message_bytes=100)
    g, g_id = await apigw(server)  # 1 token used
    await send_json(g, {"connectionId": "nobody-has-this-id", "message": 1})
    assert await recv_json(g) == {"connectionId": g_id, "error": "unknown-peer"}
    await g.send("{not json")
    assert await recv_json(g) == {"connectionId": g_id, "error": "bad-json"}
    await g.send("x" * 101)
    assert await recv_json(g) == {"connectionId": g_id, "error": "too-large"}
    await g.send("")  # 4th token
    assert await recv_json(g) == {"connectionId": g_id}
    await g.send("")
    assert await recv_json(g) == {"connectionId": g_id, "error": "rate-limited"}


async def test_apigw_clients_get_no_room_events(server: SignalingServer) -> None:
    g, g_id = await apigw(server)
    a, a_id, _ = await joined(server, "r")
    await send_json(a, {"type": "message", "to": g_id, "data": "hi"})
    # Had the router sent room events to g, they would come first.
    assert await recv_json(g) == {"message": "hi", "from": a_id}


async def test_per_sender_order_is_preserved(make_server: ServerFactory) -> None:
    server = await make_server(burst=2000)
    a, a_id, _ = await joined(server, "order")
    b, b_id, _ = await joined(server, "order")
    g, g_id = await apigw(server)
    for i in range(500):
        await send_json(a, {"type": "message", "to": b_id, "data": i})
        await send_json(g, {"connectionId": b_id, "message": i})
    # peer-joined/ready for a, ready for b come first.
    got_a: list[int] = []
    got_g: list[int] = []
    while len(got_a) < 500 or len(got_g) < 500:
        message = await recv_json(b)
        if message["type"] != "message":
            continue
        (got_a if message["from"] == a_id else got_g).append(message["data"])
    assert got_a == list(range(500))
    assert got_g == list(range(500))
    # Read g's answers, or its paused reader would hold up the closing handshake.
    for _ in range(500):
        assert await recv_json(g) == {"connectionId": g_id}


# -- errors and limits --------------------------------------------------------


async def test_protocol_errors_carry_ref_and_keep_the_connection(
    server: SignalingServer,
) -> None:
    ws, _ = await native(server)

    async def error_for(frame: str | bytes) -> dict[str, object]:
        await ws.send(frame)
        reply = await recv_json(ws)
        assert reply["type"] == "error", reply
        assert isinstance(reply["message"], str)
        assert reply["message"]
        return dict(reply)

    assert (await error_for("{oops"))["code"] == "bad-json"
    assert "ref" not in await error_for("{oops")
    reply = await error_for(json.dumps({"type": "dance", "id": "r1"}))
    assert (reply["code"], reply["ref"]) == ("bad-message", "r1")
    reply = await error_for(json.dumps({"type": "message", "id": [1]}))  # no data
    assert (reply["code"], reply["ref"]) == ("bad-message", [1])
    assert (await error_for(b'{"type": "leave"}'))["code"] == "bad-message"  # binary
    assert (await error_for("[1, 2]"))["code"] == "bad-message"
    reply = await error_for(json.dumps({"type": "join", "room": "no spaces", "id": None}))
    assert (reply["code"], reply["ref"]) == ("bad-room", None)
    reply = await error_for(json.dumps({"type": "message", "to": "nobody", "data": 1, "id": 3}))
    assert (reply["code"], reply["ref"]) == ("unknown-peer", 3)
    reply = await error_for(json.dumps({"type": "message", "data": 1, "id": 4}))
    assert (reply["code"], reply["ref"]) == ("not-in-room", 4)
    # Still usable.
    await send_json(ws, {"type": "join", "room": "fine"})
    assert (await recv_json(ws))["type"] == "created"


def _padded(to: str, total: int) -> str:
    """A relay request to ``to`` of exactly ``total`` UTF-8 bytes."""
    empty = json.dumps({"type": "message", "to": to, "data": ""})
    # "é" is two bytes in UTF-8: the limit is counted in bytes, not characters.
    body = "é" * ((total - len(empty)) // 2) + "x" * ((total - len(empty)) % 2)
    frame = json.dumps({"type": "message", "to": to, "data": body}, ensure_ascii=False)
    assert len(frame.encode()) == total
    return frame


async def test_message_size_limit(server: SignalingServer) -> None:
    a, a_id = await native(server)
    b, b_id = await native(server)
    await a.send(_padded(b_id, 65_536))
    relayed = await recv_json(b)
    assert relayed["from"] == a_id
    assert len(relayed["data"]) > 30_000
    await a.send(_padded(b_id, 65_537))
    reply = await recv_json(a)
    assert reply["type"] == "error"
    assert reply["code"] == "too-large"
    # Still usable; b received nothing else.
    await send_json(a, {"type": "message", "to": b_id, "data": "after"})
    assert (await recv_json(b))["data"] == "after"
    # Far larger than the limit: cut off with 1009.
    await a.send("x" * (5 * 65_536))
    with pytest.raises(ConnectionClosed):
        await recv_json(a)
    assert a.close_code == 1009


async def test_rate_limit_allows_the_burst(make_server: ServerFactory) -> None:
    server = await make_server(rate=0.001, burst=5)
    ws, me = await native(server)
    for i in range(5):
        await send_json(ws, {"type": "message", "to": me, "data": i})
    await send_json(ws, {"type": "message", "to": me, "data": 5, "id": "six"})
    for i in range(5):
        assert await recv_json(ws) == {"type": "message", "from": me, "data": i}
    reply = await recv_json(ws)
    assert (reply["type"], reply["code"], reply["ref"]) == ("error", "rate-limited", "six")
    # Size is checked before rate, so an oversized message says too-large.
    await ws.send("x" * 70_000)
    assert (await recv_json(ws))["code"] == "too-large"


async def test_repeated_abuse_closes_with_1008(make_server: ServerFactory) -> None:
    server = await make_server(abuse_threshold=5)
    ws, _ = await native(server)
    codes = []

    async def abuse() -> None:
        for _ in range(100):
            await ws.send("not json")
            codes.append((await recv_json(ws))["code"])

    with pytest.raises(ConnectionClosed):
        await abuse()
    assert ws.close_code == 1008
    # The last error is flushed before the close.
    assert codes == ["bad-json"] * 6
    # Honest mistakes are not abuse.
    other, _ = await native(server)
    for _ in range(20):
        await send_json(other, {"type": "message", "to": "gone", "data": 1})
        assert (await recv_json(other))["code"] == "unknown-peer"


async def test_per_address_cap_answers_429(make_server: ServerFactory) -> None:
    server = await make_server(max_connections_per_address=2)
    a, _ = await native(server)
    _b, _ = await apigw(server)
    with pytest.raises(InvalidStatus) as refused:
        await open_ws(server.url)
    assert refused.value.response.status_code == 429
    # Plain HTTP is not capped.
    assert (await http_get(server.port, "/healthz"))[0] == 200
    await a.close()
    # The slot is released once the server sees the TCP connection go.
    async with asyncio.timeout(TIMEOUT):
        while True:
            try:
                _c, _ = await native(server)
                break
            except InvalidStatus:
                await asyncio.sleep(0.01)
    _, _, metrics = await http_get(server.port, "/metrics")
    assert 'callapp_signaling_connections_refused_total{reason="per-address"}' in metrics.decode()


async def test_keepalive_drops_a_silent_peer(make_server: ServerFactory) -> None:
    server = await make_server(ping_interval=0.1, ping_timeout=0.2, close_timeout=0.2)
    a, a_id, _ = await joined(server, "k")
    # The silent peer answers no pings: its client keepalive is off and it
    # stops reading, so the server's pings go unanswered.
    b, b_id, _ = await joined(server, "k")
    b.transport.pause_reading()
    assert (await recv_json(a))["type"] == "peer-joined"
    assert (await recv_json(a))["type"] == "ready"
    assert await recv_json(a) == {"type": "peer-left", "room": "k", "connectionId": b_id}
    assert b_id not in server.connection_ids
    assert a_id in server.connection_ids


async def test_a_receiver_that_does_not_read_is_closed(make_server: ServerFactory) -> None:
    server = await make_server(max_outbox=8, rate=1e6, burst=10**6, close_timeout=0.2)
    a, a_id = await native(server)
    b, b_id = await native(server)
    b.transport.pause_reading()
    # Random text, so that compression cannot shrink it below the buffers.
    payload = secrets.token_urlsafe(45_000)
    async with asyncio.timeout(TIMEOUT):
        while b_id in server.connection_ids:
            await send_json(a, {"type": "message", "to": b_id, "data": payload})
    # The sender is unaffected (what it sent after b was gone is unknown-peer).
    await send_json(a, {"type": "message", "to": a_id, "data": "still here"})
    reply = await recv_json(a)
    while reply["type"] == "error":
        assert reply["code"] == "unknown-peer"
        reply = await recv_json(a)
    assert reply == {"type": "message", "from": a_id, "data": "still here"}


async def test_stop_cuts_off_a_receiver_that_does_not_read(make_server: ServerFactory) -> None:
    # Outbox limits out of the way: the test wants messages stuck in it.
    server = await make_server(
        rate=1e6, burst=10**6, close_timeout=0.2, max_outbox_bytes=2**26, max_queued_bytes=2**26
    )
    a, _ = await native(server)
    b, b_id = await native(server)
    b.transport.pause_reading()
    payload = secrets.token_urlsafe(45_000)
    # Until b's writer is stuck: the socket buffers are full (a few MB on
    # loopback) and messages pile up in its outbox.
    async with asyncio.timeout(TIMEOUT):
        while len(server._peers[b_id].outbox) < 20:
            await send_json(a, {"type": "message", "to": b_id, "data": payload})
    # The closing handshake cannot reach b; stop() aborts it after the timeout.
    async with asyncio.timeout(TIMEOUT):
        await server.stop()
    assert server.connection_ids == frozenset()
    with pytest.raises(ConnectionClosed):
        await recv_json(a)
    assert a.close_code == 1001


# -- HTTP ---------------------------------------------------------------------


async def test_http_routes(server: SignalingServer) -> None:
    status, headers, body = await http_get(server.port, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"<html" in body.lower()
    index = (Path(__file__).parents[2] / "callapp/signaling/web/index.html").read_bytes()
    assert body == index

    status, headers, body = await http_get(server.port, "/static/index.html")
    assert (status, body) == (200, index)

    status, headers, body = await http_get(server.port, "/healthz")
    assert (status, body) == (200, b"ok")
    assert headers["content-type"].startswith("text/plain")

    for path in ("/ws", "/apigw", "/ws?x=1"):
        status, headers, _ = await http_get(server.port, path)
        assert status == 426, path
        assert headers["upgrade"] == "websocket"

    for path in (
        "/nope",
        "/static/",
        "/static/nope.js",
        "/static/../server.py",
        "/static/..%2fserver.py",
        "/static/.hidden",
        "/static//etc/passwd",
        "/web/index.html",
    ):
        status, _, _ = await http_get(server.port, path)
        assert status == 404, path


async def test_static_content_types(make_server: ServerFactory, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html>hi</html>")
    (tmp_path / "app.js").write_text("console.log(1)")
    (tmp_path / "style.css").write_text("body {}")
    (tmp_path / "blob.unknownext").write_bytes(b"\x00\x01")
    server = await make_server(web_root=tmp_path)
    expected = {
        "/": "text/html",
        "/static/app.js": "javascript",
        "/static/style.css": "text/css",
        "/static/blob.unknownext": "application/octet-stream",
    }
    for path, kind in expected.items():
        status, headers, _ = await http_get(server.port, path)
        assert status == 200
        assert kind in headers["content-type"], (path, headers)


async def test_websocket_to_unknown_path_is_404(server: SignalingServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await open_ws(f"ws://127.0.0.1:{server.port}/elsewhere")
    assert refused.value.response.status_code == 404


def _sample(text: str, name: str) -> float:
    """The value of one sample line (``name`` including labels)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


async def test_metrics_move(server: SignalingServer) -> None:
    status, headers, body = await http_get(server.port, "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    assert _sample(text, "callapp_signaling_connections") == 0
    assert _sample(text, "callapp_signaling_rooms") == 0
    assert _sample(text, "callapp_signaling_messages_relayed_total") == 0

    a, _, _ = await joined(server, "m")
    _b, _b_id, _ = await joined(server, "m")
    await send_json(a, {"type": "message", "data": 1})
    await send_json(a, "not an object")
    assert (await recv_json(a))["type"] == "peer-joined"
    assert (await recv_json(a))["type"] == "ready"
    assert (await recv_json(a))["code"] == "bad-message"
    await send_json(a, {"type": "message", "to": "x", "data": 1})
    assert (await recv_json(a))["code"] == "unknown-peer"

    text = (await http_get(server.port, "/metrics"))[2].decode()
    assert _sample(text, "callapp_signaling_connections") == 2
    assert _sample(text, "callapp_signaling_rooms") == 1
    assert _sample(text, "callapp_signaling_messages_relayed_total") == 1
    assert _sample(text, 'callapp_signaling_errors_total{code="bad-message"}') == 1
    assert _sample(text, 'callapp_signaling_errors_total{code="unknown-peer"}') == 1
    assert _sample(text, 'callapp_signaling_connections_opened_total{endpoint="ws"}') == 2
    assert all(
        line.startswith("callapp_signaling_")
        for line in text.splitlines()
        if line and not line.startswith("#")
    )


async def test_two_servers_have_separate_metrics(make_server: ServerFactory) -> None:
    one = await make_server()
    two = await make_server()
    await native(one)
    assert _sample(one.metrics.render().decode(), "callapp_signaling_connections") == 1
    assert _sample(two.metrics.render().decode(), "callapp_signaling_connections") == 0


# -- inside the desktop app's loop ------------------------------------------------


def test_starts_and_stops_on_a_qasync_loop(qapp: object) -> None:
    """The Host button runs this object on qasync's Qt event loop."""
    qasync = pytest.importorskip("qasync")
    loop = qasync.QEventLoop(qapp)

    async def scenario() -> tuple[int, bytes, str]:
        async with SignalingServer() as server:
            status, _, body = await http_get(server.port, "/healthz")
            ws, _ = await native(server)
            await send_json(ws, {"type": "join", "room": "host"})
            reply = await recv_json(ws)
        return status, body, reply["type"]

    try:
        assert loop.run_until_complete(scenario()) == (200, b"ok", "created")
    finally:
        loop.close()
