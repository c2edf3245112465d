"""CallSession's behaviour over the in-memory hub: no signaling sockets.

Where a test needs a scripted peer it uses a bare MemoryChannel and sends
call messages by hand; where it needs a real call it uses two sessions (their
peer connections talk over 127.0.0.1 UDP).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from callapp.call import errors, wire
from callapp.call.leg import CallLeg
from callapp.call.session import CallSession
from callapp.call.state import CallPhase, EndReason, LegState, Role
from callapp.signaling import messages
from tests.call.memory import MemoryChannel, MemoryHub

from .conftest import Sessions, eventually, wait_for, wait_phase


def sent(hub: MemoryHub, sender: str | None, kind: str) -> list[dict[str, Any]]:
    """Call messages of ``kind`` (``offer``, ``answer``, ``ICE``, ``BYE``) ``sender`` relayed."""
    found = []
    for frm, _to, data in hub.log:
        if frm != sender or not isinstance(data, dict):
            continue
        payload = data.get("payload")
        if data.get("type") == kind or (isinstance(payload, dict) and payload.get("type") == kind):
            found.append(data)
    return found


def only_leg(session: CallSession) -> CallLeg:
    """The session's one live leg (private: tests look inside)."""
    legs = [leg for leg in session._legs.values() if leg.live]
    assert len(legs) == 1, legs
    return legs[0]


async def raw_client(hub: MemoryHub) -> MemoryChannel:
    channel = hub.channel()
    await channel.connect()
    return channel


# -- rooms: who offers -----------------------------------------------------------


@pytest.mark.parametrize(("codec", "mime"), [("vp8", "VP8"), ("h264", "H264")])
async def test_first_in_room_offers_with_the_chosen_codec(
    sessions: Sessions, hub: MemoryHub, codec: str, mime: str
) -> None:
    a = await sessions(codec=codec)
    await a.join_room("r")
    b = await raw_client(hub)
    await b.join("r")

    snap = await wait_phase(a, CallPhase.CALLING)
    assert (snap.role, snap.peer_id, snap.room) == (Role.CALLER, b.connection_id, "r")
    await eventually(lambda: sent(hub, a.snapshot.connection_id, "offer"))
    sdp = sent(hub, a.snapshot.connection_id, "offer")[0]["payload"]["sdp"]
    video = sdp[sdp.index("m=video") :].splitlines()
    first_pt = video[0].split()[3]
    assert f"a=rtpmap:{first_pt} {mime}/90000" in video
    assert "127.0.0.1" in sdp  # allow_loopback


async def test_second_in_room_waits_for_the_offer(sessions: Sessions, hub: MemoryHub) -> None:
    b = await raw_client(hub)
    await b.join("r")
    a = await sessions()
    await a.join_room("r")

    snap = await wait_phase(a, CallPhase.CALLING)
    assert (snap.role, snap.peer_id) == (Role.CALLEE, b.connection_id)
    await asyncio.sleep(0.3)
    said = [m[2]["type"] for m in hub.log if m[0] == a.snapshot.connection_id]
    assert said == ["PRESENCE"]  # who we are, and no offer: b offers


async def test_candidates_before_the_offer_are_queued_then_applied(
    sessions: Sessions, hub: MemoryHub
) -> None:
    b = await raw_client(hub)
    await b.join("r")
    a = await sessions()
    await a.join_room("r")
    await wait_phase(a, CallPhase.CALLING)

    trickled = [
        "candidate:1 1 udp 2122260223 192.0.2.98 50000 typ host",
        "a=candidate:2 1 udp 2122260223 192.0.2.99 50001 typ host",
    ]
    for text in trickled:
        await b.send(wire.encode(wire.Ice(text, "0", 0)), to=a.snapshot.connection_id)
    await b.send({"type": "ICE", "payload": {"candidate": "garbage"}}, to=a.snapshot.connection_id)
    leg = only_leg(a)  # private: the queue is not part of the public API
    await eventually(lambda: leg.peer is not None and leg.peer.pending_candidates == 3)

    caller = RTCPeerConnection()
    caller.addTransceiver("video", direction="sendrecv")
    try:
        await caller.setLocalDescription(await caller.createOffer())
        offer = wire.Sdp("offer", caller.localDescription.sdp)
        await b.send(wire.encode(offer), to=a.snapshot.connection_id)
        await eventually(lambda: sent(hub, a.snapshot.connection_id, "answer"))
        assert leg.peer is not None
        assert leg.peer.pending_candidates == 0
        remote = leg.peer.pc.remoteDescription.sdp
        assert "192.0.2.98 50000" in remote
        assert "192.0.2.99 50001" in remote
        answer = sent(hub, a.snapshot.connection_id, "answer")[0]["payload"]["sdp"]
        await caller.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    finally:
        await caller.close()


