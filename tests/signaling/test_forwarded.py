"""``X-Forwarded-For`` from trusted proxies (``--trusted-proxy``), and only from them.

The header rule (:class:`~callapp.signaling.guard.TrustedProxies`) is checked
on values, then on a real server: through a "proxy" it trusts, clients with
different forwarded addresses are counted apart and one address at its cap is
refused while another is not; a client that is no trusted proxy gets nothing
from the header, whatever it writes in it.
"""

from __future__ import annotations

import logging

import pytest
from websockets.exceptions import InvalidStatus

from callapp.signaling.cli import build_parser
from callapp.signaling.guard import (
    Admission,
    AdmissionLimits,
    Forwarded,
    Refusal,
    Ticket,
    TrustedProxies,
)
from tests.signaling.conftest import ServerFactory, http_get, open_ws, recv_json

PROXIES = TrustedProxies(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("headers", "client"),
    [
        (["203.0.113.7"], "203.0.113.7"),
        # What the client wrote left of the proxies' entries is never read.
        (["198.51.100.1, 203.0.113.7, 10.0.0.2"], "203.0.113.7"),
        (["garbage, 203.0.113.7"], "203.0.113.7"),
        (["unknown,, 203.0.113.7 ,\t10.9.9.9"], "203.0.113.7"),
        # Several lines are one list, in order; the walk crosses them.
        (["198.51.100.1", "203.0.113.7, 10.0.0.2"], "203.0.113.7"),
        (["203.0.113.7", "10.0.0.3", "10.0.0.2"], "203.0.113.7"),
        (["10.0.0.3", "203.0.113.7"], "203.0.113.7"),
        # Every address a proxy's: the left-most is the client.
        (["10.0.0.5, 10.0.0.2"], "10.0.0.5"),
        # Ports, brackets, IPv6 spellings, mapped IPv4, zones.
        (["203.0.113.7:5555"], "203.0.113.7"),
        (["2001:db8::1"], "2001:db8::1"),
        (["2001:DB8:0:0::1"], "2001:db8::1"),
        (["[2001:db8::1]"], "2001:db8::1"),
        (["[2001:db8::1]:443, fd00::2"], "2001:db8::1"),
        (["::ffff:203.0.113.7"], "203.0.113.7"),
        (["fe80::1%eth0"], "fe80::1"),
    ],
)
def test_the_client_is_the_right_most_untrusted_address(headers: list[str], client: str) -> None:
    assert PROXIES.client("10.0.0.1", headers) == Forwarded(client, via="10.0.0.1")


@pytest.mark.parametrize(
    "headers",
    [
        [""],
        [" , "],
        ["203.0.113.7, garbage"],
        ["203.0.113.7, unknown"],
        ["203.0.113.7", ""],
        ["203.0.113.7:"],
        ["203.0.113.7:80x"],
        ["203.0.113.7:\u00b2"],  # a superscript two is a digit to str.isdigit
        ["[2001:db8::1"],
        ["[2001:db8::1]x"],
        ["2001:db8::1:443:x"],
        ['"[2001:db8::1]"'],  # RFC 7239 quoting belongs in Forwarded, not here
        ["host.example"],
        ["203.0.113.7 10.0.0.2"],
    ],
)
def test_a_header_naming_no_client_counts_the_proxy(headers: list[str]) -> None:
    assert PROXIES.client("10.0.0.1", headers) == Forwarded("10.0.0.1", malformed=True)


def test_only_a_trusted_peer_is_believed() -> None:
    spoof = ["10.0.0.2"]
    assert PROXIES.client("203.0.113.9", spoof) == Forwarded("203.0.113.9")
    assert PROXIES.client("203.0.113.9", ["garbage"]) == Forwarded("203.0.113.9")
    assert TrustedProxies().client("10.0.0.1", spoof) == Forwarded("10.0.0.1")
    assert not TrustedProxies()
    assert PROXIES
    # A trusted peer that forwards nothing is its own client (a monitor on its host).
    assert PROXIES.client("10.0.0.1", []) == Forwarded("10.0.0.1")
    # IPv6 proxies, and an IPv4 proxy seen through a dual-stack socket.
    assert PROXIES.client("fd00::1", ["2001:db8::5"]) == Forwarded("2001:db8::5", via="fd00::1")
    mapped = PROXIES.client("::ffff:10.0.0.1", ["203.0.113.7"])
    assert mapped == Forwarded("203.0.113.7", via="::ffff:10.0.0.1")
    assert PROXIES.trusts("::ffff:10.1.2.3")
    assert not PROXIES.trusts("11.0.0.1")
    assert not PROXIES.trusts("")


def test_networks_are_checked() -> None:
    assert TrustedProxies(["127.0.0.1", "::1"]).networks[0].prefixlen == 32
    for bad in ("10.0.0.1/8", "nonsense", "10.0.0.0/33", ""):
        with pytest.raises(ValueError, match="CIDR"):
            TrustedProxies([bad])


def test_the_flag_is_repeatable_checked_and_off_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    assert parser.parse_args([]).trusted_proxy == []
    args = parser.parse_args(["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1"])
    assert args.trusted_proxy == ["10.0.0.0/8", "::1"]
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--trusted-proxy", "10.0.0.1/8"])
    assert exited.value.code == 2
    assert "has host bits set" in capsys.readouterr().err
    assert "X-Forwarded-For" in parser.format_help()


