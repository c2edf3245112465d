"""Room and relay transitions of protocol v1, driven like the server drives them.

Each test feeds frames in (text a client sent, or a close) and checks the JSON
each connection would receive, in order. :class:`Wire` is the server's loop
without the sockets: parse, route, encode.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from callapp.signaling.messages import (
    Join,
    Leave,
    ProtocolError,
    Relayed,
    Send,
    encode,
    parse_request,
    to_json_object,
)
from callapp.signaling.rooms import (
    DEFAULT_MAX_ROOM_CAPACITY,
    DEFAULT_ROOM_CAPACITY,
    Deliver,
    RoomRouter,
)

Out = list[tuple[str, dict[str, Any]]]

ALICE = "alice-AAAAAAAAAAAAAAAA"
BOB = "bob-BBBBBBBBBBBBBBBB"
CAROL = "carol-CCCCCCCCCCCCCCCC"
DAVE = "dave-DDDDDDDDDDDDDDDD"
ERIN = "erin-EEEEEEEEEEEEEEEE"


class Wire:
    """A RoomRouter behind the parse/encode steps a server performs."""

    def __init__(
        self,
        capacity: int = DEFAULT_ROOM_CAPACITY,
        max_rooms: int | None = None,
        max_room_capacity: int = DEFAULT_MAX_ROOM_CAPACITY,
        require_keys: bool = False,
    ):
        self.router = RoomRouter(
            capacity=capacity,
            max_rooms=max_rooms,
            max_room_capacity=max_room_capacity,
            require_keys=require_keys,
        )

    def connect(self, *ids: str) -> None:
        for connection_id in ids:
            self.router.connect(connection_id)

    def send(self, sender: str, obj: Any) -> Out:
        """``sender`` sends ``obj`` as a text frame; what goes out, to whom."""
        try:
            request = parse_request(json.dumps(obj))
        except ProtocolError as exc:
            return [(sender, to_json_object(exc.to_message()))]
        return self._out(self.router.handle(sender, request))

    def close(self, connection_id: str) -> Out:
        return self._out(self.router.disconnect(connection_id))

    def join(self, sender: str, room: str, **extra: Any) -> Out:
        return self.send(sender, {"type": "join", "room": room, **extra})

    def leave(self, sender: str) -> Out:
        return self.send(sender, {"type": "leave"})

    def _out(self, deliveries: list[Deliver]) -> Out:
        out: Out = []
        for delivery in deliveries:
            assert self.router.is_connected(delivery.to), f"delivery to dead {delivery.to}"
            out.append((delivery.to, json.loads(encode(delivery.message))))
        return out

    def state(self) -> dict[str, Any]:
        """Who is connected, in which room, and each room's members and capacity."""
        return {
            "connections": self.router.connection_count,
            "rooms": {
                room: (self.router.members(room), self.router.capacity_of(room))
                for room in self.router.room_names()
            },
            "room_of": {
                c: self.router.room_of(c)
                for c in (ALICE, BOB, CAROL, DAVE, ERIN)
                if self.router.is_connected(c)
            },
        }


def created(room: str, me: str, capacity: int = 2) -> dict[str, Any]:
    return {"type": "created", "room": room, "connectionId": me, "capacity": capacity}


def joined(room: str, me: str, *peers: str, capacity: int = 2) -> dict[str, Any]:
    return {
        "type": "joined",
        "room": room,
        "connectionId": me,
        "peers": list(peers),
        "capacity": capacity,
    }


def peer_joined(room: str, who: str) -> dict[str, Any]:
    return {"type": "peer-joined", "room": room, "connectionId": who}


def ready(room: str, *peers: str) -> dict[str, Any]:
    return {"type": "ready", "room": room, "peers": list(peers)}


def peer_left(room: str, who: str) -> dict[str, Any]:
    return {"type": "peer-left", "room": room, "connectionId": who}


def full(room: str) -> dict[str, Any]:
    return {"type": "full", "room": room}


def relayed(sender: str, data: Any) -> dict[str, Any]:
    return {"type": "message", "from": sender, "data": data}


def error_code(out: Out) -> tuple[str, str, Any]:
    """(recipient, code, ref-or-'absent') of the single error in ``out``."""
    assert len(out) == 1, out
    to, obj = out[0]
    assert obj["type"] == "error"
    assert isinstance(obj["message"], str)
    assert obj["message"]
    return to, obj["code"], obj.get("ref", "absent")


@pytest.fixture
def wire() -> Wire:
    w = Wire()
    w.connect(ALICE, BOB, CAROL, DAVE)
    return w


