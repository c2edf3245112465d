"""ICE: no public STUN fallback, bounded STUN/TURN waits, loopback candidates."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator

import pytest
from aioice import Connection
from aiortc import RTCPeerConnection

from callapp.call import ice, wire


class SilentStun(asyncio.DatagramProtocol):
    """A "STUN server" on 127.0.0.1 that reads every request and never answers."""

    def __init__(self) -> None:
        self.requests = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.requests += 1


@pytest.fixture
async def silent_stun() -> AsyncIterator[tuple[str, SilentStun]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        SilentStun, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    yield f"stun:127.0.0.1:{port}", protocol
    transport.close()


def video_pc(servers: list[str]) -> RTCPeerConnection:
    pc = RTCPeerConnection(ice.configuration(ice.ice_servers([], servers)))
    pc.addTransceiver("video", direction="sendrecv")
    return pc


def candidate_lines(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_aioice_still_works_the_way_ice_py_assumes() -> None:
    ice.check_aioice()
    # The reason for all this: stock aioice waits 5 s for STUN/TURN answers.
    timeout = inspect.signature(Connection.get_component_candidates).parameters["timeout"]
    assert timeout.default == 5


async def test_a_silent_stun_server_delays_gathering_by_the_bound_only(
    silent_stun: tuple[str, SilentStun],
) -> None:
    url, server = silent_stun
    pc = video_pc([url])
    ice.tune_gathering(pc, gather_timeout=0.5, allow_loopback=True)
    try:
        started = time.monotonic()
        await pc.setLocalDescription(await pc.createOffer())
        elapsed = time.monotonic() - started
    finally:
        await pc.close()
    assert server.requests >= 1, "the STUN server was asked (so the bound is what saved us)"
    assert elapsed < 1.0
    lines = candidate_lines(pc.localDescription.sdp)
    assert any("typ host" in line for line in lines)
    assert not any("typ srflx" in line for line in lines)


async def test_loopback_candidates_only_when_allowed() -> None:
    allowed, stock = video_pc([]), video_pc([])
    ice.tune_gathering(allowed, gather_timeout=0.5, allow_loopback=True)
    ice.tune_gathering(stock, gather_timeout=0.5, allow_loopback=False)
    try:
        for pc in (allowed, stock):
            await pc.setLocalDescription(await pc.createOffer())
    finally:
        await allowed.close()
        await stock.close()
    assert any(" 127.0.0.1 " in c for c in candidate_lines(allowed.localDescription.sdp))
    assert not any(" 127.0.0.1 " in c for c in candidate_lines(stock.localDescription.sdp))


async def test_tuning_touches_only_the_given_peer_connection() -> None:
    tuned, other = video_pc([]), video_pc([])
    try:
        ice.tune_gathering(tuned, gather_timeout=0.5, allow_loopback=True)
        tuned_conn = tuned.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection
        other_conn = other.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection
        assert "get_component_candidates" in vars(tuned_conn)
        assert "get_component_candidates" not in vars(other_conn)
        assert Connection.get_component_candidates is not tuned_conn.get_component_candidates
    finally:
        await tuned.close()
        await other.close()


async def test_no_servers_means_no_stun_at_all() -> None:
    pc = RTCPeerConnection(ice.configuration([]))
    pc.addTransceiver("video")
    try:
        connection = pc.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection
        assert connection.stun_server is None  # not stun.l.google.com
        assert connection.turn_server is None
    finally:
        await pc.close()


def test_server_list_merges_user_first_and_drops_what_aiortc_cannot_use() -> None:
    servers = ice.ice_servers(
        [
            {"urls": ["stun:stun.example.org", "https://nope"]},
            {"urls": "turn:turn.example.org", "username": "u", "credential": "p"},
            {"urls": "ftp://bad"},
            {"username": "no urls"},
        ],
        ["stun:mine.example.org:3479", "not a url"],
    )
    assert [s.urls for s in servers] == [
        "stun:mine.example.org:3479",
        ["stun:stun.example.org"],
        ["turn:turn.example.org"],
    ]
    assert (servers[2].username, servers[2].credential) == ("u", "p")


@pytest.mark.parametrize(
    "text",
    [
        "candidate:842163049 1 udp 1677729535 192.0.2.7 54321 typ srflx raddr 10.0.0.2 rport 1",
        "a=candidate:842163049 1 udp 1677729535 192.0.2.7 54321 typ srflx",
        "842163049 1 udp 1677729535 192.0.2.7 54321 typ srflx",
    ],
)
def test_remote_candidates_with_or_without_prefixes(text: str) -> None:
    candidate = ice.remote_candidate(wire.Ice(text, "0", None))
    assert candidate is not None
    assert (candidate.ip, candidate.port, candidate.type) == ("192.0.2.7", 54321, "srflx")
    assert candidate.sdpMid == "0"


def test_remote_candidate_defaults_and_garbage() -> None:
    bare = ice.remote_candidate(wire.Ice("candidate:1 1 udp 1 192.0.2.1 9 typ host"))
    assert bare is not None
    assert bare.sdpMLineIndex == 0
    assert ice.remote_candidate(wire.Ice("candidate:1 1 udp")) is None
    assert ice.remote_candidate(wire.Ice("candidate:x y udp 1 192.0.2.1 9 typ host")) is None