# -- dialling ----------------------------------------------------------------------


async def test_incoming_call_rings_until_accepted(sessions: Sessions) -> None:
    a = await sessions()
    b = await sessions()
    frames: list[av.VideoFrame] = []
    a.set_frame_callbacks(remote=frames.append)
    await a.dial(b.snapshot.connection_id or "")

    ringing = await wait_phase(b, CallPhase.RINGING)
    assert (ringing.peer_id, ringing.role) == (a.snapshot.connection_id, Role.CALLEE)
    assert a.snapshot.phase is CallPhase.CALLING
    assert a.snapshot.role is Role.CALLER
    await asyncio.sleep(0.3)
    assert b.snapshot.phase is CallPhase.RINGING  # nothing happens without accept()

    await b.accept()
    await wait_phase(a, CallPhase.CONNECTED)
    connected = await wait_phase(b, CallPhase.CONNECTED)
    assert connected.connected_at is not None
    await eventually(lambda: len(frames) >= 3)
    stats = await a.stats()
    assert stats is not None
    assert stats.codec == "VP8"
    assert stats.frames_received >= 3


async def test_decline(sessions: Sessions, hub: MemoryHub) -> None:
    a = await sessions()
    b = await sessions()
    await a.dial(b.snapshot.connection_id or "")
    await wait_phase(b, CallPhase.RINGING)
    await b.decline()

    assert b.snapshot.phase is CallPhase.WAITING
    assert b.snapshot.end_reason is EndReason.DECLINED
    snap = await wait_for(a, lambda s: s.phase is CallPhase.WAITING)
    assert snap.end_reason is EndReason.DECLINED
    assert snap.peer_id is None
    assert sent(hub, b.snapshot.connection_id, "BYE")


async def test_auto_answer_skips_ringing(sessions: Sessions) -> None:
    a = await sessions()
    b = await sessions(auto_answer=True)
    phases: list[CallPhase] = []
    b.subscribe(lambda s: phases.append(s.phase))
    await a.dial(b.snapshot.connection_id or "")
    await wait_phase(b, CallPhase.CONNECTED)
    assert CallPhase.RINGING not in phases
    assert phases[0] is CallPhase.CALLING


async def test_glare_makes_one_call_and_the_lower_id_calls(sessions: Sessions) -> None:
    a = await sessions()
    b = await sessions()
    a_id, b_id = a.snapshot.connection_id or "", b.snapshot.connection_id or ""
    await asyncio.gather(a.dial(b_id), b.dial(a_id))

    await wait_phase(a, CallPhase.CONNECTED)
    await wait_phase(b, CallPhase.CONNECTED)
    low, high = (a, b) if a_id < b_id else (b, a)
    assert low.snapshot.role is Role.CALLER
    assert high.snapshot.role is Role.CALLEE
    assert low.snapshot.peer_id == high.snapshot.connection_id
    await asyncio.sleep(0.5)  # and it stays one call
    assert a.snapshot.phase is CallPhase.CONNECTED
    assert b.snapshot.phase is CallPhase.CONNECTED


async def test_busy_peer_turns_a_third_caller_away(sessions: Sessions, hub: MemoryHub) -> None:
    a = await sessions()
    b = await sessions(auto_answer=True)
    c = await sessions()
    await a.dial(b.snapshot.connection_id or "")
    await wait_phase(b, CallPhase.CONNECTED)
    await c.dial(b.snapshot.connection_id or "")
    snap = await wait_for(c, lambda s: s.phase is CallPhase.WAITING)
    assert snap.end_reason is EndReason.BUSY  # told so, not "declined"
    assert sent(hub, b.snapshot.connection_id, "BYE") == [
        {"type": "BYE", "payload": {"reason": "busy"}}
    ]
    assert b.snapshot.peer_id == a.snapshot.connection_id
    # The attempt is in the report, with why it ended (it never reached media).
    assert [r.end_reason for r in c.records()] == [EndReason.BUSY]
    assert str(errors.ending_error(snap.end_reason)).startswith(
        "The person you called is in another call."
    )