def test_a_forwarded_ticket_is_counted_under_its_client() -> None:
    limits = AdmissionLimits(max_connections_per_address=1, max_handshakes_per_address=2)
    admission = Admission(limits, clock=lambda: 0.0)
    tickets = []
    for client in ("203.0.113.1", "203.0.113.2", "203.0.113.1"):
        ticket = admission.accept("10.0.0.1")
        assert isinstance(ticket, Ticket)
        admission.request(ticket)
        admission.forwarded(ticket, client)
        assert (ticket.address, ticket.network, ticket.client) == (
            f"{client}/32",
            "203.0.113.0/24",
            client,
        )
        tickets.append(admission.upgrade(ticket))
    assert tickets == [None, None, Refusal.PER_ADDRESS]
    assert admission.held_by("203.0.113.1") == admission.held_by("203.0.113.2") == 1
    assert admission.held_by("10.0.0.1") == 0
    # Only between request and upgrade: before it the handshake slot is the proxy's.
    early = admission.accept("10.0.0.1")
    assert isinstance(early, Ticket)
    with pytest.raises(ValueError, match="handshaking"):
        admission.forwarded(early, "203.0.113.3")


async def _refused_status(url: str, **options: object) -> int | None:
    """The HTTP status refusing a handshake, or :obj:`None` if it connected (then closed)."""
    try:
        ws = await open_ws(url, **options)
    except InvalidStatus as exc:
        return exc.response.status_code
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.close()
    return None


async def test_through_a_trusted_proxy_each_forwarded_address_has_its_own_cap(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # The test is the proxy: it connects from 127.0.0.1 and names its clients.
    server = await make_server(max_connections_per_address=2, trusted_proxies=["127.0.0.1/32"])
    caplog.set_level(logging.DEBUG, logger="callapp.signaling.server")

    def client(address: str) -> dict[str, object]:
        return {"additional_headers": {"X-Forwarded-For": f"198.51.100.99, {address}"}}

    held = [await open_ws(server.url, **client("203.0.113.1")) for _ in range(2)]
    held += [await open_ws(server.url, **client("203.0.113.2")) for _ in range(2)]
    for ws in held:
        assert (await recv_json(ws))["type"] == "welcome"
    assert server.admission.held_by("203.0.113.1") == 2
    assert server.admission.held_by("203.0.113.2") == 2
    assert server.admission.held_by("127.0.0.1") == 0
    # 203.0.113.1 is at its cap; 203.0.113.3 is not, through the same proxy.
    assert await _refused_status(server.url, **client("203.0.113.1")) == 429
    assert await _refused_status(server.url, **client("203.0.113.3")) is None
    # An IPv6 client through it: grouped by its /64, like a direct one.
    six = {
        "additional_headers": [
            ("X-Forwarded-For", "203.0.113.1"),
            ("X-Forwarded-For", "[2001:db8::1]:9"),
        ]
    }
    assert await _refused_status(server.url, **six) is None
    assert "from 203.0.113.1 via ('127.0.0.1'," in caplog.text
    assert "from 2001:db8::1 via" in caplog.text
    _, _, metrics = await http_get(server.port, "/metrics")
    assert 'connections_refused_total{reason="per-address"} 1.0' in metrics.decode()
    for ws in held:
        await ws.close()


async def test_a_malformed_header_from_the_proxy_counts_the_proxy(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_connections_per_address=1, trusted_proxies=["127.0.0.0/8"])
    ws = await open_ws(server.url, additional_headers={"X-Forwarded-For": "203.0.113.1, junk"})
    assert (await recv_json(ws))["type"] == "welcome"
    assert server.admission.held_by("127.0.0.1") == 1
    # The proxy's own slot is now taken: a second malformed one is refused.
    bad = {"additional_headers": {"X-Forwarded-For": ""}}
    assert await _refused_status(server.url, **bad) == 429
    _, _, metrics = await http_get(server.port, "/metrics")
    assert "callapp_signaling_forwarded_for_malformed_total 2.0" in metrics.decode()
    await ws.close()


@pytest.mark.parametrize("trusted", [[], ["127.0.0.2/32", "::1/128"]])
async def test_attack_a_client_that_is_no_trusted_proxy_cannot_pick_its_address(
    make_server: ServerFactory, trusted: list[str]
) -> None:
    server = await make_server(max_connections_per_address=2, trusted_proxies=trusted)
    held = []
    for n in range(2):
        spoof = {"additional_headers": {"X-Forwarded-For": f"203.0.113.{n}"}}
        held.append(await open_ws(server.url, **spoof))
        assert (await recv_json(held[-1]))["type"] == "welcome"
    assert server.admission.held_by("127.0.0.1") == 2
    assert server.admission.held_by("203.0.113.0") == 0
    # Each attempt names a fresh address (and one a trusted proxy's): all refused.
    for spoofed in ("203.0.113.9", "127.0.0.2", "198.51.100.1, 127.0.0.2"):
        spoof = {"additional_headers": {"X-Forwarded-For": spoofed}}
        assert await _refused_status(server.url, **spoof) == 429
    _, _, metrics = await http_get(server.port, "/metrics")
    assert "callapp_signaling_forwarded_for_malformed_total 0.0" in metrics.decode()
    for ws in held:
        await ws.close()
