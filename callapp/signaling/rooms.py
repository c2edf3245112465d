"""Rooms and relaying, sans-I/O: (connection, request) in, deliveries out.

:class:`RoomRouter` is the whole of protocol v1's room and relay semantics.
It keeps which connections are live and which room each is in, and answers
every event with a list of :class:`Deliver` values, in the order they must be
sent. It never performs I/O, never reads a clock and never raises because of
what a peer sent: peer mistakes become ``error`` deliveries. Calling it
wrongly (an event for a connection it does not know) raises ``ValueError``.

Transitions of one connection::

    event                 not in a room                 in room R
    join R2 (room free)   -> in R2: created/joined      -> leaves R (peer-left), in R2
    join R2 (full)        full, stays                   full, stays in R
    join R2 (new, at      busy, stays                   busy, stays in R (unless
      max_rooms)                                        alone in R: R is freed)
    join R (same room)    -                             joined with current peers
    leave                 ignored                       -> not in a room; peer-left to R
    message to ID         relayed (or unknown-peer)     relayed (or unknown-peer)
    message to room       not-in-room                   relayed to R's other members
    disconnect            forgotten                     peer-left to R; forgotten
"""

from __future__ import annotations

from dataclasses import dataclass

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
    Request,
    Send,
    ServerMessage,
)

DEFAULT_ROOM_CAPACITY = 2


@dataclass(frozen=True, slots=True)
class Deliver:
    """Send ``message`` to connection ``to``."""

    to: str
    message: ServerMessage


class RoomRouter:
    """Room membership and message routing for one signaling server.

    ``capacity`` is the number of members that makes a room complete (and
    full); ``max_rooms`` caps how many rooms may exist at once (``busy``).
    """

    def __init__(self, capacity: int = DEFAULT_ROOM_CAPACITY, max_rooms: int | None = None) -> None:
        if capacity < 2:
            raise ValueError("a room needs a capacity of at least 2")
        self.capacity = capacity
        self.max_rooms = max_rooms
        self._room_of: dict[str, str | None] = {}
        # Members in join order: the first is the caller.
        self._rooms: dict[str, list[str]] = {}

    # -- queries -----------------------------------------------------------

    def is_connected(self, connection_id: str) -> bool:
        return connection_id in self._room_of

    def room_of(self, connection_id: str) -> str | None:
        return self._room_of.get(connection_id)

    def members(self, room: str) -> tuple[str, ...]:
        """Members of ``room`` in join order (empty for a room that does not exist)."""
        return tuple(self._rooms.get(room, ()))

    @property
    def connection_count(self) -> int:
        return len(self._room_of)

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    # -- events ------------------------------------------------------------

    def connect(self, connection_id: str) -> None:
        """Register a new live connection (not yet in any room)."""
        if connection_id in self._room_of:
            raise ValueError(f"connection {connection_id!r} is already connected")
        self._room_of[connection_id] = None

    def disconnect(self, connection_id: str) -> list[Deliver]:
        """Forget a closed or dropped connection; it leaves its room."""
        self._require(connection_id)
        deliveries = self._leave_room(connection_id)
        del self._room_of[connection_id]
        return deliveries

    def handle(self, connection_id: str, request: Request) -> list[Deliver]:
        """Apply one parsed request from ``connection_id``."""
        self._require(connection_id)
        match request:
            case Join():
                return self._join(connection_id, request)
            case Leave():
                return self._leave_room(connection_id)
            case Send():
                return self._send(connection_id, request)
        raise TypeError(f"not a request: {request!r}")

    # -- transitions ---------------------------------------------------------

    def _require(self, connection_id: str) -> None:
        if connection_id not in self._room_of:
            raise ValueError(f"unknown connection {connection_id!r}: connect() it first")

    def _join(self, joiner: str, request: Join) -> list[Deliver]:
        room = request.room
        current = self._room_of[joiner]
        members = self._rooms.get(room)
        if current == room and members is not None:
            return [Deliver(joiner, Joined(room, joiner, tuple(members)))]
        if members is not None and len(members) >= self.capacity:
            return [Deliver(joiner, Full(room))]
        if members is None and self.max_rooms is not None:
            # A joiner alone in its current room frees that room as it moves,
            # so the move does not add a room.
            freed = current is not None and len(self._rooms[current]) == 1
            if len(self._rooms) - freed >= self.max_rooms:
                error = Error(
                    ErrorCode.BUSY, "the server has too many rooms; try later", request.id
                )
                return [Deliver(joiner, error)]

        deliveries = self._leave_room(joiner)
        if members is None:
            members = self._rooms[room] = []
        members.append(joiner)
        self._room_of[joiner] = room
        peers = tuple(members)
        if len(members) == 1:
            deliveries.append(Deliver(joiner, Created(room, joiner)))
        else:
            deliveries.append(Deliver(joiner, Joined(room, joiner, peers)))
            deliveries.extend(Deliver(m, PeerJoined(room, joiner)) for m in peers if m != joiner)
        if len(members) == self.capacity:
            deliveries.extend(Deliver(m, Ready(room, peers)) for m in peers)
        return deliveries

    def _leave_room(self, leaver: str) -> list[Deliver]:
        room = self._room_of[leaver]
        if room is None:
            return []
        members = self._rooms[room]
        members.remove(leaver)
        self._room_of[leaver] = None
        if not members:
            del self._rooms[room]
        return [Deliver(m, PeerLeft(room, leaver)) for m in members]

    def _send(self, sender: str, request: Send) -> list[Deliver]:
        relayed = Relayed(sender=sender, data=request.data)
        if request.to is not None:
            if request.to not in self._room_of:
                error = Error(ErrorCode.UNKNOWN_PEER, "no connection has that id", request.id)
                return [Deliver(sender, error)]
            return [Deliver(request.to, relayed)]
        room = self._room_of[sender]
        if room is None:
            error = Error(
                ErrorCode.NOT_IN_ROOM, "join a room first, or name a peer in 'to'", request.id
            )
            return [Deliver(sender, error)]
        return [Deliver(m, relayed) for m in self._rooms[room] if m != sender]
