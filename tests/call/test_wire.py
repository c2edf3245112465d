"""Call messages: PROTOCOL.md's shapes both ways; anything else is ignored."""

from __future__ import annotations

from typing import Any

import pytest

from callapp.call import wire
from callapp.call.state import Presence


def test_round_trips() -> None:
    for message in (
        wire.Sdp("offer", "v=0\r\n"),
        wire.Sdp("answer", "v=0\r\n"),
        wire.Ice("candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", 0),
        wire.Bye(),
        wire.Bye(wire.HOST_ENDED),
        wire.Bye(wire.BUSY),
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


def test_bye_reasons_are_an_extension_a_v1_peer_can_ignore() -> None:
    assert wire.encode(wire.Bye(wire.HOST_ENDED)) == {
        "type": "BYE",
        "payload": {"reason": "host-ended"},
    }
    assert wire.encode(wire.Bye(wire.BUSY)) == {"type": "BYE", "payload": {"reason": "busy"}}


@pytest.mark.parametrize(
    "data",
    [
        {"type": "BYE", "payload": {"reason": "moved-to-mars"}},  # a reason we do not know
        {"type": "BYE", "payload": {"reason": ["busy"]}},  # not even a string
        {"type": "BYE", "payload": {"reason": {"x": 1}}},
        {"type": "BYE", "payload": "busy"},
        {"type": "BYE", "payload": None},
    ],
)
def test_a_bye_with_a_reason_we_do_not_know_is_a_plain_bye(data: Any) -> None:
    assert wire.parse(data) == wire.Bye()


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
        {"type": "CHAT", "payload": {"text": "   "}},
        {"type": "CHAT", "payload": {"text": "x" * 1001}},
        {"type": "CHAT", "payload": {"text": 5}},
        {"type": "CHAT"},
        {"type": "PRESENCE", "payload": "Ana"},
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


def test_chat_and_presence_round_trip() -> None:
    chat = wire.Chat("héllo 👋")
    assert wire.parse(wire.encode(chat)) == chat
    assert wire.parse_json(wire.encode_json(chat)) == chat
    presence = wire.PresenceUpdate(
        Presence(name="Ana", muted=True, camera_off=True, screen=True, recording=True)
    )
    assert wire.encode(presence)["payload"]["cameraOff"] is True
    assert wire.parse(wire.encode(presence)) == presence


def test_presence_from_a_careless_peer() -> None:
    message = wire.parse({"type": "PRESENCE", "payload": {"name": 7, "muted": "yes", "x": 1}})
    assert message == wire.PresenceUpdate(Presence(name="Guest", muted=False))


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("  Ana  ", "Ana"),
        ("A\x00n\u200ba", "Ana"),
        ("Ana\n  Lee", "Ana Lee"),
        ("", "Guest"),
        ("\x07", "Guest"),
        ("x" * 70, "x" * 64),
        (None, "Guest"),
    ],
)
def test_names_are_cleaned(raw: object, name: str) -> None:
    assert wire.clean_name(raw) == name


def test_chat_text_limits_say_why() -> None:
    assert wire.clean_chat_text("  hi  ") == "hi"
    assert wire.clean_chat_text("😀" * 1000) == "😀" * 1000
    with pytest.raises(ValueError, match="at most 1000 characters; this one has 1001"):
        wire.clean_chat_text("x" * 1001)
    with pytest.raises(ValueError, match="empty"):
        wire.clean_chat_text(" \n ")
    assert wire.parse_json("{not json") is None


def test_restart_offers_and_relinks_are_extensions_a_v1_peer_can_ignore() -> None:
    restart = wire.Sdp("offer", "v=0", restart=True)
    assert wire.encode(restart) == {
        "type": "SDP",
        "payload": {"type": "offer", "sdp": "v=0", "restart": True},
    }
    assert wire.parse(wire.encode(restart)) == restart
    # Without the word, or with anything but true, an offer is a plain offer.
    plain = {"type": "SDP", "payload": {"type": "offer", "sdp": "v=0"}}
    assert wire.encode(wire.Sdp("offer", "v=0")) == plain
    for odd in ("yes", 1, None):
        payload = {"type": "offer", "sdp": "v=0", "restart": odd}
        assert wire.parse({"type": "SDP", "payload": payload}) == wire.Sdp("offer", "v=0")
    answer = {"type": "SDP", "payload": {"type": "answer", "sdp": "v=0", "restart": True}}
    assert wire.parse(answer) == wire.Sdp("answer", "v=0")  # only offers restart
    relink = wire.Relink("q3Jx0v1Lr9aZ-k2T")
    assert wire.encode(relink) == {"type": "RELINK", "payload": {"id": "q3Jx0v1Lr9aZ-k2T"}}
    assert wire.parse_json(wire.encode_json(relink)) == relink
    for bad in ({}, {"id": ""}, {"id": 7}, {"id": "x" * 129}, None):
        assert wire.parse({"type": "RELINK", "payload": bad}) is None
