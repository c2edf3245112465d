"""Room secrets through a real server: keyed rooms, unauthorized joins, no key in any log.

The server only ever sees the room key, HKDF-SHA256 of the room secret
(docs/protocol.md, *Room secrets*). The signaling package may not import the
call engine that derives it, so :func:`room_key` here computes it from the
spec with hmac/hashlib.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from callapp.signaling.client import (
    ClientEvent,
    Created,
    Joined,
    PeerJoined,
    Ready,
    Reconnected,
    SignalingClient,
    SignalingError,
    Unauthorized,
)
from callapp.signaling.invite import format_invite, parse_invite
from callapp.signaling.messages import is_valid_room_key
from callapp.signaling.server import SignalingServer
from tests.signaling.conftest import (
    ServerFactory,
    http_get,
    native,
    open_ws,
    recv_json,
    send_json,
)
from tests.signaling.test_client import FAST, Events, ident
from tests.signaling.test_server import _sample

NEEDS_SECRET = "this room needs the invite link's secret"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_secret() -> str:
    """A room secret as the spec makes it: 16 random bytes, base64url."""
    return b64url(secrets.token_bytes(16))


def room_key(secret: str, room: str) -> str:
    """HKDF-SHA256(ikm=secret bytes, salt="callapp/v1/room-key", info=room, L=32), base64url."""
    ikm = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    prk = hmac.new(b"callapp/v1/room-key", ikm, hashlib.sha256).digest()
    okm = hmac.new(prk, room.encode() + b"\x01", hashlib.sha256).digest()  # one block: L=32
    return b64url(okm)


def test_the_derived_key_is_a_room_key_and_depends_on_secret_and_room() -> None:
    secret = new_secret()
    key = room_key(secret, "r")
    assert is_valid_room_key(key)
    assert room_key(secret, "r") == key
    assert room_key(secret, "R") != key
    assert room_key(new_secret(), "r") != key
    assert len(base64.urlsafe_b64decode(key + "=")) == 32


async def join_raw(ws: ClientConnection, room: str, **extra: Any) -> Any:
    await send_json(ws, {"type": "join", "room": room, **extra})
    return await recv_json(ws)


async def nothing_pending(ws: ClientConnection) -> None:
    """Nothing has been sent to ``ws``: a probe to an unknown peer is the next answer."""
    await send_json(ws, {"type": "message", "to": "nobody-here-at-all", "data": 0, "id": "probe"})
    answer = await recv_json(ws)
    assert (answer["code"], answer["ref"]) == ("unknown-peer", "probe"), answer


# -- through the server, raw ------------------------------------------------------


async def test_without_key_wrong_key_right_key(server: SignalingServer) -> None:
    secret = new_secret()
    key = room_key(secret, "ours")
    a, a_id = await native(server)
    b, b_id = await native(server)
    assert await join_raw(a, "ours", key=key) == {
        "type": "created",
        "room": "ours",
        "connectionId": a_id,
        "capacity": 2,
    }
    for attempt, extra in enumerate(
        [{}, {"key": room_key(new_secret(), "ours")}, {"key": room_key(secret, "other")}]
    ):
        assert await join_raw(b, "ours", id=attempt, **extra) == {
            "type": "error",
            "code": "unauthorized",
            "message": NEEDS_SECRET,
            "ref": attempt,
        }
    # A heard nothing of the refused joins: no peer-joined, no ready.
    await nothing_pending(a)
    assert server.router.members("ours") == (a_id,)
    assert await join_raw(b, "ours", key=key) == {
        "type": "joined",
        "room": "ours",
        "connectionId": b_id,
        "peers": [a_id, b_id],
        "capacity": 2,
    }
    assert await recv_json(a) == {"type": "peer-joined", "room": "ours", "connectionId": b_id}
    assert (await recv_json(a))["type"] == "ready"
    # Being refused is not abuse: the connection stays usable.
    await send_json(b, {"type": "message", "data": "hi"})
    assert (await recv_json(b))["type"] == "ready"
    assert await recv_json(a) == {"type": "message", "from": b_id, "data": "hi"}


async def test_a_refused_joiner_stays_in_its_room_and_learns_nothing(
    server: SignalingServer,
) -> None:
    key = room_key(new_secret(), "keyed")
    a, _ = await native(server)
    b, _ = await native(server)
    c, c_id = await native(server)
    await join_raw(a, "keyed", key=key)
    await join_raw(b, "keyed", key=key)
    await recv_json(a)  # peer-joined
    await recv_json(a)  # ready
    await recv_json(b)  # ready
    await join_raw(c, "mine")
    # The keyed room is full, but a joiner without its key is told only unauthorized.
    assert (await join_raw(c, "keyed"))["code"] == "unauthorized"
    assert (await join_raw(c, "keyed", key=key)) == {"type": "full", "room": "keyed"}
    assert server.router.room_of(c_id) == "mine"
    await nothing_pending(a)
    await nothing_pending(b)


async def test_rooms_without_a_key_are_unchanged(server: SignalingServer) -> None:
    a, a_id = await native(server)
    b, b_id = await native(server)
    assert (await join_raw(a, "open"))["type"] == "created"
    # A key into an open room is refused: a keyed client never lands in a
    # room someone else opened under its name.
    refused = await join_raw(b, "open", key=room_key(new_secret(), "open"), id="k")
    assert refused["code"] == "unauthorized"
    assert "without a secret" in refused["message"]
    assert refused["ref"] == "k"
    assert await join_raw(b, "open") == {
        "type": "joined",
        "room": "open",
        "connectionId": b_id,
        "peers": [a_id, b_id],
        "capacity": 2,
    }
    assert not server.router.is_keyed("open")


@pytest.mark.parametrize(
    "key",
    ["", "short", "A" * 44, 12, ["x"], "+" * 43],
    ids=["empty", "short", "44", "int", "list", "alphabet"],
)
async def test_a_malformed_key_is_bad_message(server: SignalingServer, key: Any) -> None:
    ws, _ = await native(server)
    answer = await join_raw(ws, "r", key=key, id=1)
    assert (answer["code"], answer["ref"]) == ("bad-message", 1)
    assert server.router.room_count == 0


async def test_null_key_is_a_v1_join(server: SignalingServer) -> None:
    ws, _ = await native(server)
    assert (await join_raw(ws, "r", key=None))["type"] == "created"
    assert not server.router.is_keyed("r")


async def test_unauthorized_joins_are_counted(server: SignalingServer) -> None:
    key = room_key(new_secret(), "m")
    a, _ = await native(server)
    b, _ = await native(server)
    await join_raw(a, "m", key=key)
    await join_raw(b, "m")
    await join_raw(b, "m", key=room_key(new_secret(), "m"))
    await join_raw(b, "m", key="A" * 44)  # bad-message: not counted as unauthorized
    await join_raw(b, "m", key=key)
    text = (await http_get(server.port, "/metrics"))[2].decode()
    assert _sample(text, "callapp_signaling_unauthorized_joins_total") == 2
    assert _sample(text, 'callapp_signaling_errors_total{code="unauthorized"}') == 2
    assert key not in text


async def test_require_room_keys(make_server: ServerFactory) -> None:
    server = await make_server(require_room_keys=True)
    ws, _ = await native(server)
    refused = await join_raw(ws, "open", id=1)
    assert (refused["code"], refused["ref"]) == ("unauthorized", 1)
    assert "only with a secret" in refused["message"]
    assert (await join_raw(ws, "keyed", key=room_key(new_secret(), "keyed")))["type"] == "created"


# -- the key is never logged --------------------------------------------------------


async def test_room_keys_never_reach_a_log(
    server: SignalingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: the server's, websockets', the client's
    secret = new_secret()
    key = room_key(secret, "quiet")
    wrong = room_key(new_secret(), "quiet")
    # A raw client logs its own frames (that is test code, not ours): its
    # records go to a logger of its own, left out below.
    raw = await open_ws(server.url, logger=logging.getLogger("tests.raw-client"))
    await recv_json(raw)
    assert (await join_raw(raw, "quiet", key=wrong))["type"] == "created"

    client = SignalingClient(server.url, **FAST)
    other = SignalingClient(server.url, **FAST)
    try:
        await client.connect()
        await other.connect()
        assert isinstance(await client.join("hush", key=key), Created)
        with pytest.raises(Unauthorized):
            await other.join("hush", key=wrong)
        with pytest.raises(Unauthorized):
            await other.join("hush")
        with pytest.raises(Unauthorized):
            await other.join("quiet", key=key)
        assert isinstance(await other.join("hush", key=key), Joined)
        await client.send({"type": "BYE"})
    finally:
        await client.close()
        await other.close()
        await raw.close()

    ours = [r for r in caplog.records if not r.name.startswith("tests.")]
    # The capture works: websockets and the server did log at DEBUG.
    assert any(r.levelno == logging.DEBUG and r.name.startswith("callapp") for r in ours)
    assert any("refused room 'hush'" in r.getMessage() for r in ours)
    for record in ours:
        text = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for value in (key, wrong, secret):
            assert value not in text, (record.name, text)
    # And the raw client's own frame logs show the test would see a key that leaked.
    raw_text = " ".join(r.getMessage() for r in caplog.records if r.name == "tests.raw-client")
    assert wrong[-12:] in raw_text


# -- the client ------------------------------------------------------------------------


async def test_client_join_with_a_key(server: SignalingServer) -> None:
    key = room_key(new_secret(), "c")
    async with SignalingClient(server.url, **FAST) as a, SignalingClient(server.url, **FAST) as b:
        assert await a.join("c", key=key) == Created("c", ident(a))
        with pytest.raises(Unauthorized) as refused:
            await b.join("c")
        assert isinstance(refused.value, SignalingError)
        assert refused.value.room == "c"
        assert refused.value.reason == NEEDS_SECRET
        assert str(refused.value) == f"Not let into room 'c': {NEEDS_SECRET}"
        assert b.room is None
        await b.join("elsewhere")
        with pytest.raises(Unauthorized):
            await b.join("c", key=room_key(new_secret(), "c"))
        assert b.room == "elsewhere"
        assert await b.join("c", key=key) == Joined("c", ident(b), (ident(a), ident(b)))


@pytest.mark.parametrize("key", ["", "x" * 43, "A" * 42, "+" * 43])
async def test_client_refuses_a_malformed_key_before_sending(
    server: SignalingServer, key: str
) -> None:
    async with SignalingClient(server.url) as client:
        with pytest.raises(ValueError, match="a room key is 43 base64url characters") as bad:
            await client.join("r", key=key)
        if key:
            assert key not in str(bad.value)
    assert server.router.room_count == 0


async def test_a_rejoin_sends_the_key_again(make_server: ServerFactory) -> None:
    first = await make_server()
    port = first.port
    key = room_key(new_secret(), "back")
    async with SignalingClient(first.url, **FAST) as client:
        events = Events(client)
        await client.join("back", key=key)
        await first.stop()
        await events.next()  # Disconnected
        second = await make_server(port=port)
        reconnected = await events.next()
        assert isinstance(reconnected, Reconnected)
        assert reconnected.rejoined == Created("back", ident(client))
        # The room the rejoin made again is keyed with the same key.
        assert second.router.is_keyed("back")
        async with SignalingClient(second.url, **FAST) as guest:
            with pytest.raises(Unauthorized):
                await guest.join("back")
            assert isinstance(await guest.join("back", key=key), Joined)
        event: ClientEvent = await events.next()
        assert isinstance(event, PeerJoined)
        assert isinstance(await events.next(), Ready)


async def test_a_rejoin_refused_as_unauthorized_leaves_the_room(make_server: ServerFactory) -> None:
    first = await make_server()
    port = first.port
    key = room_key(new_secret(), "taken")
    # Slow to reconnect, so that someone else makes the room first.
    client = SignalingClient(first.url, backoff_initial=0.6, backoff_max=1.0)
    try:
        await client.connect()
        events = Events(client)
        await client.join("taken", key=key)
        await first.stop()
        await events.next()  # Disconnected
        second = await make_server(port=port)
        squatter, squatter_id = await native(second)
        assert (await join_raw(squatter, "taken"))["type"] == "created"
        reconnected = await events.next()
        assert isinstance(reconnected, Reconnected)
        assert reconnected.rejoined is None
        assert (client.room, client.room_capacity) == (None, None)
        assert second.router.members("taken") == (squatter_id,)
    finally:
        await client.close()


# -- invite links drive the client ------------------------------------------------------


async def test_an_invite_link_carries_what_the_join_needs(server: SignalingServer) -> None:
    secret = new_secret()
    url = server.url
    link = format_invite(url, "via-link", secret=secret)
    invite = parse_invite(link)
    assert invite.server_url == url
    assert "#secret=" in link
    # The client takes the link itself as its server address, too.
    async with (
        SignalingClient(link, **FAST) as host,
        SignalingClient(invite.server_url, **FAST) as guest,
    ):
        assert host.url == url
        assert invite.secret is not None
        key = room_key(invite.secret, invite.room)
        assert isinstance(await host.join(invite.room, key=key), Created)
        assert isinstance(await guest.join(invite.room, key=key), Joined)