@pytest.fixture
def pair(wire: Wire) -> Wire:
    """ALICE and BOB together in room ``r``."""
    wire.join(ALICE, "r")
    wire.join(BOB, "r")
    return wire


# --------------------------------------------------------------------------
# Joining


def test_first_in_gets_created_and_nothing_else(wire: Wire) -> None:
    assert wire.join(ALICE, "r") == [(ALICE, created("r", ALICE))]
    assert wire.router.members("r") == (ALICE,)
    assert wire.router.room_of(ALICE) == "r"


def test_second_in_completes_the_room(wire: Wire) -> None:
    wire.join(ALICE, "r")
    assert wire.join(BOB, "r") == [
        (BOB, joined("r", BOB, ALICE, BOB)),
        (ALICE, peer_joined("r", BOB)),
        (ALICE, ready("r", ALICE, BOB)),
        (BOB, ready("r", ALICE, BOB)),
    ]
    assert wire.router.members("r") == (ALICE, BOB)


def test_each_member_hears_of_the_newcomer_before_ready(pair: Wire) -> None:
    pair.leave(BOB)
    out = pair.join(CAROL, "r")
    alice = [obj["type"] for to, obj in out if to == ALICE]
    carol = [obj["type"] for to, obj in out if to == CAROL]
    assert alice == ["peer-joined", "ready"]
    assert carol == ["joined", "ready"]


def test_a_full_room_answers_full_and_changes_nothing(pair: Wire) -> None:
    before = pair.state()
    assert pair.join(CAROL, "r") == [(CAROL, full("r"))]
    assert pair.state() == before
    assert pair.router.room_of(CAROL) is None
    assert pair.router.members("r") == (ALICE, BOB)


def test_full_leaves_the_joiner_in_its_room(pair: Wire) -> None:
    pair.join(CAROL, "x")
    pair.join(DAVE, "x")
    before = pair.state()
    assert pair.join(CAROL, "r") == [(CAROL, full("r"))]  # DAVE hears nothing
    assert pair.state() == before
    assert pair.router.room_of(CAROL) == "x"
    assert pair.router.members("x") == (CAROL, DAVE)


@pytest.mark.parametrize("bad", ["", "x" * 65, "a b", "r/", "é"])
def test_bad_room_leaves_the_joiner_in_its_room(pair: Wire, bad: str) -> None:
    before = pair.state()
    assert error_code(pair.join(ALICE, bad, id=4)) == (ALICE, "bad-room", 4)
    assert pair.state() == before
    assert pair.router.members("r") == (ALICE, BOB)


def test_a_64_character_room_name_is_a_room(wire: Wire) -> None:
    name = "N" * 64
    assert wire.join(ALICE, name) == [(ALICE, created(name, ALICE))]


def test_room_names_are_case_sensitive(wire: Wire) -> None:
    wire.join(ALICE, "Room")
    assert wire.join(BOB, "room") == [(BOB, created("room", BOB))]
    assert wire.join(CAROL, "ROOM") == [(CAROL, created("ROOM", CAROL))]
    assert wire.router.room_count == 3


def test_rejoining_ones_room_answers_joined_with_current_peers(pair: Wire) -> None:
    before = pair.state()
    assert pair.join(ALICE, "r") == [(ALICE, joined("r", ALICE, ALICE, BOB))]
    assert pair.join(BOB, "r", id="again") == [(BOB, joined("r", BOB, ALICE, BOB))]
    assert pair.state() == before
    assert pair.router.members("r") == (ALICE, BOB)


def test_rejoining_alone_answers_joined_not_created(wire: Wire) -> None:
    wire.join(ALICE, "r")
    assert wire.join(ALICE, "r") == [(ALICE, joined("r", ALICE, ALICE))]


def test_switching_rooms_tells_the_old_room_first(pair: Wire) -> None:
    assert pair.join(ALICE, "s") == [
        (BOB, peer_left("r", ALICE)),
        (ALICE, created("s", ALICE)),
    ]
    assert pair.router.room_of(ALICE) == "s"
    assert pair.router.members("r") == (BOB,)
    assert pair.router.members("s") == (ALICE,)


def test_switching_into_an_occupied_room(pair: Wire) -> None:
    pair.join(CAROL, "s")
    assert pair.join(ALICE, "s") == [
        (BOB, peer_left("r", ALICE)),
        (ALICE, joined("s", ALICE, CAROL, ALICE)),
        (CAROL, peer_joined("s", ALICE)),
        (CAROL, ready("s", CAROL, ALICE)),
        (ALICE, ready("s", CAROL, ALICE)),
    ]


