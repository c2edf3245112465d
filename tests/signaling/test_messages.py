"""Protocol v1 messages, both ways: frames in, values out, and back again.

Every message type of PROTOCOL.md is parsed and encoded here, and every error
code the sans-I/O core itself produces is provoked (``too-large`` and
``rate-limited`` belong to the server's loop; ``busy``, ``unknown-peer`` and
``not-in-room`` to the room router, see test_rooms.py).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callapp.signaling.messages import (
    ABSENT,
    DEFAULT_ROOM_CAPACITY,
    MAX_JSON_DEPTH,
    MAX_ROOM_CAPACITY,
    MIN_ROOM_CAPACITY,
    PROTOCOL_VERSION,
    ROOM_KEY_LENGTH,
    ApigwPing,
    ApigwSend,
    Created,
    Error,
    ErrorCode,
    Full,
    Join,
    Joined,
    Leave,
    PeerJoined,
    PeerLeft,
    ProtocolError,
    Ready,
    Relayed,
    Request,
    Send,
    ServerMessage,
    UnknownServerMessage,
    Welcome,
    encode,
    encode_apigw,
    encode_apigw_answer,
    encode_relayed,
    encode_request,
    is_valid_room_capacity,
    is_valid_room_key,
    is_valid_room_name,
    new_connection_id,
    parse_apigw_request,
    parse_request,
    parse_server_message,
    request_id,
    to_json_object,
)

#: A room key as clients send it: 32 bytes, 43 unpadded base64url characters.
KEY = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq80"
ID_A = "AAAAAAAAAAAAAAAA"
ID_B = "b-b_bbbbbbbbbbbbbbbb"


def frame(obj: Any) -> str:
    return json.dumps(obj)


def _no_constants(name: str) -> Any:
    raise AssertionError(f"{name} in encoded output")


def strict_loads(text: str) -> Any:
    """Parse like a browser's JSON.parse would: no NaN/Infinity, UTF-8 encodable."""
    text.encode("utf-8")  # raises on a lone surrogate: not sendable in a text frame
    return json.loads(text, parse_constant=_no_constants)


def protocol_error(parse: Any, data: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(data)
    return info.value


# Any JSON value: what `data`, `id` and an /apigw `message` may be.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

SAMPLE_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**64,
    1.5,
    "",
    "text é 😀",
    [],
    {},
    [1, "two", None, {"three": [3.0]}],
    {"type": "SDP", "payload": {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"}},
]


# --------------------------------------------------------------------------
# Native requests: parse_request


def test_join_parses_with_room_and_no_id() -> None:
    request = parse_request(frame({"type": "join", "room": "kitchen"}))
    assert request == Join(room="kitchen")
    assert request.id is ABSENT


def test_leave_parses() -> None:
    assert parse_request(frame({"type": "leave"})) == Leave()


def test_message_to_a_peer_parses() -> None:
    request = parse_request(frame({"type": "message", "to": ID_B, "data": {"type": "BYE"}}))
    assert request == Send(data={"type": "BYE"}, to=ID_B)


def test_message_to_the_room_parses_with_to_none() -> None:
    request = parse_request(frame({"type": "message", "data": [1, 2]}))
    assert request == Send(data=[1, 2], to=None)


def test_null_to_means_the_room() -> None:
    request = parse_request(frame({"type": "message", "to": None, "data": 1}))
    assert isinstance(request, Send)
    assert request.to is None


@pytest.mark.parametrize("data", SAMPLE_VALUES)
def test_message_data_may_be_any_json_value(data: Any) -> None:
    request = parse_request(frame({"type": "message", "data": data}))
    assert isinstance(request, Send)
    assert request.data == data
    assert type(request.data) is type(data)


def test_a_client_cannot_choose_its_from() -> None:
    request = parse_request(frame({"type": "message", "from": ID_A, "data": 1}))
    assert request == Send(data=1)
    relayed = Relayed(sender=ID_B, data=request.data)
    assert strict_loads(encode(relayed))["from"] == ID_B


def test_unknown_fields_are_ignored() -> None:
    request = parse_request(frame({"type": "join", "room": "r", "colour": "x", "v": 2}))
    assert request == Join(room="r")


@pytest.mark.parametrize("ident", SAMPLE_VALUES)
@pytest.mark.parametrize(
    "obj",
    [{"type": "join", "room": "r"}, {"type": "leave"}, {"type": "message", "data": 0}],
    ids=["join", "leave", "message"],
)
def test_every_request_keeps_an_id_of_any_json_type(obj: dict[str, Any], ident: Any) -> None:
    request = parse_request(frame({**obj, "id": ident}))
    assert request.id == ident
    assert request.id is not ABSENT


def test_text_is_utf8_json_with_non_ascii_content() -> None:
    request = parse_request('{"type":"message","data":"Grüße, 世界 😀"}')
    assert request == Send(data="Grüße, 世界 😀")


# --------------------------------------------------------------------------
# Errors from parse_request


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "{",
        '{"type": "leave"',
        "{'type': 'leave'}",
        '{"type": "leave"} {}',
        '{"type": "leave",}',
        "leave",
        '{"type":"message","data":NaN}',
        '{"type":"message","data":Infinity}',
        '{"type":"message","data":-Infinity}',
        '{"type":"message","data":1e400}',
        '{"type":"message","data":-1e999}',
        "\ufeff{}",
    ],
)
def test_text_that_is_not_json_is_bad_json(text: str) -> None:
    error = protocol_error(parse_request, text)
    assert error.code is ErrorCode.BAD_JSON
    assert error.ref is ABSENT


