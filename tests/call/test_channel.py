"""The channel seam: client events and errors mapped; the in-memory hub's rules."""

from __future__ import annotations

import inspect

import pytest

from callapp.call import errors
from callapp.call.channel import (
    ChannelClosed,
    ChannelLost,
    ChannelRestored,
    SignalingChannel,
    lifecycle,
    translate,
    wrap_errors,
)
from callapp.signaling import client, messages
from tests.call.memory import MemoryChannel, MemoryHub


def test_client_lifecycle_events_map_onto_channel_events() -> None:
    welcome = messages.Welcome(connection_id="new", server="x")
    joined = messages.Joined(room="r", connection_id="new", peers=("old", "new"))
    assert lifecycle(client.Disconnected("gone")) == ChannelLost("gone")
    assert lifecycle(client.Reconnected(welcome, "new", joined)) == ChannelRestored(
        "new", True, peers=("old", "new"), capacity=2
    )
    assert lifecycle(client.Reconnected(welcome, "new", None)) == ChannelRestored("new", False)
    assert lifecycle(client.ClientClosed("bye")) == ChannelClosed("bye")
    assert lifecycle(messages.Ready(room="r", peers=("a", "b"))) is None


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (client.ServerUnreachable("no route"), errors.ServerUnavailable),
        (client.SignalingTimeout("slow"), errors.ServerUnavailable),
        (client.ConnectionLost("lost"), errors.ServerUnavailable),
        (client.RoomFull("r"), errors.RoomFullError),
        (client.BadRoom("bad room"), errors.BadRoomError),
        (client.BadServerUrl("http://x"), errors.BadServerUrl),
        (ConnectionRefusedError("refused"), errors.ServerUnavailable),
    ],
)
def test_client_errors_become_call_errors_with_their_message(
    exc: Exception, expected: type[errors.CallError]
) -> None:
    translated = translate(exc)
    assert isinstance(translated, expected)
    assert str(translated)
    with pytest.raises(expected), wrap_errors():
        raise exc


def test_other_exceptions_pass_through() -> None:
    assert translate(KeyError("x")) is None
    with pytest.raises(KeyError), wrap_errors():
        raise KeyError("x")


def test_the_real_client_and_the_memory_channel_satisfy_the_protocol() -> None:
    channels: list[SignalingChannel] = [
        client.SignalingClient("ws://127.0.0.1:9/ws"),
        MemoryHub().channel(),
    ]
    for channel in channels:
        for name in ("connect", "join", "leave", "send", "events", "close"):
            assert callable(getattr(channel, name))
        assert channel.connection_id is None
        assert tuple(channel.ice_servers) == ()


async def test_hub_rooms_and_relay() -> None:
    hub = MemoryHub(ice_servers=[{"urls": "stun:example.org"}])
    a, b, c = hub.channel(), hub.channel(), hub.channel()
    welcome = await a.connect()
    assert welcome.ice_servers == ({"urls": "stun:example.org"},)
    await b.connect()
    await c.connect()
    assert isinstance(await a.join("r"), messages.Created)
    joined = await b.join("r")
    assert isinstance(joined, messages.Joined)
    assert joined.peers == (a.connection_id, b.connection_id)
    with pytest.raises(errors.RoomFullError):
        await c.join("r")
    await b.send({"hello": 1})
    await c.send("x", to="nobody")

    a_events = a.events()
    assert await anext(a_events) == messages.PeerJoined("r", b.connection_id or "")
    assert await anext(a_events) == messages.Ready(
        "r", (a.connection_id or "", b.connection_id or "")
    )
    assert await anext(a_events) == messages.Relayed(b.connection_id or "", {"hello": 1})
    error = await anext(c.events())
    assert isinstance(error, messages.Error)
    assert error.code is messages.ErrorCode.UNKNOWN_PEER

    await b.close()
    assert await anext(a_events) == messages.PeerLeft("r", b.connection_id or "")


