"""SignalingClient against a real SignalingServer on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from callapp.signaling.client import (
    BadCapacity,
    BadRoom,
    BadServerUrl,
    ClientClosed,
    ClientEvent,
    ConnectionLost,
    Disconnected,
    Reconnected,
    RoomFull,
    ServerError,
    ServerUnreachable,
    SignalingClient,
    SignalingError,
    SignalingTimeout,
    normalize_url,
)
from callapp.signaling.messages import (
    Created,
    Error,
    ErrorCode,
    Join,
    Joined,
    PeerJoined,
    PeerLeft,
    Ready,
    Relayed,
)
from callapp.signaling.server import SignalingServer
from tests.signaling.conftest import TIMEOUT, ServerFactory, apigw, recv_json, send_json

FAST = {"backoff_initial": 0.02, "backoff_max": 0.1}


class Events:
    """One client's event stream, read with a timeout that only a hang hits."""

    def __init__(self, client: SignalingClient) -> None:
        self._iterator: AsyncIterator[ClientEvent] = client.events()

    async def next(self) -> ClientEvent:
        async with asyncio.timeout(TIMEOUT):
            return await anext(self._iterator)

    async def rest(self) -> list[ClientEvent]:
        """Every event up to the end of the stream."""
        events = []
        async with asyncio.timeout(TIMEOUT):
            async for event in self._iterator:
                events.append(event)
        return events


@pytest.fixture
async def clients() -> AsyncIterator[list[SignalingClient]]:
    """Clients to close after the test (append them)."""
    made: list[SignalingClient] = []
    yield made
    for client in made:
        await client.close()


async def connected(
    server: SignalingServer, clients: list[SignalingClient], **options: Any
) -> SignalingClient:
    # server.url, not its port: on two nodes (test_server_on_redis) clients alternate.
    client = SignalingClient(server.url, **{**FAST, **options})
    clients.append(client)
    await client.connect()
    return client


def ident(client: SignalingClient) -> str:
    """The client's connection id, which a connected client has."""
    assert client.connection_id is not None
    return client.connection_id


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ws://127.0.0.1:8765", "ws://127.0.0.1:8765/ws"),
        ("ws://127.0.0.1:8765/", "ws://127.0.0.1:8765/ws"),
        ("wss://example.org", "wss://example.org/ws"),
        ("wss://example.org/signal/ws", "wss://example.org/signal/ws"),
        ("http://h:1", "ws://h:1/ws"),
        ("https://h", "wss://h/ws"),
        ("  h:8765 ", "ws://h:8765/ws"),
        ("ws://[::1]:9/ws", "ws://[::1]:9/ws"),
        ("http://h:1/?room=r#secret=9ysMfMT9xVNbmulSVnJK_A", "ws://h:1/ws"),  # an invite link
    ],
)
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize(
    "bad", ["ftp://h/", "ws://", "ws://h:99999", "ws://h:port", "", "ws//h:1", "ws://h/ws?x"]
)
def test_bad_urls(bad: str) -> None:
    with pytest.raises(BadServerUrl, match="ws://HOST:PORT"):
        SignalingClient(bad)
    assert issubclass(BadServerUrl, SignalingError)


# -- connecting ------------------------------------------------------------------


