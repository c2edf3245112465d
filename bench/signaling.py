"""Signaling server capacity: callapp-signaling beside a socket.io 4 reference, same run.

Both servers are driven by one load generator, ``bench/reference/loadgen.js``
(Node, the ``ws`` client; protocol v1 for ours, Engine.IO/Socket.IO v4 framing
written by hand for the reference), so the design is identical and only the
server differs. The reference, ``bench/reference/server.js``, is the usual
WebRTC-tutorial server (join -> created/joined/full, ready; offer, answer,
candidate, message relayed to the room). Ours runs as ``callapp-signaling``
with its per-connection rate limit and per-address cap raised out of the way.

For each server, in this order and alternating servers:

1. **idle connections**: a fresh server; ``connections`` clients connect and
   idle (answering keepalives) for ``hold`` seconds. Memory per idle
   connection = (RSS with them - RSS just after start) / connections; held =
   connections still open at the end.
2. **saturation**: a fresh server; ``pairs`` rooms of two ping-pong 1 KiB
   messages relayed through the room, ``window`` pings in flight per pair
   (closed loop): relayed messages per second, the server's CPU (one core =
   100%) and its CPU time per relayed message.
3. **half load**: the same pairs, open loop at half the rate the server
   saturated at: round-trip (ping -> relay -> pong -> relay) p50 / p99.

Steps 2 and 3 repeat for ``rounds`` rounds, the servers alternating, and
each figure is its median over the rounds (see :func:`run`).

The machine has 2 cores: the load generator and the server share them, so
only the ratio of the two servers, measured in the same run, means much.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

from bench.common import (
    BENCH,
    BenchError,
    CpuMeter,
    Proc,
    Procs,
    log,
    median,
    raise_fd_limit,
    rss_bytes,
    start_signaling,
)

REFERENCE = BENCH / "reference"


def setup() -> None:
    """Install the reference's npm packages (``npm ci``) unless already there."""
    if (REFERENCE / "node_modules" / "socket.io").is_dir() and (
        REFERENCE / "node_modules" / "ws"
    ).is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError("npm is needed for the socket.io reference (Node.js 20)")
    log("installing the socket.io reference (npm ci)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=REFERENCE, check=True, capture_output=True
    )


def _start(procs: Procs, target: str) -> tuple[Proc, str]:
    if target == "callapp":
        return start_signaling(
            procs, "--rate", "1000000", "--burst", "1000000", name="callapp-signaling"
        )
    proc = procs.run(["node", str(REFERENCE / "server.js"), "0"], name="socketio-reference")
    _, match = proc.wait_line(r"listening on (ws://\S+)", within=30)
    return proc, match.group(1)


def start_loadgen(procs: Procs, options: dict[str, Any], name: str) -> Proc:
    """Start ``loadgen.js`` with ``options`` (its JSON argument) under ``procs``."""
    return procs.run(["node", str(REFERENCE / "loadgen.js"), json.dumps(options)], name=name)


def loadgen_result(gen: Proc, within: float) -> dict[str, Any]:
    """The load generator's final ``done`` line, or :class:`BenchError` with its ``error``."""
    _, match = gen.wait_line(r'^(\{"event":"(done|error)".*)$', within=within)
    data: dict[str, Any] = json.loads(match.group(1))
    if data["event"] == "error":
        raise BenchError(f"{gen.name}: {data['message']}")
    return data


def idle(target: str, connections: int, hold: float) -> dict[str, Any]:
    with Procs() as procs:
        server, url = _start(procs, target)
        time.sleep(0.5)
        before = rss_bytes(server.pid)
        gen = start_loadgen(
            procs,
            {
                "target": target,
                "url": url,
                "mode": "hold",
                "connections": connections,
                "concurrency": 100,
                "seconds": hold,
            },
            f"hold-{target}",
        )
        _, match = gen.wait_line(r'^(\{"event":"held".*)$', within=300)
        held = json.loads(match.group(1))
        time.sleep(min(1.0, hold / 2))
        with_them = rss_bytes(server.pid)
        done = loadgen_result(gen, within=hold + 60)
        opened = held["opened"]
        return {
            "requested": connections,
            "opened": opened,
            "held": done["still_open"],
            "failed": held["failed"],
            "first_error": held["first_error"],
            "open_s": round(held["open_s"], 2),
            "connections_per_s": round(opened / held["open_s"], 1) if held["open_s"] else None,
            "rss_before_mib": round(before / 2**20, 1),
            "rss_held_mib": round(with_them / 2**20, 1),
            "kib_per_idle_connection": (
                round((with_them - before) / opened / 1024, 2) if opened else None
            ),
        }