def test_bad_json_has_no_ref_even_if_an_id_is_visible() -> None:
    error = protocol_error(parse_request, '{"type": "leave", "id": 7')
    assert error.code is ErrorCode.BAD_JSON
    assert "ref" not in to_json_object(error.to_message())


def nested(depth: int) -> str:
    """A message whose nesting is ``depth`` levels, counting the message itself."""
    inner = depth - 1
    return '{"type":"message","data":' + "[" * inner + "]" * inner + "}"


def test_nesting_up_to_the_limit_parses_and_encodes() -> None:
    request = parse_request(nested(MAX_JSON_DEPTH))
    assert isinstance(request, Send)
    text = encode(Relayed(sender=ID_A, data=request.data))
    assert strict_loads(text)["data"] == request.data


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5000])
def test_nesting_beyond_the_limit_is_bad_json(depth: int) -> None:
    assert protocol_error(parse_request, nested(depth)).code is ErrorCode.BAD_JSON


def test_many_brackets_without_depth_are_fine() -> None:
    data: list[list[int]] = [[] for _ in range(3 * MAX_JSON_DEPTH)]
    assert parse_request(frame({"type": "message", "data": data})) == Send(data=data)


@pytest.mark.parametrize(
    "data",
    [b'{"type": "leave"}', b"", bytearray(b'{"type":"leave"}'), memoryview(b"{}")],
    ids=["json-bytes", "empty-bytes", "bytearray", "memoryview"],
)
def test_a_binary_frame_is_bad_message(data: bytes) -> None:
    error = protocol_error(parse_request, data)
    assert error.code is ErrorCode.BAD_MESSAGE
    assert error.ref is ABSENT


@pytest.mark.parametrize("text", ["[]", '"join"', "1", "null", "true", '[{"type":"leave"}]'])
def test_json_that_is_not_an_object_is_bad_message(text: str) -> None:
    assert protocol_error(parse_request, text).code is ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"room": "r"},
        {"type": None},
        {"type": 1},
        {"type": ["join"]},
        {"type": "JOIN", "room": "r"},
        {"type": "Leave"},
        {"type": "welcome"},
        {"type": "created", "room": "r"},
        {"type": "hello"},
        {"type": ""},
    ],
    ids=repr,
)
def test_missing_or_unknown_type_is_bad_message(obj: dict[str, Any]) -> None:
    error = protocol_error(parse_request, frame({**obj, "id": "q1"}))
    assert error.code is ErrorCode.BAD_MESSAGE
    assert error.ref == "q1"


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "join"},
        {"type": "message"},
        {"type": "message", "to": ID_B},
        {"type": "message", "to": 5, "data": 1},
        {"type": "message", "to": [ID_B], "data": 1},
        {"type": "message", "to": {"id": ID_B}, "data": 1},
    ],
    ids=repr,
)
def test_schema_violations_are_bad_message(obj: dict[str, Any]) -> None:
    error = protocol_error(parse_request, frame({**obj, "id": 3}))
    assert error.code is ErrorCode.BAD_MESSAGE
    assert error.ref == 3


ROOM_CHARS = "abcxyzABCXYZ0123456789-_."