def test_both_channels_join_with_a_capacity() -> None:
    for channel in (client.SignalingClient("ws://127.0.0.1:9/ws"), MemoryHub().channel()):
        parameter = inspect.signature(channel.join).parameters["capacity"]
        assert parameter.default is None


# -- the in-memory hub runs the real room router ------------------------------------


async def connected(hub: MemoryHub, count: int) -> list[MemoryChannel]:
    channels = [hub.channel() for _ in range(count)]
    for channel in channels:
        await channel.connect()
    return channels


def ident(channel: MemoryChannel) -> str:
    assert channel.connection_id is not None
    return channel.connection_id


async def drain(channel: MemoryChannel) -> list[object]:
    """Every event queued for ``channel`` so far (without waiting for more)."""
    events = []
    while not channel._queue.empty():
        events.append(channel._queue.get_nowait())
    return events


async def test_hub_group_room_with_the_creators_capacity() -> None:
    hub = MemoryHub()
    a, b, c, d = await connected(hub, 4)
    assert await a.join("g", capacity=3) == messages.Created("g", ident(a), 3)
    # A later joiner's capacity is ignored; no ready at two of three.
    assert await b.join("g", capacity=2) == messages.Joined("g", ident(b), (ident(a), ident(b)), 3)
    assert b.room_capacity == 3
    assert await drain(a) == [messages.PeerJoined("g", ident(b))]
    assert await drain(b) == []
    peers = (ident(a), ident(b), ident(c))
    assert await c.join("g") == messages.Joined("g", ident(c), peers, 3)
    assert await drain(a) == [messages.PeerJoined("g", ident(c)), messages.Ready("g", peers)]
    assert await drain(c) == [messages.Ready("g", peers)]
    with pytest.raises(errors.RoomFullError, match="Room 'g' is full"):
        await d.join("g", capacity=4)
    assert hub.rooms == {"g": peers}
    assert hub.router.capacity_of("g") == 3


async def test_hub_default_rooms_are_for_two() -> None:
    hub = MemoryHub()
    a, b, c = await connected(hub, 3)
    assert await a.join("r") == messages.Created("r", ident(a), 2)
    await b.join("r")
    assert await drain(a) == [
        messages.PeerJoined("r", ident(b)),
        messages.Ready("r", (ident(a), ident(b))),
    ]
    with pytest.raises(errors.RoomFullError):
        await c.join("r")
    assert MemoryHub(capacity=3).capacity == 3


async def test_hub_refuses_what_the_server_refuses() -> None:
    hub = MemoryHub(max_room_capacity=4, max_rooms=2)
    a, b, c = await connected(hub, 3)
    await a.join("mine")
    with pytest.raises(errors.CallError, match="this server allows rooms of 2 to 4 people") as big:
        await a.join("big", capacity=5)
    assert not isinstance(big.value, errors.RoomFullError | errors.BadRoomError)
    with pytest.raises(errors.CallError, match="must be an integer from 2 to 8"):
        await a.join("big", capacity=9)
    with pytest.raises(errors.BadRoomError):
        await a.join("not a room")
    assert (a.room, a.room_capacity) == ("mine", 2)
    assert hub.rooms == {"mine": (ident(a),)}
    await b.join("second")
    with pytest.raises(errors.CallError, match="busy"):
        await c.join("third")
    assert c.room is None
    assert await drain(a) == []  # refused joins tell nobody anything
    assert hub.max_room_capacity == 4
    with pytest.raises(ValueError, match="max_room_capacity"):
        MemoryHub(capacity=5)