async def test_connect_join_and_talk(make_server: ServerFactory, clients: list[Any]) -> None:
    ice = [{"urls": "stun:stun.example.org"}]
    server = await make_server(ice_servers=ice)
    a = await connected(server, clients)
    b = await connected(server, clients)
    assert a.welcome is not None
    assert ident(a) == a.welcome.connection_id
    assert a.ice_servers == tuple(ice)
    assert a.url == server.url
    assert ident(a) != ident(b)
    assert a.connected

    a_events, b_events = Events(a), Events(b)
    assert await a.join("talk") == Created("talk", ident(a))
    assert a.room == "talk"
    peers = (ident(a), ident(b))
    assert await b.join("talk") == Joined("talk", ident(b), peers)
    assert await a_events.next() == PeerJoined("talk", ident(b))
    assert await a_events.next() == Ready("talk", peers)
    assert await b_events.next() == Ready("talk", peers)

    await a.send({"type": "SDP", "payload": {"type": "offer", "sdp": "v=0"}})
    assert await b_events.next() == Relayed(
        ident(a), {"type": "SDP", "payload": {"type": "offer", "sdp": "v=0"}}
    )
    await b.send("direct", to=ident(a))
    assert await a_events.next() == Relayed(ident(b), "direct")

    # An error that answers no awaited request is an event.
    await a.send(1, to="nobody")
    event = await a_events.next()
    assert isinstance(event, Error)
    assert event.code == ErrorCode.UNKNOWN_PEER

    # Joining the same room again answers joined with the current peers.
    assert await a.join("talk") == Joined("talk", ident(a), peers)

    await b.leave()
    assert b.room is None
    assert await a_events.next() == PeerLeft("talk", ident(b))


async def test_full_bad_room_and_busy(make_server: ServerFactory, clients: list[Any]) -> None:
    server = await make_server(max_rooms=1)
    a = await connected(server, clients)
    b = await connected(server, clients)
    c = await connected(server, clients)
    await a.join("one")
    await b.join("one")
    with pytest.raises(RoomFull, match="Room 'one' is full") as full:
        await c.join("one")
    assert full.value.room == "one"
    assert c.room is None
    with pytest.raises(BadRoom, match="letters, digits"):
        await c.join("not a room")
    with pytest.raises(BadRoom):
        await c.join("x" * 65)
    # The server's own bad-room answer (the client checks names first, so
    # send the request below the check) is matched by its ref.
    with pytest.raises(BadRoom):
        await c._join("not a room")
    with pytest.raises(ServerError, match="busy") as busy:
        await c.join("two")
    assert busy.value.code == "busy"
    # Still connected and usable after all that.
    await c.send("hi", to=ident(a))
    a_events = Events(a)
    assert isinstance(await a_events.next(), PeerJoined)
    assert isinstance(await a_events.next(), Ready)
    assert await a_events.next() == Relayed(ident(c), "hi")


async def test_join_with_a_capacity(server: SignalingServer, clients: list[Any]) -> None:
    a = await connected(server, clients)
    b = await connected(server, clients)
    c = await connected(server, clients)
    a_events, b_events, c_events = Events(a), Events(b), Events(c)
    assert await a.join("trio", capacity=3) == Created("trio", ident(a), 3)
    assert (a.room, a.room_capacity) == ("trio", 3)
    # A later joiner's capacity is ignored; the reply says the room's.
    assert await b.join("trio", capacity=2) == Joined("trio", ident(b), (ident(a), ident(b)), 3)
    assert b.room_capacity == 3
    assert await a_events.next() == PeerJoined("trio", ident(b))
    peers = (ident(a), ident(b), ident(c))
    assert await c.join("trio") == Joined("trio", ident(c), peers, 3)
    # No ready at two members: the first after b's peer-joined is c's.
    assert await a_events.next() == PeerJoined("trio", ident(c))
    assert await a_events.next() == Ready("trio", peers)
    assert await b_events.next() == PeerJoined("trio", ident(c))
    assert await b_events.next() == Ready("trio", peers)
    assert await c_events.next() == Ready("trio", peers)
    await c.leave()
    assert (c.room, c.room_capacity) == (None, None)


@pytest.mark.parametrize("capacity", [1, 9, 0, True, 3.0, "3"], ids=repr)
async def test_a_capacity_outside_2_to_8_is_refused_before_sending(capacity: Any) -> None:
    # Never connected: a request that were sent would fail with ConnectionLost.
    client = SignalingClient("ws://127.0.0.1:9")
    with pytest.raises(BadCapacity, match="rooms hold 2 to 8 people") as refused:
        await client.join("g", capacity=capacity)
    assert refused.value.capacity == capacity
    assert isinstance(refused.value, SignalingError)
    await client.close()