@pytest.mark.parametrize(
    "room",
    ["a", "Z", "0", "-", "_", ".", "..", ROOM_CHARS, "x" * 64, "room-1_2.3"],
)
def test_valid_room_names_parse_unchanged(room: str) -> None:
    assert parse_request(frame({"type": "join", "room": room})) == Join(room=room)
    assert is_valid_room_name(room)


@pytest.mark.parametrize(
    "room",
    [
        "",
        "x" * 65,
        "x" * 1000,
        "a b",
        " a",
        "a\n",
        "a\t",
        "a/b",
        "a:b",
        "a+b",
        "a~b",
        "a%20",
        "é",
        "ß",
        "Ａ",  # fullwidth A: a letter, but not ASCII
        "١",  # Arabic-Indic digit one: a digit, but not ASCII
        "room\x00",
        "😀",
        None,
        5,
        ["r"],
        {"name": "r"},
        True,
    ],
    ids=repr,
)
def test_invalid_room_names_are_bad_room(room: Any) -> None:
    error = protocol_error(parse_request, frame({"type": "join", "room": room, "id": "j"}))
    assert error.code is ErrorCode.BAD_ROOM
    assert error.ref == "j"
    assert not is_valid_room_name(room)


# --------------------------------------------------------------------------
# join's capacity (callapp extension)


def test_join_without_capacity_asks_for_none() -> None:
    request = parse_request(frame({"type": "join", "room": "r"}))
    assert isinstance(request, Join)
    assert request.capacity is None
    assert request == Join(room="r")


def test_a_null_capacity_is_no_capacity() -> None:
    request = parse_request(frame({"type": "join", "room": "r", "capacity": None, "id": 1}))
    assert request == Join(room="r", capacity=None, id=1)


@pytest.mark.parametrize("capacity", range(MIN_ROOM_CAPACITY, MAX_ROOM_CAPACITY + 1))
def test_join_capacities_2_to_8_parse(capacity: int) -> None:
    request = parse_request(frame({"type": "join", "room": "g", "capacity": capacity, "id": 9}))
    assert request == Join(room="g", capacity=capacity, id=9)
    assert isinstance(request, Join)
    assert type(request.capacity) is int
    assert is_valid_room_capacity(capacity)


@pytest.mark.parametrize(
    "capacity",
    [1, 0, -2, 9, 100, 2**70, True, False, 3.0, 2.5, "4", "", [4], {"n": 4}],
    ids=repr,
)
def test_a_capacity_that_is_not_an_integer_from_2_to_8_is_bad_message(capacity: Any) -> None:
    error = protocol_error(
        parse_request, frame({"type": "join", "room": "g", "capacity": capacity, "id": "c"})
    )
    assert error.code is ErrorCode.BAD_MESSAGE
    assert error.ref == "c"
    assert "'capacity' must be an integer from 2 to 8" in error.message
    assert not is_valid_room_capacity(capacity)


def test_the_room_name_is_checked_before_the_capacity() -> None:
    error = protocol_error(parse_request, frame({"type": "join", "room": "a b", "capacity": 0}))
    assert error.code is ErrorCode.BAD_ROOM


def test_room_capacity_bounds() -> None:
    assert (MIN_ROOM_CAPACITY, DEFAULT_ROOM_CAPACITY, MAX_ROOM_CAPACITY) == (2, 2, 8)


# --------------------------------------------------------------------------
# join's key (callapp extension)


@given(st.binary(min_size=32, max_size=32))
def test_any_32_bytes_written_base64url_are_a_room_key(raw: bytes) -> None:
    key = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert len(key) == ROOM_KEY_LENGTH == 43
    assert is_valid_room_key(key)
    request = parse_request(frame({"type": "join", "room": "r", "key": key, "id": 1}))
    assert request == Join(room="r", id=1, key=key)


def test_a_null_key_is_no_key() -> None:
    request = parse_request(frame({"type": "join", "room": "r", "key": None}))
    assert request == Join(room="r")
    assert isinstance(request, Join)
    assert request.key is None


@pytest.mark.parametrize(
    "key",
    [
        "",
        KEY[:-1],  # 42 characters
        KEY + "A",  # 44
        KEY[:-1] + "=",  # padding is not base64url without padding
        KEY[:-2] + "+/",  # standard base64, not base64url
        KEY[:-1] + "B",  # non-canonical: the unused low bits must be zero
        " " + KEY[1:],
        "é" * 43,
        42,
        True,
        [KEY],
        {"key": KEY},
    ],
    ids=repr,
)
def test_a_key_that_is_not_a_room_key_is_bad_message(key: Any) -> None:
    error = protocol_error(parse_request, frame({"type": "join", "room": "r", "key": key, "id": 3}))
    assert error.code is ErrorCode.BAD_MESSAGE
    assert error.ref == 3
    assert "'key' must be a room key: 43 base64url characters" in error.message
    assert not is_valid_room_key(key)
    if isinstance(key, str) and key:
        assert key not in error.message  # never quoted back


