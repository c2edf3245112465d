"""Issue 15's attacks replayed against a real ``callapp-signaling`` process, default limits.

Each test starts its own server process (so that RSS and its high-water mark
are that process's alone), runs one attack from addresses of 127.0.0.0/8
other than 127.0.0.1 while a legitimate client in a third process connects
from 127.0.0.1 every 0.25 s, and asserts:

* the server's peak RSS (20 ms samples and the kernel's ``VmHWM``) stays
  under 400 MiB, and its RSS is under 150 MiB within 5 s of the attackers
  leaving;
* the legitimate client connects (TCP connect to ``welcome``) within 1 s;
* the log holds no traceback, and grows by a few summary lines at most;
* the limit meant for the attack is the one that held (``/metrics``).

The replays are :mod:`bench.attacks`'s, made smaller here to fit the suite's
time; ``python -m bench.attacks`` runs them at full size.

The machine's 2 cores are shared with other work: a connect can wait for a
core through no fault of the server (measured: the server at 24 % of a
core, its loop idle most of the time, while the probe took 1 s at a load
average of 8). So every probe must connect within 1 s while the load
average is at most twice the cores; above that, 90 % of them within 1 s
and every one within 2.5 s. ``docs/benchmarks.md`` has the whole
distribution, with the load it was measured at.
"""

from __future__ import annotations

import math
import os
import shutil
from typing import Any

import pytest

from bench import attacks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def _p90(result: dict[str, Any]) -> float:
    times = sorted(result["connect_times"])
    return times[max(0, math.ceil(0.9 * len(times)) - 1)]


def check_bounds(result: dict[str, Any]) -> None:
    """The bounds every attack must keep (see the module docstring)."""
    assert result["rss_peak_mib"] < attacks.PEAK_MIB, result
    assert result["rss_back_under_150_s"] is not None, result
    assert result["rss_back_under_150_s"] <= attacks.RSS_BACK_S, result
    assert result["connects"] >= 3, result  # the probe did run during the attack
    overloaded = os.getloadavg()[0] > 2 * (os.cpu_count() or 1)
    assert _p90(result) < attacks.CONNECT_S, result
    assert result["connect_s_max"] < (2.5 if overloaded else attacks.CONNECT_S), result
    assert result["tracebacks"] == 0, result
    assert "Traceback" not in result["log"], result["log"][-2000:]
    # One summary line per 10 s interval, not a line per connection.
    assert result["log_lines"] <= 4, result


async def test_never_reading_receivers_flooded_by_senders_repeatedly() -> None:
    result = await attacks.replay(
        "slow_readers", rounds=2, receivers=4, senders=64, sender_addresses=4, seconds=1.5
    )
    check_bounds(result)
    # The victims were closed (1013) by the outbox limits, not left to pile up.
    # A victim holds about 5 MiB before its outbox is full (4 MiB of the
    # server's socket buffer, websockets' write buffer, the 1 MiB outbox);
    # four addresses' read bursts (13 MiB each) fill the first round's four
    # victims whatever the machine's speed (with 8 victims and 2 addresses
    # the margin was gone on a busy machine). Later rounds find the address
    # buckets drained: they show that nothing piles up, not more closes.
    closed = result["closed"]
    assert closed.get("slow-reader", 0) + closed.get("queue-budget", 0) >= 4, result["closed"]


async def test_deflate_bombs() -> None:
    result = await attacks.replay("deflate_bomb", connections=128, seconds=3.0)
    check_bounds(result)
    # Compression is off by default: no connection inflates anything, the
    # compressed frames are protocol errors that close their connection.
    assert result["attack"]["upgrades"] > 0
    assert result["attack"]["deflate_accepted"] == 0


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
async def test_two_thousand_half_open_handshakes_under_a_1024_descriptor_limit() -> None:
    result = await attacks.replay("half_open", connections=2000, hold=3.0)
    check_bounds(result)
    details = result["attack"]
    # The server kept at most its handshake allowance for one address and
    # closed the rest before reading a byte: no descriptor ran out.
    assert details["still_open_after_1s"] <= 128, details
    assert result["refused"].get("handshakes", 0) >= 2000 - 128 - details["connect_failed"]
    assert "accept() failed" not in result["log"]


async def test_connection_churn() -> None:
    result = await attacks.replay("churn", seconds=3.0, workers=32)
    check_bounds(result)
    statuses = result["attack"]["statuses"]
    # The burst (256) and 10 connects/s after it, and 429 for the rest.
    assert int(statuses.get("101", 0)) <= 256 + 10 * 4, statuses
    assert result["refused"].get("churn", 0) == int(statuses.get("429", 0)) > 0


async def test_addresses_spread_over_a_slash_24() -> None:
    result = await attacks.replay("spread", per_address=6, hold=1.0)
    check_bounds(result)
    details = result["attack"]
    # 254 addresses of one /24 share its 1,024 connections (4 x 256).
    assert details["held"] == 1024, details
    assert result["refused"].get("per-network", 0) == details["attempted"] - 1024