async def test_a_capacity_above_the_servers_maximum(
    server: SignalingServer, clients: list[Any]
) -> None:
    client = await connected(server, clients)
    events = Events(client)
    await client.join("small")
    with pytest.raises(BadCapacity) as refused:
        await client.join("big", capacity=5)
    assert refused.value.reason == "this server allows rooms of 2 to 4 people"
    assert refused.value.capacity == 5
    assert str(refused.value) == (
        "Room capacity 5 is not allowed: this server allows rooms of 2 to 4 people"
    )
    assert (client.room, client.room_capacity) == ("small", 2)
    assert server.router.room_of(ident(client)) == "small"
    # The answer was matched to the join, not left as an event.
    await client.send("still here", to=ident(client))
    assert await events.next() == Relayed(ident(client), "still here")


async def test_a_rejoin_asks_for_the_rooms_capacity(
    make_server: ServerFactory, clients: list[Any]
) -> None:
    first = await make_server()
    port = first.port
    creator = await connected(first, clients)
    member = await connected(first, clients)
    events = Events(member)
    await creator.join("trio", capacity=3)
    # The member asked for nothing, yet knows the room's capacity...
    await member.join("trio")
    assert member.room_capacity == 3
    await creator.close()
    assert await events.next() == PeerLeft("trio", ident(creator))
    await first.stop()
    assert isinstance(await events.next(), Disconnected)
    # ...and asks for it when it makes the room again on a new server.
    await make_server(port=port)
    reconnected = await events.next()
    assert isinstance(reconnected, Reconnected)
    assert reconnected.rejoined == Created("trio", ident(member), 3)
    assert (member.room, member.room_capacity) == ("trio", 3)


async def test_a_rejoin_the_new_server_cannot_hold_leaves_the_room(
    make_server: ServerFactory, clients: list[Any]
) -> None:
    first = await make_server(max_room_capacity=6)
    port = first.port
    client = await connected(first, clients)
    events = Events(client)
    assert await client.join("six", capacity=6) == Created("six", ident(client), 6)
    await first.stop()
    assert isinstance(await events.next(), Disconnected)
    await make_server(port=port)  # allows rooms of 2 to 4 people
    reconnected = await events.next()
    assert isinstance(reconnected, Reconnected)
    assert reconnected.rejoined is None
    assert (client.room, client.room_capacity) == (None, None)