def test_the_room_name_and_capacity_are_checked_before_the_key() -> None:
    bad_room = frame({"type": "join", "room": "a b", "key": "x"})
    assert protocol_error(parse_request, bad_room).code is ErrorCode.BAD_ROOM
    bad_capacity = frame({"type": "join", "room": "r", "capacity": 0, "key": "x"})
    assert "'capacity'" in protocol_error(parse_request, bad_capacity).message


def test_the_key_is_not_in_a_joins_repr() -> None:
    join = Join(room="r", capacity=3, id=1, key=KEY)
    assert KEY not in repr(join)
    assert KEY not in str(join)
    assert "r" in repr(join)


def test_room_names_are_case_sensitive() -> None:
    upper = parse_request(frame({"type": "join", "room": "Room"}))
    lower = parse_request(frame({"type": "join", "room": "room"}))
    assert isinstance(upper, Join)
    assert isinstance(lower, Join)
    assert upper.room == "Room"
    assert lower.room == "room"
    assert upper != lower


# --------------------------------------------------------------------------
# ref: echoes the request's id, of any JSON type, absent without one


@pytest.mark.parametrize("ident", SAMPLE_VALUES)
def test_ref_echoes_an_id_of_any_json_type(ident: Any) -> None:
    error = protocol_error(parse_request, frame({"type": "nope", "id": ident}))
    assert error.ref == ident
    obj = strict_loads(encode(error.to_message()))
    assert "ref" in obj
    assert obj["ref"] == ident
    assert obj == {"type": "error", "code": "bad-message", "message": error.message, "ref": ident}


def test_a_null_id_is_echoed_as_null_ref() -> None:
    error = protocol_error(parse_request, '{"type": "join", "room": "", "id": null}')
    assert error.ref is None
    assert error.ref is not ABSENT
    text = encode(error.to_message())
    assert '"ref":null' in text
    assert strict_loads(text)["ref"] is None


def test_ref_is_absent_without_an_id() -> None:
    error = protocol_error(parse_request, frame({"type": "join", "room": ""}))
    assert error.ref is ABSENT
    obj = strict_loads(encode(error.to_message()))
    assert "ref" not in obj
    assert obj["code"] == "bad-room"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_encodes_and_parses_back(code: ErrorCode) -> None:
    message = Error(code=code, message="why it failed", ref={"n": 1})
    obj = strict_loads(encode(message))
    assert obj == {"type": "error", "code": code.value, "message": "why it failed", "ref": {"n": 1}}
    assert parse_server_message(encode(message)) == message


def test_error_codes_are_the_protocol_ones() -> None:
    assert {c.value for c in ErrorCode} == {
        "bad-json",
        "bad-message",
        "too-large",
        "bad-room",
        "unknown-peer",
        "rate-limited",
        "not-in-room",
        "busy",
        "unauthorized",
    }


def test_protocol_error_message_is_human_readable() -> None:
    error = protocol_error(parse_request, frame({"type": "warp"}))
    assert "warp" in error.message
    assert error.to_message() == Error(ErrorCode.BAD_MESSAGE, error.message, ABSENT)


# --------------------------------------------------------------------------
# Server messages: to_json_object / encode / parse_server_message

ICE = ({"urls": "stun:stun.example.org"}, {"urls": ["turn:t"], "username": "u", "credential": "c"})

