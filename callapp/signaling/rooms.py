"""Rooms and relaying, sans-I/O: (connection, request) in, deliveries out.

:class:`RoomRouter` is the whole of protocol v1's room and relay semantics,
with callapp's room capacity and room key extensions. It keeps which
connections are live, which room each is in and each room's capacity and
key, and answers every event with a list of :class:`Deliver` values, in the
order they must be sent. It never performs I/O, never reads a clock and
never raises because of what a peer sent: peer mistakes become ``error``
deliveries. Calling it wrongly (an event for a connection it does not know)
raises ``ValueError``.

A room's capacity is fixed when it is created: the join's ``capacity`` if
it has one, else the router's default. The room is complete (``ready`` to
every member) when it reaches that capacity, and ``full`` from then on.

A room's key is fixed when it is created too: the creating join's ``key``,
or none. Keys are opaque strings here (what they are derived from is the
clients' business): every later join into the room must carry the same key
(compared in constant time), and a join carrying a key into a room made
without one is refused as well, so that a client holding a secret never
lands in an open room someone else made under that name. ``key(R)`` below
is room R's key or none, ``k`` the join's.

Transitions of one connection (``cap(R)`` is room R's capacity)::

    event                 not in a room                 in room R
    join R2 asking more   bad-message, stays            bad-message, stays in R
      than max_room_capacity
    join R2 (exists,      unauthorized, stays           unauthorized, stays in R
      k != key(R2))                                     (R2 = R included)
    join R2 (new, no k,   unauthorized, stays           unauthorized, stays in R
      require_keys)
    join R2 (new room)    -> in R2, created; cap(R2)    -> leaves R (peer-left), in
                          = capacity asked or default;  R2, created; cap(R2) and
                          key(R2) = k                   key(R2) likewise
    join R2 (n < cap(R2)  -> in R2: joined (capacity    -> leaves R (peer-left), in
      members)            asked is ignored)             R2: joined
    join R2 (full: n =    full, stays                   full, stays in R
      cap(R2))
    join R2 (new, at      busy, stays                   busy, stays in R (unless
      max_rooms)                                        alone in R: R is freed)
    join R (same room)    -                             joined with current peers
    leave                 ignored                       -> not in a room; peer-left to R
    message to ID         relayed (or unknown-peer)     relayed (or unknown-peer)
    message to room       not-in-room                   relayed to R's other members
    disconnect            forgotten                     peer-left to R; forgotten

A join that brings room R to ``cap(R)`` members also sends ``ready`` to
every member of R. An ``unauthorized`` join changes nothing and tells the
room's members nothing; it is answered before ``full``, so a refused joiner
does not learn whether the room is full.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import msgspec

from callapp.signaling.messages import (
    DEFAULT_ROOM_CAPACITY,
    MAX_ROOM_CAPACITY,
    MIN_ROOM_CAPACITY,
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

__all__ = [
    "DEFAULT_MAX_ROOM_CAPACITY",
    "DEFAULT_ROOM_CAPACITY",
    "MAX_ROOM_CAPACITY",
    "MIN_ROOM_CAPACITY",
    "Deliver",
    "RoomRouter",
    "RoomState",
]

#: The largest capacity a join may ask for, unless the router is told otherwise.
DEFAULT_MAX_ROOM_CAPACITY = 4


class Deliver(msgspec.Struct, frozen=True):
    """Send ``message`` to connection ``to``.

    A frozen :class:`msgspec.Struct`, not a dataclass: one is made per
    relayed message and recipient (see :class:`~callapp.signaling.messages.Send`).
    """

    to: str
    message: ServerMessage


@dataclass(frozen=True, slots=True)
class RoomState:
    """One room as it stands: what :meth:`RoomRouter.room_state` gives and
    :meth:`RoomRouter.restore_room` takes back.

    For a transport that keeps rooms outside one router (the Redis backplane
    stores them between events and rebuilds a router per event), so that the
    rules still run in :class:`RoomRouter` alone. ``members`` are in join
    order (the first is the caller); ``key`` is the room key it was created
    with, or :obj:`None`, and is left out of ``repr()``.
    """

    members: tuple[str, ...]
    capacity: int
    key: str | None = field(default=None, repr=False)


class RoomRouter:
    """Room membership and message routing for one signaling server.

    Args:
        capacity: The capacity of a room whose creator asked for none: the
            members that make it complete (and full).
        max_rooms: How many rooms may exist at once; a join that would
            create one more is answered ``busy``. :obj:`None`: no limit.
        max_room_capacity: The largest ``capacity`` a join may ask for
            (2-8); a join asking for more is answered ``bad-message``, with
            a message saying what this server allows.
        require_keys: Only joins that carry a ``key`` may create rooms; a
            keyless join that would create one is answered
            ``unauthorized``. Off by default (protocol v1's open rooms).

    Raises:
        ValueError: If ``capacity`` is below 2, ``max_room_capacity`` is
            outside 2-8, or ``capacity`` is above ``max_room_capacity``.
    """

    def __init__(
        self,
        capacity: int = DEFAULT_ROOM_CAPACITY,
        max_rooms: int | None = None,
        max_room_capacity: int = DEFAULT_MAX_ROOM_CAPACITY,
        require_keys: bool = False,
    ) -> None:
        if capacity < MIN_ROOM_CAPACITY:
            raise ValueError(f"a room needs a capacity of at least {MIN_ROOM_CAPACITY}")
        if not MIN_ROOM_CAPACITY <= max_room_capacity <= MAX_ROOM_CAPACITY:
            raise ValueError(
                f"max_room_capacity must be {MIN_ROOM_CAPACITY} to {MAX_ROOM_CAPACITY}, "
                f"not {max_room_capacity}"
            )
        if capacity > max_room_capacity:
            raise ValueError(
                f"the default room capacity ({capacity}) is above "
                f"max_room_capacity ({max_room_capacity})"
            )
        self.capacity = capacity
        self.max_rooms = max_rooms
        self.max_room_capacity = max_room_capacity
        self.require_keys = require_keys
        self._room_of: dict[str, str | None] = {}
        # Members in join order: the first is the caller.
        self._rooms: dict[str, list[str]] = {}
        # Fixed by the join that created the room; forgotten with it.
        self._capacity: dict[str, int] = {}
        # Keyed rooms only, fixed by the join that created the room; forgotten with it.
        self._keys: dict[str, str] = {}

    # -- queries -----------------------------------------------------------

    def is_connected(self, connection_id: str) -> bool:
        return connection_id in self._room_of

    def room_of(self, connection_id: str) -> str | None:
        return self._room_of.get(connection_id)

    def members(self, room: str) -> tuple[str, ...]:
        """Members of ``room`` in join order (empty for a room that does not exist)."""
        return tuple(self._rooms.get(room, ()))

    def capacity_of(self, room: str) -> int | None:
        """The capacity ``room`` was created with (:obj:`None` if it does not exist)."""
        return self._capacity.get(room)

    def is_keyed(self, room: str) -> bool:
        """True if ``room`` exists and was created with a key (the key itself is never exposed)."""
        return room in self._keys

    def room_names(self) -> tuple[str, ...]:
        """The rooms that exist (each has at least one member), oldest first."""
        return tuple(self._rooms)

    def room_state(self, room: str) -> RoomState | None:
        """``room`` as it stands (key included), or :obj:`None` if it does not exist."""
        members = self._rooms.get(room)
        if members is None:
            return None
        return RoomState(tuple(members), self._capacity[room], self._keys.get(room))

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

    def restore_room(self, room: str, state: RoomState) -> None:
        """Put back a room as :meth:`room_state` gave it, sending nothing.

        Members not yet connected are connected; each ends up in ``room``,
        in the order given. A restored room then follows every rule as if
        its joins had happened here (``max_rooms`` counts it too).

        Raises:
            ValueError: If ``room`` exists, ``state`` has no members, repeats
                one, has more than its capacity, a capacity outside 2-8, or
                names a connection that is already in a room.
        """
        members = state.members
        if room in self._rooms:
            raise ValueError(f"room {room!r} already exists")
        if not members or len(set(members)) != len(members):
            raise ValueError("a restored room needs distinct members, at least one")
        if not MIN_ROOM_CAPACITY <= state.capacity <= MAX_ROOM_CAPACITY:
            raise ValueError(f"room capacity must be {MIN_ROOM_CAPACITY} to {MAX_ROOM_CAPACITY}")
        if len(members) > state.capacity:
            raise ValueError(f"room {room!r} has more members than its capacity")
        for member in members:
            if self._room_of.get(member) is not None:
                raise ValueError(f"connection {member!r} is already in a room")
        for member in members:
            self._room_of[member] = room
        self._rooms[room] = list(members)
        self._capacity[room] = state.capacity
        if state.key is not None:
            self._keys[room] = state.key

    def disconnect(self, connection_id: str) -> list[Deliver]:
        """Forget a closed or dropped connection; it leaves its room."""
        self._require(connection_id)
        deliveries = self._leave_room(connection_id)
        del self._room_of[connection_id]
        return deliveries

    def handle(self, connection_id: str, request: Request) -> list[Deliver]:
        """Apply one parsed request from ``connection_id``."""
        if connection_id not in self._room_of:
            self._require(connection_id)
        # The relay first: it is nearly every request.
        if type(request) is Send:
            return self._send(connection_id, request)
        if isinstance(request, Join):
            return self._join(connection_id, request)
        if isinstance(request, Leave):
            return self._leave_room(connection_id)
        raise TypeError(f"not a request: {request!r}")

    # -- transitions ---------------------------------------------------------

    def _require(self, connection_id: str) -> None:
        if connection_id not in self._room_of:
            raise ValueError(f"unknown connection {connection_id!r}: connect() it first")

    def _join(self, joiner: str, request: Join) -> list[Deliver]:
        room = request.room
        asked = request.capacity
        # Checked before any room rule, so that the answer does not depend on
        # whether the room exists (where the capacity would be ignored).
        if asked is not None and not MIN_ROOM_CAPACITY <= asked <= self.max_room_capacity:
            error = Error(
                ErrorCode.BAD_MESSAGE,
                f"this server allows rooms of {MIN_ROOM_CAPACITY} to "
                f"{self.max_room_capacity} people",
                request.id,
            )
            return [Deliver(joiner, error)]
        current = self._room_of[joiner]
        members = self._rooms.get(room)
        # Before every other room rule: a joiner without the key learns
        # nothing about the room (its members, whether it is full).
        refusal = self._refusal(room, request.key, exists=members is not None)
        if refusal is not None:
            return [Deliver(joiner, Error(ErrorCode.UNAUTHORIZED, refusal, request.id))]
        if current == room and members is not None:
            return [Deliver(joiner, Joined(room, joiner, tuple(members), self._capacity[room]))]
        if members is not None and len(members) >= self._capacity[room]:
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
            self._capacity[room] = self.capacity if asked is None else asked
            if request.key is not None:
                self._keys[room] = request.key
        capacity = self._capacity[room]
        members.append(joiner)
        self._room_of[joiner] = room
        peers = tuple(members)
        if len(members) == 1:
            deliveries.append(Deliver(joiner, Created(room, joiner, capacity)))
        else:
            deliveries.append(Deliver(joiner, Joined(room, joiner, peers, capacity)))
            deliveries.extend(Deliver(m, PeerJoined(room, joiner)) for m in peers if m != joiner)
        if len(members) == capacity:
            deliveries.extend(Deliver(m, Ready(room, peers)) for m in peers)
        return deliveries

    def _refusal(self, room: str, key: str | None, *, exists: bool) -> str | None:
        """Why a join carrying ``key`` may not enter ``room``, or :obj:`None` if it may."""
        if not exists:
            if key is None and self.require_keys:
                return "this server opens rooms only with a secret: use an invite link"
            return None
        expected = self._keys.get(room)
        if expected is None:
            if key is None:
                return None
            return (
                "this room was opened without a secret, so it is not the invite link's room;"
                " make a new invite"
            )
        # Constant time, over bytes: a Join built in code may hold any text.
        given = None if key is None else key.encode("utf-8", "surrogatepass")
        if given is None or not hmac.compare_digest(expected.encode(), given):
            return "this room needs the invite link's secret"
        return None

    def _leave_room(self, leaver: str) -> list[Deliver]:
        room = self._room_of[leaver]
        if room is None:
            return []
        members = self._rooms[room]
        members.remove(leaver)
        self._room_of[leaver] = None
        if not members:
            del self._rooms[room]
            del self._capacity[room]
            self._keys.pop(room, None)
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
