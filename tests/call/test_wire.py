"""Call messages: PROTOCOL.md's shapes both ways; anything else is ignored."""

from __future__ import annotations

from typing import Any

import pytest

from callapp.call import wire


def test_round_trips() -> None:
    for message in (
        wire.Sdp("offer", "v=0\r\n"),
        wire.Sdp("answer", "v=0\r\n"),
        wire.Ice("candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", 0),
        wire.Bye(),
    ):
        assert wire.parse(wire.encode(message)) == message


def test_exact_protocol_shapes() -> None:
    assert wire.encode(wire.Bye()) == {"type": "BYE"}
    assert wire.encode(wire.Sdp("offer", "x")) == {
        "type": "SDP",
        "payload": {"type": "offer", "sdp": "x"},
    }
    assert wire.encode(wire.Ice("c", "0", 0)) == {
        "type": "ICE",
        "payload": {"candidate": "c", "sdpMid": "0", "sdpMLineIndex": 0},
    }


@pytest.mark.parametrize(
    "payload",
    [{"candidate": ""}, {"candidate": None, "sdpMid": "0"}, None],
)
def test_end_of_candidates_forms(payload: Any) -> None:
    message = wire.parse({"type": "ICE", "payload": payload})
    assert isinstance(message, wire.Ice)
    assert message.is_end


@pytest.mark.parametrize(
    "data",
    [
        None,
        "BYE",
        [],
        {"type": "CHAT", "payload": {"text": "hi"}},
        {"type": "SDP", "payload": {"type": "pranswer", "sdp": "x"}},
        {"type": "SDP", "payload": {"type": "offer"}},
        {"type": "SDP"},
        {"type": "ICE", "payload": {"candidate": 5}},
        {"type": "ICE", "payload": "candidate:..."},
        {"no": "type"},
    ],
)
def test_what_receivers_ignore(data: Any) -> None:
    assert wire.parse(data) is None


def test_bad_mline_index_is_dropped_not_fatal() -> None:
    message = wire.parse({"type": "ICE", "payload": {"candidate": "c", "sdpMLineIndex": -1}})
    assert message == wire.Ice("c", None, None)
