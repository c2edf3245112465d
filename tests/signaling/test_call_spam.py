"""No call spam: unanswered dialled calls are limited per caller and per callee."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callapp.signaling.limits import CallAttemptLimiter
from callapp.signaling.server import SignalingServer
from tests.signaling.conftest import (
    ServerFactory,
    apigw,
    http_get,
    joined,
    native,
    recv_json,
    send_json,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def offer(to: str, n: int = 0) -> dict[str, Any]:
    sdp = {"type": "SDP", "payload": {"type": "offer", "sdp": f"v=0 {n}"}}
    return {"type": "message", "to": to, "data": sdp, "id": n}


def answer(to: str) -> dict[str, Any]:
    return {"type": "message", "to": to, "data": {"type": "SDP", "payload": {"type": "answer"}}}


# -- sans-I/O -----------------------------------------------------------------------


def test_a_caller_may_leave_only_so_many_calls_unanswered() -> None:
    clock = FakeClock()
    limiter = CallAttemptLimiter(limit=3, window=60, clock=clock)
    assert all(limiter.attempt("spammer", f"victim{i}") for i in range(3))
    assert not limiter.attempt("spammer", "victim3")
    assert limiter.attempt("spammer", "victim0")  # ringing the same one again is one call
    limiter.answered(caller="spammer", callee="victim1")
    assert limiter.attempt("spammer", "victim3")
    clock.now += 60
    assert all(limiter.attempt("spammer", f"late{i}") for i in range(3))


def test_a_callee_cannot_be_rung_by_a_crowd() -> None:
    limiter = CallAttemptLimiter(limit=2, window=60, clock=FakeClock())
    assert limiter.attempt("a", "victim")
    assert limiter.attempt("b", "victim")
    assert not limiter.attempt("c", "victim")
    assert limiter.attempt("c", "someone-else")


def test_reconnecting_does_not_reset_what_a_victim_was_rung() -> None:
    limiter = CallAttemptLimiter(limit=2, window=60, clock=FakeClock())
    assert limiter.attempt("a1", "victim")
    assert limiter.attempt("a2", "victim")
    limiter.forget("a1")
    limiter.forget("a2")
    assert not limiter.attempt("a3", "victim")
    limiter.forget("victim")  # the victim left: nothing is kept for it
    assert limiter.tracked == 0


def test_zero_turns_the_limit_off() -> None:
    limiter = CallAttemptLimiter(limit=0)
    assert all(limiter.attempt("a", f"v{i}") for i in range(100))
    assert limiter.tracked == 0
    with pytest.raises(ValueError, match="limit"):
        CallAttemptLimiter(limit=-1)


# -- through a real server -----------------------------------------------------------


async def drain(ws: Any, within: float = 0.3) -> list[Any]:
    got = []
    try:
        while True:
            got.append(await asyncio.wait_for(recv_json(ws), within))
    except TimeoutError:
        return got


async def test_a_storm_of_calls_is_cut_off_and_counted(make_server: ServerFactory) -> None:
    server: SignalingServer = await make_server(max_unanswered_calls=3)
    spammer, _ = await native(server)
    victims = [await native(server) for _ in range(5)]
    for n, (_ws, vid) in enumerate(victims):
        await send_json(spammer, offer(vid, n))
    errors = [m for m in await drain(spammer) if m.get("type") == "error"]
    assert [(e["code"], e["ref"]) for e in errors] == [("rate-limited", 3), ("rate-limited", 4)]
    assert "wait a minute" in errors[0]["message"]
    rung = [len(await drain(ws)) for ws, _ in victims]
    assert rung == [1, 1, 1, 0, 0]
    _status, _headers, body = await http_get(server.port, "/metrics")
    assert "callapp_signaling_calls_refused_total 2.0" in body.decode()


async def test_an_answer_frees_the_slot_and_rooms_are_not_limited(
    make_server: ServerFactory,
) -> None:
    server: SignalingServer = await make_server(max_unanswered_calls=1)
    caller, caller_id = await native(server)
    (callee, callee_id), (other, other_id) = await native(server), await native(server)
    await send_json(caller, offer(callee_id))
    assert (await recv_json(callee))["data"]["payload"]["type"] == "offer"
    await send_json(caller, offer(other_id, 1))
    assert (await recv_json(caller))["code"] == "rate-limited"
    await send_json(callee, answer(caller_id))
    assert (await recv_json(caller))["data"]["payload"]["type"] == "answer"
    await send_json(caller, offer(other_id, 2))
    assert (await recv_json(other))["data"]["payload"]["type"] == "offer"
    # Inside a room the room's rules apply: offers between members are not calls.
    (a, _a_id, _), (b, b_id, _) = await joined(server, "r"), await joined(server, "r")
    await drain(a, 0.1)
    for n in range(3):
        await send_json(a, offer(b_id, n))
    offers = [m for m in await drain(b) if m.get("type") == "message"]
    assert len(offers) == 3


async def test_the_apigw_endpoint_is_limited_too(make_server: ServerFactory) -> None:
    server: SignalingServer = await make_server(max_unanswered_calls=1)
    spammer, _ = await apigw(server)
    (_, a), (_, b) = await native(server), await native(server)
    sdp = {"type": "SDP", "payload": {"type": "offer", "sdp": "x"}}
    await send_json(spammer, {"connectionId": a, "message": sdp})
    assert "error" not in await recv_json(spammer)
    await send_json(spammer, {"connectionId": b, "message": sdp})
    assert (await recv_json(spammer))["error"] == "rate-limited"
