"""No frame makes the server raise: fuzzing the sans-I/O core and a running server.

* A hypothesis property over the core: frames of every message type (both
  endpoints), with any JSON in any field, ids nested to any depth, and
  text-level mutations, go through ``request_id``, ``parse_request``, the
  room router and ``encode`` as the server sends them; only
  ``ProtocolError`` may come out, and every answer encodes to JSON.
* :mod:`bench.fuzz`'s seeded mutator, a few thousand frames over real
  sockets on ``/ws`` and ``/apigw``, against an in-process server with its
  rate limits raised and one with the defaults (so that the rate-limited
  path, where issue 15 found a ``RecursionError``, is fuzzed too); no log
  record may carry a traceback, nothing may count as an internal error,
  and the server must still serve a fresh client afterwards.
* The issue's own case: after a rate limit, an ``id`` nested 980 levels.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import fuzz
from callapp.signaling.messages import (
    ABSENT,
    MAX_JSON_DEPTH,
    Error,
    ProtocolError,
    encode,
    encode_apigw,
    parse_apigw_request,
    parse_request,
    request_id,
)
from callapp.signaling.rooms import RoomRouter
from callapp.signaling.server import SignalingServer
from tests.signaling.conftest import ServerFactory, native, recv_json

# -- the core, with hypothesis ---------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_fields = st.sampled_from(
    ["type", "room", "id", "to", "data", "key", "capacity", "connectionId", "message"]
)
_types = st.sampled_from(["join", "leave", "message", "welcome", "", "JOIN"]) | st.text(max_size=5)


@st.composite
def frames(draw: st.DrawFn) -> str | bytes:
    """A frame: a request of some type with random fields, maybe mutated as text."""
    obj: dict[str, Any] = {}
    if draw(st.booleans()):
        obj["type"] = draw(_types)
    obj.update(draw(st.dictionaries(_fields, _json, max_size=4)))
    if draw(st.integers(0, 9)) == 0:
        depth = draw(st.sampled_from([MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, 300, 980]))
        obj["id"] = "[" * depth + "1" + "]" * depth  # spliced in as text below
    text = json.dumps(obj)
    if isinstance(obj.get("id"), str) and obj["id"].startswith("[["):
        text = text.replace(json.dumps(obj["id"]), obj["id"])
    mutation = draw(st.integers(0, 3))
    if mutation == 1 and text:
        cut = draw(st.integers(0, len(text)))
        text = text[:cut]
    elif mutation == 2:
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at] + draw(st.sampled_from(["NaN", "1e400", "}", "[", '"\\ud800"'])) + text[at:]
        )
    if draw(st.integers(0, 30)) == 0:
        return text.encode()
    return text


def _encodes(message: Any, own: str) -> None:
    json.loads(encode(message))
    answer = encode_apigw(message, own)
    if answer is not None:
        json.loads(answer)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames())
def test_no_frame_raises_anything_but_a_protocol_error(frame: str | bytes) -> None:
    router = RoomRouter()
    router.connect("me")
    router.connect("other")
    _encodes(Error("rate-limited", "slow down", request_id(frame)), "me")
    try:
        deliveries = router.handle("me", parse_request(frame))
    except ProtocolError as exc:
        # A ref is always the id as request_id reads it (strictly, bounded depth).
        if exc.ref is not ABSENT and exc.ref != request_id(frame):
            raise AssertionError((exc.ref, frame)) from None
        _encodes(exc.to_message(), "me")
    else:
        for delivery in deliveries:
            _encodes(delivery.message, delivery.to)
    try:
        parse_apigw_request(frame)
    except ProtocolError as exc:
        _encodes(exc.to_message(), "me")


def test_the_mutator_fuzzes_the_core_without_a_failure() -> None:
    result = fuzz.core(3000, seed=1)
    # Every kind of answer came up, not only bad JSON.
    assert {"bad-json", "bad-message", "bad-room"} <= set(result["errors_by_code"])


# -- a running server ------------------------------------------------------------------


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.exc_info or r.levelno >= logging.ERROR or "Traceback" in r.getMessage()
    ]


@pytest.mark.parametrize(
    ("options", "count"),
    [
        pytest.param(
            {"rate": 1e6, "burst": 10**6, "abuse_threshold": 1e9}, 2000, id="limits-raised"
        ),
        pytest.param({}, 1000, id="default-limits"),
    ],
)
async def test_a_running_server_survives_thousands_of_mutated_frames(
    make_server: ServerFactory,
    caplog: pytest.LogCaptureFixture,
    options: dict[str, Any],
    count: int,
) -> None:
    caplog.set_level(logging.INFO)
    server: SignalingServer = await make_server(**options)
    result = await fuzz.sockets(server.url, server.apigw_url, count, seed=count)
    assert result["frames"] == count
    assert _tracebacks(caplog) == []
    _, _, metrics = await _metrics(server)
    assert "callapp_signaling_internal_errors_total 0.0" in metrics
    handled = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("callapp_signaling_messages_received_total{")
    )
    if options.get("abuse_threshold"):
        # Nothing was closed for abuse: the server read every frame sent.
        assert handled >= count, (handled, result)
    # Both endpoints answered, and the server closed nothing with 1011.
    assert any(k.startswith("apigw:") for k in result["answers"])
    assert "Error" in result["answers"]
    assert "1011" not in result["close_codes"]


async def _metrics(server: SignalingServer) -> tuple[int, dict[str, str], str]:
    from tests.signaling.conftest import http_get

    status, headers, body = await http_get(server.port, "/metrics")
    return status, headers, body.decode()


async def test_a_deep_id_after_a_rate_limit_is_answered_without_ref(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = await make_server(rate=0.001, burst=1)
    ws, _ = await native(server)
    await ws.send(json.dumps({"type": "leave"}))  # takes the only token
    for depth, ref in ((980, False), (MAX_JSON_DEPTH, False), (MAX_JSON_DEPTH - 1, True)):
        nested = "[" * depth + "1" + "]" * depth
        await ws.send('{"type": "leave", "id": ' + nested + "}")
        answer = await recv_json(ws)
        assert answer["code"] == "rate-limited"
        # An id too deep to be JSON here is not echoed; one that fits is.
        assert ("ref" in answer) is ref, depth
    assert ws.close_code is None
    assert _tracebacks(caplog) == []
