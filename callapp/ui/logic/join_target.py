"""Whatever a person pastes into the one Join field, read as where to go.

Accepted, in the order they are tried:

* an invite link, ``http(s)://HOST:PORT/?room=NAME#secret=...&pin=...``
  (:func:`callapp.signaling.invite.parse_invite`; a browser link is the same
  without the fragment);
* ``http(s)://HOST:PORT/NAME`` (a room as the page's path);
* ``ws(s)://HOST:PORT/ws`` followed by a space and a room, or ``/ws/NAME``,
  or ``?room=NAME``;
* ``HOST:PORT/NAME``, ``HOST/NAME`` (plain ``ws://`` and the server's ``/ws``);
* an address with no room (``HOST:PORT``, ``ws://HOST:PORT/ws``): connect
  and wait to be called;
* a bare connection id (16 base64url characters, as
  :func:`callapp.signaling.messages.new_connection_id` makes them, with a
  capital or ``_``, which no host name has): call that person through the
  server the app is connected to (:func:`connection_id_problem` says what is
  needed when it is not).

A scheme whose ``://`` went wrong (``ws//host``, ``https:/host``) is mended,
not read as a host called ``ws``. Server addresses go through the one
normalizer, :func:`callapp.signaling.invite.normalize_server_url`. What cannot
be used raises :class:`JoinError` in plain words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from callapp.signaling.invite import (
    AddressError,
    InviteError,
    normalize_server_url,
    parse_invite,
)
from callapp.ui.names import room_problem

EXAMPLE = "192.168.1.20:8765/blue-fox-42"

# "ws//host", "ws:/host", "https:host", "http:///host": a scheme whose "://" went wrong
# (but not "host:8765", whose colon is a port's).
_SCHEME = re.compile(r"(?i)^(wss?|https?)(:?/+|:)(?!\d+(?:/|$))")
# secrets.token_urlsafe(12): 96 bits as 16 base64url characters.
_CONNECTION_ID = re.compile(r"[A-Za-z0-9_-]{16}")


class JoinError(ValueError):
    """What was pasted cannot be joined; ``str()`` says why and what to do."""


@dataclass(frozen=True, slots=True)
class JoinTarget:
    """Where to go: a server, and a room in it (None: wait to be called there)."""

    server_url: str
    room: str | None = None
    #: The room's secret from an invite link (never shown).
    secret: str | None = field(default=None, repr=False)
    #: The server certificate's pin from an invite link.
    pin: str | None = None
    #: "invite" (with a secret), "link" (a browser link), "address", or "peer".
    kind: str = "address"
    #: A connection id to call on the server already connected to (``kind == "peer"``).
    peer_id: str | None = None


def looks_like_connection_id(text: str) -> bool:
    """``text`` is a bare connection id, not a host name.

    Ids are 16 base64url characters; a host name has no capital that matters
    and no ``_``, so an id needs one of them (a random id lacks both about
    once in 10,000: that one is read as a host name).
    """
    word = text.strip()
    return bool(_CONNECTION_ID.fullmatch(word)) and ("_" in word or any(c.isupper() for c in word))


def connection_id_problem(*, connected: bool, in_call: bool = False) -> str:
    """Why a connection id cannot be called now, in words ("" when it can)."""
    if in_call:
        return "Hang up first: you are in a call already."
    if not connected:
        return (
            "That looks like a connection id. To call someone by their id, first connect to"
            f" their server: paste its address (such as {EXAMPLE.split('/')[0]}) and Join,"
            " then enter the id."
        )
    return ""


def mend_scheme(text: str) -> str:
    """``ws//host`` -> ``ws://host`` (and the like); anything else as it was."""
    match = _SCHEME.match(text)
    if match is None:
        return text
    scheme = match.group(1).lower()
    if match.group(0).lower() == scheme + "://":
        return text
    return f"{scheme}://{text[match.end() :].lstrip('/')}"


def parse_join_target(text: str) -> JoinTarget:
    """Read the Join field (see the module's documentation); raises :class:`JoinError`."""
    raw = text.strip()
    if not raw:
        raise JoinError(
            f"Paste the invite link you were sent, or an address and room such as {EXAMPLE}."
        )
    if looks_like_connection_id(raw):
        return JoinTarget("", kind="peer", peer_id=raw)
    address, room_word = _split_words(raw)
    address = mend_scheme(address)
    scheme = address.split("://", 1)[0].lower() if "://" in address else ""
    if scheme in ("http", "https"):
        return _from_link(address, room_word)
    if scheme in ("", "ws", "wss"):
        return _from_address(address if scheme else "ws://" + address, room_word)
    raise JoinError(
        f"A call address starts with http://, https://, ws:// or wss://, not {scheme}://."
        " Paste the invite link as you received it."
    )


def _split_words(raw: str) -> tuple[str, str | None]:
    words = raw.split()
    if len(words) == 1:
        return words[0], None
    if len(words) == 2:
        return words[0], words[1]
    raise JoinError(
        "That has spaces in it. Paste the invite link in one piece, or an address and a room"
        f" such as {EXAMPLE}."
    )


def _from_link(link: str, room_word: str | None) -> JoinTarget:
    parts = _urlsplit(link)
    query = parse_qs(parts.query)
    if "room" in query or parts.fragment:
        try:
            invite = parse_invite(link)
        except InviteError as exc:
            raise JoinError(str(exc)) from None
        kind = "invite" if invite.secret is not None else "link"
        return JoinTarget(invite.server_url, invite.room, invite.secret, invite.pin, kind)
    room = room_word or _path_room(parts.path)
    server = _server(f"{parts.scheme}://{parts.netloc}/")
    return JoinTarget(server, _room(room) if room else None, kind="link")


def _from_address(address: str, room_word: str | None) -> JoinTarget:
    parts = _urlsplit(address)
    room = room_word
    query = parse_qs(parts.query)
    if "room" in query:
        room = room or query["room"][0]
    path = parts.path.rstrip("/")
    if path in ("", "/ws"):
        server_path = "/ws"
    elif path.startswith("/ws/") and path.count("/") == 2:
        server_path = "/ws"
        room = room or unquote(path[4:])
    elif path.count("/") == 1:
        server_path = "/ws"
        room = room or unquote(path[1:])
    else:
        server_path = path
    server = _server(f"{parts.scheme}://{parts.netloc}{server_path}")
    return JoinTarget(server, _room(room) if room else None)


def _urlsplit(text: str) -> SplitResult:
    try:
        return urlsplit(text)
    except ValueError:
        raise JoinError("The address has a broken IPv6 part: check its '[' and ']'.") from None


def _path_room(path: str) -> str | None:
    name = unquote(path.strip("/"))
    return name or None


def _server(url: str) -> str:
    try:
        return normalize_server_url(url)
    except AddressError as exc:
        raise JoinError(str(exc)) from None


def _room(name: str) -> str:
    problem = room_problem(name)
    if problem:
        raise JoinError(problem.replace("A room name", f"The room name “{name[:40]}”", 1))
    return name