SERVER_MESSAGES: list[tuple[ServerMessage, dict[str, Any]]] = [
    (
        Welcome(connection_id=ID_A, server="callapp/0.1.0", ice_servers=ICE),
        {
            "type": "welcome",
            "connectionId": ID_A,
            "protocol": 1,
            "server": "callapp/0.1.0",
            "iceServers": [dict(s) for s in ICE],
        },
    ),
    (
        Welcome(connection_id=ID_A, server="callapp/0.1.0"),
        {
            "type": "welcome",
            "connectionId": ID_A,
            "protocol": 1,
            "server": "callapp/0.1.0",
            "iceServers": [],
        },
    ),
    (Created("r", ID_A), {"type": "created", "room": "r", "connectionId": ID_A, "capacity": 2}),
    (
        Created("r", ID_A, capacity=8),
        {"type": "created", "room": "r", "connectionId": ID_A, "capacity": 8},
    ),
    (
        Joined("r", ID_B, (ID_A, ID_B)),
        {
            "type": "joined",
            "room": "r",
            "connectionId": ID_B,
            "peers": [ID_A, ID_B],
            "capacity": 2,
        },
    ),
    (
        Joined("g", ID_B, (ID_A, ID_B), capacity=3),
        {
            "type": "joined",
            "room": "g",
            "connectionId": ID_B,
            "peers": [ID_A, ID_B],
            "capacity": 3,
        },
    ),
    (PeerJoined("r", ID_B), {"type": "peer-joined", "room": "r", "connectionId": ID_B}),
    (Ready("r", (ID_A, ID_B)), {"type": "ready", "room": "r", "peers": [ID_A, ID_B]}),
    (Full("r"), {"type": "full", "room": "r"}),
    (PeerLeft("r", ID_A), {"type": "peer-left", "room": "r", "connectionId": ID_A}),
    (
        Relayed(ID_A, {"type": "ICE", "payload": {"candidate": "c", "sdpMLineIndex": 0}}),
        {
            "type": "message",
            "from": ID_A,
            "data": {"type": "ICE", "payload": {"candidate": "c", "sdpMLineIndex": 0}},
        },
    ),
    (Relayed(ID_A, None), {"type": "message", "from": ID_A, "data": None}),
    (
        Error(ErrorCode.UNKNOWN_PEER, "no such peer", "x"),
        {"type": "error", "code": "unknown-peer", "message": "no such peer", "ref": "x"},
    ),
    (
        Error(ErrorCode.NOT_IN_ROOM, "join first"),
        {"type": "error", "code": "not-in-room", "message": "join first"},
    ),
]


@pytest.mark.parametrize(("message", "expected"), SERVER_MESSAGES, ids=lambda v: type(v).__name__)
def test_server_message_json_shape(message: ServerMessage, expected: dict[str, Any]) -> None:
    assert to_json_object(message) == expected
    text = encode(message)
    assert strict_loads(text) == expected


@pytest.mark.parametrize(("message", "expected"), SERVER_MESSAGES, ids=lambda v: type(v).__name__)
def test_server_messages_parse_back(message: ServerMessage, expected: dict[str, Any]) -> None:
    assert parse_server_message(encode(message)) == message
    assert parse_server_message(json.dumps(expected)) == message


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"type": "created", "room": "r", "connectionId": ID_A}, Created("r", ID_A, 2)),
        (
            {"type": "created", "room": "r", "connectionId": ID_A, "capacity": None},
            Created("r", ID_A, 2),
        ),
        (
            {"type": "joined", "room": "r", "connectionId": ID_B, "peers": [ID_A, ID_B]},
            Joined("r", ID_B, (ID_A, ID_B), 2),
        ),
        # A newer server may allow larger rooms than a join may ask for here.
        (
            {"type": "created", "room": "r", "connectionId": ID_A, "capacity": 12},
            Created("r", ID_A, 12),
        ),
    ],
    ids=repr,
)
def test_reply_capacity_is_2_when_absent_and_may_exceed_8(
    obj: dict[str, Any], expected: ServerMessage
) -> None:
    assert parse_server_message(frame(obj)) == expected


@pytest.mark.parametrize("capacity", [1, 0, -3, True, 3.0, "3", [3]], ids=repr)
def test_a_malformed_reply_capacity_is_bad_message(capacity: Any) -> None:
    for obj in (
        {"type": "created", "room": "r", "connectionId": ID_A, "capacity": capacity},
        {"type": "joined", "room": "r", "connectionId": ID_A, "peers": [], "capacity": capacity},
    ):
        assert protocol_error(parse_server_message, frame(obj)).code is ErrorCode.BAD_MESSAGE


def test_welcome_carries_protocol_version_1() -> None:
    assert PROTOCOL_VERSION == 1
    assert strict_loads(encode(Welcome(ID_A, "callapp/x")))["protocol"] == 1


def test_to_json_object_rejects_non_messages() -> None:
    with pytest.raises(TypeError):
        to_json_object(Join("r"))  # type: ignore[arg-type]


def test_encoded_frames_are_compact_single_line() -> None:
    text = encode(Relayed(ID_A, {"a": [1, 2], "b": "line\nbreak"}))
    assert "\n" not in text
    assert ": " not in text


