"""Calls always end well (issue 13), over the in-memory hub: no signaling sockets.

- **The host goes away.** A hosting session (``CallConfig.hosting``) that
  closes tells everyone (BYE ``host-ended``); their calls end ``HOST_LEFT``
  and, when the host's server then goes, they do not retry it. A host that
  vanishes without a word together with its server (kill -9) is recognised
  by its media stopping while the link is down.
- **Bounded reconnection.** A server that stays away is given up after
  ``reconnect_for`` seconds once no media flows; a live peer-to-peer call
  keeps it retrying; ``hang_up()`` and ``close()`` work while reconnecting.
- **Never two people waiting side by side.** A member in a dialled call
  still connects to whoever joins its room.

"The server goes away" is :meth:`MemoryHub.stop` (everyone's link drops,
nobody hears ``peer-left``); "kill -9" closes a session's UDP sockets, so
nothing more leaves it, not even a DTLS close.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from callapp.call import errors, wire
from callapp.call.config import CallConfig
from callapp.call.leg import CallLeg
from callapp.call.session import CallSession
from callapp.call.state import CallPhase, EndReason, LegState, LinkEnd, LinkState
from callapp.call.transitions import LegEvent
from tests.call.memory import MemoryChannel, MemoryHub

from .conftest import Sessions, eventually, make_config, wait_for, wait_phase
from .test_session import sent


def channel_of(session: CallSession) -> MemoryChannel:
    channel = session._channel  # private: the test is the server, and drops it
    assert isinstance(channel, MemoryChannel)
    return channel


def kill_media(session: CallSession) -> None:
    """ "kill -9" a session's media: close every UDP socket of its legs; no BYE, no DTLS close."""
    for leg in session._legs.values():
        peer = leg.peer
        assert peer is not None
        for transceiver in peer.pc.getTransceivers():
            connection = transceiver.receiver.transport.transport.iceGatherer._connection
            for protocol in connection._protocols:
                protocol.transport.close()


async def in_a_room_call(
    sessions: Sessions, first: dict[str, object], second: dict[str, object], room: str = "r"
) -> tuple[CallSession, CallSession]:
    a = await sessions(**first)
    b = await sessions(**second)
    await a.join_room(room)
    await b.join_room(room)
    await wait_phase(a, CallPhase.CONNECTED)
    await wait_phase(b, CallPhase.CONNECTED)
    return a, b


def gone(s: object) -> bool:
    return getattr(s, "link", None) is LinkState.GONE


# -- the host goes away ---------------------------------------------------------------


async def test_a_hosting_session_closing_ends_the_guests_call_and_its_server_is_not_retried(
    sessions: Sessions, hub: MemoryHub
) -> None:
    host, guest = await in_a_room_call(sessions, {"hosting": True}, {})
    host_id = host.my_id
    await host.close()  # the app closes; its server stops right after
    snap = await wait_for(guest, lambda s: not s.legs, within=3)
    assert snap.end_reason is EndReason.HOST_LEFT
    assert snap.end_reason.value == "the host ended the call"
    assert sent(hub, host_id, "BYE") == [{"type": "BYE", "payload": {"reason": "host-ended"}}]

    hub.stop()  # the host's server goes
    snap = await wait_for(guest, gone, within=2)
    assert (snap.link_end, snap.end_reason, snap.phase) == (
        LinkEnd.HOST_LEFT,
        EndReason.HOST_LEFT,
        CallPhase.IDLE,
    )
    assert snap.room is None
    assert snap.reconnect_deadline is None
    with pytest.raises(RuntimeError):  # closed: nothing retries that server
        await channel_of(guest).restore()
    # The report says so too.
    assert [r.end_reason for r in guest.records()] == [EndReason.HOST_LEFT]


async def test_a_session_that_does_not_host_closes_with_a_plain_bye(
    sessions: Sessions, hub: MemoryHub
) -> None:
    a, b = await in_a_room_call(sessions, {}, {})
    a_id = a.my_id
    await a.close()
    snap = await wait_for(b, lambda s: not s.legs, within=3)
    assert snap.end_reason is EndReason.PEER_HUNG_UP
    assert sent(hub, a_id, "BYE") == [{"type": "BYE"}]
    hub.stop()  # a server going now is just a server going: retried
    snap = await wait_phase(b, CallPhase.RECONNECTING, within=2)
    assert snap.reconnect_deadline is not None


async def test_set_hosting_makes_a_session_say_its_server_goes(
    sessions: Sessions, hub: MemoryHub
) -> None:
    host, guest = await in_a_room_call(sessions, {}, {})
    before = host.hosting
    host.set_hosting(True)
    assert (before, host.hosting) == (False, True)
    host_id = host.my_id
    await host.close()
    snap = await wait_for(guest, lambda s: not s.legs, within=3)
    assert snap.end_reason is EndReason.HOST_LEFT
    assert sent(hub, host_id, "BYE") == [{"type": "BYE", "payload": {"reason": "host-ended"}}]


