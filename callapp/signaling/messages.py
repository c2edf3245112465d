"""Protocol v1 messages, as values: parse what arrives, encode what leaves.

This module is the sans-I/O core of the wire format described in
``docs/protocol.md``. It turns frames (``str``/``bytes``) into typed request
values and typed server messages back into JSON text. It knows nothing of
sockets, event loops or rooms; :mod:`callapp.signaling.rooms` decides *what*
to send, the server decides *when*.

Two kinds of failure, as in h11:

* :class:`ProtocolError` -- the peer misbehaved (bad JSON, wrong schema, a
  bad room name). It carries the protocol error ``code`` and the ``ref`` to
  echo, and the server answers it with an ``error`` message.
* ``TypeError``/``ValueError`` -- this module was misused by our own code.

Both sides use it: the server parses client requests with
:func:`parse_request` / :func:`parse_apigw_request` and encodes with
:func:`encode` / :func:`encode_apigw`; the client parses server messages with
:func:`parse_server_message` and encodes requests with :func:`encode_request`.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import msgspec

PROTOCOL_VERSION: Final = 1

#: Largest accepted message, in bytes after reassembly; the limit itself is allowed.
MAX_MESSAGE_BYTES: Final = 65_536

#: Deepest nesting of arrays/objects accepted in a message (the message itself is 1).
#: Far below Python's recursion limit, so whatever parses also encodes again.
MAX_JSON_DEPTH: Final = 128

#: Members that complete a room whose creator chose no capacity (protocol v1's rooms).
DEFAULT_ROOM_CAPACITY: Final = 2

#: Smallest and largest ``capacity`` a ``join`` may carry (callapp extension).
#: A server may allow less than :data:`MAX_ROOM_CAPACITY`; never more.
MIN_ROOM_CAPACITY: Final = 2
MAX_ROOM_CAPACITY: Final = 8

#: Characters of a room key (callapp extension): 32 bytes written base64url, unpadded.
ROOM_KEY_LENGTH: Final = 43

_ROOM_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
# 43 base64url characters carry 258 bits: the last one holds 4 bits of the
# 32 bytes and two zero bits, so only these 16 letters can end a canonical key.
_ROOM_KEY = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# msgspec reads and writes JSON 3-10x faster than the json module. It is the
# first try only: whatever it refuses (NaN, 1e400, lone surrogates, deep
# nesting) is read again by the json module with the strict rules below, so
# every answer, error or not, is the json module's.
_DECODE: Final = msgspec.json.Decoder().decode
_ENCODE: Final = msgspec.json.Encoder().encode

#: Any JSON value, as produced by :func:`json.loads`.
JsonValue: TypeAlias = Any


class _Absent:
    """Marks an optional field that was not present (distinct from ``null``)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