async def test_no_answer_times_out(sessions: Sessions) -> None:
    a = await sessions(ring_timeout=0.5)
    b = await sessions()
    await a.dial(b.snapshot.connection_id or "")
    await wait_phase(b, CallPhase.RINGING)
    snap = await wait_for(a, lambda s: s.phase is CallPhase.WAITING, within=3)
    assert snap.end_reason is EndReason.NO_ANSWER
    back = await wait_for(b, lambda s: s.phase is CallPhase.WAITING, within=3)
    assert back.end_reason is EndReason.PEER_HUNG_UP


async def test_dialling_an_unknown_id_fails_with_a_notice(sessions: Sessions) -> None:
    a = await sessions()
    await a.dial("nobody-at-all")
    snap = await wait_for(a, lambda s: s.phase is CallPhase.WAITING)
    assert snap.end_reason is EndReason.FAILED
    assert snap.notice is not None
    assert "nobody-at-all" in snap.notice


async def test_invalid_actions_raise_call_errors(sessions: Sessions) -> None:
    a = await sessions()
    with pytest.raises(errors.InvalidAction):
        await a.dial(a.snapshot.connection_id or "")
    with pytest.raises(errors.InvalidAction):
        await a.accept()
    with pytest.raises(errors.InvalidAction):
        await a.decline()
    unconnected = CallSession(a.config, channel=MemoryHub().channel())
    with pytest.raises(errors.NotConnected):
        await unconnected.dial("x")
    await unconnected.close()


async def test_unknown_and_malformed_call_messages_are_ignored(
    sessions: Sessions, hub: MemoryHub
) -> None:
    a = await sessions()
    b = await raw_client(hub)
    target = a.snapshot.connection_id
    for data in (
        {"type": "CHAT", "payload": {"text": "hi"}},
        {"type": "NEW-THING"},
        "just a string",
        {"type": "SDP", "payload": {"type": "rollback"}},
        {"type": "SDP", "payload": "nonsense"},
        {"type": "BYE"},  # from someone we are not talking to
        None,
    ):
        await b.send(data, to=target)
    await asyncio.sleep(0.2)
    assert a.snapshot.phase is CallPhase.WAITING
    assert a.snapshot.end_reason is None


# -- ending calls ------------------------------------------------------------------


async def connected_room(sessions: Sessions) -> tuple[CallSession, CallSession]:
    a = await sessions()
    b = await sessions()
    await a.join_room("room")
    await b.join_room("room")
    await wait_phase(a, CallPhase.CONNECTED)
    await wait_phase(b, CallPhase.CONNECTED)
    return a, b


async def test_hang_up_sends_bye_and_leaves_the_room(sessions: Sessions, hub: MemoryHub) -> None:
    a, b = await connected_room(sessions)
    await a.hang_up()
    assert a.snapshot.phase is CallPhase.WAITING
    assert a.snapshot.end_reason is EndReason.HUNG_UP
    assert a.snapshot.room is None
    snap = await wait_for(b, lambda s: s.phase is CallPhase.WAITING, within=2)
    assert snap.end_reason is EndReason.PEER_HUNG_UP
    assert snap.room == "room"
    assert sent(hub, a.snapshot.connection_id, "BYE")

    # Someone new joins the room: a fresh call with the one who stayed.
    c = await sessions()
    await c.join_room("room")
    snap = await wait_phase(b, CallPhase.CONNECTED)
    assert (snap.peer_id, snap.role) == (c.snapshot.connection_id, Role.CALLER)


