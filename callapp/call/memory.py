"""An in-memory signaling server and its channels: calls in tests, no sockets.

:class:`MemoryHub` follows PROTOCOL.md's room and relay rules closely enough
for a call session (capacity-2 rooms, ``created``/``joined``/``peer-joined``/
``ready``/``peer-left``, relay by id or to the room, ``unknown-peer``);
:class:`MemoryChannel` is one client of it and satisfies
:class:`~callapp.call.channel.SignalingChannel`. Tests can also look at what
went over the wire (:attr:`MemoryHub.log`) and cut a channel off
(:meth:`MemoryChannel.drop` / :meth:`MemoryChannel.restore`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from callapp.call import errors
from callapp.call.channel import ChannelClosed, ChannelLost, ChannelRestored
from callapp.signaling import messages


class MemoryHub:
    """The server side: rooms and live channels, all in this process."""

    def __init__(self, *, ice_servers: Sequence[Mapping[str, Any]] = (), capacity: int = 2) -> None:
        self.ice_servers: tuple[dict[str, Any], ...] = tuple(dict(s) for s in ice_servers)
        self.capacity = capacity
        self.rooms: dict[str, list[str]] = {}
        self.channels: dict[str, MemoryChannel] = {}
        #: (from, to, data) of every relayed message, in order.
        self.log: list[tuple[str, str, Any]] = []
        self._ids = itertools.count(1)

    def channel(self) -> MemoryChannel:
        """A new, not yet connected, client of this hub."""
        return MemoryChannel(self)

    def _new_id(self) -> str:
        return f"peer{next(self._ids):02d}"

    def _room_of(self, cid: str) -> str | None:
        for name, members in self.rooms.items():
            if cid in members:
                return name
        return None

    def _deliver(self, cid: str, event: object) -> None:
        channel = self.channels.get(cid)
        if channel is not None:
            channel._queue.put_nowait(event)

    def _join(self, cid: str, room: str) -> messages.Created | messages.Joined:
        if not messages.is_valid_room_name(room):
            raise errors.BadRoomError("room names are 1-64 letters, digits, '-', '_' or '.'")
        current = self._room_of(cid)
        members = self.rooms.get(room, [])
        if current == room:
            return messages.Joined(room=room, connection_id=cid, peers=tuple(members))
        if len(members) >= self.capacity:
            raise errors.RoomFullError(f"room {room} is full")
        if current is not None:
            self._leave(cid)
        members = self.rooms.setdefault(room, [])
        members.append(cid)
        for other in members[:-1]:
            self._deliver(other, messages.PeerJoined(room=room, connection_id=cid))
        reply: messages.Created | messages.Joined
        if len(members) == 1:
            reply = messages.Created(room=room, connection_id=cid)
        else:
            reply = messages.Joined(room=room, connection_id=cid, peers=tuple(members))
        if len(members) == self.capacity:
            for member in members:
                self._deliver(member, messages.Ready(room=room, peers=tuple(members)))
        return reply

    def _leave(self, cid: str) -> None:
        room = self._room_of(cid)
        if room is None:
            return
        members = self.rooms[room]
        members.remove(cid)
        for other in members:
            self._deliver(other, messages.PeerLeft(room=room, connection_id=cid))
        if not members:
            del self.rooms[room]

    def _send(self, cid: str, data: Any, to: str | None) -> None:
        if to is not None:
            if to not in self.channels:
                self._deliver(
                    cid,
                    messages.Error(
                        code=messages.ErrorCode.UNKNOWN_PEER, message=f"no connection {to}"
                    ),
                )
                return
            targets = [to]
        else:
            room = self._room_of(cid)
            if room is None:
                self._deliver(
                    cid,
                    messages.Error(code=messages.ErrorCode.NOT_IN_ROOM, message="not in a room"),
                )
                return
            targets = [m for m in self.rooms[room] if m != cid]
        for target in targets:
            self.log.append((cid, target, data))
            self._deliver(target, messages.Relayed(sender=cid, data=data))

    def _disconnect(self, cid: str) -> None:
        self._leave(cid)
        self.channels.pop(cid, None)


class MemoryChannel:
    """One client of a :class:`MemoryHub`."""

    def __init__(self, hub: MemoryHub) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._id: str | None = None
        self._room: str | None = None
        self._closed = False

    @property
    def connection_id(self) -> str | None:
        return self._id

    @property
    def ice_servers(self) -> Sequence[Mapping[str, Any]]:
        return self._hub.ice_servers

    @property
    def room(self) -> str | None:
        return self._room

    async def connect(self) -> messages.Welcome:
        if self._closed:
            raise errors.NotConnected("the channel is closed")
        self._id = self._hub._new_id()
        self._hub.channels[self._id] = self
        return messages.Welcome(
            connection_id=self._id, server="callapp/memory", ice_servers=self._hub.ice_servers
        )

    def _require(self) -> str:
        if self._id is None or self._closed:
            raise errors.NotConnected("not connected to the signaling hub")
        return self._id

    async def join(self, room: str) -> messages.Created | messages.Joined:
        reply = self._hub._join(self._require(), room)
        self._room = room
        return reply

    async def leave(self) -> None:
        self._hub._leave(self._require())
        self._room = None

    async def send(self, data: Any, to: str | None = None) -> None:
        self._hub._send(self._require(), data, to)

    async def events(self) -> AsyncIterator[object]:
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, ChannelClosed):
                return

    def drop(self) -> None:
        """Simulate a lost connection: leave the hub, report ``ChannelLost``."""
        if self._id is not None:
            self._hub._disconnect(self._id)
        self._queue.put_nowait(ChannelLost(reason="dropped by the test"))

    async def restore(self) -> str:
        """Reconnect with a new id, rejoin the room, report ``ChannelRestored``."""
        welcome = await self.connect()
        rejoined = self._room is not None
        self._queue.put_nowait(
            ChannelRestored(connection_id=welcome.connection_id, rejoined=rejoined)
        )
        if self._room is not None:
            self._hub._join(welcome.connection_id, self._room)
        return welcome.connection_id

    async def close(self) -> None:
        if self._closed:
            return
        if self._id is not None:
            self._hub._disconnect(self._id)
        self._closed = True
        self._queue.put_nowait(ChannelClosed(reason="closed"))


def pair(hub: MemoryHub | None = None) -> tuple[MemoryChannel, MemoryChannel]:
    """Two channels on one hub (a new one unless given)."""
    hub = hub or MemoryHub()
    return hub.channel(), hub.channel()