async def test_a_room_member_without_a_call_hears_the_host_leave_too(
    sessions: Sessions, hub: MemoryHub
) -> None:
    host = hub.channel()  # scripted: a host that never offers
    await host.connect()
    await host.join("quiet")
    guest = await sessions(connect_timeout=0.3)
    await guest.join_room("quiet")
    await wait_for(guest, lambda s: s.end_reason is EndReason.FAILED, within=3)  # no offer came
    assert not guest.snapshot.legs
    await host.send(wire.encode(wire.Bye(wire.HOST_ENDED)), to=guest.my_id)
    snap = await wait_for(guest, lambda s: s.end_reason is EndReason.HOST_LEFT, within=2)
    assert snap.link is LinkState.CONNECTED  # the server has not gone yet
    hub.stop()
    snap = await wait_for(guest, gone, within=2)
    assert snap.link_end is LinkEnd.HOST_LEFT


async def test_a_host_ended_bye_from_a_stranger_changes_nothing(
    sessions: Sessions, hub: MemoryHub
) -> None:
    guest = await sessions()
    stranger = hub.channel()
    await stranger.connect()
    await stranger.send(wire.encode(wire.Bye(wire.HOST_ENDED)), to=guest.my_id)
    await asyncio.sleep(0.1)
    assert guest.snapshot.end_reason is None
    channel_of(guest).drop()
    snap = await wait_phase(guest, CallPhase.RECONNECTING, within=2)
    assert snap.link is LinkState.RECONNECTING


async def test_a_host_killed_with_its_server_ends_the_call_host_left(
    sessions: Sessions, hub: MemoryHub
) -> None:
    host, guest = await in_a_room_call(sessions, {}, {"silence_timeout": 0.8})
    frames: list[object] = []
    guest.set_frame_callbacks(remote=frames.append)
    await eventually(lambda: len(frames) >= 3)  # media flows: silence is noticed in 0.8 s
    killed_at = time.monotonic()
    kill_media(host)  # the host's process dies: its media stops ...
    hub.stop()  # ... and its server with it
    snap = await wait_for(guest, gone, within=5)
    took = time.monotonic() - killed_at
    assert (snap.link_end, snap.end_reason) == (LinkEnd.HOST_LEFT, EndReason.HOST_LEFT)
    assert not snap.legs
    assert [r.end_reason for r in guest.records()] == [EndReason.HOST_LEFT]
    assert took < 4.0, took  # silence timeout 0.8 s; loose for a loaded machine
    await host.close()


async def test_a_peer_that_goes_quiet_long_after_the_server_is_not_taken_for_the_host(
    sessions: Sessions, hub: MemoryHub
) -> None:
    a, b = await in_a_room_call(sessions, {}, {"silence_timeout": 0.5, "reconnect_for": 0.5})
    frames: list[object] = []
    b.set_frame_callbacks(remote=frames.append)
    await eventually(lambda: len(frames) >= 3)
    hub.stop()  # the server goes; the call goes on peer to peer
    snap = await wait_phase(b, CallPhase.RECONNECTING, within=2)
    assert snap.reconnect_deadline is None  # media flows: no countdown
    await asyncio.sleep(0.5 + 1.5 + 0.3)  # past the "went together" window
    assert b.snapshot.legs
    assert b.snapshot.legs[0].state is LegState.CONNECTED
    kill_media(a)
    snap = await wait_for(b, lambda s: not s.legs, within=4)
    assert snap.end_reason is EndReason.PEER_UNREACHABLE
    assert snap.link is LinkState.RECONNECTING
    assert snap.reconnect_deadline is not None  # now it counts down
    snap = await wait_for(b, gone, within=3)
    assert snap.link_end is LinkEnd.GAVE_UP
    await a.close()


# -- bounded reconnection ------------------------------------------------------------