async def test_peer_leaving_ends_the_call_and_a_rejoin_makes_a_new_one(
    sessions: Sessions,
) -> None:
    a, b = await connected_room(sessions)
    first = only_leg(a).peer
    first_pc = first.pc if first is not None else None
    channel = b._channel
    assert isinstance(channel, MemoryChannel)
    channel.drop()  # B's signaling vanishes; the hub tells A that B left

    snap = await wait_for(a, lambda s: s.phase is CallPhase.WAITING, within=2)
    assert snap.end_reason is EndReason.PEER_LEFT
    await wait_phase(b, CallPhase.RECONNECTING)

    new_id = await channel.restore()
    snap = await wait_for(
        a, lambda s: s.phase is CallPhase.CONNECTED and s.peer_id == new_id, within=10
    )
    assert snap.role is Role.CALLER  # A stayed, so A is first in the room
    assert b.snapshot.connection_id == new_id
    await wait_phase(b, CallPhase.CONNECTED)
    peer = only_leg(a).peer
    assert peer is not None
    assert peer.pc is not first_pc


def _kill_media(session: CallSession) -> None:
    """ "kill -9" a session's media: close its UDP sockets, no BYE, no DTLS close."""
    peer = only_leg(session).peer
    assert peer is not None
    for transceiver in peer.pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        for protocol in connection._protocols:
            protocol.transport.close()


def _blackhole(session: CallSession) -> None:
    """The media path of the session's current Peer dies: whatever it sends is lost
    (the sockets stay open, as when a link goes down; a fresh Peer has new ones)."""
    peer = only_leg(session).peer
    assert peer is not None
    for transceiver in peer.pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        for protocol in connection._protocols:
            protocol.transport.sendto = lambda *args, **kwargs: None  # type: ignore[method-assign]


async def test_a_silent_peer_is_noticed(sessions: Sessions) -> None:
    # restart_for=0: no fresh ICE session is tried, the call ends at once.
    a = await sessions(silence_timeout=0.8, restart_for=0)
    b = await sessions(auto_answer=True)
    frames: list[av.VideoFrame] = []
    a.set_frame_callbacks(remote=frames.append)
    await a.dial(b.snapshot.connection_id or "")
    await wait_phase(a, CallPhase.CONNECTED)
    await eventually(lambda: len(frames) >= 3)
    _kill_media(b)
    started = time.monotonic()
    snap = await wait_for(a, lambda s: s.phase is CallPhase.WAITING, within=5)
    assert snap.end_reason is EndReason.PEER_UNREACHABLE
    assert time.monotonic() - started < 2.0


async def test_a_dead_media_path_is_renegotiated_while_signaling_works(
    sessions: Sessions,
) -> None:
    a = await sessions(silence_timeout=0.8)
    b = await sessions(auto_answer=True, silence_timeout=0.8)
    frames: list[av.VideoFrame] = []
    a.set_frame_callbacks(remote=frames.append)
    await a.dial(b.snapshot.connection_id or "")
    await wait_phase(a, CallPhase.CONNECTED)
    await eventually(lambda: len(frames) >= 3)
    first_pc = only_leg(a).peer.pc  # type: ignore[union-attr]
    states: list[LegState] = []
    a.subscribe(lambda s: states.extend(leg.state for leg in s.legs))
    _blackhole(a)  # the path dies both ways; signaling works: a fresh ICE session
    _blackhole(b)
    await wait_for(a, lambda s: any(leg.state is LegState.RECONNECTING for leg in s.legs), 5)
    lost = time.monotonic()
    count = len(frames)
    snap = await wait_for(
        a, lambda s: any(leg.state is LegState.CONNECTED for leg in s.legs), within=8
    )
    await eventually(lambda: len(frames) > count + 3, within=5)
    recovered = time.monotonic() - lost
    assert snap.phase is CallPhase.CONNECTED
    assert only_leg(a).peer.pc is not first_pc  # type: ignore[union-attr]
    assert [r.ice_restarts for r in a.records()] == [1]
    assert [r.ice_restarts for r in b.records()] == [1]
    assert recovered < 3.0
    # The call went on: one leg, reported once, never ended.
    assert [r.end_reason for r in a.records()] == [None]
    assert LegState.RECONNECTING in states


async def test_video_off_sends_black_frames(sessions: Sessions) -> None:
    a, b = await connected_room(sessions)
    frames: list[av.VideoFrame] = []
    b.set_frame_callbacks(remote=frames.append)
    await a.set_video_enabled(False)
    assert a.snapshot.video_enabled is False
    await asyncio.sleep(1.0)
    frames.clear()
    await eventually(lambda: len(frames) >= 3)
    luma = frames[-1].to_ndarray(format="yuv420p")[: frames[-1].height]
    assert float(np.mean(luma)) < 20
    assert b.snapshot.phase is CallPhase.CONNECTED  # black is not silence