def test_non_ascii_stays_readable_in_encoded_frames() -> None:
    text = encode(Relayed(ID_A, "Grüße 😀"))
    assert "Grüße 😀" in text


def test_a_lone_surrogate_is_relayed_as_an_escape_not_as_invalid_utf8() -> None:
    request = parse_request('{"type":"message","data":"x\\ud800y é"}')
    assert isinstance(request, Send)
    text = encode(Relayed(ID_A, request.data))
    text.encode("utf-8")
    assert "\\ud800" in text
    assert strict_loads(text)["data"] == "x\ud800y é"


@pytest.mark.parametrize("ref", [float("nan"), float("inf"), [1, float("-inf")]], ids=repr)
def test_an_error_whose_ref_is_not_json_goes_out_without_ref(ref: Any) -> None:
    text = encode(Error(ErrorCode.RATE_LIMITED, "slow down", ref=ref))
    assert strict_loads(text) == {"type": "error", "code": "rate-limited", "message": "slow down"}


@pytest.mark.parametrize("ident", SAMPLE_VALUES)
def test_request_id_peeks_the_id_of_any_json_type(ident: Any) -> None:
    assert request_id(frame({"type": "whatever", "id": ident})) == ident
    assert request_id(frame({"id": ident, "data": [1]})) == ident


@pytest.mark.parametrize(
    "data",
    [
        '{"type": "leave"}',
        "[1]",
        "{",
        b'{"id": 1}',
        '{"id": NaN}',
        '{"id": 1e400}',
        '{"id": 1, "x": NaN}',
        nested(MAX_JSON_DEPTH + 1)[:-1] + ',"id":1}',
    ],
    ids=repr,
)
def test_request_id_is_absent_without_a_readable_id(data: str | bytes) -> None:
    assert request_id(data) is ABSENT


def test_encode_refuses_nan_rather_than_emit_invalid_json() -> None:
    with pytest.raises(ValueError, match="JSON"):
        encode(Relayed(ID_A, float("nan")))


@settings(max_examples=150, deadline=None)
@given(data=json_values, ident=json_values)
def test_any_data_relays_as_equal_json(data: Any, ident: Any) -> None:
    request = parse_request(json.dumps({"type": "message", "to": ID_B, "data": data, "id": ident}))
    assert request == Send(data=data, to=ID_B, id=ident)
    received = parse_server_message(encode(Relayed(ID_A, request.data)))
    assert received == Relayed(ID_A, data)


@settings(max_examples=150, deadline=None)
@given(data=json_values | st.text().map(lambda text: "\ud800" + text))
def test_the_hot_path_encoder_writes_what_encode_writes(data: Any) -> None:
    # encode_relayed (msgspec, the Struct itself) must be the same JSON as
    # encode (the json module): same keys, same values, lone surrogates too.
    message = Relayed(ID_A, data)
    fast = encode_relayed(message)
    assert isinstance(fast, bytes)
    assert json.loads(fast) == json.loads(encode(message))
    assert list(json.loads(fast)) == ["type", "from", "data"]


# --------------------------------------------------------------------------
# parse_server_message: malformed and unknown


def test_unknown_server_message_types_are_returned_to_ignore() -> None:
    message = parse_server_message(frame({"type": "stats", "rooms": 3}))
    assert message == UnknownServerMessage(type="stats", fields={"type": "stats", "rooms": 3})


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "welcome"},
        {"type": "welcome", "connectionId": 5},
        {"type": "welcome", "connectionId": ID_A, "iceServers": "stun:x"},
        {"type": "welcome", "connectionId": ID_A, "iceServers": ["stun:x"]},
        {"type": "welcome", "connectionId": ID_A, "protocol": "1"},
        {"type": "welcome", "connectionId": ID_A, "protocol": "x"},
        {"type": "welcome", "connectionId": ID_A, "protocol": None},
        {"type": "welcome", "connectionId": ID_A, "protocol": True},
        {"type": "created", "room": "r"},
        {"type": "created", "connectionId": ID_A},
        {"type": "joined", "room": "r", "connectionId": ID_A},
        {"type": "joined", "room": "r", "connectionId": ID_A, "peers": ID_A},
        {"type": "joined", "room": "r", "connectionId": ID_A, "peers": [1]},
        {"type": "peer-joined", "room": "r"},
        {"type": "ready", "room": "r"},
        {"type": "ready", "peers": []},
        {"type": "full"},
        {"type": "peer-left", "room": 1, "connectionId": ID_A},
        {"type": "message", "from": ID_A},
        {"type": "message", "data": 1},
        {"type": "message", "from": None, "data": 1},
        {"type": "error", "message": "m"},
        {"room": "r"},
        {"type": 3},
    ],
    ids=repr,
)
def test_malformed_server_messages_are_bad_message(obj: dict[str, Any]) -> None:
    assert protocol_error(parse_server_message, frame(obj)).code is ErrorCode.BAD_MESSAGE