async def test_a_server_that_stays_away_is_given_up_after_reconnect_for(
    sessions: Sessions,
) -> None:
    a = await sessions(reconnect_for=0.6)
    await a.join_room("alone")
    lost_at = time.monotonic()
    channel_of(a).drop()
    snap = await wait_phase(a, CallPhase.RECONNECTING, within=2)
    deadline = snap.reconnect_deadline
    assert deadline is not None
    assert lost_at + 0.5 <= deadline <= time.monotonic() + 0.6
    snap = await wait_for(a, gone, within=3)
    assert time.monotonic() >= deadline
    assert (snap.link_end, snap.end_reason, snap.phase) == (
        LinkEnd.GAVE_UP,
        EndReason.SERVER_LOST,
        CallPhase.IDLE,
    )
    assert LinkEnd.GAVE_UP.value == "could not reach the server; gave up"
    assert (snap.room, snap.reconnect_deadline, snap.connection_id) == (None, None, None)
    with pytest.raises(RuntimeError):  # the channel was closed: no more retries
        await channel_of(a).restore()
    await a.hang_up()  # still fine once gone
    await a.close()
    assert a.snapshot.phase is CallPhase.CLOSED


async def test_calls_not_yet_connected_end_server_lost_and_the_countdown_starts(
    sessions: Sessions, hub: MemoryHub
) -> None:
    a = await sessions(reconnect_for=0.4)
    silent = hub.channel()  # rings, never answers
    await silent.connect()
    await a.dial(silent.connection_id or "")
    await wait_phase(a, CallPhase.CALLING)
    hub.stop()
    snap = await wait_phase(a, CallPhase.RECONNECTING, within=2)
    assert snap.end_reason is EndReason.SERVER_LOST
    assert snap.reconnect_deadline is not None
    await wait_for(a, gone, within=3)


async def test_a_restored_link_stops_the_countdown(sessions: Sessions) -> None:
    a = await sessions(reconnect_for=0.5)
    channel_of(a).drop()
    snap = await wait_phase(a, CallPhase.RECONNECTING, within=2)
    assert snap.reconnect_deadline is not None
    await channel_of(a).restore()
    snap = await wait_phase(a, CallPhase.WAITING, within=2)
    assert snap.reconnect_deadline is None
    await asyncio.sleep(0.8)
    assert a.snapshot.link is LinkState.CONNECTED
    assert a.snapshot.link_end is None


async def test_each_loss_gets_its_own_countdown(sessions: Sessions) -> None:
    a = await sessions(reconnect_for=0.8)
    channel = channel_of(a)
    channel.drop()
    first = (await wait_phase(a, CallPhase.RECONNECTING, within=2)).reconnect_deadline
    await asyncio.sleep(0.2)
    await channel.restore()
    await wait_phase(a, CallPhase.WAITING, within=2)
    await asyncio.sleep(0.3)
    channel.drop()
    second = (await wait_phase(a, CallPhase.RECONNECTING, within=2)).reconnect_deadline
    assert first is not None
    assert second is not None
    assert second > first
    await asyncio.sleep(max(0.0, first - time.monotonic()) + 0.1)
    assert a.snapshot.link is LinkState.RECONNECTING  # the first countdown is over for good
    snap = await wait_for(a, gone, within=3)
    assert snap.link_end is LinkEnd.GAVE_UP
    assert time.monotonic() >= second - 0.05


async def test_a_live_call_goes_on_while_reconnecting_and_the_countdown_starts_when_it_ends(
    sessions: Sessions, hub: MemoryHub
) -> None:
    a, b = await in_a_room_call(sessions, {}, {"reconnect_for": 0.5})
    hub.stop()
    snap = await wait_phase(b, CallPhase.RECONNECTING, within=2)
    assert snap.reconnect_deadline is None
    await asyncio.sleep(1.0)  # twice reconnect_for: still in the call
    assert b.snapshot.in_call
    assert b.snapshot.link is LinkState.RECONNECTING
    await a.hang_up()  # its BYE cannot reach b; its DTLS close does
    snap = await wait_for(b, lambda s: not s.legs, within=3)
    assert snap.end_reason is EndReason.PEER_HUNG_UP  # not taken for the host leaving
    assert snap.reconnect_deadline is not None
    snap = await wait_for(b, gone, within=3)
    assert snap.link_end is LinkEnd.GAVE_UP


async def test_hang_up_works_while_reconnecting_and_the_room_is_not_rejoined(
    sessions: Sessions, hub: MemoryHub
) -> None:
    a, b = await in_a_room_call(sessions, {}, {})
    hub.stop()
    await wait_phase(b, CallPhase.RECONNECTING, within=2)
    assert b.snapshot.in_call
    await b.hang_up()
    snap = b.snapshot
    assert (snap.legs, snap.room, snap.end_reason) == ((), None, EndReason.HUNG_UP)
    assert snap.phase is CallPhase.RECONNECTING
    assert snap.reconnect_deadline is not None  # nobody in a call: it counts down now
    await wait_for(a, lambda s: not s.legs, within=3)  # a hears it over DTLS
    await channel_of(b).restore()
    snap = await wait_phase(b, CallPhase.WAITING, within=2)
    assert snap.room is None  # hung up means out of the room, also after the server is back
    await asyncio.sleep(0.3)
    assert not a.snapshot.legs


