"""Admission control (sans-I/O, fake clock) and its limits on a real server."""

from __future__ import annotations

import asyncio
import json
import socket
import zlib

import pytest
from websockets.exceptions import InvalidStatus

from callapp.signaling.cli import build_parser
from callapp.signaling.guard import (
    Admission,
    AdmissionLimits,
    PressureLog,
    Refusal,
    Ticket,
    address_group,
    origin_allowed,
)
from callapp.signaling.limits import TokenBucket
from tests.signaling.conftest import TIMEOUT, ServerFactory, http_get, native, open_ws, recv_json


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- grouping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "v4", "v6", "group"),
    [
        ("192.0.2.7", 32, 64, "192.0.2.7/32"),
        ("192.0.2.7", 24, 64, "192.0.2.0/24"),
        ("2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", 32, 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", 32, 64, "2001:db8:1:3::/64"),
        ("2001:db8:1:2:3:4:5:6", 32, 48, "2001:db8:1::/48"),
        ("::ffff:192.0.2.7", 24, 64, "192.0.2.0/24"),  # a dual-stack socket's IPv4 peer
        ("fe80::1%eth0", 32, 64, "fe80::/64"),
        ("::1", 32, 128, "::1/128"),
        ("", 32, 64, ""),  # not an IP address: a group of its own
    ],
)
def test_address_group(address: str, v4: int, v6: int, group: str) -> None:
    assert address_group(address, v4, v6) == group


def test_address_group_refuses_impossible_prefixes() -> None:
    with pytest.raises(ValueError, match="IPv4"):
        address_group("192.0.2.1", 33, 64)
    with pytest.raises(ValueError, match="IPv6"):
        address_group("::1", 32, 129)
    with pytest.raises(ValueError, match="at least 1"):
        AdmissionLimits(max_connections=0)


# -- admission -----------------------------------------------------------------------


def _open(admission: Admission, address: str) -> Ticket | Refusal:
    ticket = admission.accept(address)
    if isinstance(ticket, Refusal):
        return ticket
    refusal = admission.upgrade(ticket)
    return refusal if refusal is not None else ticket


def test_per_address_per_network_and_server_wide_caps() -> None:
    limits = AdmissionLimits(
        max_connections=5, max_connections_per_address=2, max_connections_per_network=3
    )
    admission = Admission(limits, FakeClock())
    assert isinstance(_open(admission, "10.0.0.1"), Ticket)
    assert isinstance(_open(admission, "10.0.0.1"), Ticket)
    assert _open(admission, "10.0.0.1") is Refusal.PER_ADDRESS
    assert isinstance(_open(admission, "10.0.0.2"), Ticket)
    assert _open(admission, "10.0.0.3") is Refusal.PER_NETWORK  # 10.0.0.0/24 holds 3
    assert isinstance(_open(admission, "10.0.1.1"), Ticket)
    last = _open(admission, "10.0.2.1")
    assert isinstance(last, Ticket)
    assert admission.connections == 5
    assert _open(admission, "10.0.3.1") is Refusal.SERVER_FULL
    admission.close(last)
    admission.close(last)  # idempotent
    assert admission.connections == 4
    assert isinstance(_open(admission, "10.0.3.1"), Ticket)


def test_ipv6_addresses_of_one_slash_64_count_as_one() -> None:
    admission = Admission(AdmissionLimits(max_connections_per_address=2), FakeClock())
    assert isinstance(_open(admission, "2001:db8::1"), Ticket)
    assert isinstance(_open(admission, "2001:db8::ffff:2"), Ticket)
    assert _open(admission, "2001:db8::3") is Refusal.PER_ADDRESS
    assert isinstance(_open(admission, "2001:db8:0:1::1"), Ticket)  # the next /64


def test_handshakes_and_sockets_are_limited_before_any_request() -> None:
    admission = Admission(AdmissionLimits(max_handshakes_per_address=2, max_sockets=3), FakeClock())
    a = admission.accept("10.0.0.1")
    b = admission.accept("10.0.0.1")
    assert isinstance(a, Ticket)
    assert isinstance(b, Ticket)
    assert admission.accept("10.0.0.1") is Refusal.HANDSHAKES
    assert admission.handshakes == 2
    admission.request(a)  # a's request arrived: its handshake slot is free
    assert isinstance(admission.accept("10.0.0.1"), Ticket)
    assert admission.accept("10.0.0.9") is Refusal.SOCKETS  # 3 sockets held
    admission.close(b)
    assert admission.sockets == 2
    assert admission.handshakes == 1


