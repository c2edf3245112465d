"""RoomRouter.room_state / restore_room: a room taken out and put back follows the same rules."""

from __future__ import annotations

import pytest

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
)
from callapp.signaling.rooms import Deliver, RoomRouter, RoomState

KEY = "k" * 42 + "A"


def test_room_state_is_none_for_a_missing_room() -> None:
    assert RoomRouter().room_state("nowhere") is None


def test_room_state_gives_members_in_join_order_capacity_and_key() -> None:
    router = RoomRouter(max_room_capacity=4)
    for cid in ("a", "b"):
        router.connect(cid)
    router.handle("a", Join("r", capacity=3, key=KEY))
    router.handle("b", Join("r", key=KEY))
    state = router.room_state("r")
    assert state == RoomState(("a", "b"), 3, KEY)
    assert KEY not in repr(state)


def test_a_restored_room_goes_on_as_the_original_would() -> None:
    original = RoomRouter(max_room_capacity=4)
    for cid in ("a", "b"):
        original.connect(cid)
    original.handle("a", Join("r", capacity=3))
    original.handle("b", Join("r"))
    state = original.room_state("r")
    assert state is not None

    copy = RoomRouter(max_room_capacity=4)
    copy.restore_room("r", state)
    assert copy.members("r") == ("a", "b")
    assert copy.room_of("a") == "r"
    copy.connect("c")
    assert copy.handle("c", Join("r")) == [
        Deliver("c", Joined("r", "c", ("a", "b", "c"), 3)),
        Deliver("a", PeerJoined("r", "c")),
        Deliver("b", PeerJoined("r", "c")),
        Deliver("a", Ready("r", ("a", "b", "c"))),
        Deliver("b", Ready("r", ("a", "b", "c"))),
        Deliver("c", Ready("r", ("a", "b", "c"))),
    ]
    copy.connect("d")
    assert copy.handle("d", Join("r")) == [Deliver("d", Full("r"))]
    assert copy.handle("a", Leave()) == [
        Deliver("b", PeerLeft("r", "a")),
        Deliver("c", PeerLeft("r", "a")),
    ]


def test_a_restored_keyed_room_still_wants_its_key() -> None:
    router = RoomRouter()
    router.restore_room("r", RoomState(("a",), 2, KEY))
    router.connect("b")
    [answer] = router.handle("b", Join("r"))
    assert isinstance(answer.message, Error)
    assert answer.message.code == ErrorCode.UNAUTHORIZED
    assert router.handle("b", Join("r", key=KEY))[0] == Deliver(
        "b", Joined("r", "b", ("a", "b"), 2)
    )


def test_restored_rooms_count_against_max_rooms() -> None:
    router = RoomRouter(max_rooms=1)
    router.restore_room("r", RoomState(("a",), 2))
    router.connect("b")
    [answer] = router.handle("b", Join("other"))
    assert isinstance(answer.message, Error)
    assert answer.message.code == ErrorCode.BUSY
    router.connect("c")
    assert router.handle("c", Join("r")) == [
        Deliver("c", Joined("r", "c", ("a", "c"), 2)),
        Deliver("a", PeerJoined("r", "c")),
        Deliver("a", Ready("r", ("a", "c"))),
        Deliver("c", Ready("r", ("a", "c"))),
    ]
    router.handle("a", Leave())
    router.handle("c", Leave())
    router.connect("d")
    assert router.handle("d", Join("s")) == [Deliver("d", Created("s", "d", 2))]


@pytest.mark.parametrize(
    "state",
    [
        RoomState((), 2),
        RoomState(("a", "a"), 2),
        RoomState(("a", "b", "c"), 2),
        RoomState(("a",), 1),
        RoomState(("a",), 9),
    ],
)
def test_restore_refuses_a_state_no_router_could_have_made(state: RoomState) -> None:
    with pytest.raises(ValueError, match=r"room|capacity|members"):
        RoomRouter().restore_room("r", state)


def test_restore_refuses_an_existing_room_or_a_member_already_in_one() -> None:
    router = RoomRouter()
    router.restore_room("r", RoomState(("a",), 2))
    with pytest.raises(ValueError, match="exists"):
        router.restore_room("r", RoomState(("b",), 2))
    with pytest.raises(ValueError, match="already in a room"):
        router.restore_room("s", RoomState(("a",), 2))
