"""Server addresses and invite links: what a person types or pastes, as values.

Pure functions, no I/O, importable from everywhere (the UI, the call engine,
the server): the one place that says what a signaling server address and
an invite link look like.

**Server addresses.** :func:`normalize_server_url` turns what a person typed
into the native endpoint URL, ``ws(s)://HOST[:PORT]/PATH``: forgiving where
the meaning is clear (``host:port`` gets ``ws://`` and ``/ws``, ``http(s)``
becomes ``ws(s)``, a browser link ``http://host:port/?room=x`` gives that
server's ``/ws``), strict where it is not (other schemes, a mistyped
``ws//host``, spaces, a bad host or port), always in plain words
(:class:`AddressError`).

**Invite links.** One link carries everything a guest needs: the server,
the room, the room's secret and, for a TLS server, the pin of its
certificate. It is the browser client's own URL, so the same link opens the
browser client or is pasted into the app::

    https://192.168.1.20:8765/?room=blue-fox-42#secret=SECRET&pin=PIN

* ``room`` is in the query: the server serves ``/`` whatever it says.
* ``secret`` and ``pin`` are in the fragment (after ``#``), which browsers
  never send to the server: the secret cannot reach a server's access log.
  Both are optional; other fragment keys are ignored (future use).
* ``secret`` is the room secret: 16 random bytes written as 22 unpadded
  base64url characters (``A-Z a-z 0-9 - _``). The server never sees it;
  clients derive the room key (and more) from it.
* ``pin`` is the SHA-256 of the server certificate's DER bytes, 43 unpadded
  base64url characters (:func:`certificate_pin`); it only goes with
  ``https://``. A hex spelling (64 digits, colons allowed, as ``openssl x509
  -fingerprint -sha256`` prints it) is accepted and read as the same pin.

:func:`parse_invite` reads a link into an :class:`Invite` (or raises
:class:`InviteError`, which says what is wrong in plain words);
:func:`format_invite` writes one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import SplitResult, quote, unquote, urlsplit

from callapp.signaling.messages import is_valid_room_name

__all__ = [
    "PIN_LENGTH",
    "SECRET_LENGTH",
    "WS_PATH",
    "AddressError",
    "Invite",
    "InviteError",
    "certificate_pin",
    "format_invite",
    "is_valid_pin",
    "is_valid_secret",
    "normalize_server_url",
    "parse_invite",
    "pin_digest",
]

#: The path of the native signaling endpoint (protocol v1).
WS_PATH: Final = "/ws"

#: Characters of a room secret in a link: 16 bytes, unpadded base64url.
SECRET_LENGTH: Final = 22
#: Characters of a certificate pin in a link: a SHA-256, unpadded base64url.
PIN_LENGTH: Final = 43

_EXAMPLE: Final = "ws://192.168.1.20:8765/ws"
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
# "ws//host", "ws:/host", "https:host": a scheme whose "://" went wrong.
_MISTYPED_SCHEME = re.compile(r"(?i)(wss?|https?)(:?/+|:(?!\d))")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_HEX_PIN = re.compile(r"[0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}")


class AddressError(ValueError):
    """A server address that cannot be used; ``str()`` says why, in plain words."""


class InviteError(ValueError):
    """An invite link that is malformed or incomplete; ``str()`` says what, in plain words."""


# -- server addresses -----------------------------------------------------------


def normalize_server_url(text: str) -> str:
    """Turn what a person typed into a ``ws(s)://host[:port]/path`` URL, or raise AddressError.

    * ``host:port`` gets ``ws://`` and ``/ws``; a URL with no path (or ``/``)
      gets ``/ws``; other paths are kept.
    * ``http://`` and ``https://`` become ``ws://`` and ``wss://``. A
      browser page link (``http(s)://host:port/``, with a query or fragment
      such as an invite link's ``?room=...#secret=...``) gives that
      server's ``/ws``; the room and secret are :func:`parse_invite`'s.
    * The host is lower-cased and checked (a name or an IP address, IPv6 in
      brackets); the port must be 1 to 65535.

    Raises:
        AddressError: Empty, spaces, another scheme, a mistyped scheme
            (``ws//host`` is not read as a host called ``ws``), no or a bad
            host, a bad port, a user name, or ``?``/``#`` in a ``ws(s)``
            address.
    """
    raw = text.strip()
    if not raw:
        raise AddressError(f"Enter the server address, for example {_EXAMPLE}.")
    if any(ch.isspace() for ch in raw):
        raise AddressError(f"The server address {raw!r} contains spaces.")
    if "://" not in raw:
        if _MISTYPED_SCHEME.match(raw):
            raise AddressError(
                f"The server address {raw!r} looks mistyped: write the scheme with"
                f" '://', for example {_EXAMPLE}."
            )
        raw = "ws://" + raw
    parts = _split(raw, AddressError, "The server address")
    given = parts.scheme.lower()
    scheme = {"http": "ws", "https": "wss"}.get(given, given)
    if scheme not in ("ws", "wss"):
        raise AddressError(
            f"The server address must start with ws:// or wss://, not {parts.scheme}://."
        )
    # Never echo a fragment: a pasted invite link carries its secret there.
    shown = text.strip().split("#", 1)[0]
    netloc = _netloc(parts, shown, AddressError, "The server address")
    page = given in ("http", "https") and parts.path in ("", "/")
    if (parts.query or parts.fragment) and not page:
        raise AddressError("The server address should not contain '?' or '#'.")
    path = parts.path if parts.path not in ("", "/") else WS_PATH
    return f"{scheme}://{netloc}{path}"


def _split(text: str, error: type[ValueError], what: str) -> SplitResult:
    try:
        return urlsplit(text)
    except ValueError:  # an unbalanced '[' or ']' around an IPv6 address
        raise error(f"{what} has a broken IPv6 address (check its '[' and ']').") from None


def _netloc(parts: SplitResult, shown: str, error: type[ValueError], what: str) -> str:
    """``host[:port]`` of ``parts``, checked and lower-cased; raises ``error`` in words."""
    if "@" in parts.netloc:
        raise error(f"{what} should not contain a user name or password ('@').")
    try:
        port = parts.port
    except ValueError:
        raise error(f"The port in {shown!r} is not a number from 1 to 65535.") from None
    host = parts.hostname or ""
    if not host:
        raise error(f"{what} {shown!r} has no host name.")
    if not _valid_host(host):
        raise error(f"{host!r} is not a valid host name or IP address.")
    if port == 0:
        raise error(f"The port in {shown!r} is not a number from 1 to 65535.")
    bracketed = f"[{host}]" if ":" in host else host
    return bracketed if port is None else f"{bracketed}:{port}"


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    if re.fullmatch(r"[0-9.]+", host):  # looks like an IPv4 address but is not one
        return False
    return bool(_HOST_RE.match(host)) and ".." not in host


# -- secrets and pins -------------------------------------------------------------


def _b64url_bytes(text: str, size: int) -> bytes | None:
    """The ``size`` bytes that ``text`` spells in canonical unpadded base64url, else None."""
    if _B64URL.fullmatch(text) is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != size or _b64url(raw) != text:
        return None
    return raw


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def is_valid_secret(secret: object) -> bool:
    """True for a room secret as links carry it: 16 bytes, 22 canonical base64url characters."""
    return isinstance(secret, str) and _b64url_bytes(secret, 16) is not None


def is_valid_pin(pin: object) -> bool:
    """True for a certificate pin in its canonical form: 43 base64url characters."""
    return isinstance(pin, str) and _b64url_bytes(pin, 32) is not None


def certificate_pin(der: bytes) -> str:
    """The pin of a certificate: SHA-256 of its DER bytes, 43 unpadded base64url characters."""
    return _b64url(hashlib.sha256(der).digest())


def pin_digest(pin: str) -> bytes:
    """The 32-byte SHA-256 a pin stands for (canonical or hex spelling).

    Raises:
        InviteError: ``pin`` is neither spelling.
    """
    return _read_pin(pin)[1]


def _read_pin(text: str) -> tuple[str, bytes]:
    """(canonical pin, digest) for a base64url or hex spelling, or InviteError."""
    raw = _b64url_bytes(text, 32)
    if raw is None and _HEX_PIN.fullmatch(text):
        raw = bytes.fromhex(text.replace(":", ""))
    if raw is None:
        raise InviteError(
            f"The certificate pin in the invite link is malformed: it should be"
            f" {PIN_LENGTH} characters (letters, digits, '-' and '_'), the SHA-256 of"
            " the server's certificate. Copy the whole link again."
        )
    return _b64url(raw), raw


def _check_secret(secret: str) -> None:
    if not secret:
        raise InviteError("The invite link's secret is empty: copy the whole link again.")
    if _B64URL.fullmatch(secret) is None:
        raise InviteError(
            "The invite link's secret has characters a secret cannot have (only letters,"
            " digits, '-' and '_'): copy the link again, exactly as it was sent."
        )
    if len(secret) != SECRET_LENGTH:
        raise InviteError(
            f"The invite link's secret should be {SECRET_LENGTH} characters long, not"
            f" {len(secret)}: copy the whole link again."
        )
    if _b64url_bytes(secret, 16) is None:
        raise InviteError(
            "The invite link's secret is damaged (its last character is not one a"
            " secret ends with): copy the link again, exactly as it was sent."
        )


# -- invite links --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Invite:
    """What an invite link says.

    Attributes:
        server_url: The server's native endpoint, ``ws(s)://HOST[:PORT]/ws``
            (``wss`` for an ``https://`` link).
        room: The room to join (a valid room name).
        secret: The room secret (22 base64url characters), or :obj:`None`
            for an open room. Not shown by ``repr()``.
        pin: The server certificate's pin (43 base64url characters), only
            with ``wss://``; :obj:`None` to trust the system's CAs.
    """

    server_url: str
    room: str
    secret: str | None = field(default=None, repr=False)
    pin: str | None = None

    @property
    def tls(self) -> bool:
        return self.server_url.startswith("wss://")

    @property
    def page_url(self) -> str:
        """The browser client's page for the room, without the fragment (no secret).

        ``http(s)://HOST[:PORT]/?room=NAME``: safe to show or log.
        """
        scheme, rest = self.server_url.split("://", 1)
        authority = rest.split("/", 1)[0]
        page_scheme = "https" if scheme == "wss" else "http"
        return f"{page_scheme}://{authority}/?room={quote(self.room, safe='')}"

    @property
    def link(self) -> str:
        """The whole invite link, secret and pin included (:func:`format_invite`)."""
        return format_invite(self.server_url, self.room, secret=self.secret, pin=self.pin)


def format_invite(
    server_url: str, room: str, *, secret: str | None = None, pin: str | None = None
) -> str:
    """The invite link for ``room`` on ``server_url``.

    ``server_url`` is read by :func:`normalize_server_url` and must end in
    ``/ws`` at the root (the browser client connects there). ``pin`` may be
    given in either spelling; the link carries the canonical one.

    Raises:
        ValueError: :class:`AddressError` for an unusable ``server_url``,
            :class:`InviteError` for a bad room name, secret or pin, or a
            pin with a ``ws://`` server.
    """
    url = normalize_server_url(server_url)
    scheme, rest = url.split("://", 1)
    authority, _, path = rest.partition("/")
    if "/" + path != WS_PATH:
        raise InviteError(
            f"An invite link can only name a server whose endpoint is {WS_PATH}, not {url}."
        )
    if not is_valid_room_name(room):
        raise InviteError(_bad_room(room))
    pieces: list[str] = []
    if secret is not None:
        _check_secret(secret)
        pieces.append(f"secret={secret}")
    if pin is not None:
        if scheme != "wss":
            raise InviteError(_PIN_WITHOUT_TLS)
        pieces.append(f"pin={_read_pin(pin)[0]}")
    page_scheme = "https" if scheme == "wss" else "http"
    link = f"{page_scheme}://{authority}/?room={quote(room, safe='')}"
    return f"{link}#{'&'.join(pieces)}" if pieces else link


_PIN_WITHOUT_TLS: Final = (
    "The invite link has a certificate pin but starts with http://: a pin only"
    " goes with https://. Copy the whole link again."
)


def _bad_room(room: str) -> str:
    return (
        f"The room in the invite link, {room!r}, is not a valid room name: rooms are"
        " 1-64 letters, digits, '-', '_' or '.'."
    )


def parse_invite(text: str) -> Invite:
    """Read an invite link (see the module's documentation for its format).

    Surrounding spaces are ignored. Unknown query and fragment keys are
    ignored (so links can grow); each known one may appear once.

    Raises:
        InviteError: The text is not a link, not ``http(s)://``, has a bad
            host or port, no or a bad room, a path other than ``/``, a
            secret or pin that is malformed, repeated or put after ``?``
            (where it would reach the server), or a pin on an ``http://``
            link. The message says which, in plain words.
    """
    raw = text.strip()
    if not raw:
        raise InviteError(
            "Paste the invite link, for example"
            " https://192.168.1.20:8765/?room=blue-fox-42#secret=..."
        )
    if any(ch.isspace() for ch in raw):
        raise InviteError("The invite link contains spaces: copy it again in one piece.")
    if "://" not in raw:
        raise InviteError("That is not an invite link: a link starts with http:// or https://.")
    parts = _split(raw, InviteError, "The invite link")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InviteError(f"An invite link starts with http:// or https://, not {parts.scheme}://.")
    # Messages show only the scheme and authority: never the secret.
    netloc = _netloc(parts, f"{parts.scheme}://{parts.netloc}", InviteError, "The invite link")
    if parts.path not in ("", "/"):
        raise InviteError(
            f"The invite link's path should be '/', not {parts.path[:40]!r}: copy the link again."
        )
    query = _fields(parts.query, "?")
    if "secret" in query or "pin" in query:
        raise InviteError(
            "The invite link has its secret or pin after '?', where it reaches the"
            " server: invite links carry them after '#'. Make a new invite."
        )
    room = query.get("room")
    if room is None:
        raise InviteError("The invite link names no room: it needs ?room=NAME.")
    if not is_valid_room_name(room):
        raise InviteError(_bad_room(room))
    fragment = _fields(parts.fragment, "#")
    secret = fragment.get("secret")
    if secret is not None:
        _check_secret(secret)
    pin = fragment.get("pin")
    if pin is not None:
        if scheme != "https":
            raise InviteError(_PIN_WITHOUT_TLS)
        pin = _read_pin(pin)[0]
    ws_scheme = "wss" if scheme == "https" else "ws"
    return Invite(f"{ws_scheme}://{netloc}{WS_PATH}", room, secret, pin)


_KNOWN: Final = ("room", "secret", "pin")


def _fields(text: str, where: str) -> dict[str, str]:
    """``key=value&...`` (percent-decoded) into a dict; a known key twice is an error."""
    found: dict[str, str] = {}
    for item in text.split("&"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = unquote(key)
        if key not in _KNOWN:
            continue
        if not sep:
            raise InviteError(
                f"The invite link's {key!r} after {where!r} has no value (expected {key}=...)."
            )
        if key in found:
            raise InviteError(f"The invite link gives {key!r} twice: copy the link again.")
        try:
            found[key] = unquote(value, errors="strict")
        except UnicodeDecodeError:
            raise InviteError(
                f"The invite link's {key!r} is damaged (bad %-escapes): copy the link again."
            ) from None
    return found
