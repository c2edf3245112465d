"""Room secrets, verification codes and fingerprint checks in the engine (in-memory twin).

The hub runs the real room router, so a keyed room refuses joins as the real
server does; the peer connections are real aiortc on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from callapp.call import errors, security, wire
from callapp.call.state import CallPhase, EndReason, LegState, SessionSnapshot

from .conftest import Sessions, wait_for
from .memory import MemoryHub


def verified_leg(snapshot: SessionSnapshot) -> bool:
    return any(leg.security_code is not None for leg in snapshot.legs)


async def test_a_room_with_a_secret_connects_verified_with_one_code(sessions: Sessions) -> None:
    secret = security.new_room_secret()
    a = await sessions()
    b = await sessions()
    frames: list[Any] = []
    b.set_frame_callbacks(remote=frames.append)
    await a.join_room("locked", secret=secret)
    await b.join_room("locked", secret=secret)
    snap_a = await wait_for(a, lambda s: any(leg.peer_verified for leg in s.legs), within=10)
    snap_b = await wait_for(b, lambda s: any(leg.peer_verified for leg in s.legs), within=10)
    code_a, code_b = snap_a.legs[0].security_code, snap_b.legs[0].security_code
    assert code_a is not None
    assert code_a == code_b
    assert re.fullmatch(r"[1-9]\d{3} [1-9]\d{3} [1-9]\d{3}", code_a)
    await wait_for(b, lambda s: s.phase is CallPhase.CONNECTED)
    for _ in range(100):
        if frames:
            break
        await asyncio.sleep(0.05)
    assert frames, "media flows once the peer is verified"


async def test_without_a_secret_the_codes_match_but_nothing_is_verified(
    sessions: Sessions,
) -> None:
    a = await sessions()
    b = await sessions()
    await a.join_room("open")
    await b.join_room("open")
    snap_a = await wait_for(a, verified_leg, within=10)
    snap_b = await wait_for(b, verified_leg, within=10)
    assert snap_a.legs[0].security_code == snap_b.legs[0].security_code
    assert not snap_a.legs[0].peer_verified
    assert not snap_b.legs[0].peer_verified


async def test_a_dialled_call_has_a_code_too(sessions: Sessions) -> None:
    a = await sessions()
    b = await sessions(auto_answer=True)
    await a.dial(b.my_id)
    snap_a = await wait_for(a, verified_leg, within=10)
    snap_b = await wait_for(b, verified_leg, within=10)
    assert snap_a.legs[0].security_code == snap_b.legs[0].security_code


async def test_joins_without_or_with_a_wrong_secret_are_refused(sessions: Sessions) -> None:
    secret = security.new_room_secret()
    a = await sessions()
    await a.join_room("vault", secret=secret)
    stranger = await sessions()
    with pytest.raises(errors.RoomLockedError):
        await stranger.join_room("vault")
    with pytest.raises(errors.RoomLockedError):
        await stranger.join_room("vault", secret=security.new_room_secret())
    assert stranger.snapshot.room is None
    assert a.snapshot.legs == ()  # nobody got in, nothing started
    await stranger.join_room("vault", secret=secret)
    await wait_for(a, lambda s: len(s.legs) == 1)


async def test_a_malformed_secret_is_said_plainly(sessions: Sessions) -> None:
    a = await sessions()
    with pytest.raises(errors.InvalidAction, match="secret"):
        await a.join_room("r", secret="not-a-secret")


async def test_a_peer_that_cannot_prove_its_fingerprint_is_never_shown(
    sessions: Sessions, hub: MemoryHub
) -> None:
    """A raw peer in the keyed room (it got the key, e.g. from the server) but not the secret."""
    secret = security.new_room_secret()
    a = await sessions(silence_timeout=5.0)
    frames: list[Any] = []
    a.set_frame_callbacks(remote=frames.append, remote_by_peer=lambda p, f: frames.append(f))
    await a.join_room("vault", secret=secret)
    mallory = hub.channel()
    await mallory.connect()
    await mallory.join("vault", key=security.room_key(secret, "vault"))
    # a offers (earlier member); mallory answers with its own certificate and a forged MAC.
    offer = await _next_offer(hub, a.my_id)
    pc = RTCPeerConnection()
    try:
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        from callapp.media.testpattern import TestPatternTrack

        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                pc.addTrack(TestPatternTrack(160, 120, 15))
        await pc.setLocalDescription(await pc.createAnswer())
        mine = mallory.connection_id or ""
        await mallory.send(wire.encode(wire.Sdp("answer", pc.localDescription.sdp)), to=a.my_id)
        forged = security.fingerprint_mac(
            security.fingerprint_auth_key(security.new_room_secret(), "vault"),
            mine,
            a.my_id,
            security.local_fingerprint(pc.localDescription.sdp),
        )
        await mallory.send(wire.encode(wire.Verify({"step": "mac", "mac": forged})), to=a.my_id)
        snap = await wait_for(a, lambda s: s.legs == () and s.end_reason is not None, within=10)
        assert snap.end_reason is EndReason.INSECURE
        assert frames == [], "no frame of an unverified peer reaches a view"
        record = a.records()
        assert all(r.end_reason is EndReason.INSECURE for r in record)
    finally:
        await pc.close()


async def test_a_silent_peer_in_a_keyed_room_times_out_as_insecure(
    sessions: Sessions, hub: MemoryHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callapp.call import leg

    monkeypatch.setattr(leg, "VERIFY_TIMEOUT", 0.5)
    secret = security.new_room_secret()
    a = await sessions(silence_timeout=5.0)
    await a.join_room("quiet", secret=secret)
    other = hub.channel()
    await other.connect()
    await other.join("quiet", key=security.room_key(secret, "quiet"))
    offer = await _next_offer(hub, a.my_id)
    pc = RTCPeerConnection()
    try:
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await other.send(wire.encode(wire.Sdp("answer", pc.localDescription.sdp)), to=a.my_id)
        await wait_for(a, lambda s: any(x.state is LegState.CONNECTED for x in s.legs), 10)
        snap = await wait_for(a, lambda s: s.legs == (), within=5)
        assert snap.end_reason is EndReason.INSECURE
    finally:
        await pc.close()


async def _next_offer(hub: MemoryHub, sender: str, within: float = 5.0) -> str:
    for _ in range(int(within / 0.02)):
        for frm, _to, data in hub.log:
            payload = data.get("payload") if isinstance(data, dict) else None
            if frm == sender and isinstance(payload, dict) and payload.get("type") == "offer":
                return str(payload["sdp"])
        await asyncio.sleep(0.02)
    raise AssertionError("no offer")
