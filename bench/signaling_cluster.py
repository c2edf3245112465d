"""Two ``callapp-signaling --redis`` processes on one ``redis-server``, clients split across them.

The same load generator as :mod:`bench.signaling` (``bench/reference/loadgen.js``),
with each pair's two members on different processes (``url`` and ``url2``),
so that every relayed message crosses processes through Redis:

1. **idle connections**: fresh processes; ``connections`` clients, half on
   each, idle for ``hold`` seconds. Memory per idle connection = (both
   servers' RSS with them - just after start) / connections, and the same
   with ``redis-server``'s RSS added.
2. **saturation**: ``pairs`` rooms of two (one member on each process)
   ping-pong 1 KiB messages, ``window`` in flight per pair: relayed messages
   per second, and CPU per relayed message of both servers plus
   ``redis-server``.
3. **half load**: the same pairs, open loop at half that rate: round trip
   (ping -> relay -> pong -> relay, each relay across processes) p50 / p99.
4. **Redis outages**, mid-relay (``pairs`` one-way streams of numbered
   messages from one process to the other, ``outage_rate`` per second):
   ``restart``: ``redis-server`` killed (SIGKILL) and started again empty on
   the same port (what a restart without persistence does to the cluster);
   ``stall``: ``redis-server`` stopped (SIGSTOP) for ``stall_s`` and
   continued, keeping its data. Counted at the receivers: sent, arrived,
   lost, duplicated, out of order, refused (``busy``), and the longest time
   with nothing arriving; ``resumed_after_s`` is from ``redis-server``
   answering again to the first message after the gap.

2 shared cores: the load generator, both servers and Redis share them.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BenchError,
    CpuMeter,
    Proc,
    Procs,
    log,
    raise_fd_limit,
    rss_bytes,
    start_signaling,
)
from bench.signaling import REFERENCE, loadgen_result, rounded_ms, setup, start_loadgen
from tests.signaling.redis_fixture import redis_server_command

REDIS_SERVER = "redis-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(procs: Procs, port: int, folder: Path) -> Proc:
    """``redis-server`` on 127.0.0.1:``port``, nothing persisted."""
    program = shutil.which(REDIS_SERVER)
    if program is None:
        raise BenchError("redis-server is needed (scripts/setup.sh installs it)")
    proc = procs.run(
        redis_server_command(program, port, folder),
        name=f"redis-server-{port}",
    )
    proc.wait_line(r"Ready to accept connections", within=30)
    return proc


class _Cluster:
    """``redis-server`` and two signaling processes on it."""

    def __init__(self, procs: Procs, folder: Path) -> None:
        self.procs = procs
        self.folder = folder
        self.port = _free_port()
        self.redis = _start_redis(procs, self.port, folder)
        redis_url = f"redis://127.0.0.1:{self.port}/0"
        self.servers: list[Proc] = []
        self.urls: list[str] = []
        for index in (1, 2):
            server, url = start_signaling(
                procs,
                "--redis",
                redis_url,
                "--rate",
                "1000000",
                "--burst",
                "1000000",
                name=f"callapp-signaling-{index}",
            )
            self.servers.append(server)
            self.urls.append(url)

    def pids(self) -> dict[str, int]:
        return {
            "server_1": self.servers[0].pid,
            "server_2": self.servers[1].pid,
            "redis": self.redis.pid,
        }

    def restart_redis(self) -> None:
        """Kill ``redis-server`` and start an empty one on the same port."""
        self.redis.signal(signal.SIGKILL)
        self.redis.wait(10)
        self.redis = _start_redis(self.procs, self.port, self.folder)


def idle(connections: int, hold: float) -> dict[str, Any]:
    with Procs() as procs, tempfile.TemporaryDirectory() as folder:
        cluster = _Cluster(procs, Path(folder))
        time.sleep(0.5)
        pids = cluster.pids()
        before = {name: rss_bytes(pid) for name, pid in pids.items()}
        gen = start_loadgen(
            procs,
            {
                "target": "callapp",
                "url": cluster.urls[0],
                "urls": cluster.urls,
                "mode": "hold",
                "connections": connections,
                "concurrency": 100,
                "seconds": hold,
            },
            "hold-cluster",
        )
        _, match = gen.wait_line(r'^(\{"event":"held".*)$', within=300)
        held = json.loads(match.group(1))
        time.sleep(min(1.0, hold / 2))
        after = {name: rss_bytes(pid) for name, pid in pids.items()}
        done = loadgen_result(gen, within=hold + 60)
        opened = held["opened"]
        servers = sum(after[n] - before[n] for n in ("server_1", "server_2"))
        with_redis = servers + after["redis"] - before["redis"]
        return {
            "requested": connections,
            "opened": opened,
            "held": done["still_open"],
            "failed": held["failed"],
            "first_error": held["first_error"],
            "open_s": round(held["open_s"], 2),
            "connections_per_s": round(opened / held["open_s"], 1) if held["open_s"] else None,
            "rss_before_mib": {n: round(v / 2**20, 1) for n, v in before.items()},
            "rss_held_mib": {n: round(v / 2**20, 1) for n, v in after.items()},
            "kib_per_idle_connection": round(servers / opened / 1024, 2) if opened else None,
            "kib_per_idle_connection_with_redis": (
                round(with_redis / opened / 1024, 2) if opened else None
            ),
        }


def _relay(cluster: _Cluster, options: dict[str, Any], name: str) -> dict[str, Any]:
    gen = start_loadgen(
        cluster.procs,
        {
            "target": "callapp",
            "url": cluster.urls[0],
            "url2": cluster.urls[1],
            "mode": "relay",
            **options,
        },
        name,
    )
    gen.wait_line(r'^\{"event":"measuring"', within=120)
    meter = CpuMeter(cluster.pids())
    meter.start()
    result = loadgen_result(gen, within=options["seconds"] + 60)
    cpu = meter.stop()
    rate = result["msgs_per_s"]
    servers = cpu["server_1"] + cpu["server_2"]
    total = servers + cpu["redis"]
    return {
        "msgs_per_s": round(rate, 1),
        "rtt_p50_ms": rounded_ms(result["rtt_p50_ms"]),
        "rtt_p99_ms": rounded_ms(result["rtt_p99_ms"]),
        "rtt_max_ms": rounded_ms(result["rtt_max_ms"]),
        "cpu_pct": cpu,
        "servers_cpu_us_per_msg": round(servers / 100 / rate * 1e6, 1) if rate else None,
        "redis_cpu_us_per_msg": round(cpu["redis"] / 100 / rate * 1e6, 1) if rate else None,
        "cpu_us_per_msg": round(total / 100 / rate * 1e6, 1) if rate else None,
        "loadgen_cpu_pct": round(result["loadgen_cpu_pct"], 1),
        "errors": result["errors"],
        "offered_rate": result["offered_rate"],
    }


def relay(*, pairs: int, window: int, seconds: float) -> dict[str, Any]:
    with Procs() as procs, tempfile.TemporaryDirectory() as folder:
        cluster = _Cluster(procs, Path(folder))
        common = {"pairs": pairs, "size": 1024, "warmup": 1, "seconds": seconds}
        saturated = _relay(cluster, {**common, "window": window}, "saturate-cluster")
        half = _relay(
            cluster, {**common, "rate": round(saturated["msgs_per_s"] / 2)}, "half-cluster"
        )
        return {"saturated": saturated, "half_load": half}


def outage(kind: str, *, pairs: int, rate: int, stall_s: float) -> dict[str, Any]:
    """One Redis outage 1 s into a 1 s + outage + 3 s stream (see the module docstring)."""
    with Procs() as procs, tempfile.TemporaryDirectory() as folder:
        cluster = _Cluster(procs, Path(folder))
        seconds = 4.0 + (stall_s if kind == "stall" else 0.0)
        gen = start_loadgen(
            procs,
            {
                "target": "callapp",
                "url": cluster.urls[0],
                "url2": cluster.urls[1],
                "mode": "stream",
                "pairs": pairs,
                "rate": rate,
                "size": 256,
                "seconds": seconds,
                "drain": 4,
            },
            f"stream-{kind}",
        )
        t0, _ = gen.wait_line(r'^\{"event":"measuring"', within=120)
        time.sleep(max(0.0, t0 + 1.0 - time.monotonic()))
        cut = time.monotonic()
        if kind == "restart":
            cluster.restart_redis()
        elif kind == "stall":
            cluster.redis.signal(signal.SIGSTOP)
            time.sleep(stall_s)
            cluster.redis.signal(signal.SIGCONT)
        else:
            raise ValueError(f"unknown outage {kind!r}")
        back = time.monotonic()
        result = loadgen_result(gen, within=seconds + 60)
        gap_from = t0 + result["longest_gap_from_ms"] / 1000
        gap_to = t0 + result["longest_gap_to_ms"] / 1000
        codes = result["error_codes"]
        return {
            "rate": rate,
            "pairs": pairs,
            "redis_away_s": round(back - cut, 3),
            "sent": result["sent"],
            "arrived": result["arrived"],
            "lost": result["lost"],
            "duplicated": result["duplicated"],
            "reordered": result["reordered"],
            "refused_busy": codes.get("busy", 0),
            "errors": result["errors"],
            "error_codes": codes,
            "longest_gap_s": round(result["longest_gap_ms"] / 1000, 3),
            "gap_began_after_cut_s": round(gap_from - cut, 3),
            "resumed_after_s": round(gap_to - back, 3),
            "resumed_after_cut_s": round(gap_to - cut, 3),
        }


def run(
    *,
    connections: int,
    hold: float,
    pairs: int,
    window: int,
    seconds: float,
    outage_rate: int = 1000,
    stall_s: float = 2.0,
) -> dict[str, Any]:
    setup()
    if not (REFERENCE / "node_modules" / "ws").is_dir():  # pragma: no cover - setup() did it
        raise BenchError("the load generator's npm packages are missing")
    limit = raise_fd_limit()
    results: dict[str, Any] = {"fd_limit": limit, "pairs": pairs, "window": window}
    log(f"signaling_cluster: {connections} idle connections over two processes")
    results["idle"] = idle(connections, hold)
    log(f"signaling_cluster: relay across two processes ({pairs} pairs)")
    results.update(relay(pairs=pairs, window=window, seconds=seconds))
    results["outages"] = {}
    for kind in ("restart", "stall"):
        log(f"signaling_cluster: Redis {kind} mid-relay")
        results["outages"][kind] = outage(kind, pairs=pairs, rate=outage_rate, stall_s=stall_s)
    return results


def main() -> None:
    """``python -m bench.signaling_cluster``: the quick settings, JSON on stdout."""
    print(
        json.dumps(
            run(connections=2000, hold=3, pairs=50, window=32, seconds=3),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