#: The value of a request's ``id`` when it had none (``null`` is a valid id).
ABSENT: Final = _Absent()


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` message."""

    BAD_JSON = "bad-json"
    BAD_MESSAGE = "bad-message"
    TOO_LARGE = "too-large"
    BAD_ROOM = "bad-room"
    UNKNOWN_PEER = "unknown-peer"
    RATE_LIMITED = "rate-limited"
    NOT_IN_ROOM = "not-in-room"
    BUSY = "busy"
    UNAUTHORIZED = "unauthorized"


class ProtocolError(Exception):
    """The peer sent something protocol v1 does not allow.

    ``ref`` is the ``id`` of the failing request, or :data:`ABSENT`.
    """

    def __init__(self, code: ErrorCode, message: str, ref: JsonValue = ABSENT) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref

    def to_message(self) -> Error:
        """The ``error`` message that answers this failure."""
        return Error(code=self.code, message=self.message, ref=self.ref)


class QuietFrames(logging.LoggerAdapter[logging.Logger]):
    """A websockets logger that logs only warnings and errors.

    A ``join`` frame carries its room key, which must never reach a log:
    websockets prints each frame at DEBUG, deciding once per connection with
    ``isEnabledFor(DEBUG)``, and this adapter always says no. It says no to
    INFO too, where websockets writes a line per connection ("connection
    open", "connection closed", "connection rejected (429 ...)"): connection
    churn would turn those into a flood. The server logs its own listening
    line, and words refusals in one summary line at most every few seconds.
    """

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.WARNING and self.logger.isEnabledFor(level)


def new_connection_id() -> str:
    """A fresh, unguessable connection id: 16 base64url chars, about 96 random bits.

    Never starting with ``-``: people paste ids into command lines (``--to ID``),
    where a leading dash reads as an option. Redrawing those costs 1/64 of the
    first character's 6 bits.
    """
    while True:
        candidate = secrets.token_urlsafe(12)
        if not candidate.startswith("-"):
            return candidate


def is_valid_room_name(name: object) -> bool:
    """True for 1-64 ASCII letters, digits, ``-``, ``_`` and ``.``."""
    return isinstance(name, str) and _ROOM_NAME.fullmatch(name) is not None


def is_valid_room_key(key: object) -> bool:
    """True for a room key's shape: 32 bytes written as 43 unpadded base64url characters.

    Only the canonical spelling is a key (the unused low bits of the last
    character are zero), so that one key has one spelling: the server
    compares keys as opaque strings.
    """
    return isinstance(key, str) and _ROOM_KEY.fullmatch(key) is not None


def is_valid_room_capacity(capacity: object) -> bool:
    """True for an :class:`int` (not a :class:`bool`) from 2 to 8, what a ``join`` may ask."""
    return (
        isinstance(capacity, int)
        and not isinstance(capacity, bool)
        and MIN_ROOM_CAPACITY <= capacity <= MAX_ROOM_CAPACITY
    )


# --------------------------------------------------------------------------
# Requests: client -> server on the native endpoint (/ws)


@dataclass(frozen=True, slots=True)
class Join:
    """``{"type": "join", "room": NAME, "capacity"?: N, "key"?: KEY}``.

    ``capacity`` (callapp extension, 2-8) is the size the joiner asks for
    should this join create the room; :obj:`None` (the field absent or
    ``null``) leaves it to the server's default. It never changes an existing
    room.

    ``key`` (callapp extension, see :func:`is_valid_room_key`) is the room
    key derived from the room's secret: the join that creates a room with a
    key makes it a keyed room, which every later join must name with the same
    key. :obj:`None` (absent or ``null``) is a v1 join. It is left out of
    ``repr()``, so that a logged request never shows it.
    """

    room: str
    capacity: int | None = None
    id: JsonValue = ABSENT
    key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Leave:
    """``{"type": "leave"}``."""

    id: JsonValue = ABSENT


class Send(msgspec.Struct, frozen=True):
    """``{"type": "message", "to"?: ID, "data": ANY}``; ``to=None`` means the room.

    A frozen :class:`msgspec.Struct`, like :class:`Relayed`, where the other
    messages are frozen dataclasses: one of each is made per relayed message,
    and a Struct is made in a fifth of a frozen dataclass's time (0.1 us
    against 0.5-0.7, measured here). Equality, hashing, ``repr`` and
    ``match`` work alike.
    """

    data: JsonValue
    to: str | None = None
    id: JsonValue = ABSENT


Request: TypeAlias = Join | Leave | Send


# --------------------------------------------------------------------------
# Server messages: server -> client


@dataclass(frozen=True, slots=True)
class Welcome:
    connection_id: str
    server: str
    ice_servers: tuple[dict[str, Any], ...] = ()
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Created:
    """``{"type": "created", "room", "connectionId", "capacity"}``.

    ``capacity`` (callapp extension) is the room's: the members that make it
    complete and full. A server that does not send it is taken to have
    protocol v1's default, :data:`DEFAULT_ROOM_CAPACITY`.
    """

    room: str
    connection_id: str
    capacity: int = DEFAULT_ROOM_CAPACITY


@dataclass(frozen=True, slots=True)
class Joined:
    """``{"type": "joined", "room", "connectionId", "peers", "capacity"}``; see :class:`Created`."""

    room: str
    connection_id: str
    peers: tuple[str, ...]
    capacity: int = DEFAULT_ROOM_CAPACITY


@dataclass(frozen=True, slots=True)
class PeerJoined:
    room: str
    connection_id: str


@dataclass(frozen=True, slots=True)
class Ready:
    room: str
    peers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Full:
    room: str


@dataclass(frozen=True, slots=True)
class PeerLeft:
    room: str
    connection_id: str


class Relayed(
    msgspec.Struct, frozen=True, tag_field="type", tag="message", rename={"sender": "from"}
):
    """``{"type": "message", "from": ID, "data": ANY}``; ``from`` is server-stamped.

    A frozen :class:`msgspec.Struct` for speed (see :class:`Send`), which
    msgspec writes as the wire message itself (:func:`encode_relayed`).
    """

    sender: str
    data: JsonValue


@dataclass(frozen=True, slots=True)
class Error:
    """``{"type": "error", "code", "message", "ref"?}``.

    A client keeps a code this version does not know as a plain string:
    servers may add codes, and an older client must still read the error.
    """

    code: ErrorCode | str
    message: str
    ref: JsonValue = ABSENT


@dataclass(frozen=True, slots=True)
class UnknownServerMessage:
    """A server message of a type this client does not know; receivers ignore it."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)


ServerMessage: TypeAlias = (
    Welcome | Created | Joined | PeerJoined | Ready | Full | PeerLeft | Relayed | Error
)


# --------------------------------------------------------------------------
# Parsing requests (server side)


class _Unreadable(Exception):
    """JSON that Python would read but that is not interoperable JSON."""


def _reject_constant(name: str) -> Any:
    raise _Unreadable(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Unreadable(f"number {text[:20]!r} is out of range")
    return value


def _too_deep(value: JsonValue, limit: int) -> bool:
    """True if ``value`` nests arrays/objects more than ``limit`` levels.

    Recursive, at most ``limit`` + 1 calls deep (far below Python's limit).
    It visits containers only: an SDP's few objects in 0.5 us, where
    counting the brackets of its 10 KiB took 6.
    """
    return isinstance(value, dict | list) and _deeper(value, 1, limit)


def _deeper(value: dict[str, Any] | list[Any], depth: int, limit: int) -> bool:
    """True if ``value``, an array/object at ``depth``, or one inside it, is beyond ``limit``."""
    if depth > limit:
        return True
    children: Any = value.values() if type(value) is dict else value
    for child in children:
        kind = type(child)
        if (kind is dict or kind is list) and _deeper(child, depth + 1, limit):
            return True
    return False


def _load_json(frame: str | bytes) -> JsonValue:
    """Decode one text frame as strict JSON, or raise ``bad-message``/``bad-json``.

    Stricter than :func:`json.loads` where Python's leniency would let through
    what browsers cannot read back: ``NaN``/``Infinity``, numbers beyond a
    double (``1e400`` would come back out as ``Infinity``), and nesting so deep
    that re-encoding would hit the recursion limit.
    """
    if isinstance(frame, bytes | bytearray | memoryview):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "binary messages are not accepted; send text")
    try:
        # Strict already (no NaN, no number beyond a double, no lone
        # surrogate); integers of any size stay integers, as with json.
        value = _DECODE(frame)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        value = _load_json_strictly(frame)
    # Each level takes at least two characters ("[]"): a short message
    # cannot nest too deep, and the usual ICE candidate is not walked.
    if len(frame) > 2 * MAX_JSON_DEPTH and _too_deep(value, MAX_JSON_DEPTH):
        raise ProtocolError(
            ErrorCode.BAD_JSON, f"message nests deeper than {MAX_JSON_DEPTH} levels"
        )
    return value


def _load_json_strictly(frame: str) -> JsonValue:
    """:func:`json.loads` with the strict rules, for what msgspec would not read."""
    try:
        return json.loads(frame, parse_constant=_reject_constant, parse_float=_finite_float)
    except _Unreadable as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"message is not valid JSON: {exc}") from None
    except (ValueError, RecursionError):
        raise ProtocolError(ErrorCode.BAD_JSON, "message is not valid JSON") from None


def _load_object(frame: str | bytes) -> dict[str, Any]:
    value = _load_json(frame)
    if not isinstance(value, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "message must be a JSON object")
    return value


def request_id(frame: str | bytes) -> JsonValue:
    """The ``id`` of a request frame, or :data:`ABSENT` if it has none or is not JSON.

    For the ``ref`` of errors found before parsing (``rate-limited``): reads
    the frame with the same strict rules as :func:`parse_request`, so the id
    it returns always encodes.
    """
    try:
        value = _load_json(frame)
    except ProtocolError:
        return ABSENT
    return value.get("id", ABSENT) if isinstance(value, dict) else ABSENT


def parse_request(frame: str | bytes) -> Request:
    """Parse one native-endpoint frame into a request.

    Size and rate are the caller's to check first (see PROTOCOL.md's order).
    Raises :class:`ProtocolError` with ``bad-message`` for binary frames,
    ``bad-json``, ``bad-message`` (schema, unknown type, a ``capacity`` that
    is not an integer from 2 to 8, a ``key`` that is not a room key) or
    ``bad-room``. Whether this server allows the capacity asked for, and
    whether the key opens the room, is the router's to say. No error message
    ever quotes the key.
    """
    obj = _load_object(frame)
    ref = obj.get("id", ABSENT)
    kind = obj.get("type")
    if kind == "message":  # the usual one first
        if "data" not in obj:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "message needs a 'data' field", ref)
        to = obj.get("to")
        if to is not None and not isinstance(to, str):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "'to' must be a connection id string", ref)
        return Send(data=obj["data"], to=to, id=ref)
    if kind == "join":
        room = obj.get("room", ABSENT)
        if room is ABSENT:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "join needs a 'room'", ref)
        if not is_valid_room_name(room):
            raise ProtocolError(
                ErrorCode.BAD_ROOM,
                "room names are 1-64 ASCII letters, digits, '-', '_' or '.'",
                ref,
            )
        capacity = obj.get("capacity")
        if capacity is not None and not is_valid_room_capacity(capacity):
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE,
                f"'capacity' must be an integer from {MIN_ROOM_CAPACITY} to {MAX_ROOM_CAPACITY}",
                ref,
            )
        key = obj.get("key")
        if key is not None and not is_valid_room_key(key):
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE,
                f"'key' must be a room key: {ROOM_KEY_LENGTH} base64url characters (32 bytes)",
                ref,
            )
        return Join(room=room, capacity=capacity, id=ref, key=key)
    if kind == "leave":
        return Leave(id=ref)
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "message needs a string 'type'", ref)
    raise ProtocolError(ErrorCode.BAD_MESSAGE, f"unknown message type {kind!r}", ref)


@dataclass(frozen=True, slots=True)
class ApigwSend:
    """``{"connectionId": TO, "message": M}`` on the /apigw endpoint."""

    to: str
    message: JsonValue


@dataclass(frozen=True, slots=True)
class ApigwPing:
    """Any other /apigw frame: answered only with the sender's connection id."""


ApigwRequest: TypeAlias = ApigwSend | ApigwPing


def parse_apigw_request(frame: str | bytes) -> ApigwRequest:
    """Parse one /apigw frame.

    A delivery is an object with a non-null ``connectionId`` and a non-null
    ``message``. Every other frame that is JSON (or zero-length) is a ping,
    answered only with the sender's id, as the serverless original does.
    Raises :class:`ProtocolError`: ``bad-json`` for text that is not JSON,
    ``bad-message`` for a binary frame, ``unknown-peer`` for a delivery whose
    ``connectionId`` is not a string (no connection can have that id).
    """
    if frame in ("", b""):
        return ApigwPing()
    obj = _load_json(frame)
    if not isinstance(obj, dict):
        return ApigwPing()
    to = obj.get("connectionId")
    message = obj.get("message")
    if to is None or message is None:
        return ApigwPing()
    if not isinstance(to, str):
        raise ProtocolError(ErrorCode.UNKNOWN_PEER, "'connectionId' must be a connection id")
    return ApigwSend(to=to, message=message)


# --------------------------------------------------------------------------
# Encoding (server side)


def to_json_object(message: ServerMessage) -> dict[str, Any]:
    """The JSON object protocol v1 gives ``message`` on the native endpoint."""
    match message:
        case Welcome():
            return {
                "type": "welcome",
                "connectionId": message.connection_id,
                "protocol": message.protocol,
                "server": message.server,
                "iceServers": list(message.ice_servers),
            }
        case Created():
            return {
                "type": "created",
                "room": message.room,
                "connectionId": message.connection_id,
                "capacity": message.capacity,
            }
        case Joined():
            return {
                "type": "joined",
                "room": message.room,
                "connectionId": message.connection_id,
                "peers": list(message.peers),
                "capacity": message.capacity,
            }
        case PeerJoined():
            return {
                "type": "peer-joined",
                "room": message.room,
                "connectionId": message.connection_id,
            }
        case Ready():
            return {"type": "ready", "room": message.room, "peers": list(message.peers)}
        case Full():
            return {"type": "full", "room": message.room}
        case PeerLeft():
            return {
                "type": "peer-left",
                "room": message.room,
                "connectionId": message.connection_id,
            }
        case Relayed():
            return {"type": "message", "from": message.sender, "data": message.data}
        case Error():
            obj: dict[str, Any] = {
                "type": "error",
                "code": str(message.code),
                "message": message.message,
            }
            if message.ref is not ABSENT:
                obj["ref"] = message.ref
            return obj
    raise TypeError(f"not a server message: {message!r}")


def _dumps(obj: Any, separators: tuple[str, str] = (",", ":")) -> str:
    """JSON text that is valid UTF-8 once encoded, and valid JSON for browsers.

    Non-ASCII text stays as is (smaller), except when the value holds a lone
    surrogate (legal as a ``\\ud800`` escape in JSON, unencodable in UTF-8):
    then everything is escaped, which is equal JSON. ``NaN`` and infinities
    are not JSON and raise ``ValueError`` (parsing never produces them).
    """
    text = json.dumps(obj, separators=separators, ensure_ascii=False, allow_nan=False)
    if _SURROGATE.search(text) is not None:
        text = json.dumps(obj, separators=separators, ensure_ascii=True, allow_nan=False)
    return text


def encode(message: ServerMessage) -> str:
    """Serialize a server message for the native endpoint.

    An ``error`` whose ``ref`` is not JSON (``NaN`` read leniently from a
    frame that failed before parsing) goes out without ``ref`` rather than
    as invalid JSON. Anything else that is not JSON raises ``ValueError``.
    """
    obj = to_json_object(message)
    try:
        return _dumps(obj)
    except ValueError:
        if not isinstance(message, Error) or "ref" not in obj:
            raise
        del obj["ref"]
        return _dumps(obj)


def encode_relayed(message: Relayed) -> bytes:
    """:func:`encode` of a relayed message, as UTF-8 bytes, for data read by this module.

    For the server's hot path: msgspec writes it about 10x faster than the
    json module. Its ``data`` must come from :func:`parse_request` or
    :func:`parse_apigw_request` (or JSON they wrote), which never hold
    ``NaN`` or infinities: msgspec would write those as ``null`` where
    :func:`encode` raises. A lone surrogate goes the :func:`encode` way
    (escaped); the JSON is equal either way.
    """
    try:
        return _ENCODE(message)
    except (UnicodeEncodeError, TypeError, OverflowError, msgspec.MsgspecError):
        return encode(message).encode()


def encode_apigw(message: ServerMessage, own_id: str) -> str | None:
    """Serialize what an /apigw client with id ``own_id`` should see, if anything.

    Relayed data arrives as ``{"message": M, "from": ID}`` and errors as
    ``{"connectionId": OWN, "error": CODE}``; room events have no /apigw form
    (such clients never join rooms) and give ``None``.
    """
    if isinstance(message, Relayed):
        return _dumps({"message": message.data, "from": message.sender}, separators=(", ", ": "))
    if isinstance(message, Error):
        return json.dumps({"connectionId": own_id, "error": str(message.code)})
    return None


def encode_apigw_answer(own_id: str) -> str:
    """The answer every /apigw frame gets: the sender's own connection id."""
    return json.dumps({"connectionId": own_id})


# --------------------------------------------------------------------------
# Client side: encode requests, parse server messages


def encode_request(request: Request) -> str:
    """Serialize a request for the native endpoint."""
    obj: dict[str, Any]
    match request:
        case Join():
            obj = {"type": "join", "room": request.room}
            if request.capacity is not None:
                obj["capacity"] = request.capacity
            if request.key is not None:
                obj["key"] = request.key
        case Leave():
            obj = {"type": "leave"}
        case Send():
            obj = {"type": "message", "data": request.data}
            if request.to is not None:
                obj["to"] = request.to
        case _:
            raise TypeError(f"not a request: {request!r}")
    if request.id is not ABSENT:
        obj["id"] = request.id
    return _dumps(obj)


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, f"{obj.get('type')!r} needs {kind.__name__} field {name!r}"
        )
    return value


def _peers(obj: dict[str, Any]) -> tuple[str, ...]:
    peers = _field(obj, "peers", list)
    if not all(isinstance(p, str) for p in peers):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "'peers' must list connection ids")
    return tuple(peers)


def _capacity(obj: dict[str, Any]) -> int:
    """The ``capacity`` of ``created``/``joined``: the v1 default when absent or ``null``.

    Any integer of at least 2 is accepted, so that a newer server may allow
    larger rooms than this client would ask for.
    """
    capacity = obj.get("capacity")
    if capacity is None:
        return DEFAULT_ROOM_CAPACITY
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < MIN_ROOM_CAPACITY:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            f"'capacity' must be an integer of at least {MIN_ROOM_CAPACITY}",
        )
    return capacity


def parse_server_message(frame: str | bytes) -> ServerMessage | UnknownServerMessage:
    """Parse a frame from the server (client side).

    Unknown ``type`` values give :class:`UnknownServerMessage` (to ignore);
    malformed frames raise :class:`ProtocolError`.
    """
    obj = _load_object(frame)
    kind = _field(obj, "type", str)
    if kind == "welcome":
        ice = obj.get("iceServers", [])
        if not isinstance(ice, list) or not all(isinstance(s, dict) for s in ice):
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE, "'iceServers' must list RTCIceServer objects"
            )
        protocol = obj.get("protocol", PROTOCOL_VERSION)
        if not isinstance(protocol, int) or isinstance(protocol, bool):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "'protocol' must be an integer")
        return Welcome(
            connection_id=_field(obj, "connectionId", str),
            server=str(obj.get("server", "")),
            ice_servers=tuple(ice),
            protocol=protocol,
        )
    if kind == "created":
        return Created(
            room=_field(obj, "room", str),
            connection_id=_field(obj, "connectionId", str),
            capacity=_capacity(obj),
        )
    if kind == "joined":
        return Joined(
            room=_field(obj, "room", str),
            connection_id=_field(obj, "connectionId", str),
            peers=_peers(obj),
            capacity=_capacity(obj),
        )
    if kind == "peer-joined":
        return PeerJoined(
            room=_field(obj, "room", str), connection_id=_field(obj, "connectionId", str)
        )
    if kind == "ready":
        return Ready(room=_field(obj, "room", str), peers=_peers(obj))
    if kind == "full":
        return Full(room=_field(obj, "room", str))
    if kind == "peer-left":
        return PeerLeft(
            room=_field(obj, "room", str), connection_id=_field(obj, "connectionId", str)
        )
    if kind == "message":
        if "data" not in obj:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "'message' needs a 'data' field")
        return Relayed(sender=_field(obj, "from", str), data=obj["data"])
    if kind == "error":
        raw_code = _field(obj, "code", str)
        code: ErrorCode | str = raw_code
        with contextlib.suppress(ValueError):
            code = ErrorCode(raw_code)
        return Error(code=code, message=str(obj.get("message", "")), ref=obj.get("ref", ABSENT))
    return UnknownServerMessage(type=kind, fields=obj)