def test_server_message_errors_share_the_request_rules() -> None:
    assert protocol_error(parse_server_message, "{").code is ErrorCode.BAD_JSON
    assert protocol_error(parse_server_message, b"{}").code is ErrorCode.BAD_MESSAGE
    assert protocol_error(parse_server_message, "[]").code is ErrorCode.BAD_MESSAGE


def test_server_error_without_ref_parses_with_absent_ref() -> None:
    message = parse_server_message('{"type":"error","code":"busy","message":"later"}')
    assert message == Error(ErrorCode.BUSY, "later")
    assert isinstance(message, Error)
    assert message.ref is ABSENT


# --------------------------------------------------------------------------
# Client side: encode_request


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (Join("r"), {"type": "join", "room": "r"}),
        (Join("r", id=1), {"type": "join", "room": "r", "id": 1}),
        (Join("r", capacity=3), {"type": "join", "room": "r", "capacity": 3}),
        (Join("g", capacity=8, id="j"), {"type": "join", "room": "g", "capacity": 8, "id": "j"}),
        (Join("k", key=KEY), {"type": "join", "room": "k", "key": KEY}),
        (
            Join("k", capacity=3, id=2, key=KEY),
            {"type": "join", "room": "k", "capacity": 3, "key": KEY, "id": 2},
        ),
        (Leave(), {"type": "leave"}),
        (Leave(id=None), {"type": "leave", "id": None}),
        (Send(data={"type": "BYE"}), {"type": "message", "data": {"type": "BYE"}}),
        (Send(data=None, to=ID_B), {"type": "message", "data": None, "to": ID_B}),
        (Send(data=[], to=ID_B, id="x"), {"type": "message", "data": [], "to": ID_B, "id": "x"}),
    ],
    ids=repr,
)
def test_encode_request_shape_and_round_trip(request_: Request, expected: dict[str, Any]) -> None:
    text = encode_request(request_)
    assert strict_loads(text) == expected
    assert parse_request(text) == request_


def test_encode_request_rejects_non_requests() -> None:
    with pytest.raises(TypeError):
        encode_request(Full("r"))  # type: ignore[arg-type]


def test_encode_request_escapes_lone_surrogates() -> None:
    text = encode_request(Send(data="\udc00"))
    text.encode("utf-8")
    assert parse_request(text) == Send(data="\udc00")


# --------------------------------------------------------------------------
# /apigw: parse_apigw_request, encode_apigw, encode_apigw_answer


@pytest.mark.parametrize("message", [m for m in SAMPLE_VALUES if m is not None])
def test_apigw_delivery_of_any_non_null_message(message: Any) -> None:
    request = parse_apigw_request(frame({"connectionId": ID_B, "message": message}))
    assert request == ApigwSend(to=ID_B, message=message)


def test_apigw_delivery_ignores_other_fields() -> None:
    text = frame({"action": "sendmessage", "connectionId": ID_B, "message": "hi", "from": ID_A})
    assert parse_apigw_request(text) == ApigwSend(to=ID_B, message="hi")


@pytest.mark.parametrize(
    "data",
    [
        "",
        b"",
        "{}",
        '{"action": "hello"}',
        frame({"connectionId": ID_B}),
        frame({"connectionId": ID_B, "message": None}),
        frame({"message": "nobody named"}),
        frame({"connectionId": None, "message": "x"}),
        "[]",
        '"hello"',
        "0",
        "null",
        frame({"type": "join", "room": "r"}),
    ],
    ids=repr,
)
def test_apigw_frames_that_are_not_deliveries_are_pings(data: str | bytes) -> None:
    assert parse_apigw_request(data) == ApigwPing()


@pytest.mark.parametrize("text", ["{", "hello", " ", '{"connectionId":"x","message":NaN}'])
def test_apigw_text_that_is_not_json_is_bad_json(text: str) -> None:
    assert protocol_error(parse_apigw_request, text).code is ErrorCode.BAD_JSON


