"""Calls that survive a signaling outage and a dead media path (issue 14), in memory.

- **The server restarts mid-call** (:meth:`MemoryHub.stop`, then each channel
  restores with a new id): the call goes on in the same peer connection, each
  side learns the other's new id over the data channel (``RELINK``), nobody
  makes a second call, and the call can renegotiate afterwards.
- **A RELINK through signaling is refused**: only the peer's own DTLS
  session may say who it is now.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import av

from callapp.call import wire
from callapp.call.leg import UNHEARD_RESTART_S
from callapp.call.session import CallSession
from callapp.call.state import CallPhase, EndReason, LegState
from tests.call.memory import MemoryHub

from .conftest import Sessions, eventually, wait_for, wait_phase
from .test_endings import channel_of, in_a_room_call
from .test_session import _blackhole, only_leg


def leg_ids(session: CallSession) -> list[str]:
    return [leg.peer_id for leg in session.snapshot.legs]


async def test_a_server_restart_leaves_the_call_untouched(
    sessions: Sessions, hub: MemoryHub
) -> None:
    a, b = await in_a_room_call(sessions, {}, {})
    pc_a = only_leg(a).peer.pc  # type: ignore[union-attr]
    pc_b = only_leg(b).peer.pc  # type: ignore[union-attr]
    frames: list[float] = []

    def on_frame(_frame: av.VideoFrame) -> None:
        frames.append(time.monotonic())

    b.set_frame_callbacks(remote=on_frame)
    await eventually(lambda: len(frames) > 3)
    offers_before = len([d for _, _, d in hub.log if d.get("type") == "SDP"])
    hub.stop()  # nobody hears peer-left: the server is simply gone
    await wait_phase(a, CallPhase.RECONNECTING, within=2)
    await wait_phase(b, CallPhase.RECONNECTING, within=2)
    await asyncio.sleep(0.5)  # media goes on peer to peer meanwhile
    new_a = await channel_of(a).restore()
    await asyncio.sleep(0.2)
    new_b = await channel_of(b).restore()
    await wait_for(a, lambda s: leg_ids(a) == [new_b] and s.phase is CallPhase.CONNECTED, 3)
    await wait_for(b, lambda s: leg_ids(b) == [new_a] and s.phase is CallPhase.CONNECTED, 3)
    await asyncio.sleep(1.0)  # no second call is started after the holds
    # The same peer connections, no new offer, one leg each, counted once.
    assert only_leg(a).peer.pc is pc_a  # type: ignore[union-attr]
    assert only_leg(b).peer.pc is pc_b  # type: ignore[union-attr]
    assert len([d for _, _, d in hub.log if d.get("type") == "SDP"]) == offers_before
    assert (a.signaling_reconnects, b.signaling_reconnects) == (1, 1)
    assert [r.end_reason for r in a.records()] == [None]
    assert [r.end_reason for r in b.records()] == [None]
    gaps = [later - earlier for earlier, later in itertools.pairwise(frames)]
    assert max(gaps) < 0.5, "the video froze during the outage"

    # And the call can still renegotiate afterwards, through the new ids.
    _blackhole(a)
    _blackhole(b)
    await wait_for(a, lambda s: s.legs[0].state is LegState.RECONNECTING, 5)
    await wait_for(a, lambda s: s.legs[0].state is LegState.CONNECTED, 8)
    await wait_for(b, lambda s: s.legs[0].state is LegState.CONNECTED, 8)
    assert only_leg(a).peer.pc is not pc_a  # type: ignore[union-attr]
    assert [r.ice_restarts for r in a.records()] == [1]


async def test_a_relink_through_signaling_is_not_believed(
    sessions: Sessions, hub: MemoryHub
) -> None:
    a, b = await in_a_room_call(sessions, {}, {})
    stranger = hub.channel()
    await stranger.connect()
    b_id = b.my_id
    # Someone on the server claims to be A now, hoping B re-keys its call.
    await stranger.send(wire.encode(wire.Relink(stranger.connection_id or "")), to=b_id)
    await asyncio.sleep(0.3)
    assert leg_ids(b) == [a.my_id]


async def _unheard(data: object, to: str | None = None) -> None:
    """A signaling send whose network is gone."""


async def test_a_restart_nobody_answers_ends_the_call_soon(sessions: Sessions) -> None:
    # The peer's whole network is gone: its media and its signaling. Our
    # restart offers go unanswered, so the call ends after UNHEARD_RESTART_S,
    # not after restart_for.
    a = await sessions(silence_timeout=0.8)
    b = await sessions(auto_answer=True, silence_timeout=0.8)
    frames: list[av.VideoFrame] = []
    a.set_frame_callbacks(remote=frames.append)
    await a.dial(b.my_id)
    await wait_phase(a, CallPhase.CONNECTED)
    await eventually(lambda: len(frames) > 3)
    assert b._events is not None
    assert b._channel is not None
    b._events.cancel()  # B hears nothing more from signaling
    # ... and says nothing more: else B, giving up at the same moment as A,
    # may tell A it hung up before A gives up itself.
    b._channel.send = _unheard  # type: ignore[method-assign]
    _blackhole(a)
    _blackhole(b)
    await wait_for(a, lambda s: any(g.state is LegState.RECONNECTING for g in s.legs), 5)
    lost = time.monotonic()
    snap = await wait_for(a, lambda s: not s.legs, within=UNHEARD_RESTART_S + 3)
    took = time.monotonic() - lost
    assert snap.end_reason is EndReason.PEER_UNREACHABLE
    assert UNHEARD_RESTART_S - 0.5 < took < UNHEARD_RESTART_S + 1.5
    assert [r.ice_restarts for r in a.records()] == [1]
