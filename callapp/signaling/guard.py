"""Admission control before and around the WebSocket handshake, sans-I/O.

The server asks :class:`Admission` three questions, at three moments of a
TCP connection's life, and tells it a fourth:

1. **accept** (:meth:`Admission.accept`), when the TCP connection arrives and
   nothing has been read yet: is there room for one more socket
   (``max_sockets``, which keeps the process below its descriptor limit) and
   for one more handshake in progress from this address
   (``max_handshakes_per_address``)? A refusal here is answered by closing
   the socket at once: there is no request yet to answer.
2. **request** (:meth:`Admission.request`), when the HTTP request has been
   read: the handshake is over, whatever the answer.
3. **upgrade** (:meth:`Admission.upgrade`), for a WebSocket upgrade: is the
   ``Origin`` allowed (403), is the server full (``max_connections``, 503),
   does this address or its network hold too many connections
   (``max_connections_per_address`` / ``max_connections_per_network``, 429),
   and is it connecting too often (``connects_per_second`` with a burst of
   ``connect_burst``, 429)?
4. **close** (:meth:`Admission.close`), when the TCP connection is gone: its
   slots are free again.

Addresses are grouped (:func:`address_group`) before they are counted:
IPv4 by /32 and IPv6 by /64 for the per-address limits (one IPv6 host
usually holds a whole /64), IPv4 by /24 and IPv6 by /48 for the per-network
ones, so that one host cannot multiply its share by taking more addresses
from its own network.

Behind a reverse proxy every TCP connection comes from the proxy.
:class:`TrustedProxies` (``callapp-signaling --trusted-proxy CIDR``) says
which peers may name the client in ``X-Forwarded-For``: for a connection
from one of them, :meth:`TrustedProxies.client` takes the right-most address
of the header that is not itself a trusted proxy, and the server moves the
ticket to it with :meth:`Admission.forwarded` between *request* and
*upgrade*. From step 3 on the client is counted (the caps and churn here;
the per-address read share and the log's sources in the server); step 1
still counts the proxy, since nothing has been read when it is asked. A
header from any other peer is ignored, so a client cannot choose the
address it is counted under.

Nothing here reads a clock of its own, sleeps, or does I/O: the server owns
the sockets and the time source, and tests drive every limit with a fake
clock. :class:`PressureLog` belongs to the same family: it counts what the
limits refused and says so in one line at most every few seconds, so that
an attack costs the log one line per interval, not one per connection.

Errors are split as in :mod:`callapp.signaling.messages`: a peer that hits
a limit gets a :class:`Refusal` value (never an exception); our own code
passing nonsense (a prefix of 33 bits, a negative limit) raises
:exc:`ValueError`.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import time
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from typing import Final, Literal, TypeAlias
from urllib.parse import urlsplit

from callapp.signaling.limits import Clock, TokenBucket

__all__ = [
    "DEFAULT_CONNECTS_PER_SECOND",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_HANDSHAKES_PER_ADDRESS",
    "Admission",
    "AdmissionLimits",
    "Forwarded",
    "PressureLog",
    "Refusal",
    "Ticket",
    "TrustedProxies",
    "address_group",
    "origin_allowed",
]

#: Upgraded WebSocket connections the whole server holds by default.
DEFAULT_MAX_CONNECTIONS: Final = 10_000

#: TCP connections from one address group still in their opening handshake.
DEFAULT_MAX_HANDSHAKES_PER_ADDRESS: Final = 128

#: WebSocket connects per second one address group may keep up, on average.
DEFAULT_CONNECTS_PER_SECOND: Final = 10.0

# Churn buckets are forgotten once full (a full bucket is a fresh one); past
# this many groups even a bucket that is not full is dropped, oldest first,
# so that addresses spread over a large IPv6 prefix cannot grow the table.
_MAX_CHURN_GROUPS: Final = 65_536


class Refusal(enum.StrEnum):
    """Why a connection was refused; the ``reason`` label of the refusal metric."""

    #: Too many handshakes in progress from one address: the socket is closed unread.
    HANDSHAKES = "handshakes"
    #: The server holds as many sockets as its descriptor budget allows: closed unread.
    SOCKETS = "sockets"
    #: ``Origin`` is a web page other than the server's own (HTTP 403).
    ORIGIN = "origin"
    #: The server holds ``max_connections`` WebSocket connections (HTTP 503).
    SERVER_FULL = "server-full"
    #: The address group holds ``max_connections_per_address`` (HTTP 429).
    PER_ADDRESS = "per-address"
    #: The network group holds ``max_connections_per_network`` (HTTP 429).
    PER_NETWORK = "per-network"
    #: The address group connects faster than ``connects_per_second`` (HTTP 429).
    CHURN = "churn"


def address_group(address: str, prefix_v4: int = 32, prefix_v6: int = 64) -> str:
    """The network ``address`` belongs to, written ``a.b.c.d/n`` or ``x::/n``.

    An IPv4 address mapped into IPv6 (``::ffff:192.0.2.1``, what a dual-stack
    socket reports) is grouped as the IPv4 address it is; an IPv6 zone
    (``fe80::1%eth0``) is dropped. Text that is not an IP address (a Unix
    socket's empty name) is a group of its own, returned unchanged.

    Raises:
        ValueError: If a prefix is outside 0-32 (IPv4) or 0-128 (IPv6).
    """
    if not 0 <= prefix_v4 <= 32:
        raise ValueError(f"an IPv4 prefix is 0-32 bits, not {prefix_v4}")
    if not 0 <= prefix_v6 <= 128:
        raise ValueError(f"an IPv6 prefix is 0-128 bits, not {prefix_v6}")
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = prefix_v4 if ip.version == 4 else prefix_v6
    return str(ipaddress.ip_network((ip, prefix), strict=False))


IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> IPAddress | None:
    """``text`` as an address (zone dropped, IPv4-mapped IPv6 unmapped), or :obj:`None`."""
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_port(text: str) -> bool:
    # isdigit() alone takes superscripts and other scripts' digits.
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit()


def _forwarded_entry(entry: str) -> IPAddress | None:
    """One element of ``X-Forwarded-For`` as an address, or :obj:`None` if it is none.

    Besides a bare address, proxies are seen to write ``1.2.3.4:5678``,
    ``[2001:db8::1]`` and ``[2001:db8::1]:443``; the port is dropped.
    Anything else (empty, ``unknown``, a name, RFC 7239 quoting) is not an
    address.
    """
    text = entry.strip(" \t")
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest[:1] == ":" and _is_port(rest[1:]))):
            return None
        return _ip(inside)
    if text.count(":") == 1:  # IPv4 with a port: IPv6 has two colons at least
        host, _, port = text.partition(":")
        ip = _ip(host) if _is_port(port) else None
        return ip if isinstance(ip, ipaddress.IPv4Address) else None
    return _ip(text)


@dataclasses.dataclass(frozen=True, slots=True)
class Forwarded:
    """Whom to count a connection as: :meth:`TrustedProxies.client`'s answer."""

    #: The client's address: the forwarded one, or else the TCP peer's as given.
    address: str
    #: The trusted proxy's address when ``address`` came from the header, else :obj:`None`.
    via: str | None = None
    #: A trusted proxy sent a header that names no usable client; ``address`` is the proxy's.
    malformed: bool = False


class TrustedProxies:
    """The networks whose connections may name their client in ``X-Forwarded-For``.

    Each proxy in a chain appends the address it received the connection
    from to the header, so only the right-hand end can be believed: the
    client is the right-most address that is not a trusted proxy, found by
    walking the header from the right, past every trusted address, to the
    first untrusted one. What lies left of it was written by the client
    and is never read. Several ``X-Forwarded-For`` lines are one list, in
    their order (RFC 9110, 5.3). If every address is trusted, the left-most
    one is the client (a host of the proxies' own network).

    The header is used only when the TCP peer itself is in a trusted
    network; from anyone else it is ignored, so a client cannot pick the
    address its limits are counted under. An empty set trusts nobody.

    Raises:
        ValueError: If a network is not an address or CIDR (``10.0.0.0/8``,
            ``2001:db8::/32``, a bare address for one host), or has host
            bits set (``10.0.0.1/8``).
    """

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(self.parse_network(text) for text in networks)

    @staticmethod
    def parse_network(text: str) -> IPNetwork:
        """``text`` as a network (``10.0.0.0/8``; a bare address is one host).

        Raises:
            ValueError: If it is not one, or has host bits set.
        """
        try:
            return ipaddress.ip_network(text.strip(), strict=True)
        except ValueError:
            pass
        try:
            loose = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(
                f"{text!r} is not a network in CIDR form (10.0.0.0/8, fd00::/8)"
            ) from None
        raise ValueError(
            f"{text!r} has host bits set, so it is not a network in CIDR form:"
            f" did you mean {loose}?"
        ) from None

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        """Is ``address`` (an IPv4-mapped IPv6 address counts as its IPv4) trusted?"""
        ip = _ip(address)
        return ip is not None and self._trusts(ip)

    def _trusts(self, ip: IPAddress) -> bool:
        return any(ip in network for network in self.networks)

    def client(self, peer: str, headers: Sequence[str]) -> Forwarded:
        """Whom a connection from ``peer`` carrying these ``X-Forwarded-For`` lines is from.

        ``peer`` untrusted, or trusted with no header at all: ``peer``
        itself. Trusted, with a header: the right-most untrusted address
        (see the class), written as :func:`ipaddress.ip_address` writes it.
        Trusted, but an element consulted on the way is not an address, or
        the header is empty: ``peer``, ``malformed`` set.
        """
        peer_ip = _ip(peer)
        if not headers or peer_ip is None or not self._trusts(peer_ip):
            return Forwarded(peer)
        found: IPAddress | None = None
        for value in reversed(headers):
            for entry in reversed(value.split(",")):
                ip = _forwarded_entry(entry)
                if ip is None:
                    return Forwarded(peer, malformed=True)
                found = ip
                if not self._trusts(ip):
                    return Forwarded(str(ip), via=peer)
        # Every address is a proxy's (never empty: split yields one entry at least).
        assert found is not None
        return Forwarded(str(found), via=peer)


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(scheme)


def _normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case with the scheme's default port left out."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _default_port(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str] = ()) -> bool:
    """May a WebSocket handshake with this ``Origin`` header open a connection?

    Allowed: no ``Origin`` at all (non-browser clients: the desktop app, CLI
    tools, other servers; browsers always send one); the server's own page,
    that is an ``Origin`` whose host and port are the ``Host`` the request
    was sent to (the page at ``http://H:P/`` opens ``ws://H:P/ws``; the
    origin's default port, 80 or 443, may be left out, so a TLS proxy in
    front keeps working); any origin listed in ``allowed`` (compared
    case-insensitively, default ports left out); everything if ``allowed``
    holds ``"*"``. ``"null"`` (a ``file://`` page, a sandboxed frame) is
    allowed only when listed.
    """
    if origin is None:
        return True
    listed = set(allowed)
    if "*" in listed:
        return True
    if origin.strip() == "null":
        return "null" in listed
    normalized = _normalize_origin(origin)
    if normalized is None:
        return False
    if normalized in {_normalize_origin(entry) for entry in listed}:
        return True
    if host is None:
        return False
    netloc = normalized.partition("://")[2]
    want = host.strip().lower()
    if netloc == want:
        return True
    # The Host header may carry the default port the Origin leaves out.
    scheme = normalized.partition("://")[0]
    return f"{netloc}:{_default_port(scheme)}" == want


@dataclasses.dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """The limits :class:`Admission` enforces; every one is a server flag.

    ``max_connections_per_network`` defaults to four times
    ``max_connections_per_address`` and ``connect_burst`` to
    ``max_connections_per_address``: an address may open all its connections
    at once, and raising the per-address cap (tests, benchmarks on loopback)
    raises the others with it. ``max_sockets`` :obj:`None` means no socket
    budget (the server derives one from its descriptor limit).

    Raises:
        ValueError: If a limit is below 1 (``connects_per_second`` below 0)
            or a prefix is out of range.
    """

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_address: int = 256
    max_connections_per_network: int | None = None
    max_handshakes_per_address: int = DEFAULT_MAX_HANDSHAKES_PER_ADDRESS
    max_sockets: int | None = None
    connects_per_second: float = DEFAULT_CONNECTS_PER_SECOND
    connect_burst: int | None = None
    prefix_v4: int = 32
    prefix_v6: int = 64
    network_prefix_v4: int = 24
    network_prefix_v6: int = 48

    def __post_init__(self) -> None:
        for name in (
            "max_connections",
            "max_connections_per_address",
            "max_connections_per_network",
            "max_handshakes_per_address",
            "max_sockets",
            "connect_burst",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        if self.connects_per_second < 0:
            raise ValueError(f"connects_per_second must be >= 0, not {self.connects_per_second}")
        address_group("0.0.0.0", self.prefix_v4, self.prefix_v6)
        address_group("0.0.0.0", self.network_prefix_v4, self.network_prefix_v6)

    @property
    def per_network(self) -> int:
        """``max_connections_per_network``, its default worked out."""
        if self.max_connections_per_network is not None:
            return self.max_connections_per_network
        return 4 * self.max_connections_per_address

    @property
    def burst(self) -> int:
        """``connect_burst``, its default worked out."""
        return (
            self.connect_burst
            if self.connect_burst is not None
            else self.max_connections_per_address
        )


TicketState: TypeAlias = Literal["handshaking", "requested", "open", "closed"]


@dataclasses.dataclass(eq=False, slots=True)
class Ticket:
    """One TCP connection admitted by :meth:`Admission.accept`, and what it holds.

    ``address`` and ``network`` are the groups it is counted in: the TCP
    peer's, or once :meth:`Admission.forwarded` moved it, the client's that a
    trusted proxy named; ``client`` is then that address (for logs).
    """

    address: str
    network: str
    state: TicketState = "handshaking"
    client: str | None = None


class Admission:
    """Counts sockets, handshakes and connections per group, and refuses past the limits.

    Every method is O(1) but the churn table's occasional pruning (amortized
    O(1)). Memory: a few counters per address group that holds a connection
    or has connected in the last ``connect_burst / connects_per_second``
    seconds, at most ``_MAX_CHURN_GROUPS`` of the latter.
    """

    def __init__(self, limits: AdmissionLimits, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._handshaking: Tally[str] = Tally()
        self._by_address: Tally[str] = Tally()
        self._by_network: Tally[str] = Tally()
        self._churn: dict[str, TokenBucket] = {}
        self._prune_at = 1024
        #: TCP connections held, whatever their state.
        self.sockets = 0
        #: TCP connections still in their opening handshake.
        self.handshakes = 0
        #: Upgraded WebSocket connections.
        self.connections = 0

    def accept(self, address: str) -> Ticket | Refusal:
        """A TCP connection from ``address`` arrived: a :class:`Ticket`, or why to close it."""
        limits = self.limits
        if limits.max_sockets is not None and self.sockets >= limits.max_sockets:
            return Refusal.SOCKETS
        group = address_group(address, limits.prefix_v4, limits.prefix_v6)
        if self._handshaking[group] >= limits.max_handshakes_per_address:
            return Refusal.HANDSHAKES
        network = address_group(address, limits.network_prefix_v4, limits.network_prefix_v6)
        self._handshaking[group] += 1
        self.sockets += 1
        self.handshakes += 1
        return Ticket(group, network)

    def request(self, ticket: Ticket) -> None:
        """``ticket``'s HTTP request was read: its handshake no longer counts."""
        if ticket.state == "handshaking":
            ticket.state = "requested"
            self._release(self._handshaking, ticket.address)
            self.handshakes -= 1

    def forwarded(self, ticket: Ticket, client: str) -> None:
        """Count ``ticket`` as a connection from ``client`` (a trusted proxy's client).

        Only between :meth:`request` and :meth:`upgrade`: the handshake slot
        it held was the proxy's and is free, and nothing of the client's is
        counted yet, so moving it changes no tally.

        Raises:
            ValueError: If ``ticket`` is not in state ``"requested"``.
        """
        if ticket.state != "requested":
            raise ValueError(f"a ticket in state {ticket.state!r} cannot be moved")
        limits = self.limits
        ticket.address = address_group(client, limits.prefix_v4, limits.prefix_v6)
        ticket.network = address_group(client, limits.network_prefix_v4, limits.network_prefix_v6)
        ticket.client = client

    def upgrade(self, ticket: Ticket, origin_ok: bool = True) -> Refusal | None:
        """May ``ticket`` become a WebSocket connection? :obj:`None` (and counted) if so.

        Checked in this order: ``Origin``, the server-wide cap, the network's
        cap, the address's cap, then churn; a refused attempt takes no churn
        token. Calls :meth:`request` first if the caller has not.

        Raises:
            ValueError: If ``ticket`` was already upgraded or closed.
        """
        self.request(ticket)
        if ticket.state != "requested":
            raise ValueError(f"a ticket in state {ticket.state!r} cannot be upgraded")
        limits = self.limits
        if not origin_ok:
            return Refusal.ORIGIN
        if self.connections >= limits.max_connections:
            return Refusal.SERVER_FULL
        if self._by_network[ticket.network] >= limits.per_network:
            return Refusal.PER_NETWORK
        if self._by_address[ticket.address] >= limits.max_connections_per_address:
            return Refusal.PER_ADDRESS
        if not self._churn_bucket(ticket.address).allow():
            return Refusal.CHURN
        ticket.state = "open"
        self._by_address[ticket.address] += 1
        self._by_network[ticket.network] += 1
        self.connections += 1
        return None

    def close(self, ticket: Ticket) -> None:
        """``ticket``'s TCP connection is gone; idempotent."""
        if ticket.state == "closed":
            return
        if ticket.state == "handshaking":
            self._release(self._handshaking, ticket.address)
            self.handshakes -= 1
        elif ticket.state == "open":
            self._release(self._by_address, ticket.address)
            self._release(self._by_network, ticket.network)
            self.connections -= 1
        ticket.state = "closed"
        self.sockets -= 1

    def held_by(self, address: str) -> int:
        """WebSocket connections held by ``address``'s group (for tests and logs)."""
        limits = self.limits
        return self._by_address[address_group(address, limits.prefix_v4, limits.prefix_v6)]

    @property
    def churn_groups(self) -> int:
        """Address groups whose connect rate is being tracked."""
        return len(self._churn)

    @staticmethod
    def _release(tally: Tally[str], key: str) -> None:
        tally[key] -= 1
        if tally[key] <= 0:
            del tally[key]

    def _churn_bucket(self, group: str) -> TokenBucket:
        bucket = self._churn.get(group)
        if bucket is None:
            if len(self._churn) >= self._prune_at:
                self._prune()
            bucket = TokenBucket(self.limits.connects_per_second, self.limits.burst, self._clock)
            self._churn[group] = bucket
        return bucket

    def _prune(self) -> None:
        burst = float(self.limits.burst)
        for group in [g for g, b in self._churn.items() if b.tokens >= burst]:
            del self._churn[group]
        # Dicts keep insertion order: what is left over the bound is the oldest.
        excess = len(self._churn) - (_MAX_CHURN_GROUPS - 1)
        for group in list(self._churn)[: max(0, excess)]:
            del self._churn[group]
        # Prune again only once the table has doubled: amortized O(1) per connect.
        self._prune_at = max(1024, 2 * len(self._churn))


class PressureLog:
    """Counts refusals and closes, and words them as one line per ``interval``.

    :meth:`note` counts an event (``"refused"`` or ``"closed"``, a reason,
    and the address group it came from); :meth:`report` returns the line
    once ``interval`` seconds have passed since the last one and something
    was noted, else :obj:`None`. The caller logs the line: under attack the
    log grows by one line per interval, whatever the attacker's rate.
    """

    def __init__(self, interval: float = 10.0, clock: Clock = time.monotonic) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be above 0, not {interval!r}")
        self.interval = interval
        self._clock = clock
        self._last = clock() - interval
        self._counts: dict[str, Tally[str]] = {}
        self._sources: Tally[str] = Tally()

    @property
    def pending(self) -> bool:
        """True if something was noted since the last report."""
        return bool(self._counts)

    def note(self, kind: str, reason: str, source: str | None = None) -> None:
        """Count one ``kind`` event (``"refused"``, ``"closed"``) for ``reason``."""
        self._counts.setdefault(kind, Tally())[reason] += 1
        if source is not None:
            self._sources[source] += 1
            if len(self._sources) > 4096:
                # Keep the table small under spread-out attacks: the top few matter.
                self._sources = Tally(dict(self._sources.most_common(64)))

    def report(self, force: bool = False) -> str | None:
        """The summary line if one is due (or ``force``), resetting the counts."""
        now = self._clock()
        if not self._counts or (not force and now - self._last < self.interval):
            return None
        seconds = now - self._last
        parts = []
        for kind, counts in self._counts.items():
            total = sum(counts.values())
            detail = ", ".join(f"{reason} {n:,}" for reason, n in counts.most_common())
            parts.append(f"{kind} {total:,} connections ({detail})")
        line = f"under pressure in the last {min(seconds, 3600):.0f} s: " + "; ".join(parts)
        if self._sources:
            top = ", ".join(f"{source} {n:,}" for source, n in self._sources.most_common(3))
            line += f"; busiest sources: {top}"
        self._counts = {}
        self._sources = Tally()
        self._last = now
        return line
