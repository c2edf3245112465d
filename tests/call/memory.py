"""An in-memory signaling server and its channels: calls in tests, no sockets.

:class:`MemoryHub` is the real :class:`~callapp.signaling.rooms.RoomRouter`
behind the steps :class:`~callapp.signaling.server.SignalingServer` takes
around it, minus the sockets, the size and rate limits and the clock: each
request a :class:`MemoryChannel` makes is encoded as
:class:`~callapp.signaling.client.SignalingClient` would send it and parsed
as the server would (so bad room names and capacities fail as they do
there), the router decides, and each delivery is encoded and parsed back
into the :mod:`callapp.signaling.messages` value the real client would
yield. The room rules (per-room capacity, ``full``, ``ready``,
``peer-left``, ``busy``, ``unknown-peer``, ...) are therefore the server's
own, and relayed ``data`` arrives as equal JSON, never as the sender's
object.

:class:`MemoryChannel` is one client and satisfies
:class:`~callapp.call.channel.SignalingChannel`. Its errors are those a
:class:`CallSession` sees from the real client once
:func:`~callapp.call.channel.translate` has mapped them: a full room raises
:exc:`~callapp.call.errors.RoomFullError`, a bad room name
:exc:`~callapp.call.errors.BadRoomError`, any other refused join (a
capacity the hub does not allow, ``busy``) a
:exc:`~callapp.call.errors.CallError`; using a channel before
:meth:`~MemoryChannel.connect` or after :meth:`~MemoryChannel.close` raises
:exc:`~callapp.call.errors.NotConnected`, and while dropped
:exc:`~callapp.call.errors.ServerUnavailable`.

Tests can look at what went over the wire (:attr:`MemoryHub.log`), at the
router itself (:attr:`MemoryHub.router`), cut a channel off and bring
it back (:meth:`MemoryChannel.drop` / :meth:`MemoryChannel.restore`), and
stop the whole server (:meth:`MemoryHub.stop`: everyone is dropped, nobody
hears ``peer-left``)::

    hub = MemoryHub(max_room_capacity=4)
    a, b = pair(hub)
    await a.connect()
    await b.connect()
    await a.join("group", capacity=3)     # Created(..., capacity=3)
    await b.join("group")                 # Joined(..., capacity=3); no Ready yet
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from callapp.call import errors
from callapp.call.channel import ChannelClosed, ChannelLost, ChannelRestored, translate
from callapp.signaling import client, messages
from callapp.signaling.rooms import (
    DEFAULT_MAX_ROOM_CAPACITY,
    DEFAULT_ROOM_CAPACITY,
    Deliver,
    RoomRouter,
)

__all__ = ["MemoryChannel", "MemoryHub", "pair"]

#: What a channel receives: a server message as the client parses it.
_Received = tuple[str, messages.ServerMessage | messages.UnknownServerMessage]


def _call_error(exc: client.SignalingError) -> errors.CallError:
    """``exc`` as the call error a session sees from the real client."""
    translated = translate(exc)
    assert translated is not None, "every SignalingError has a CallError"
    return translated


class MemoryHub:
    """The server side: a real :class:`RoomRouter` and the live channels, in this process.

    Args:
        capacity: The capacity of rooms whose creator asks for none.
        max_room_capacity: The largest capacity a join may ask for (2-8).
        max_rooms: Rooms that may exist at once (``busy`` beyond);
            :obj:`None` means no limit.
        ice_servers: ``RTCIceServer`` objects of every ``welcome``.

    Raises:
        ValueError: If the capacities are out of range, as for the server.

    Attributes:
        router: The room router; tests may query it (``members``,
            ``capacity_of``, ...) but should change it only through channels.
        channels: The live channels by connection id.
        log: ``(from, to, data)`` of every relayed message, in the order the
            hub routed them, ``data`` as the receiver got it.
    """

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_ROOM_CAPACITY,
        max_room_capacity: int = DEFAULT_MAX_ROOM_CAPACITY,
        max_rooms: int | None = None,
        ice_servers: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.router = RoomRouter(
            capacity=capacity, max_rooms=max_rooms, max_room_capacity=max_room_capacity
        )
        self.ice_servers: tuple[dict[str, Any], ...] = tuple(dict(s) for s in ice_servers)
        self.channels: dict[str, MemoryChannel] = {}
        self.log: list[tuple[str, str, Any]] = []
        self._ids = itertools.count(1)

    @property
    def capacity(self) -> int:
        """The capacity of rooms whose creator asks for none."""
        return self.router.capacity

    @property
    def max_room_capacity(self) -> int:
        """The largest capacity a join may ask for."""
        return self.router.max_room_capacity

    @property
    def rooms(self) -> dict[str, tuple[str, ...]]:
        """Each room that exists and its members in join order (a fresh dict)."""
        return {room: self.router.members(room) for room in self.router.room_names()}

    def channel(self) -> MemoryChannel:
        """A new, not yet connected, client of this hub."""
        return MemoryChannel(self)

    def stop(self) -> None:
        """The server goes away: every live channel is dropped at once.

        Nobody hears ``peer-left`` (there is no server left to say it); each
        channel reports ``ChannelLost`` and keeps its room, so that
        :meth:`MemoryChannel.restore` (the server back) rejoins it.
        """
        for connection_id, channel in list(self.channels.items()):
            del self.channels[connection_id]
            self.router.disconnect(connection_id)  # deliveries to nobody
            channel._lose("the server went away")

    # -- the server's steps, for MemoryChannel ------------------------------------

    def _connect(self, channel: MemoryChannel) -> str:
        connection_id = f"peer{next(self._ids):02d}"
        self.router.connect(connection_id)
        self.channels[connection_id] = channel
        return connection_id

    def _disconnect(self, connection_id: str) -> None:
        del self.channels[connection_id]
        self._dispatch(self._received(self.router.disconnect(connection_id)))

    def _route(self, sender: str, request: messages.Request) -> list[_Received]:
        """What ``request`` from ``sender`` makes the server send, as clients read it.

        Raises ``TypeError``/``ValueError`` for ``data`` that is not JSON,
        as the real client's send does.
        """
        try:
            parsed = messages.parse_request(messages.encode_request(request))
        except messages.ProtocolError as exc:
            return self._received([Deliver(sender, exc.to_message())])
        return self._received(self.router.handle(sender, parsed))

    def _received(self, deliveries: Sequence[Deliver]) -> list[_Received]:
        """``deliveries`` as each recipient's client parses them; relays are logged."""
        out: list[_Received] = []
        for delivery in deliveries:
            message = messages.parse_server_message(messages.encode(delivery.message))
            if isinstance(message, messages.Relayed):
                self.log.append((message.sender, delivery.to, message.data))
            out.append((delivery.to, message))
        return out

    def _dispatch(self, out: Sequence[_Received]) -> None:
        for to, message in out:
            channel = self.channels.get(to)
            if channel is not None:
                channel._receive(message)

    def _join(
        self, joiner: str, room: str, capacity: int | None, ref: str, key: str | None = None
    ) -> messages.ServerMessage | messages.UnknownServerMessage:
        """Route a join; returns its answer and dispatches everything else."""
        answer: messages.ServerMessage | messages.UnknownServerMessage | None = None
        rest: list[_Received] = []
        join = messages.Join(room, capacity, id=ref, key=key)
        for to, message in self._route(joiner, join):
            if answer is None and to == joiner and _answers(message, room, ref):
                answer = message
            else:
                rest.append((to, message))
        self._dispatch(rest)
        assert answer is not None, "the router answers every join"
        return answer