async def test_room_full_and_bad_room_leave_the_session_usable(sessions: Sessions) -> None:
    a = await sessions()
    b = await sessions()
    c = await sessions()
    await a.join_room("two")
    await b.join_room("two")
    with pytest.raises(errors.RoomFullError):
        await c.join_room("two")
    with pytest.raises(errors.BadRoomError):
        await c.join_room("no spaces allowed")
    assert c.snapshot.phase is CallPhase.WAITING
    assert c.snapshot.room is None


async def test_close_hangs_up_and_publishes_closed(sessions: Sessions, hub: MemoryHub) -> None:
    a, b = await connected_room(sessions)
    seen: list[CallPhase] = []
    a.subscribe(lambda s: seen.append(s.phase))
    await a.close()
    assert a.snapshot.phase is CallPhase.CLOSED
    assert seen[-1] is CallPhase.CLOSED
    snap = await wait_for(b, lambda s: s.phase is CallPhase.WAITING, within=2)
    assert snap.end_reason is EndReason.PEER_HUNG_UP


async def test_unsubscribe_stops_snapshots(sessions: Sessions) -> None:
    a = await sessions()
    seen: list[object] = []
    unsubscribe = a.subscribe(seen.append)
    await a.join_room("x")
    count = len(seen)
    assert count >= 1
    unsubscribe()
    await a.set_video_enabled(False)
    assert len(seen) == count


async def test_server_errors_other_than_unknown_peer_do_not_end_calls(
    sessions: Sessions,
) -> None:
    a = await sessions()
    channel = a._channel
    assert isinstance(channel, MemoryChannel)
    channel._queue.put_nowait(
        messages.Error(code=messages.ErrorCode.RATE_LIMITED, message="slow down")
    )
    await asyncio.sleep(0.1)
    assert a.snapshot.phase is CallPhase.WAITING


async def test_self_view_runs_outside_calls_and_stops_while_video_is_off(
    sessions: Sessions,
) -> None:
    a = await sessions()
    local: list[av.VideoFrame] = []
    a.set_frame_callbacks(local=local.append)
    await eventually(lambda: len(local) >= 3)
    assert float(np.mean(local[-1].to_ndarray(format="yuv420p"))) > 20
    await a.set_video_enabled(False)
    await asyncio.sleep(0.05)
    local.clear()
    await asyncio.sleep(0.3)
    assert local == []  # the view says "Camera off"; the peers get black frames
    await a.set_video_enabled(True)

    # In a call the peer connection feeds the self-view; after it, the preview again.
    b = await sessions()
    await a.join_room("self")
    await b.join_room("self")
    await wait_phase(a, CallPhase.CONNECTED)
    local.clear()
    await eventually(lambda: len(local) >= 3)
    await a.hang_up()
    local.clear()
    await eventually(lambda: len(local) >= 3)
    a.set_frame_callbacks()
    await asyncio.sleep(0.2)
    count = len(local)
    await asyncio.sleep(0.3)
    assert len(local) == count


async def test_sources_that_cannot_open_fall_back_and_both_say_why(
    sessions: Sessions, tmp_path: Any
) -> None:
    missing_video = tmp_path / "gone.mp4"
    missing_audio = tmp_path / "gone.wav"
    session = await sessions(video=str(missing_video), audio=str(missing_audio))
    notice = session.snapshot.notice
    assert notice is not None
    assert "gone.mp4" in notice
    assert "Sending a test pattern instead." in notice
    assert "gone.wav" in notice
    assert "Sending silence instead." in notice
    assert session.snapshot.phase is CallPhase.WAITING


async def test_each_device_notice_is_its_own_line(sessions: Sessions, tmp_path: Any) -> None:
    session = await sessions(video=str(tmp_path / "a.mp4"), audio=str(tmp_path / "b.wav"))
    notice = session.snapshot.notice
    assert notice is not None
    lines = notice.splitlines()
    assert len(lines) == 2
    assert "a.mp4" in lines[0]
    assert "b.wav" in lines[1]