def test_switching_away_from_a_room_one_is_alone_in_forgets_it(wire: Wire) -> None:
    wire.join(ALICE, "r")
    assert wire.join(ALICE, "s") == [(ALICE, created("s", ALICE))]
    assert wire.router.room_count == 1
    assert wire.router.members("r") == ()


# --------------------------------------------------------------------------
# Leaving and disconnecting


def test_leave_outside_a_room_is_ignored(wire: Wire) -> None:
    before = wire.state()
    assert wire.leave(ALICE) == []
    assert wire.send(ALICE, {"type": "leave", "id": 1}) == []
    assert wire.state() == before


def test_leave_tells_those_who_stay_and_not_the_leaver(pair: Wire) -> None:
    assert pair.send(ALICE, {"type": "leave", "id": "bye"}) == [(BOB, peer_left("r", ALICE))]
    assert pair.router.room_of(ALICE) is None
    assert pair.router.members("r") == (BOB,)
    assert pair.router.is_connected(ALICE)


def test_leave_in_a_group_tells_every_remaining_member_once() -> None:
    wire = Wire(capacity=4, max_room_capacity=4)
    wire.connect(ALICE, BOB, CAROL, DAVE)
    for who in (ALICE, BOB, CAROL, DAVE):
        wire.join(who, "g")
    assert wire.leave(BOB) == [
        (ALICE, peer_left("g", BOB)),
        (CAROL, peer_left("g", BOB)),
        (DAVE, peer_left("g", BOB)),
    ]


def test_disconnect_is_a_leave_and_forgets_the_connection(pair: Wire) -> None:
    assert pair.close(ALICE) == [(BOB, peer_left("r", ALICE))]
    assert not pair.router.is_connected(ALICE)
    assert pair.router.room_of(ALICE) is None
    assert pair.router.members("r") == (BOB,)
    assert pair.router.connection_count == 3


def test_disconnect_outside_a_room_sends_nothing(wire: Wire) -> None:
    assert wire.close(CAROL) == []
    assert not wire.router.is_connected(CAROL)


def test_empty_rooms_are_forgotten(pair: Wire) -> None:
    pair.leave(ALICE)
    assert pair.router.room_count == 1
    pair.close(BOB)
    assert pair.router.room_count == 0
    assert pair.router.members("r") == ()
    assert pair.join(CAROL, "r") == [(CAROL, created("r", CAROL))]


def test_after_leave_a_connection_can_join_again(pair: Wire) -> None:
    pair.leave(ALICE)
    assert pair.join(ALICE, "r") == [
        (ALICE, joined("r", ALICE, BOB, ALICE)),
        (BOB, peer_joined("r", ALICE)),
        (BOB, ready("r", BOB, ALICE)),
        (ALICE, ready("r", BOB, ALICE)),
    ]


def test_the_one_who_stayed_becomes_the_caller(pair: Wire) -> None:
    pair.leave(ALICE)  # ALICE got created: she was the caller
    out = pair.join(CAROL, "r")
    assert (CAROL, joined("r", CAROL, BOB, CAROL)) in out
    readies = [obj for _, obj in out if obj["type"] == "ready"]
    assert readies == [ready("r", BOB, CAROL)] * 2
    assert readies[0]["peers"][0] == BOB


# --------------------------------------------------------------------------
# Capacity above 2: group calls


@pytest.mark.parametrize("capacity", [3, 4, 5])
def test_ready_only_when_the_room_reaches_capacity(capacity: int) -> None:
    people = [f"p{i}-{'X' * 16}" for i in range(capacity + 1)]
    wire = Wire(capacity=capacity, max_room_capacity=8)
    wire.connect(*people)
    assert wire.join(people[0], "g") == [(people[0], created("g", people[0], capacity))]
    for n in range(1, capacity):
        newcomer = people[n]
        out = wire.join(newcomer, "g")
        inside = people[: n + 1]
        expected: Out = [(newcomer, joined("g", newcomer, *inside, capacity=capacity))]
        expected += [(m, peer_joined("g", newcomer)) for m in people[:n]]
        if n + 1 == capacity:
            expected += [(m, ready("g", *inside)) for m in inside]
        assert out == expected
    assert wire.join(people[capacity], "g") == [(people[capacity], full("g"))]
    assert wire.router.members("g") == tuple(people[:capacity])


def test_a_group_becomes_ready_again_when_refilled() -> None:
    wire = Wire(capacity=3)
    wire.connect(ALICE, BOB, CAROL, DAVE)
    for who in (ALICE, BOB, CAROL):
        wire.join(who, "g")
    wire.leave(BOB)
    out = wire.join(DAVE, "g")
    assert [obj for to, obj in out if obj["type"] == "ready"] == [
        ready("g", ALICE, CAROL, DAVE)
    ] * 3
    assert [to for to, obj in out if obj["type"] == "ready"] == [ALICE, CAROL, DAVE]