async def test_a_rejoin_answered_busy_is_asked_again_until_it_fits(
    make_server: ServerFactory, clients: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """busy is passing (a server holding joins while its Redis comes back, or
    out of rooms for a moment): the reconnected client asks again, and keeps
    its room, instead of giving the room up at the first answer."""
    first = await make_server()
    port = first.port
    client = await connected(first, clients)
    # The first attempt 0.5-1 s after the drop: long after the squatter below
    # has its room (on Redis, test_server_on_redis, that takes a few round
    # trips, which a quicker attempt could beat).
    client.backoff_initial = 1.0
    events = Events(client)
    await client.join("mine")
    await first.stop()
    assert isinstance(await events.next(), Disconnected)
    second = await make_server(port=port, max_rooms=1)
    # Before the client's next attempt: the only room is taken, for a moment.
    second.router.connect("squatter")
    second.router.handle("squatter", Join(room="other"))
    asyncio.get_running_loop().call_later(1.5, second.router.disconnect, "squatter")
    caplog.set_level("INFO", logger="callapp.signaling.client")
    reconnected = await events.next()
    assert isinstance(reconnected, Reconnected)
    assert reconnected.rejoined == Created("mine", ident(client))
    assert client.room == "mine"
    assert any("answered busy" in record.getMessage() for record in caplog.records)


async def test_client_talks_to_an_apigw_client(server: SignalingServer, clients: list[Any]) -> None:
    client = await connected(server, clients)
    events = Events(client)
    g, g_id = await apigw(server)
    await send_json(g, {"connectionId": ident(client), "message": {"type": "BYE"}})
    assert await events.next() == Relayed(g_id, {"type": "BYE"})
    await client.send({"type": "ICE"}, to=g_id)
    # g's answer to its own send comes first.
    assert await recv_json(g) == {"connectionId": g_id}
    assert await recv_json(g) == {"message": {"type": "ICE"}, "from": ident(client)}


async def test_unreachable_server() -> None:
    port = free_port()
    client = SignalingClient(f"ws://127.0.0.1:{port}")
    with pytest.raises(ServerUnreachable) as unreachable:
        await client.connect()
    assert str(unreachable.value) == (
        f"Could not reach the signaling server at ws://127.0.0.1:{port}/ws: connection refused"
    )
    with pytest.raises(ConnectionLost, match="yet"):
        await client.send("x")
    await client.close()


async def test_silent_server_times_out() -> None:
    async def ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    silent = await asyncio.start_server(ignore, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        client = SignalingClient(f"ws://127.0.0.1:{port}", connect_timeout=0.2)
        with pytest.raises(SignalingTimeout, match=r"did not answer within 0\.2 s"):
            await client.connect()
    finally:
        silent.close()
        await silent.wait_closed()


async def test_refused_handshake_and_non_callapp_endpoint(
    make_server: ServerFactory, clients: list[Any]
) -> None:
    server = await make_server(max_connections_per_address=1)
    await connected(server, clients)
    with pytest.raises(ServerUnreachable, match="HTTP 429"):
        await SignalingClient(server.url).connect()
    await clients[0].close()
    other = await make_server()
    # /apigw sends no welcome: the client times out rather than hang.
    apigw_client = SignalingClient(other.apigw_url, connect_timeout=0.3)
    with pytest.raises(SignalingTimeout):
        await apigw_client.connect()


async def test_join_timeout_and_a_server_that_is_not_callapp() -> None:
    async def mute(ws: ServerConnection) -> None:
        # Welcomes, then never answers: joins must time out, not hang.
        await ws.send('{"type": "welcome", "connectionId": "0123456789abcdef"}')
        await ws.wait_closed()

    async def stranger(ws: ServerConnection) -> None:
        await ws.send('{"hello": "world"}')
        await ws.wait_closed()

    async with serve(mute, "127.0.0.1", 0) as mute_server:
        port = mute_server.sockets[0].getsockname()[1]
        client = SignalingClient(f"ws://127.0.0.1:{port}", request_timeout=0.2)
        welcome = await client.connect()
        assert welcome.connection_id == "0123456789abcdef"
        with pytest.raises(SignalingTimeout, match="join of room 'r'"):
            await client.join("r")
        assert client.room is None
        await client.close()

    async with serve(stranger, "127.0.0.1", 0) as stranger_server:
        port = stranger_server.sockets[0].getsockname()[1]
        with pytest.raises(ServerError, match="not a callapp signaling server") as error:
            await SignalingClient(f"ws://127.0.0.1:{port}").connect()
        assert error.value.code == "bad-message"


async def test_rate_limited_join_is_matched_by_its_ref(
    make_server: ServerFactory, clients: list[Any]
) -> None:
    server = await make_server(rate=0.001, burst=1)
    client = await connected(server, clients)
    await client.join("first")
    with pytest.raises(ServerError, match="rate-limited") as limited:
        await client.join("second")
    assert limited.value.code == "rate-limited"
    assert client.room == "first"


# -- closing and reconnecting -------------------------------------------------------


async def test_close_is_idempotent_and_ends_events(server: SignalingServer) -> None:
    client = SignalingClient(server.url)
    await client.connect()
    events = Events(client)
    await client.close()
    await client.close()
    assert await events.rest() == [ClientClosed("closed by the client")]
    # A second iterator ends at once too.
    assert await Events(client).rest() == []
    assert client.closed
    assert not client.connected
    with pytest.raises(ConnectionLost, match="closed"):
        await client.send("x")
    with pytest.raises(ConnectionLost):
        await client.join("r")
    with pytest.raises(ConnectionLost):
        await client.connect()


async def test_without_reconnect_a_drop_closes_the_client(
    make_server: ServerFactory, clients: list[Any]
) -> None:
    server = await make_server()
    client = await connected(server, clients, reconnect=False)
    events = Events(client)
    await server.stop()
    assert await events.rest() == [
        ClientClosed("connection lost: server shutting down (code 1001)")
    ]
    assert client.closed


async def test_gives_up_after_max_attempts(make_server: ServerFactory, clients: list[Any]) -> None:
    server = await make_server()
    client = await connected(server, clients, max_reconnect_attempts=2)
    events = Events(client)
    await client.join("r")
    await server.stop()
    rest = await events.rest()
    assert rest[0] == Disconnected("server shutting down (code 1001)")
    assert len(rest) == 2
    assert isinstance(rest[1], ClientClosed)
    assert rest[1].reason.startswith("gave up after 2 reconnection attempts: Could not reach")
    with pytest.raises(ConnectionLost):
        await client.send("x")


async def test_reconnects_and_rejoins_after_a_server_restart(
    make_server: ServerFactory, clients: list[Any]
) -> None:
    first = await make_server()
    port = first.port
    a = await connected(first, clients)
    b = await connected(first, clients)
    a_events, b_events = Events(a), Events(b)
    await a.join("again")
    await b.join("again")
    old_ids = {ident(a), ident(b)}
    assert isinstance(await a_events.next(), PeerJoined)
    assert isinstance(await a_events.next(), Ready)
    assert isinstance(await b_events.next(), Ready)

    await first.stop()
    for events in (a_events, b_events):
        assert await events.next() == Disconnected("server shutting down (code 1001)")
    with pytest.raises(ConnectionLost, match="reconnecting"):
        await a.send("while down")

    second = await make_server(port=port)
    assert second.port == port
    a_reconnected = await a_events.next()
    b_reconnected = await b_events.next()
    assert isinstance(a_reconnected, Reconnected)
    assert isinstance(b_reconnected, Reconnected)
    assert {ident(a), ident(b)}.isdisjoint(old_ids)
    assert a_reconnected.connection_id == ident(a)
    assert a_reconnected.welcome.connection_id == ident(a)
    assert b_reconnected.connection_id == ident(b)
    assert a.room == b.room == "again"

    # Whoever rejoined first created the room again and sees the other join.
    if isinstance(a_reconnected.rejoined, Created):
        first_in, first_events, later, later_reconnected = a, a_events, b, b_reconnected
    else:
        first_in, first_events, later, later_reconnected = b, b_events, a, a_reconnected
    later_events = b_events if later is b else a_events
    peers = (ident(first_in), ident(later))
    assert later_reconnected.rejoined == Joined("again", ident(later), peers)
    assert await first_events.next() == PeerJoined("again", ident(later))
    assert await first_events.next() == Ready("again", peers)
    assert await later_events.next() == Ready("again", peers)

    # And they talk again.
    await later.send("back")
    assert await first_events.next() == Relayed(ident(later), "back")
    assert second.connection_ids == {ident(a), ident(b)}


async def test_reconnect_after_keepalive_drop(
    make_server: ServerFactory, clients: list[Any]
) -> None:
    # The server drops a client that stops answering pings; the client
    # notices the closed link and reconnects with a new id.
    server = await make_server(ping_interval=0.1, ping_timeout=0.2, close_timeout=0.2)
    client = await connected(server, clients, ping_interval=None)
    events = Events(client)
    old_id = ident(client)
    await client.join("k")
    ws = client._ws
    assert ws is not None
    ws.transport.pause_reading()
    # Once the server has forgotten it, let the client read again and see
    # the closed connection.
    async with asyncio.timeout(TIMEOUT):
        while old_id in server.connection_ids:  # noqa: ASYNC110 - nothing to await
            await asyncio.sleep(0.02)
    ws.transport.resume_reading()
    event = await events.next()
    assert isinstance(event, Disconnected)
    event = await events.next()
    assert isinstance(event, Reconnected)
    assert event.connection_id != old_id
    assert event.rejoined == Created("k", event.connection_id)
