"""Group rooms, chat and presence over the in-memory twin (real peer connections on 127.0.0.1).

The twin runs the real ``RoomRouter``, so these are the server's rules; the
media is real aiortc between sessions in this process.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callapp.call import errors, wire
from callapp.call.session import CallSession
from callapp.call.state import CallPhase, EndReason, LegState, Role, SessionSnapshot

from .conftest import Sessions, eventually, make_config, wait_for
from .memory import MemoryChannel, MemoryHub


def connected_to(session: CallSession, *others: CallSession) -> bool:
    ids = {o.snapshot.connection_id for o in others}
    live = {leg.peer_id for leg in session.snapshot.legs if leg.state is LegState.CONNECTED}
    return ids <= live and len(session.snapshot.legs) == len(others)


async def all_connected(members: list[CallSession], within: float = 15.0) -> None:
    for session in members:
        others = [o for o in members if o is not session]
        await wait_for(session, lambda s, o=others, me=session: connected_to(me, *o), within)


async def test_three_in_a_room_of_three_all_connect_and_one_leaving_ends_one_leg(
    sessions: Sessions, hub: MemoryHub
) -> None:
    a = await sessions(name="Ana")
    b = await sessions(name="Bo")
    c = await sessions(name="Cy")
    await a.join_room("trio", capacity=3)
    await b.join_room("trio", capacity=4)  # a later joiner's capacity is ignored
    await c.join_room("trio")
    assert c.snapshot.room_capacity == 3
    await all_connected([a, b, c])

    # The earlier member offered in every pair.
    def role(me: CallSession, other: CallSession) -> Role:
        leg = me.snapshot.leg(other.snapshot.connection_id or "")
        assert leg is not None
        return leg.role

    assert (role(a, b), role(a, c), role(b, c)) == (Role.CALLER,) * 3
    assert (role(b, a), role(c, a), role(c, b)) == (Role.CALLEE,) * 3
    # Names travel with presence.
    leg = a.snapshot.leg(c.snapshot.connection_id or "")
    assert leg is not None
    assert leg.name == "Cy"

    b_id = b.snapshot.connection_id
    await b.hang_up()
    for stay in (a, c):
        snap = await wait_for(stay, lambda s: len(s.legs) == 1, within=5)
        assert snap.phase is CallPhase.CONNECTED
        assert snap.leg(b_id or "") is None
        assert snap.end_reason in (EndReason.PEER_HUNG_UP, EndReason.PEER_LEFT)
    assert connected_to(a, c)
    assert connected_to(c, a)
    assert b.snapshot.legs == ()


async def test_a_fourth_joining_mid_call_gets_legs_to_all_three(sessions: Sessions) -> None:
    members = [await sessions() for _ in range(3)]
    for session in members:
        await session.join_room("quad", capacity=4)
    await all_connected(members)
    late = await sessions()
    await late.join_room("quad")
    await all_connected([*members, late])
    assert all(leg.role is Role.CALLEE for leg in late.snapshot.legs)
    fifth = await sessions()
    with pytest.raises(errors.RoomFullError):
        await fifth.join_room("quad")


async def test_a_capacity_above_the_server_limit_is_refused_plainly(sessions: Sessions) -> None:
    a = await sessions()
    with pytest.raises(errors.RoomCapacityError, match="2 to 4"):
        await a.join_room("big", capacity=6)
    with pytest.raises(errors.InvalidAction):
        await a.join_room("huge", capacity=9)
    assert a.snapshot.room is None


async def test_one_capture_feeds_every_leg(sessions: Sessions) -> None:
    members = [await sessions() for _ in range(3)]
    for session in members:
        await session.join_room("fan", capacity=3)
    await all_connected(members)
    a = members[0]
    assert a._video_fanout is not None
    # One source, read once; each leg's sender its own consumer.
    assert len(a._video_fanout._consumers) == 2  # type: ignore[attr-defined]
    frames: dict[str, int] = {}
    a.set_frame_callbacks(
        remote_by_peer=lambda peer, frame: frames.__setitem__(peer, frames.get(peer, 0) + 1)
    )
    await eventually(lambda: len(frames) == 2 and min(frames.values()) >= 5)


async def test_chat_goes_over_the_data_channel_to_everyone(sessions: Sessions) -> None:
    members = [await sessions(name=n) for n in ("Ana", "Bo", "Cy")]
    for session in members:
        await session.join_room("chat", capacity=3)
    await all_connected(members)
    a, b, c = members
    await eventually(lambda: all(leg.chat_open for m in members for leg in m.snapshot.legs))
    line = await a.send_chat("  hello, <b>all</b> 👋 ")
    assert (line.text, line.mine, line.sender_name) == ("hello, <b>all</b> 👋", True, "Ana")
    for other in (b, c):
        snap = await wait_for(other, lambda s: len(s.chat) == 1, within=3)
        got = snap.chat[0]
        assert (got.text, got.sender_name) == ("hello, <b>all</b> 👋", "Ana")
        assert got.via == "datachannel"
    await c.send_chat("second")
    await c.send_chat("third")
    snap = await wait_for(a, lambda s: len(s.chat) == 3, within=3)
    assert [m.text for m in snap.chat] == ["hello, <b>all</b> 👋", "second", "third"]


async def test_chat_falls_back_to_signaling_without_a_data_channel(
    sessions: Sessions, hub: MemoryHub
) -> None:
    a = await sessions(name="Ana")
    await a.join_room("fallback")
    raw = hub.channel()  # a peer with no data channel: it only speaks signaling
    await raw.connect()
    await raw.join("fallback")
    await raw.send(wire.encode(wire.PresenceUpdate(wire.Presence(name="Raw"))), to=a.my_id)
    await wait_for(a, lambda s: s.leg(raw.connection_id or "") is not None)
    await raw.send(wire.encode(wire.Chat("from signaling")), to=a.my_id)
    snap = await wait_for(a, lambda s: len(s.chat) == 1, within=3)
    assert (snap.chat[0].text, snap.chat[0].sender_name, snap.chat[0].via) == (
        "from signaling",
        "Raw",
        "signaling",
    )
    await a.send_chat("back to you")
    assert {"type": "CHAT", "payload": {"text": "back to you"}} in [
        data for frm, _to, data in hub.log if frm == a.my_id
    ]


async def test_strangers_cannot_write_into_a_call(sessions: Sessions, hub: MemoryHub) -> None:
    a = await sessions()
    await a.join_room("private")
    stranger = hub.channel()
    await stranger.connect()
    await stranger.send(wire.encode(wire.Chat("buy now")), to=a.my_id)
    await asyncio.sleep(0.2)
    assert a.snapshot.chat == ()


async def test_chat_refuses_what_cannot_be_sent(sessions: Sessions) -> None:
    a = await sessions()
    with pytest.raises(errors.InvalidAction, match="Nobody"):
        await a.send_chat("anyone?")
    with pytest.raises(errors.InvalidAction, match="at most 1000"):
        await a.send_chat("x" * 1001)
    with pytest.raises(errors.InvalidAction, match="empty"):
        await a.send_chat("   ")


async def test_presence_changes_reach_the_others_within_a_second(sessions: Sessions) -> None:
    members = [await sessions(name=n) for n in ("Ana", "Bo", "Cy")]
    for session in members:
        await session.join_room("presence", capacity=3)
    await all_connected(members)
    a, b, c = members
    a_id = a.my_id
    started = time.monotonic()
    await a.set_muted(True)
    await a.set_video_enabled(False)
    await a.set_name("  Ana Lee ")
    await a.set_recording(True)

    def told(s: SessionSnapshot) -> bool:
        leg = s.leg(a_id)
        p = leg.presence if leg is not None else None
        return p is not None and p.muted and p.camera_off and p.recording and p.name == "Ana Lee"

    for other in (b, c):
        await wait_for(other, told, within=1.0)
    assert time.monotonic() - started < 1.0
    assert a.snapshot.name == "Ana Lee"


async def test_presence_that_arrives_before_the_leg_is_kept(
    sessions: Sessions, hub: MemoryHub
) -> None:
    a = await sessions()
    await a.join_room("early")
    raw = hub.channel()
    await raw.connect()
    await raw.send(
        wire.encode(wire.PresenceUpdate(wire.Presence(name="Early", muted=True))), to=a.my_id
    )
    await asyncio.sleep(0.05)
    await raw.join("early")
    snap = await wait_for(a, lambda s: s.leg(raw.connection_id or "") is not None)
    leg = snap.leg(raw.connection_id or "")
    assert leg is not None
    assert leg.presence is not None
    assert (leg.name, leg.presence.muted) == ("Early", True)


# -- random orders -------------------------------------------------------------------

ACTIONS = st.lists(
    st.tuples(st.sampled_from(["join", "leave", "hang_up", "drop"]), st.integers(0, 3)),
    min_size=2,
    max_size=7,
)


class Departures:
    """Counts, per session, the legs that started and ended to each peer id."""

    def __init__(self, session: CallSession) -> None:
        self.started: dict[str, int] = {}
        self.ended: dict[str, int] = {}
        self.live: set[str] = set()
        session.subscribe(self._on_snapshot)

    def _on_snapshot(self, snapshot: SessionSnapshot) -> None:
        now = {leg.peer_id for leg in snapshot.legs}
        for gone in self.live - now:
            self.ended[gone] = self.ended.get(gone, 0) + 1
        for new in now - self.live:
            self.started[new] = self.started.get(new, 0) + 1
        self.live = now

    def check(self) -> None:
        """Every leg that started ended exactly once, unless it is still live."""
        for peer_id, started in self.started.items():
            still = 1 if peer_id in self.live else 0
            assert self.ended.get(peer_id, 0) == started - still, (peer_id, self)

    def __repr__(self) -> str:
        return f"started={self.started} ended={self.ended} live={self.live}"


async def run_scenario(actions: list[tuple[str, int]]) -> None:
    hub = MemoryHub(max_room_capacity=4)
    made = [CallSession(make_config(connect_timeout=6.0), channel=hub.channel()) for _ in range(4)]
    departures = [Departures(s) for s in made]
    in_room: list[CallSession] = []  # join order
    departed: set[str] = set()  # connection ids that left the room at some point
    ever: dict[int, set[str]] = {i: set() for i in range(4)}
    try:
        for session in made:
            await session.connect()
        for action, index in actions:
            session = made[index]
            if action == "join" and session not in in_room and len(in_room) < 4:
                await session.join_room("mesh", capacity=4)
                in_room.append(session)
            elif action in ("leave", "hang_up") and session in in_room:
                departed.add(session.my_id)
                await (session.leave_room() if action == "leave" else session.hang_up())
                in_room.remove(session)
            elif action == "drop" and session in in_room:
                channel = session._channel
                assert isinstance(channel, MemoryChannel)
                departed.add(session.my_id)
                channel.drop()  # gone without a word; the hub says peer-left
                in_room.remove(session)
                await wait_for(session, lambda s: s.phase is CallPhase.RECONNECTING, 3)
                new_id = await channel.restore()  # back with a new id, rejoined: the newest
                # The others may offer to the new id at once: count it as seen from now.
                await wait_for(session, lambda s, new=new_id: s.connection_id == new, 3)
                in_room.append(session)
            for i, s in enumerate(made):
                ever[i] |= {o.my_id for o in in_room if o is not s}
            await asyncio.sleep(0.02)  # a little time, not a settle: orders interleave
        # Settle: every pair in the room connected, nobody else has a leg.
        for session in made:
            others = [o for o in in_room if o is not session]
            if session in in_room:
                await wait_for(session, lambda s, me=session, o=others: connected_to(me, *o), 20)
            else:
                await wait_for(session, lambda s: s.legs == (), 10)
        ids = {s.my_id for s in in_room}
        for index, session in enumerate(made):
            for leg in session.snapshot.legs:
                assert leg.peer_id in ids, "a leg to someone not in the room"
            # Every departure ended exactly one leg on each side that had one,
            # and no leg ended twice or was left behind.
            departures[index].check()
            assert set(departures[index].started) <= ever[index]
        for gone in departed - ids:  # left and did not come back under that id
            for index in range(len(made)):
                assert gone not in departures[index].live, (gone, departures[index])
    finally:
        for session in made:
            await session.close()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(actions=ACTIONS)
def test_random_joins_leaves_and_hang_ups_leave_no_orphan_legs(
    actions: list[tuple[str, int]],
) -> None:
    asyncio.run(asyncio.wait_for(run_scenario(actions), 90))


async def test_a_late_room_offer_after_we_left_does_not_ring(
    sessions: Sessions, hub: MemoryHub
) -> None:
    """The old room's offer was on its way as we left: no dialled call comes of it."""
    a = await sessions()
    await a.join_room("gone", capacity=3)
    member = hub.channel()
    await member.connect()
    await member.join("gone")
    await wait_for(a, lambda s: len(s.legs) == 1)  # a knows it, and offers to it
    await a.leave_room()
    await member.send(wire.encode(wire.Sdp("offer", "v=0\r\n")), to=a.my_id)
    await asyncio.sleep(0.2)
    assert a.snapshot.legs == ()
    assert a.snapshot.phase is CallPhase.WAITING
    byes = [d for frm, to, d in hub.log if frm == a.my_id and d == {"type": "BYE"}]
    assert byes, "the late offer is turned away"
