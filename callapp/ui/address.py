"""Server addresses: checking what a person typed, and what to tell the other person.

Pure functions (no Qt, no sockets opened except the address probe), so the
rules are unit-testable. What a server address may look like is decided in
one place, :mod:`callapp.signaling.invite` (the signaling client reads
addresses with the same rules); :func:`normalize_server_url` and
:class:`AddressError` are that module's, re-exported here for the UI.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import quote

from callapp.signaling.invite import WS_PATH, AddressError, normalize_server_url

__all__ = [
    "DEFAULT_PORT",
    "LOOPBACK",
    "WS_PATH",
    "AddressError",
    "choose_lan_address",
    "invite_hint",
    "invite_url",
    "local_address_candidates",
    "normalize_server_url",
    "port_is_free",
    "server_url",
]

#: The port Host tries first; any free port is used when it is taken.
DEFAULT_PORT = 8765
LOOPBACK = "127.0.0.1"


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