async def test_hub_relays_equal_json_and_logs_it() -> None:
    hub = MemoryHub()
    a, b, c = await connected(hub, 3)
    await a.join("r")
    await b.join("r")
    await drain(a)
    await drain(b)
    sent = {"type": "CHAT", "payload": {"text": "hi", "at": (1, 2)}}
    await a.send(sent)
    await c.send("direct", to=ident(a))
    received = await drain(b)
    assert received == [
        messages.Relayed(ident(a), {"type": "CHAT", "payload": {"text": "hi", "at": [1, 2]}})
    ]
    assert isinstance(received[0], messages.Relayed)
    # The log holds what the receiver got: equal JSON, not the sender's object.
    assert hub.log == [(ident(a), ident(b), received[0].data), (ident(c), ident(a), "direct")]
    assert hub.log[0][2] is not sent
    await c.send(1)  # c is in no room
    await c.send(1, to="nobody")
    errors_seen = await drain(c)
    assert all(isinstance(event, messages.Error) for event in errors_seen)
    assert [getattr(event, "code", None) for event in errors_seen] == [
        messages.ErrorCode.NOT_IN_ROOM,
        messages.ErrorCode.UNKNOWN_PEER,
    ]
    with pytest.raises(TypeError):
        await a.send({"not": object()})


async def test_hub_drop_and_restore_rejoin_like_the_real_client() -> None:
    hub = MemoryHub()
    a, b = await connected(hub, 2)
    await a.join("g", capacity=3)
    await b.join("g")
    old = ident(b)
    await drain(a)
    b.drop()
    assert await drain(a) == [messages.PeerLeft("g", old)]
    assert await drain(b) == [ChannelLost("dropped by the test")]
    assert (b.connection_id, b.room) == (old, "g")
    with pytest.raises(errors.ServerUnavailable):
        await b.send("while dropped")
    assert old not in hub.channels

    new = await b.restore()
    assert new != old
    assert ident(b) == new
    assert set(hub.channels) == {ident(a), new}
    assert await drain(b) == [
        ChannelRestored(new, rejoined=True, peers=(ident(a), new), capacity=3)
    ]
    assert await drain(a) == [messages.PeerJoined("g", new)]
    assert hub.rooms == {"g": (ident(a), new)}


async def test_hub_restore_makes_the_room_again_with_its_capacity() -> None:
    hub = MemoryHub()
    a, b = await connected(hub, 2)
    await a.join("g", capacity=3)
    await b.join("g")  # asks for nothing, learns 3
    await a.close()
    b.drop()
    assert hub.rooms == {}
    new = await b.restore()
    assert hub.router.capacity_of("g") == 3
    assert hub.rooms == {"g": (new,)}


async def test_hub_restore_events_come_in_the_real_clients_order() -> None:
    hub = MemoryHub()
    a, b = await connected(hub, 2)
    await a.join("r")
    await b.join("r")
    b.drop()
    await drain(b)
    new = await b.restore()
    # ChannelRestored before the Ready the rejoin caused.
    assert await drain(b) == [
        ChannelRestored(new, rejoined=True, peers=(ident(a), new), capacity=2),
        messages.Ready("r", (ident(a), new)),
    ]


async def test_hub_restore_into_a_room_filled_meanwhile_is_not_rejoined() -> None:
    hub = MemoryHub()
    a, b, c = await connected(hub, 3)
    await a.join("r")
    await b.join("r")
    await drain(b)
    b.drop()
    await c.join("r")
    new = await b.restore()
    assert await drain(b) == [ChannelLost("dropped by the test"), ChannelRestored(new, False)]
    assert b.room is None


async def test_hub_channel_lifecycle_errors() -> None:
    hub = MemoryHub()
    channel = hub.channel()
    with pytest.raises(errors.NotConnected):
        await channel.join("r")
    with pytest.raises(RuntimeError, match="after drop"):
        await channel.restore()
    welcome = await channel.connect()
    assert await channel.connect() == welcome  # connecting again changes nothing
    assert list(hub.channels) == [welcome.connection_id]
    await channel.close()
    await channel.close()
    assert hub.channels == {}
    assert await drain(channel) == [ChannelClosed("closed")]
    for action in (channel.connect(), channel.send(1), channel.leave()):
        with pytest.raises(errors.NotConnected):
            await action