async def test_close_works_while_reconnecting(sessions: Sessions, hub: MemoryHub) -> None:
    a, b = await in_a_room_call(sessions, {}, {})
    channel = channel_of(b)
    hub.stop()
    await wait_phase(b, CallPhase.RECONNECTING, within=2)
    await b.close()
    snap = b.snapshot
    assert (snap.phase, snap.link, snap.link_end) == (
        CallPhase.CLOSED,
        LinkState.GONE,
        LinkEnd.CLOSED,
    )
    assert snap.reconnect_deadline is None
    await wait_for(a, lambda s: not s.legs, within=3)
    with pytest.raises(RuntimeError):  # closed: it does not come back
        await channel.restore()


async def test_reconnect_for_is_checked() -> None:
    with pytest.raises(ValueError, match="reconnect_for"):
        make_config(reconnect_for=-1.0)
    with pytest.raises(ValueError, match="reconnect_for"):
        make_config(reconnect_for=float("nan"))
    assert CallConfig(server_url="ws://h/ws").reconnect_for == 30.0
    assert CallConfig(server_url="ws://h/ws").hosting is False


async def test_reconnect_for_inf_retries_until_closed(sessions: Sessions) -> None:
    a = await sessions(reconnect_for=float("inf"))
    channel_of(a).drop()
    snap = await wait_phase(a, CallPhase.RECONNECTING, within=2)
    assert snap.reconnect_deadline is None
    await a.close()
    assert a.snapshot.link_end is LinkEnd.CLOSED


# -- never two people waiting side by side -------------------------------------------


async def test_a_member_in_a_dialled_call_still_connects_to_whoever_joins_its_room(
    sessions: Sessions,
) -> None:
    host = await sessions(auto_answer=True)
    await host.join_room("lobby")
    dialler = await sessions()
    await dialler.dial(host.my_id)
    await wait_phase(dialler, CallPhase.CONNECTED)
    joiner = await sessions()
    await joiner.join_room("lobby")  # the old bug: both waited here, forever
    snap = await wait_phase(joiner, CallPhase.CONNECTED, within=10)
    assert snap.peer_id == host.my_id
    snap = await wait_for(
        host, lambda s: len([x for x in s.legs if x.state is LegState.CONNECTED]) == 2
    )
    assert {leg.peer_id: leg.in_room for leg in snap.legs} == {
        dialler.my_id: False,
        joiner.my_id: True,
    }
    assert dialler.snapshot.phase is CallPhase.CONNECTED  # the first call goes on


async def test_a_member_ringing_for_a_dialled_call_connects_to_the_joiner_too(
    sessions: Sessions,
) -> None:
    host = await sessions()
    await host.join_room("lobby2")
    dialler = await sessions()
    await dialler.dial(host.my_id)
    await wait_phase(host, CallPhase.RINGING)
    joiner = await sessions()
    await joiner.join_room("lobby2")
    await wait_phase(joiner, CallPhase.CONNECTED, within=10)
    await host.accept()  # and the ringing call can still be taken
    await wait_phase(dialler, CallPhase.CONNECTED, within=10)


async def test_a_full_room_says_what_to_do(sessions: Sessions) -> None:
    a = await sessions()
    b = await sessions()
    c = await sessions()
    await a.join_room("pair")
    await b.join_room("pair")
    with pytest.raises(errors.RoomFullError) as info:
        await c.join_room("pair")
    message = str(info.value)
    assert message.startswith("Room 'pair' is full")
    assert "Try again when someone leaves" in message
    assert info.value.room == "pair"


# -- reports ----------------------------------------------------------------------


async def test_a_leg_that_ends_insecure_before_media_is_in_the_records(
    sessions: Sessions,
) -> None:
    a = await sessions()
    leg = CallLeg(a, "someone", LegEvent.CALL, in_room=False)  # never begun: no Peer
    a._legs[leg.peer_id] = leg
    await leg.end(LegEvent.INSECURE)
    records = a.records()
    assert [(r.peer_id, r.end_reason) for r in records] == [("someone", EndReason.INSECURE)]


@pytest.mark.parametrize("reason", [EndReason.HOST_LEFT, EndReason.BUSY])
def test_new_end_reasons_read_as_sentences(reason: EndReason) -> None:
    assert reason.value[0].islower()
    assert not reason.value.endswith(".")


def test_only_busy_is_an_ending_error() -> None:
    assert isinstance(errors.ending_error(EndReason.BUSY), errors.HostBusyError)
    for reason in EndReason:
        if reason is not EndReason.BUSY:
            assert errors.ending_error(reason) is None
    assert errors.ending_error(None) is None
