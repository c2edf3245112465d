"""RoomRouter under random event sequences, checked against a model after every step.

Hypothesis drives connect/join/leave/send (to an id or the room)/disconnect
over a few connections and rooms, with a default capacity of 2..4, a
max_room_capacity of up to 2 more, an optional max_rooms and, sometimes,
require_keys. Joins ask for random capacities (none; allowed; above the
server's maximum; outside 2..8 altogether) and carry random room keys (none,
or one of two), so rooms of different capacities, keyed and open, live side
by side. A plain-dict model of PROTOCOL.md's rules and of docs/protocol.md's
capacity and room secret extensions predicts what each step must deliver;
the router's own state and every delivery are checked against it and
against the protocol's invariants (an ``unauthorized`` join changes nothing
and reaches only the joiner).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

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
)
from callapp.signaling.rooms import Deliver, RoomRouter

CONNECTIONS = tuple(f"conn{i}-{'x' * 16}" for i in range(5))
ROOMS = ("r0", "r1", "R0")  # "R0" and "r0" are different rooms

connections = st.sampled_from(CONNECTIONS)
rooms = st.sampled_from(ROOMS)
# Mostly none or a plausible size; sometimes outside 2..8 (a Join built in code).
asked_capacities = st.none() | st.integers(min_value=2, max_value=6) | st.sampled_from([0, 1, 9])
# Room keys are opaque to the router: two valid ones, and none (a v1 join).
KEYS = ("q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq80", "3q2-7w" + "A" * 36 + "g")
keys = st.sampled_from((None, *KEYS))


class RouterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.router: RoomRouter | None = None
        self.capacity = 2
        self.max_room_capacity = 4
        self.max_rooms: int | None = None
        self.require_keys = False
        # The model: live connections -> room (or None); rooms -> members in
        # join order; rooms -> the capacity and the key (or None) they were
        # created with.
        self.room_of: dict[str, str | None] = {}
        self.rooms: dict[str, list[str]] = {}
        self.capacity_of: dict[str, int] = {}
        self.key_of: dict[str, str | None] = {}
        self.serial = 0

    # -- set-up ----------------------------------------------------------------

    @initialize(
        capacity=st.integers(min_value=2, max_value=4),
        headroom=st.integers(min_value=0, max_value=2),
        max_rooms=st.sampled_from([None, 1, 2]),
        require_keys=st.sampled_from([False, False, True]),
    )
    def start(
        self, capacity: int, headroom: int, max_rooms: int | None, require_keys: bool
    ) -> None:
        self.capacity = capacity
        self.max_room_capacity = capacity + headroom
        self.max_rooms = max_rooms
        self.require_keys = require_keys
        self.router = RoomRouter(
            capacity=capacity,
            max_rooms=max_rooms,
            max_room_capacity=self.max_room_capacity,
            require_keys=require_keys,
        )

    @property
    def r(self) -> RoomRouter:
        assert self.router is not None
        return self.router

    # -- helpers ---------------------------------------------------------------

    def _misuse(self, c: str, event: Any) -> None:
        """An event for a connection the router does not know raises and changes nothing."""
        before = self._snapshot()
        with pytest.raises(ValueError, match="unknown connection"):
            event()
        assert self._snapshot() == before

    def _snapshot(self) -> tuple[Any, ...]:
        return (
            self.r.connection_count,
            self.r.room_count,
            tuple(self.r.members(room) for room in ROOMS),
            tuple(self.r.is_keyed(room) for room in ROOMS),
            tuple(self.r.room_of(c) for c in CONNECTIONS),
        )

    def _check_common(self, sender: str | None, out: list[Deliver]) -> None:
        for delivery in out:
            # Nothing ever goes to a closed or unknown connection.
            assert delivery.to in self.room_of, delivery
            assert self.r.is_connected(delivery.to)
            if isinstance(delivery.message, Relayed):
                assert delivery.message.sender == sender

    def _departure(self, leaver: str) -> list[Deliver]:
        """Model: ``leaver`` leaves its room; the peer-left each remaining member gets."""
        room = self.room_of.get(leaver)
        if room is None:
            return []
        members = self.rooms[room]
        members.remove(leaver)
        self.room_of[leaver] = None
        if not members:
            del self.rooms[room]
            del self.capacity_of[room]
            del self.key_of[room]
        return [Deliver(m, PeerLeft(room, leaver)) for m in members]

    @staticmethod
    def _check_one_peer_left_each(out: list[Deliver], leaver: str, stayers: list[str]) -> None:
        lefts = Counter(
            d.to
            for d in out
            if isinstance(d.message, PeerLeft) and d.message.connection_id == leaver
        )
        assert lefts == Counter(stayers), (lefts, stayers)

    # -- rules -----------------------------------------------------------------

    @precondition(lambda self: self.router is not None)
    @rule(c=connections)
    def connect(self, c: str) -> None:
        if c in self.room_of:
            before = self._snapshot()
            with pytest.raises(ValueError, match="already connected"):
                self.r.connect(c)
            assert self._snapshot() == before
            return
        self.r.connect(c)
        self.room_of[c] = None

    @precondition(lambda self: self.router is not None)
    @rule(c=connections, room=rooms, asked=asked_capacities, key=keys)
    def join(self, c: str, room: str, asked: int | None, key: str | None) -> None:
        if c not in self.room_of:
            self._misuse(c, lambda: self.r.handle(c, Join(room, capacity=asked, key=key)))
            return
        self.serial += 1
        before = self._snapshot()
        out = self.r.handle(c, Join(room, capacity=asked, id=self.serial, key=key))
        self._check_common(None, out)
        current = self.room_of[c]
        members = self.rooms.get(room)

        if asked is not None and not 2 <= asked <= self.max_room_capacity:
            # Refused whatever the room rules would say; nothing changes.
            message = _message(out)
            assert out == [Deliver(c, Error(ErrorCode.BAD_MESSAGE, message, self.serial))]
            assert f"2 to {self.max_room_capacity} people" in message
            assert self._snapshot() == before
            return
        # A key that does not match the room's (a keyed room without it or
        # with another, an open room with one), or no key for a new room when
        # keys are required: refused before any other room rule, to the
        # joiner alone, changing nothing.
        if (members is not None and key != self.key_of[room]) or (
            members is None and key is None and self.require_keys
        ):
            assert out == [Deliver(c, Error(ErrorCode.UNAUTHORIZED, _message(out), self.serial))]
            assert self._snapshot() == before
            return
        if current == room:
            assert members is not None
            assert out == [Deliver(c, Joined(room, c, tuple(members), self.capacity_of[room]))]
            return
        if members is not None and len(members) >= self.capacity_of[room]:
            assert out == [Deliver(c, Full(room))]
            return
        if members is None and self.max_rooms is not None:
            frees = current is not None and len(self.rooms[current]) == 1
            if len(self.rooms) - frees >= self.max_rooms:
                assert out == [Deliver(c, Error(ErrorCode.BUSY, _message(out), self.serial))]
                return

        old_members = [m for m in self.rooms.get(current, []) if m != c] if current else []
        expected = self._departure(c)
        self._check_one_peer_left_each(out, c, old_members)
        if room not in self.rooms:
            # Only the join that creates the room sets its capacity and key.
            self.capacity_of[room] = self.capacity if asked is None else asked
            self.key_of[room] = key
        capacity = self.capacity_of[room]
        members = self.rooms.setdefault(room, [])
        members.append(c)
        self.room_of[c] = room
        peers = tuple(members)
        if len(peers) == 1:
            expected.append(Deliver(c, Created(room, c, capacity)))
        else:
            expected.append(Deliver(c, Joined(room, c, peers, capacity)))
            expected += [Deliver(m, PeerJoined(room, c)) for m in peers[:-1]]
        if len(peers) == capacity:
            expected += [Deliver(m, Ready(room, peers)) for m in peers]
        assert out == expected

    @precondition(lambda self: self.router is not None)
    @rule(c=connections)
    def leave(self, c: str) -> None:
        if c not in self.room_of:
            self._misuse(c, lambda: self.r.handle(c, Leave()))
            return
        room = self.room_of[c]
        stayers = [m for m in self.rooms.get(room, []) if m != c] if room else []
        out = self.r.handle(c, Leave(id="bye"))
        self._check_common(None, out)
        self._check_one_peer_left_each(out, c, stayers)
        assert all(d.to != c for d in out)  # the leaver gets no reply
        assert out == self._departure(c)

    @precondition(lambda self: self.router is not None)
    @rule(c=connections)
    def disconnect(self, c: str) -> None:
        if c not in self.room_of:
            self._misuse(c, lambda: self.r.disconnect(c))
            return
        room = self.room_of[c]
        stayers = [m for m in self.rooms.get(room, []) if m != c] if room else []
        out = self.r.disconnect(c)
        expected = self._departure(c)
        del self.room_of[c]
        self._check_common(None, out)
        self._check_one_peer_left_each(out, c, stayers)
        assert out == expected

    @precondition(lambda self: self.router is not None)
    @rule(c=connections, to=connections)
    def send_to_id(self, c: str, to: str) -> None:
        if c not in self.room_of:
            self._misuse(c, lambda: self.r.handle(c, Send(data=0, to=to)))
            return
        self.serial += 1
        data = {"n": self.serial}
        out = self.r.handle(c, Send(data=data, to=to, id=self.serial))
        self._check_common(c, out)
        if to in self.room_of:
            assert out == [Deliver(to, Relayed(c, data))]
        else:
            assert out == [Deliver(c, Error(ErrorCode.UNKNOWN_PEER, _message(out), self.serial))]

    @precondition(lambda self: self.router is not None)
    @rule(c=connections)
    def send_to_room(self, c: str) -> None:
        if c not in self.room_of:
            self._misuse(c, lambda: self.r.handle(c, Send(data=0)))
            return
        self.serial += 1
        data = [self.serial]
        out = self.r.handle(c, Send(data=data, id=None))
        self._check_common(c, out)
        room = self.room_of[c]
        if room is None:
            assert out == [Deliver(c, Error(ErrorCode.NOT_IN_ROOM, _message(out), None))]
        else:
            others = [m for m in self.rooms[room] if m != c]
            assert out == [Deliver(m, Relayed(c, data)) for m in others]

    # -- invariants --------------------------------------------------------------

    @precondition(lambda self: self.router is not None)
    @invariant()
    def rooms_match_the_model(self) -> None:
        assert self.r.connection_count == len(self.room_of)
        assert self.r.room_count == len(self.rooms)
        assert self.r.room_names() == tuple(self.rooms)
        for room in ROOMS:
            members = self.r.members(room)
            assert list(members) == self.rooms.get(room, [])
            # Each room has the capacity it was created with, within the
            # server's bounds, and is never over it; no empty room is kept.
            capacity = self.r.capacity_of(room)
            assert capacity == self.capacity_of.get(room)
            if capacity is not None:
                assert 2 <= capacity <= self.max_room_capacity
                assert len(members) <= capacity
            assert (len(members) > 0) == (room in self.rooms)
            # Keyed exactly when its creator sent a key; with require_keys, always.
            assert self.r.is_keyed(room) == (self.key_of.get(room) is not None)
            if self.require_keys and room in self.rooms:
                assert self.r.is_keyed(room)
            # Only live members.
            assert all(self.r.is_connected(m) for m in members)
        if self.max_rooms is not None:
            assert self.r.room_count <= self.max_rooms

    @precondition(lambda self: self.router is not None)
    @invariant()
    def each_connection_is_in_at_most_one_room(self) -> None:
        for c in CONNECTIONS:
            holding = [room for room in ROOMS if c in self.r.members(room)]
            assert len(holding) <= 1
            if not self.r.is_connected(c):
                assert holding == []
                assert self.r.room_of(c) is None
            else:
                assert self.r.room_of(c) == (holding[0] if holding else None)
                assert self.r.room_of(c) == self.room_of[c]


def _message(out: list[Deliver]) -> str:
    """The human-readable text of the single error in ``out`` (its wording is free)."""
    assert len(out) == 1
    assert isinstance(out[0].message, Error)
    assert out[0].message.message
    return out[0].message.message


RouterMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRouterProperties = RouterMachine.TestCase
