"""The channel seam: client events and errors mapped; the in-memory hub's rules."""

from __future__ import annotations

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
from callapp.call.memory import MemoryHub
from callapp.signaling import client, messages


def test_client_lifecycle_events_map_onto_channel_events() -> None:
    welcome = messages.Welcome(connection_id="new", server="x")
    joined = messages.Joined(room="r", connection_id="new", peers=("old", "new"))
    assert lifecycle(client.Disconnected("gone")) == ChannelLost("gone")
    assert lifecycle(client.Reconnected(welcome, "new", joined)) == ChannelRestored("new", True)
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