def test_apigw_binary_frame_is_bad_message() -> None:
    data = json.dumps({"connectionId": ID_B, "message": 1}).encode()
    assert protocol_error(parse_apigw_request, data).code is ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize("to", [5, True, [ID_B], {"id": ID_B}])
def test_apigw_delivery_to_a_non_string_id_is_unknown_peer(to: Any) -> None:
    text = frame({"connectionId": to, "message": "x"})
    assert protocol_error(parse_apigw_request, text).code is ErrorCode.UNKNOWN_PEER


def test_apigw_answer_is_the_senders_own_id() -> None:
    assert json.loads(encode_apigw_answer(ID_A)) == {"connectionId": ID_A}


@pytest.mark.parametrize("data", SAMPLE_VALUES)
def test_apigw_receives_relayed_data_as_message_and_from(data: Any) -> None:
    text = encode_apigw(Relayed(sender=ID_A, data=data), own_id=ID_B)
    assert text is not None
    assert strict_loads(text) == {"message": data, "from": ID_A}


def test_apigw_relayed_lone_surrogate_stays_sendable() -> None:
    text = encode_apigw(Relayed(sender=ID_A, data="\ud800"), own_id=ID_B)
    assert text is not None
    assert strict_loads(text) == {"message": "\ud800", "from": ID_A}


@pytest.mark.parametrize("code", list(ErrorCode))
def test_apigw_receives_errors_as_own_id_and_code(code: ErrorCode) -> None:
    text = encode_apigw(Error(code, "text", ref=9), own_id=ID_B)
    assert text is not None
    assert json.loads(text) == {"connectionId": ID_B, "error": code.value}


@pytest.mark.parametrize(
    "message",
    [
        Welcome(ID_B, "callapp/x"),
        Created("r", ID_B),
        Joined("r", ID_B, (ID_A, ID_B)),
        PeerJoined("r", ID_A),
        Ready("r", (ID_A, ID_B)),
        Full("r"),
        PeerLeft("r", ID_A),
    ],
    ids=lambda m: type(m).__name__,
)
def test_room_events_have_no_apigw_form(message: ServerMessage) -> None:
    assert encode_apigw(message, own_id=ID_B) is None


def test_native_and_apigw_clients_see_the_same_delivery() -> None:
    """An /apigw delivery becomes a native Relayed, and a native Send an /apigw frame."""
    apigw = parse_apigw_request(frame({"connectionId": ID_B, "message": {"type": "BYE"}}))
    assert isinstance(apigw, ApigwSend)
    native_view = strict_loads(encode(Relayed(sender=ID_A, data=apigw.message)))
    assert native_view == {"type": "message", "from": ID_A, "data": {"type": "BYE"}}

    native = parse_request(frame({"type": "message", "to": ID_A, "data": [1]}))
    assert isinstance(native, Send)
    apigw_text = encode_apigw(Relayed(sender=ID_B, data=native.data), own_id=ID_A)
    assert apigw_text is not None
    assert strict_loads(apigw_text) == {"message": [1], "from": ID_B}


# --------------------------------------------------------------------------
# Connection ids

BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def test_connection_ids_are_long_base64url_and_distinct() -> None:
    ids = [new_connection_id() for _ in range(2000)]
    for ident in ids:
        assert len(ident) >= 16
        assert BASE64URL.fullmatch(ident), ident
    assert len(set(ids)) == len(ids)


def test_no_connection_id_starts_with_a_dash() -> None:
    # 1 in 64 would, drawn plainly: about 31 of these 2,000; "--to -abc" reads as an option.
    assert not [ident for ident in (new_connection_id() for _ in range(2000)) if ident[0] == "-"]


def test_connection_ids_carry_about_96_bits() -> None:
    # 16 base64url characters hold 96 bits (95.98 with no leading "-"); across
    # many ids every position takes many different values (a constant or a
    # counter would not).
    ids = [new_connection_id() for _ in range(500)]
    for position in range(16):
        assert len({ident[position] for ident in ids}) > 32


def test_an_error_code_from_a_newer_server_is_kept_as_text() -> None:
    frame = '{"type": "error", "code": "room-locked", "message": "ask the host", "ref": 7}'
    error = parse_server_message(frame)
    assert isinstance(error, Error)
    assert error.code == "room-locked"
    assert not isinstance(error.code, ErrorCode)
    assert error.ref == 7
    known = parse_server_message('{"type": "error", "code": "busy", "message": "later"}')
    assert isinstance(known, Error)
    assert known.code is ErrorCode.BUSY
