"""Server addresses: checking what a person typed, and what to tell the other person.

Pure functions (no Qt, no sockets opened except the address probe), so the
rules are unit-testable.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from urllib.parse import quote, urlsplit

#: The port Host tries first; any free port is used when it is taken.
DEFAULT_PORT = 8765
#: The path of the native signaling endpoint (protocol v1).
WS_PATH = "/ws"
LOOPBACK = "127.0.0.1"

_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


class AddressError(ValueError):
    """A server address that cannot be used; ``str()`` says why, in plain words."""


def normalize_server_url(text: str) -> str:
    """Turn what a person typed into a ``ws://host:port/ws`` URL, or raise AddressError.

    Forgiving where the meaning is clear: ``host:port`` gets ``ws://`` and
    ``/ws``; ``http(s)://`` becomes ``ws(s)://``. Strict where it is not:
    other schemes, spaces, a missing host or a bad port are refused.
    """
    raw = text.strip()
    if not raw:
        raise AddressError("Enter the server address, for example ws://192.168.1.20:8765/ws.")
    if any(ch.isspace() for ch in raw):
        raise AddressError(f"The server address {raw!r} contains spaces.")
    if "://" not in raw:
        raw = "ws://" + raw
    parts = urlsplit(raw)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("ws", "wss"):
        raise AddressError(
            f"The server address must start with ws:// or wss://, not {parts.scheme}://."
        )
    try:
        port = parts.port
    except ValueError:
        raise AddressError(
            f"The port in {text.strip()!r} is not a number from 1 to 65535."
        ) from None
    host = parts.hostname or ""
    if not host:
        raise AddressError(f"The server address {text.strip()!r} has no host name.")
    if not _valid_host(host):
        raise AddressError(f"{host!r} is not a valid host name or IP address.")
    if port == 0:
        raise AddressError(f"The port in {text.strip()!r} is not a number from 1 to 65535.")
    if parts.query or parts.fragment:
        raise AddressError("The server address should not contain '?' or '#'.")
    path = parts.path or WS_PATH
    if path == "/":
        path = WS_PATH
    shown_host = f"[{host}]" if ":" in host else host
    netloc = shown_host if port is None else f"{shown_host}:{port}"
    return f"{scheme}://{netloc}{path}"


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


def server_url(host: str, port: int, *, tls: bool = False) -> str:
    """The URL of the native endpoint of a server on ``host:port`` (``wss://`` with TLS)."""
    scheme = "wss" if tls else "ws"
    return f"{scheme}://{_authority(host, port)}{WS_PATH}"


def invite_url(host: str, port: int, room: str, *, tls: bool = False) -> str:
    """The link that opens the server's browser client in ``room``.

    ``http://HOST:PORT/?room=NAME`` (``https://`` with TLS); the page joins
    the room at once. The room is URL-encoded although valid names need none,
    so a link never breaks on what it carries.
    """
    scheme = "https" if tls else "http"
    return f"{scheme}://{_authority(host, port)}/?room={quote(room, safe='')}"


def invite_hint(tls: bool) -> str:
    """One line under the invite link, so a browser guest gets a camera."""
    if tls:
        return "Self-signed? The browser warns once: Advanced, then continue."
    return "A browser on another machine needs https for its camera: see Host settings."


def _authority(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{shown}:{port}"


def choose_lan_address(candidates: Iterable[str]) -> str:
    """The address another machine on the LAN should use to reach this one.

    Prefers a private IPv4 address (192.168/16, 10/8, 172.16/12), then any
    other non-loopback, non-link-local IPv4, then falls back to 127.0.0.1
    (a machine with only loopback can still host a call with itself).
    """
    private: list[str] = []
    other: list[str] = []
    for text in candidates:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            continue
        if addr.version != 4 or addr.is_loopback or addr.is_link_local:
            continue
        if addr.is_unspecified or addr.is_multicast:
            continue
        (private if addr.is_private else other).append(str(addr))
    for group in (private, other):
        if group:
            return group[0]
    return LOOPBACK


def local_address_candidates(
    resolve: Callable[[str], Iterable[str]] | None = None,
) -> list[str]:
    """This machine's IPv4 addresses, best guess first (the default route's source)."""
    found: list[str] = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # connect() on UDP sends nothing; it only picks the outgoing interface.
        probe.connect(("192.0.2.1", 9))
        found.append(probe.getsockname()[0])
    except OSError:
        pass
    finally:
        probe.close()
    try:
        names = resolve(socket.gethostname()) if resolve else _resolve(socket.gethostname())
        found.extend(names)
    except OSError:
        pass
    return list(dict.fromkeys(found))


def _resolve(name: str) -> list[str]:
    infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def port_is_free(port: int, host: str = "0.0.0.0") -> bool:
    """Whether a TCP server could listen on ``host:port`` right now."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError:
        return False
    finally:
        sock.close()
    return True