def test_churn_allows_the_burst_then_the_rate_and_refused_attempts_cost_nothing() -> None:
    clock = FakeClock()
    admission = Admission(
        AdmissionLimits(max_connections_per_address=100, connects_per_second=2, connect_burst=3),
        clock,
    )
    results = []
    for _ in range(4):
        ticket = _open(admission, "10.0.0.1")
        results.append(ticket)
        if isinstance(ticket, Ticket):
            admission.close(ticket)
    assert [isinstance(r, Ticket) for r in results] == [True, True, True, False]
    assert results[-1] is Refusal.CHURN
    clock.now += 0.5  # one token back
    assert isinstance(_open(admission, "10.0.0.1"), Ticket)
    assert _open(admission, "10.0.0.1") is Refusal.CHURN
    # Another address has its own bucket.
    assert isinstance(_open(admission, "10.0.0.2"), Ticket)


def test_churn_table_forgets_full_buckets() -> None:
    clock = FakeClock()
    admission = Admission(AdmissionLimits(connects_per_second=1000), clock)
    for n in range(3000):
        ticket = _open(admission, f"2001:db8:{n:x}::1")
        assert isinstance(ticket, Ticket)
        admission.close(ticket)
        clock.now += 0.01  # every earlier bucket has refilled
    assert admission.churn_groups < 2100


def test_a_ticket_is_upgraded_once() -> None:
    admission = Admission(AdmissionLimits(), FakeClock())
    ticket = _open(admission, "10.0.0.1")
    assert isinstance(ticket, Ticket)
    with pytest.raises(ValueError, match="open"):
        admission.upgrade(ticket)


# -- origins ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "h:8765", (), True),  # not a browser
        ("http://h:8765", "h:8765", (), True),  # the server's own page
        ("HTTP://H:8765", "h:8765", (), True),
        ("https://example.org", "example.org", (), True),  # behind a TLS proxy
        ("https://example.org:443", "example.org", (), True),
        ("http://h", "h:80", (), True),
        ("http://evil.example", "h:8765", (), False),
        ("http://h:9999", "h:8765", (), False),
        ("null", "h:8765", (), False),
        ("null", "h:8765", ("null",), True),
        ("http://evil.example", "h:8765", ("https://app.example",), False),
        ("https://app.example", "h:8765", ("https://APP.example:443",), True),
        ("http://evil.example", "h:8765", ("*",), True),
        ("not a url", "h:8765", (), False),
        ("http://h:8765", None, (), False),
    ],
)
def test_origin_allowed(
    origin: str | None, host: str | None, allowed: tuple[str, ...], ok: bool
) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def test_pressure_log_words_one_line_per_interval() -> None:
    clock = FakeClock()
    log = PressureLog(10.0, clock)
    assert log.report() is None
    log.note("refused", "churn", "10.0.0.1/32")
    first = log.report()
    assert first is not None
    assert "refused 1 connections (churn 1)" in first
    for _ in range(1000):
        log.note("refused", "churn", "10.0.0.1/32")
        log.note("closed", "slow-reader", "10.0.0.2/32")
        assert log.report() is None  # not before the interval
    clock.now += 10
    line = log.report()
    assert line is not None
    assert "refused 1,000 connections (churn 1,000)" in line
    assert "closed 1,000 connections (slow-reader 1,000)" in line
    assert "10.0.0.1/32 1,000" in line
    assert log.report(force=True) is None  # nothing new


def test_token_bucket_reserve_queues_callers_in_turn() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=10, clock=clock)
    assert bucket.reserve(10) == 0.0
    assert bucket.reserve(5) == pytest.approx(0.5)
    assert bucket.reserve(5) == pytest.approx(1.0)  # behind the first debt
    clock.now += 1.0
    assert bucket.reserve(0) == 0.0


# -- on a real server -----------------------------------------------------------------------