def _answers(
    message: messages.ServerMessage | messages.UnknownServerMessage, room: str, ref: str
) -> bool:
    """True if ``message`` answers the join of ``room`` with id ``ref``, as the client matches."""
    match message:
        case messages.Created() | messages.Joined() | messages.Full():
            return message.room == room
        case messages.Error():
            return bool(message.ref == ref)
    return False


class MemoryChannel:
    """One client of a :class:`MemoryHub`; a :class:`~callapp.call.channel.SignalingChannel`.

    Its states: new (:meth:`connect` it), live, dropped (after :meth:`drop`,
    until :meth:`restore`) and closed (for good).
    """

    def __init__(self, hub: MemoryHub) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        # While restore() rejoins: own deliveries wait for ChannelRestored.
        self._held: list[object] | None = None
        self._id: str | None = None
        self._live = False
        self._closed = False
        self._room: str | None = None
        self._room_capacity: int | None = None
        self._room_key: str | None = None
        self._refs = itertools.count(1)

    @property
    def connection_id(self) -> str | None:
        """The id on the hub; kept while dropped, new after :meth:`restore`."""
        return self._id

    @property
    def ice_servers(self) -> Sequence[Mapping[str, Any]]:
        return self._hub.ice_servers

    @property
    def room(self) -> str | None:
        """The room joined; kept while dropped, so that :meth:`restore` rejoins it."""
        return self._room

    @property
    def room_capacity(self) -> int | None:
        """:attr:`room`'s capacity from the latest ``created``/``joined``."""
        return self._room_capacity

    async def connect(self) -> messages.Welcome:
        """Connect (once; again returns the same ``welcome``)."""
        if self._closed:
            raise errors.NotConnected("the channel is closed")
        if self._id is not None and not self._live:
            raise errors.ServerUnavailable("the channel was dropped; restore() it")
        if self._id is None:
            self._id = self._hub._connect(self)
            self._live = True
        return self._welcome()

    def _welcome(self) -> messages.Welcome:
        assert self._id is not None
        return messages.Welcome(
            connection_id=self._id, server="callapp/memory", ice_servers=self._hub.ice_servers
        )

    def _require(self) -> str:
        if self._closed or self._id is None:
            raise errors.NotConnected("not connected to the signaling hub")
        if not self._live:
            raise errors.ServerUnavailable("the signaling hub dropped this channel (reconnecting)")
        return self._id

    async def join(
        self, room: str, capacity: int | None = None, key: str | None = None
    ) -> messages.Created | messages.Joined:
        """Join ``room``, asking for ``capacity`` should this create it.

        Returns ``Created`` or ``Joined`` (each with the room's capacity);
        ``PeerJoined``/``Ready`` arrive through :meth:`events`. Raises
        :exc:`RoomFullError`, :exc:`BadRoomError`, or :exc:`CallError` for
        a capacity the hub does not allow or ``busy``; the channel then
        stays where it was.
        """
        answer = self._hub._join(self._require(), room, capacity, f"join-{next(self._refs)}", key)
        match answer:
            case messages.Created() | messages.Joined():
                self._room, self._room_capacity = room, answer.capacity
                self._room_key = key
                return answer
            case messages.Error(code=messages.ErrorCode.UNAUTHORIZED):
                raise errors.RoomLockedError(answer.message)
            case messages.Full():
                raise _call_error(client.RoomFull(room))
            case messages.Error(code=messages.ErrorCode.BAD_ROOM):
                raise _call_error(client.BadRoom(room))
            case messages.Error(code=messages.ErrorCode.BAD_MESSAGE) if capacity is not None:
                raise _call_error(client.BadCapacity(capacity, answer.message))
            case messages.Error():
                raise _call_error(client.ServerError(answer.code, answer.message))
        raise AssertionError(f"not an answer to a join: {answer!r}")

    async def leave(self) -> None:
        """Leave the room, if any; those who stay get ``PeerLeft``.

        While dropped this only forgets the room, so that :meth:`restore`
        does not rejoin it (as the real client does: the server already
        dropped the old connection).
        """
        if self._live or self._closed or self._id is None:
            self._hub._dispatch(self._hub._route(self._require(), messages.Leave()))
        self._room = self._room_capacity = None
        self._room_key = None

    async def send(self, data: Any, to: str | None = None) -> None:
        """Relay ``data`` to ``to`` or the room; failures arrive as ``Error`` events."""
        self._hub._dispatch(self._hub._route(self._require(), messages.Send(data=data, to=to)))

    async def events(self) -> AsyncIterator[object]:
        """Server messages and lifecycle events, in order, until :class:`ChannelClosed`."""
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, ChannelClosed):
                return

    def _receive(self, event: object) -> None:
        if self._held is not None:
            self._held.append(event)
        else:
            self._queue.put_nowait(event)

    def drop(self) -> None:
        """Simulate a lost connection: the hub forgets it; report ``ChannelLost``.

        The others in its room get ``PeerLeft``, as when a server notices a
        dead connection. :attr:`room` is kept for :meth:`restore`.
        """
        connection_id = self._require()
        self._live = False
        self._hub._disconnect(connection_id)
        self._queue.put_nowait(ChannelLost(reason="dropped by the test"))

    def _lose(self, reason: str) -> None:
        """The hub went away (:meth:`MemoryHub.stop`): report ``ChannelLost``."""
        self._live = False
        self._queue.put_nowait(ChannelLost(reason=reason))

    async def restore(self) -> str:
        """Reconnect with a new id and rejoin :attr:`room`, as the real client does.

        The rejoin asks for the room's last known capacity. Events come in
        the real client's order: ``ChannelRestored`` (``rejoined`` false if
        the room could not be rejoined, which also forgets :attr:`room`),
        then what the rejoin caused (``Ready``, ...). Returns the new id.
        """
        if self._closed or self._id is None or self._live:
            raise RuntimeError("restore() brings back a channel after drop()")
        self._id = self._hub._connect(self)
        self._live = True
        rejoined = False
        reply: messages.Created | messages.Joined | None = None
        self._held = []
        try:
            if self._room is not None:
                capacity = self._room_capacity
                if not messages.is_valid_room_capacity(capacity):
                    capacity = None
                try:
                    reply = await self.join(self._room, capacity, self._room_key)
                    rejoined = True
                except errors.CallError:
                    self._room = self._room_capacity = None
            peers = getattr(reply, "peers", None) or ((self._id,) if rejoined else ())
            self._queue.put_nowait(
                ChannelRestored(
                    connection_id=self._id,
                    rejoined=rejoined,
                    peers=tuple(peers),
                    capacity=reply.capacity if reply is not None else None,
                )
            )
        finally:
            held, self._held = self._held, None
        for event in held:
            self._queue.put_nowait(event)
        return self._id

    async def close(self) -> None:
        """Leave the hub for good; report ``ChannelClosed`` (idempotent)."""
        if self._closed:
            return
        if self._live and self._id is not None:
            self._hub._disconnect(self._id)
        self._live = False
        self._closed = True
        self._queue.put_nowait(ChannelClosed(reason="closed"))


def pair(hub: MemoryHub | None = None) -> tuple[MemoryChannel, MemoryChannel]:
    """Two channels on one hub (a new one unless given)."""
    hub = hub or MemoryHub()
    return hub.channel(), hub.channel()