def test_capacity_below_two_is_misuse() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RoomRouter(capacity=1)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"max_room_capacity": 1}, "max_room_capacity must be 2 to 8, not 1"),
        ({"max_room_capacity": 9}, "max_room_capacity must be 2 to 8, not 9"),
        ({"capacity": 5}, r"default room capacity \(5\) is above max_room_capacity \(4\)"),
        ({"capacity": 3, "max_room_capacity": 2}, r"\(3\) is above max_room_capacity \(2\)"),
    ],
)
def test_capacity_settings_out_of_range_are_misuse(options: dict[str, int], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RoomRouter(**options)


def test_capacity_settings_in_range() -> None:
    router = RoomRouter()
    assert (router.capacity, router.max_room_capacity) == (2, 4)
    assert DEFAULT_MAX_ROOM_CAPACITY == 4
    router = RoomRouter(capacity=8, max_room_capacity=8)
    assert (router.capacity, router.max_room_capacity) == (8, 8)


# --------------------------------------------------------------------------
# The room's creator chooses its capacity (callapp extension)


def test_the_creator_chooses_the_capacity_and_ready_waits_for_it(wire: Wire) -> None:
    wire.connect(ERIN)
    assert wire.join(ALICE, "g", capacity=3) == [(ALICE, created("g", ALICE, capacity=3))]
    assert wire.router.capacity_of("g") == 3
    # Two of three: no ready yet, whatever the default capacity (2) says.
    assert wire.join(BOB, "g") == [
        (BOB, joined("g", BOB, ALICE, BOB, capacity=3)),
        (ALICE, peer_joined("g", BOB)),
    ]
    assert wire.join(CAROL, "g") == [
        (CAROL, joined("g", CAROL, ALICE, BOB, CAROL, capacity=3)),
        (ALICE, peer_joined("g", CAROL)),
        (BOB, peer_joined("g", CAROL)),
        (ALICE, ready("g", ALICE, BOB, CAROL)),
        (BOB, ready("g", ALICE, BOB, CAROL)),
        (CAROL, ready("g", ALICE, BOB, CAROL)),
    ]
    assert wire.join(DAVE, "g") == [(DAVE, full("g"))]
    assert wire.router.members("g") == (ALICE, BOB, CAROL)


def test_a_later_joiners_capacity_is_ignored(wire: Wire) -> None:
    wire.join(ALICE, "g", capacity=3)
    # Neither smaller nor larger changes the room.
    assert wire.join(BOB, "g", capacity=2)[0] == (BOB, joined("g", BOB, ALICE, BOB, capacity=3))
    out = wire.join(CAROL, "g", capacity=4)
    assert out[0] == (CAROL, joined("g", CAROL, ALICE, BOB, CAROL, capacity=3))
    assert [to for to, obj in out if obj["type"] == "ready"] == [ALICE, BOB, CAROL]
    assert wire.join(DAVE, "g", capacity=4) == [(DAVE, full("g"))]
    assert wire.router.capacity_of("g") == 3


def test_a_default_room_ignores_a_later_joiners_capacity(wire: Wire) -> None:
    wire.join(ALICE, "r")
    assert wire.join(BOB, "r", capacity=4) == [
        (BOB, joined("r", BOB, ALICE, BOB)),
        (ALICE, peer_joined("r", BOB)),
        (ALICE, ready("r", ALICE, BOB)),
        (BOB, ready("r", ALICE, BOB)),
    ]
    assert wire.join(CAROL, "r", capacity=4) == [(CAROL, full("r"))]


def test_rejoining_ones_room_reports_its_capacity_and_ignores_a_new_one(wire: Wire) -> None:
    wire.join(ALICE, "g", capacity=4)
    before = wire.state()
    assert wire.join(ALICE, "g", capacity=2) == [(ALICE, joined("g", ALICE, ALICE, capacity=4))]
    assert wire.state() == before


def test_a_forgotten_room_takes_its_next_creators_capacity(wire: Wire) -> None:
    wire.join(ALICE, "g", capacity=4)
    wire.leave(ALICE)
    assert wire.router.capacity_of("g") is None
    assert wire.join(BOB, "g") == [(BOB, created("g", BOB))]
    assert wire.router.capacity_of("g") == 2
    wire.close(BOB)
    assert wire.join(CAROL, "g", capacity=3) == [(CAROL, created("g", CAROL, capacity=3))]


def test_rooms_of_different_capacities_side_by_side(wire: Wire) -> None:
    wire.join(ALICE, "pair")
    wire.join(BOB, "trio", capacity=3)
    assert wire.join(CAROL, "pair")[-1] == (CAROL, ready("pair", ALICE, CAROL))
    assert [obj["type"] for _, obj in wire.join(DAVE, "trio")] == ["joined", "peer-joined"]
    assert wire.state()["rooms"] == {"pair": ((ALICE, CAROL), 2), "trio": ((BOB, DAVE), 3)}
    assert wire.router.room_names() == ("pair", "trio")


def test_the_default_capacity_is_the_routers() -> None:
    wire = Wire(capacity=3)
    wire.connect(ALICE, BOB)
    assert wire.join(ALICE, "g") == [(ALICE, created("g", ALICE, capacity=3))]
    assert wire.join(BOB, "g", capacity=2) == [
        (BOB, joined("g", BOB, ALICE, BOB, capacity=3)),
        (ALICE, peer_joined("g", BOB)),
    ]


@pytest.mark.parametrize("capacity", [2, 3, 4])
def test_capacities_up_to_the_servers_maximum_are_allowed(wire: Wire, capacity: int) -> None:
    assert wire.join(ALICE, "g", capacity=capacity) == [
        (ALICE, created("g", ALICE, capacity=capacity))
    ]


@pytest.mark.parametrize("capacity", [5, 8])
def test_a_capacity_above_the_servers_maximum_is_refused_plainly(pair: Wire, capacity: int) -> None:
    """Nothing joined, nobody told, wherever the joiner is and whether or not R exists."""
    pair.join(CAROL, "x")
    before = pair.state()
    for who, room in [(DAVE, "new"), (CAROL, "new"), (CAROL, "r"), (ALICE, "r"), (DAVE, "x")]:
        out = pair.send(who, {"type": "join", "room": room, "capacity": capacity, "id": [room]})
        assert out == [
            (
                who,
                {
                    "type": "error",
                    "code": "bad-message",
                    "message": "this server allows rooms of 2 to 4 people",
                    "ref": [room],
                },
            )
        ]
        assert pair.state() == before


def test_the_maximum_follows_the_routers_setting() -> None:
    wire = Wire(max_room_capacity=6)
    wire.connect(ALICE, BOB)
    assert wire.join(ALICE, "g", capacity=6) == [(ALICE, created("g", ALICE, capacity=6))]
    out = wire.join(BOB, "h", capacity=7)
    assert out[0][1]["message"] == "this server allows rooms of 2 to 6 people"


def test_a_refused_capacity_is_answered_before_busy() -> None:
    wire = Wire(max_rooms=1)
    wire.connect(ALICE, BOB)
    wire.join(ALICE, "r")
    assert error_code(wire.join(BOB, "s", capacity=5)) == (BOB, "bad-message", "absent")
    assert error_code(wire.join(BOB, "s", capacity=3)) == (BOB, "busy", "absent")


@pytest.mark.parametrize("capacity", [1, 0, 9, True, 3.0, "3", [3]], ids=repr)
def test_a_malformed_capacity_is_bad_message_and_changes_nothing(pair: Wire, capacity: Any) -> None:
    before = pair.state()
    out = pair.join(CAROL, "r", capacity=capacity, id=5)
    assert error_code(out) == (CAROL, "bad-message", 5)
    assert pair.state() == before


@pytest.mark.parametrize("capacity", [0, 1, 9, -4])
def test_a_join_value_outside_2_to_8_is_answered_not_raised(wire: Wire, capacity: int) -> None:
    """Built in code rather than parsed: the router still answers, never raises."""
    out = wire.router.handle(ALICE, Join("g", capacity=capacity, id=1))
    assert len(out) == 1
    assert out[0].to == ALICE
    assert to_json_object(out[0].message)["code"] == "bad-message"
    assert wire.router.room_count == 0


def test_a_null_capacity_means_the_default(wire: Wire) -> None:
    assert wire.join(ALICE, "r", capacity=None) == [(ALICE, created("r", ALICE))]


# --------------------------------------------------------------------------
# max_rooms: busy


def test_max_rooms_answers_busy_for_a_new_room() -> None:
    wire = Wire(max_rooms=2)
    wire.connect(ALICE, BOB, CAROL, DAVE)
    wire.join(ALICE, "r1")
    wire.join(BOB, "r2")
    before = wire.state()
    assert error_code(wire.join(CAROL, "r3", id=[7])) == (CAROL, "busy", [7])
    assert error_code(wire.join(CAROL, "r3")) == (CAROL, "busy", "absent")
    assert wire.state() == before
    # Existing rooms can still be joined.
    assert wire.join(CAROL, "r1")[0] == (CAROL, joined("r1", CAROL, ALICE, CAROL))
    # Once a room is forgotten, a new one may be made.
    wire.close(BOB)
    assert wire.join(DAVE, "r3") == [(DAVE, created("r3", DAVE))]


def test_busy_leaves_the_joiner_in_its_room() -> None:
    wire = Wire(max_rooms=2)
    wire.connect(ALICE, BOB, CAROL)
    wire.join(ALICE, "r1")
    wire.join(BOB, "r1")
    wire.join(CAROL, "r2")
    before = wire.state()
    assert error_code(wire.join(ALICE, "r3")) == (ALICE, "busy", "absent")
    assert wire.state() == before
    assert wire.router.members("r1") == (ALICE, BOB)


def test_moving_out_of_a_room_one_is_alone_in_is_not_busy() -> None:
    wire = Wire(max_rooms=1)
    wire.connect(ALICE)
    wire.join(ALICE, "r1", capacity=3)
    assert wire.join(ALICE, "r2") == [(ALICE, created("r2", ALICE))]
    assert wire.router.room_count == 1
    assert wire.router.capacity_of("r1") is None


# --------------------------------------------------------------------------
# Room keys (callapp extension)

KEY = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq80"
OTHER_KEY = "3q2-7w" + "A" * 36 + "g"
NEEDS_SECRET = "this room needs the invite link's secret"


def refused(out: Out, who: str, ref: Any = "absent") -> str:
    """The message of the single ``unauthorized`` answer to ``who`` in ``out``."""
    assert error_code(out) == (who, "unauthorized", ref)
    message: str = out[0][1]["message"]
    return message


def test_the_creator_of_a_keyed_room_gets_created_as_usual(wire: Wire) -> None:
    assert wire.join(ALICE, "k", key=KEY) == [(ALICE, created("k", ALICE))]
    assert wire.router.is_keyed("k")
    assert not wire.router.is_keyed("nowhere")


def test_a_keyed_room_needs_its_key_from_every_later_joiner(wire: Wire) -> None:
    wire.join(ALICE, "k", key=KEY)
    before = wire.state()
    assert refused(wire.join(BOB, "k", id=1), BOB, 1) == NEEDS_SECRET
    assert refused(wire.join(BOB, "k", key=OTHER_KEY, id=2), BOB, 2) == NEEDS_SECRET
    assert refused(wire.join(BOB, "k", key=None), BOB) == NEEDS_SECRET
    assert wire.state() == before  # and ALICE heard nothing of it
    assert wire.join(BOB, "k", key=KEY) == [
        (BOB, joined("k", BOB, ALICE, BOB)),
        (ALICE, peer_joined("k", BOB)),
        (ALICE, ready("k", ALICE, BOB)),
        (BOB, ready("k", ALICE, BOB)),
    ]


def test_unauthorized_comes_before_full_so_nothing_is_revealed(wire: Wire) -> None:
    wire.join(ALICE, "k", key=KEY)
    wire.join(BOB, "k", key=KEY)
    assert refused(wire.join(CAROL, "k"), CAROL) == NEEDS_SECRET
    assert wire.join(CAROL, "k", key=KEY) == [(CAROL, full("k"))]


def test_an_unauthorized_join_leaves_the_joiner_where_it_was(pair: Wire) -> None:
    pair.join(CAROL, "k", key=KEY)
    before = pair.state()
    refused(pair.join(BOB, "k", key=OTHER_KEY), BOB)  # ALICE gets no peer-left
    assert pair.state() == before
    assert pair.router.room_of(BOB) == "r"


def test_a_key_sent_to_a_room_made_without_one_is_unauthorized(pair: Wire) -> None:
    pair.leave(BOB)
    message = refused(pair.join(BOB, "r", key=KEY), BOB)
    assert "without a secret" in message
    assert pair.router.members("r") == (ALICE,)
    # v1 joins into the open room work as before.
    assert pair.join(BOB, "r")[0] == (BOB, joined("r", BOB, ALICE, BOB))


def test_the_key_is_checked_on_a_rejoin_of_ones_own_room(wire: Wire) -> None:
    wire.join(ALICE, "k", key=KEY)
    refused(wire.join(ALICE, "k"), ALICE)
    assert wire.router.members("k") == (ALICE,)  # still in, unchanged
    assert wire.join(ALICE, "k", key=KEY) == [(ALICE, joined("k", ALICE, ALICE))]


def test_the_key_is_forgotten_with_the_room(wire: Wire) -> None:
    wire.join(ALICE, "k", key=KEY)
    wire.close(ALICE)
    assert not wire.router.is_keyed("k")
    # The next creator chooses again: no key, or another one.
    assert wire.join(BOB, "k") == [(BOB, created("k", BOB))]
    wire.leave(BOB)
    assert wire.join(CAROL, "k", key=OTHER_KEY) == [(CAROL, created("k", CAROL))]
    refused(wire.join(DAVE, "k", key=KEY), DAVE)


def test_keyed_and_open_rooms_live_side_by_side(wire: Wire) -> None:
    wire.join(ALICE, "k", key=KEY)
    wire.join(BOB, "open")
    assert wire.join(CAROL, "open")[0] == (CAROL, joined("open", CAROL, BOB, CAROL))
    assert wire.join(DAVE, "k", key=KEY)[0] == (DAVE, joined("k", DAVE, ALICE, DAVE))


def test_a_capacity_above_the_maximum_is_refused_before_the_key(wire: Wire) -> None:
    wire.join(ALICE, "k", key=KEY)
    assert error_code(wire.join(BOB, "k", capacity=8)) == (BOB, "bad-message", "absent")


def test_the_key_never_appears_in_what_is_sent(wire: Wire) -> None:
    out = wire.join(ALICE, "k", key=KEY)
    out += wire.join(BOB, "k", key=OTHER_KEY)
    out += wire.join(BOB, "k", key=KEY)
    assert out
    for _, obj in out:
        text = json.dumps(obj)
        assert KEY not in text
        assert OTHER_KEY not in text


def test_require_keys_opens_rooms_only_for_keyed_joins() -> None:
    wire = Wire(require_keys=True)
    wire.connect(ALICE, BOB)
    message = refused(wire.join(ALICE, "open", id="a"), ALICE, "a")
    assert "only with a secret" in message
    assert wire.router.room_count == 0
    assert wire.join(ALICE, "k", key=KEY) == [(ALICE, created("k", ALICE))]
    refused(wire.join(BOB, "k"), BOB)
    assert wire.join(BOB, "k", key=KEY)[0] == (BOB, joined("k", BOB, ALICE, BOB))


# --------------------------------------------------------------------------
# Relay


def test_relay_to_a_peer_in_the_room(pair: Wire) -> None:
    sdp = {"type": "SDP", "payload": {"type": "offer", "sdp": "v=0\r\n"}}
    assert pair.send(ALICE, {"type": "message", "to": BOB, "data": sdp}) == [
        (BOB, relayed(ALICE, sdp))
    ]


def test_relay_by_id_needs_no_room(wire: Wire) -> None:
    wire.join(BOB, "r")
    # CAROL is in no room; she can reach BOB in a room, and DAVE in none.
    assert wire.send(CAROL, {"type": "message", "to": BOB, "data": 1}) == [(BOB, relayed(CAROL, 1))]
    assert wire.send(CAROL, {"type": "message", "to": DAVE, "data": None}) == [
        (DAVE, relayed(CAROL, None))
    ]
    # ...and BOB, in a room, can reach DAVE, in none.
    assert wire.send(BOB, {"type": "message", "to": DAVE, "data": "x"}) == [
        (DAVE, relayed(BOB, "x"))
    ]


def test_relay_by_id_crosses_rooms(pair: Wire) -> None:
    pair.join(CAROL, "other")
    assert pair.send(CAROL, {"type": "message", "to": ALICE, "data": {}}) == [
        (ALICE, relayed(CAROL, {}))
    ]


def test_relay_to_oneself(wire: Wire) -> None:
    assert wire.send(ALICE, {"type": "message", "to": ALICE, "data": [1]}) == [
        (ALICE, relayed(ALICE, [1]))
    ]


@pytest.mark.parametrize("ref", ["q", 0, None, {"k": [1]}])
def test_relay_to_an_unknown_id_is_unknown_peer(wire: Wire, ref: Any) -> None:
    out = wire.send(ALICE, {"type": "message", "to": "nobody-" + "Z" * 16, "data": 1, "id": ref})
    assert error_code(out) == (ALICE, "unknown-peer", ref)


def test_relay_to_a_closed_connection_is_unknown_peer(pair: Wire) -> None:
    pair.close(BOB)
    out = pair.send(ALICE, {"type": "message", "to": BOB, "data": 1})
    assert error_code(out) == (ALICE, "unknown-peer", "absent")


def test_relay_to_the_room_reaches_every_other_member_in_join_order() -> None:
    wire = Wire(capacity=3)
    wire.connect(ALICE, BOB, CAROL)
    for who in (ALICE, BOB, CAROL):
        wire.join(who, "g")
    assert wire.send(BOB, {"type": "message", "data": {"type": "BYE"}}) == [
        (ALICE, relayed(BOB, {"type": "BYE"})),
        (CAROL, relayed(BOB, {"type": "BYE"})),
    ]


def test_relay_to_the_room_when_alone_reaches_nobody_silently(wire: Wire) -> None:
    wire.join(ALICE, "r")
    assert wire.send(ALICE, {"type": "message", "data": 1, "id": 5}) == []


def test_relay_to_the_room_outside_a_room_is_not_in_room(wire: Wire) -> None:
    out = wire.send(ALICE, {"type": "message", "data": 1, "id": "m1"})
    assert error_code(out) == (ALICE, "not-in-room", "m1")


def test_relay_to_the_room_after_leaving_is_not_in_room(pair: Wire) -> None:
    pair.leave(ALICE)
    assert error_code(pair.send(ALICE, {"type": "message", "data": 1}))[1] == "not-in-room"


def test_relay_to_a_peer_who_left_the_room_still_works_by_id(pair: Wire) -> None:
    pair.leave(BOB)
    assert pair.send(ALICE, {"type": "message", "to": BOB, "data": 2}) == [(BOB, relayed(ALICE, 2))]


@pytest.mark.parametrize("forged", [BOB, CAROL, "", None, 1])
def test_from_is_always_the_real_sender(pair: Wire, forged: Any) -> None:
    to_bob = pair.send(ALICE, {"type": "message", "to": BOB, "data": 1, "from": forged})
    to_room = pair.send(ALICE, {"type": "message", "data": 2, "from": forged})
    assert to_bob == [(BOB, relayed(ALICE, 1))]
    assert to_room == [(BOB, relayed(ALICE, 2))]


def test_the_sender_gets_no_echo_or_acknowledgement(pair: Wire) -> None:
    for out in (
        pair.send(ALICE, {"type": "message", "to": BOB, "data": 1, "id": 1}),
        pair.send(ALICE, {"type": "message", "data": 1, "id": 2}),
    ):
        assert [to for to, _ in out] == [BOB]


def test_relay_does_not_change_rooms(pair: Wire) -> None:
    before = pair.state()
    pair.send(CAROL, {"type": "message", "to": ALICE, "data": 1})
    pair.send(ALICE, {"type": "message", "data": 1})
    assert pair.state() == before


def test_relayed_data_is_the_same_object_not_reinterpreted(pair: Wire) -> None:
    data = {"type": "message", "to": CAROL, "from": BOB, "data": {"type": "join"}}
    deliveries = pair.router.handle(ALICE, Send(data=data, to=BOB))
    assert deliveries == [Deliver(BOB, Relayed(sender=ALICE, data=data))]


# --------------------------------------------------------------------------
# Misuse by our own code raises; peer mistakes never do


def test_events_for_an_unknown_connection_raise_value_error() -> None:
    router = RoomRouter()
    with pytest.raises(ValueError, match="unknown connection"):
        router.handle(ALICE, Join("r"))
    with pytest.raises(ValueError, match="unknown connection"):
        router.handle(ALICE, Leave())
    with pytest.raises(ValueError, match="unknown connection"):
        router.handle(ALICE, Send(data=1))
    with pytest.raises(ValueError, match="unknown connection"):
        router.disconnect(ALICE)
    assert router.connection_count == 0


def test_connecting_twice_raises_value_error(wire: Wire) -> None:
    wire.join(ALICE, "r")
    with pytest.raises(ValueError, match="already connected"):
        wire.router.connect(ALICE)
    assert wire.router.room_of(ALICE) == "r"  # unchanged by the failed call


def test_disconnecting_twice_raises_value_error(wire: Wire) -> None:
    wire.close(ALICE)
    with pytest.raises(ValueError, match="unknown connection"):
        wire.router.disconnect(ALICE)


def test_events_after_disconnect_raise_value_error(pair: Wire) -> None:
    pair.close(ALICE)
    with pytest.raises(ValueError, match="unknown connection"):
        pair.router.handle(ALICE, Send(data=1, to=BOB))


def test_a_non_request_is_a_type_error(wire: Wire) -> None:
    with pytest.raises(TypeError):
        wire.router.handle(ALICE, "join")  # type: ignore[arg-type]


def test_a_reconnected_id_starts_outside_any_room(pair: Wire) -> None:
    pair.close(ALICE)
    pair.connect(ALICE)
    assert pair.router.room_of(ALICE) is None
    assert pair.router.members("r") == (BOB,)