async def test_foreign_origins_get_403_and_the_own_page_connects(
    make_server: ServerFactory,
) -> None:
    server = await make_server()
    with pytest.raises(InvalidStatus) as refused:
        await open_ws(server.url, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    own = f"http://127.0.0.1:{server.port}"
    ws = await open_ws(server.url, origin=own)
    assert (await recv_json(ws))["type"] == "welcome"
    await native(server)  # a non-browser client sends no Origin
    _, _, metrics = await http_get(server.port, "/metrics")
    assert 'connections_refused_total{reason="origin"} 1.0' in metrics.decode()
    allowing = await make_server(allowed_origins=["http://evil.example"])
    ws = await open_ws(allowing.url, origin="http://evil.example")
    assert (await recv_json(ws))["type"] == "welcome"


async def test_server_wide_cap_answers_503(make_server: ServerFactory) -> None:
    server = await make_server(max_connections=2)
    await native(server)
    await native(server)
    with pytest.raises(InvalidStatus) as refused:
        await open_ws(server.url)
    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["Retry-After"] == "1"


async def test_half_open_handshakes_past_the_limit_are_closed_unread(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_handshakes_per_address=3, open_timeout=0.5)
    held = []
    for _ in range(5):
        # From 127.0.0.2, so that 127.0.0.1 can still read /metrics.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=("127.0.0.2", 0)
        )
        writer.write(b"GET /ws HTTP/1.1\r\n")
        held.append((reader, writer))
    async with asyncio.timeout(TIMEOUT):
        # The two over the limit are closed at once, the others at the deadline.
        closed = [await reader.read() for reader, _ in held[3:]]
    assert closed == [b"", b""]
    _, _, metrics = await http_get(server.port, "/metrics")
    assert 'connections_refused_total{reason="handshakes"} 2.0' in metrics.decode()
    async with asyncio.timeout(TIMEOUT):
        assert [await reader.read() for reader, _ in held[:3]] == [b"", b"", b""]
    for _, writer in held:
        writer.close()
    ws, _ = await native(server)  # the slots came back
    await ws.close()


async def test_limits_are_published_in_metrics(make_server: ServerFactory) -> None:
    server = await make_server()
    _, _, body = await http_get(server.port, "/metrics")
    text = body.decode()
    for name in (
        "max_connections",
        "max_connections_per_address",
        "max_connections_per_network",
        "max_handshakes_per_address",
        "max_sockets",
        "connects_per_second",
        "max_outbox_bytes",
        "max_queued_bytes",
        "handshake_timeout_seconds",
    ):
        assert f'callapp_signaling_limit{{name="{name}"}}' in text, name
    for gauge in ("handshakes", "sockets", "queued_bytes"):
        assert f"callapp_signaling_{gauge} " in text


def test_every_limit_flag_has_help() -> None:
    parser = build_parser()
    limits = next(g for g in parser._action_groups if g.title == "limits")
    assert len(limits._group_actions) >= 20
    for action in limits._group_actions:
        assert action.help, action.option_strings


async def test_compression_is_off_by_default_and_bounded_when_on(
    make_server: ServerFactory,
) -> None:
    plain = await make_server()
    ws = await open_ws(plain.url, compression="deflate")
    assert ws.protocol.extensions == []
    await ws.close()
    deflating = await make_server(
        compression="deflate", max_inflated_bytes_per_second=2**16, rate=1e6, burst=10**6
    )
    ws = await open_ws(deflating.url, compression="deflate", max_size=None)
    assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
    await recv_json(ws)
    # 60 kB of spaces deflate to a few hundred bytes; 4 x 64 KiB inflated is the burst.
    bomb = json.dumps({"type": "message", "to": "nobody", "data": " " * 60_000})
    assert len(zlib.compress(bomb.encode())) < 1000
    codes = []
    for _ in range(8):
        await ws.send(bomb)
        codes.append((await recv_json(ws))["code"])
    assert codes[:4] == ["unknown-peer"] * 4
    assert "rate-limited" in codes[4:]


async def test_ipv6_loopback_is_grouped_by_its_slash_64(make_server: ServerFactory) -> None:
    """The /64 grouping is unit-tested above; on a socket only where ::1 exists."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 here")
    server = await make_server(host="::1", max_connections_per_address=1)
    ws = await open_ws(server.url)
    assert (await recv_json(ws))["type"] == "welcome"
    assert server.admission.held_by("::1") == 1
    assert server.admission.held_by("::2") == 1  # the same /64
    with pytest.raises(InvalidStatus) as refused:
        await open_ws(server.url)
    assert refused.value.response.status_code == 429