def _relay(
    procs: Procs, server: Proc, target: str, url: str, options: dict[str, Any], name: str
) -> dict[str, Any]:
    gen = start_loadgen(procs, {"target": target, "url": url, "mode": "relay", **options}, name)
    gen.wait_line(r'^\{"event":"measuring"', within=120)
    meter = CpuMeter({"server": server.pid})
    meter.start()
    result = loadgen_result(gen, within=options["seconds"] + 60)
    cpu = meter.stop()["server"]
    rate = result["msgs_per_s"]
    return {
        "msgs_per_s": round(rate, 1),
        "rtt_p50_ms": rounded_ms(result["rtt_p50_ms"]),
        "rtt_p99_ms": rounded_ms(result["rtt_p99_ms"]),
        "rtt_max_ms": rounded_ms(result["rtt_max_ms"]),
        "server_cpu_pct": cpu,
        "server_cpu_us_per_msg": round(cpu / 100 / rate * 1e6, 1) if rate else None,
        "loadgen_cpu_pct": round(result["loadgen_cpu_pct"], 1),
        "errors": result["errors"],
        "offered_rate": result["offered_rate"],
    }


def rounded_ms(value: float | None) -> float | None:
    """A load generator's milliseconds to 3 decimals (``None``: nothing was measured)."""
    return round(value, 3) if value is not None else None


def relay(target: str, *, pairs: int, window: int, seconds: float) -> dict[str, Any]:
    with Procs() as procs:
        server, url = _start(procs, target)
        common = {"pairs": pairs, "size": 1024, "warmup": 1, "seconds": seconds}
        saturated = _relay(
            procs, server, target, url, {**common, "window": window}, f"saturate-{target}"
        )
        half = _relay(
            procs,
            server,
            target,
            url,
            {**common, "rate": round(saturated["msgs_per_s"] / 2)},
            f"half-{target}",
        )
        return {"saturated": saturated, "half_load": half}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over ``runs`` (dicts of one shape).

    A figure a round could not measure (``None``) is left out of its median,
    not allowed to stand for the others; other non-numbers come from the first.
    """
    merged: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [run[key] for run in runs]
        if isinstance(first, dict):
            merged[key] = _median_figures(values)
            continue
        numbers = [float(v) for v in values if _is_number(v)]
        if numbers and all(v is None or _is_number(v) for v in values):
            merged[key] = median(numbers)
        else:
            merged[key] = first
    return merged


def run(
    *, connections: int, hold: float, pairs: int, window: int, seconds: float, rounds: int = 1
) -> dict[str, Any]:
    """Idle memory once per server, then ``rounds`` relay rounds alternating the servers.

    The shared machine's speed drifts by tens of percent within minutes, so
    the relay figures are each the median over the rounds, and the
    throughput ratio is the median of the per-round ratios (each round's
    two servers ran minutes apart at most).
    """
    setup()
    limit = raise_fd_limit()
    results: dict[str, Any] = {"fd_limit": limit, "pairs": pairs, "window": window}
    for target in ("callapp", "socketio"):
        log(f"signaling: {connections} idle connections on {target}")
        results.setdefault(target, {})["idle"] = idle(target, connections, hold)
    per_round: list[dict[str, Any]] = []
    for number in range(1, rounds + 1):
        this_round: dict[str, Any] = {}
        for target in ("callapp", "socketio"):
            log(f"signaling: relay on {target} ({pairs} pairs), round {number} of {rounds}")
            this_round[target] = relay(target, pairs=pairs, window=window, seconds=seconds)
        ours_rate = this_round["callapp"]["saturated"]["msgs_per_s"]
        ref_rate = this_round["socketio"]["saturated"]["msgs_per_s"]
        this_round["throughput_ratio"] = round(ours_rate / ref_rate, 3) if ref_rate else None
        per_round.append(this_round)
    for target in ("callapp", "socketio"):
        results[target].update(_median_figures([r[target] for r in per_round]))
    results["rounds"] = [
        {
            "throughput_ratio": r["throughput_ratio"],
            "callapp_msgs_per_s": r["callapp"]["saturated"]["msgs_per_s"],
            "socketio_msgs_per_s": r["socketio"]["saturated"]["msgs_per_s"],
            "callapp_cpu_us_per_msg": r["callapp"]["saturated"]["server_cpu_us_per_msg"],
            "socketio_cpu_us_per_msg": r["socketio"]["saturated"]["server_cpu_us_per_msg"],
        }
        for r in per_round
    ]
    ratios = [r["throughput_ratio"] for r in per_round if r["throughput_ratio"] is not None]
    results["throughput_ratio_callapp_over_socketio"] = median(ratios)
    ours, ref = results["callapp"], results["socketio"]
    ours_cpu = ours["saturated"]["server_cpu_us_per_msg"]
    ref_cpu = ref["saturated"]["server_cpu_us_per_msg"]
    results["cpu_per_msg_ratio_callapp_over_socketio"] = (
        round(ours_cpu / ref_cpu, 3) if ours_cpu and ref_cpu else None
    )
    ours_kib = ours["idle"]["kib_per_idle_connection"]
    ref_kib = ref["idle"]["kib_per_idle_connection"]
    results["memory_ratio_callapp_over_socketio"] = (
        round(ours_kib / ref_kib, 3) if ours_kib and ref_kib else None
    )
    return results
