"""Dead peer: how long the survivor of a call takes to be back to waiting.

Two ways to lose the peer mid-call, after ``warm`` seconds of two-way media:

* **killed**: ``kill -9`` of peer B's process (its sockets close, so the
  signaling server sees it leave and tells A);
* **network drop**: A (with the signaling server) and B run in two network
  namespaces joined by a veth pair; B's end of the link is set down. Nothing
  is closed and nothing answers: A's only clue is silence.

The figure is the time from the kill (or ``ip link set down``) to the
survivor's ``phase: waiting`` line (``callapp call`` prints one line per
phase change). The same is done with :mod:`bench.stock_peer`, whose survivor
only learns of it when aiortc's connection state turns ``failed``; a stock
run is capped at ``stock_cap`` seconds.

The namespaces are private to the benchmark (``cabench-<pid>-a/-b``, addresses
10.231.0.1/24 and 10.231.0.2/24 on the veth pair); in the drop case the
signaling server listens on 10.231.0.1, which exists only inside them. They
are deleted afterwards whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import BenchError, Proc, Procs, log, start_signaling, summary

NET = "10.231.0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def namespaces() -> Iterator[tuple[str, str, str]]:
    """Two namespaces joined by a veth pair; yields (ns_a, ns_b, B's link name)."""
    tag = f"cabench-{os.getpid()}"
    ns_a, ns_b = f"{tag}-a", f"{tag}-b"
    link_a, link_b = f"cab{os.getpid() % 100000}a", f"cab{os.getpid() % 100000}b"
    try:
        _ip("netns", "add", ns_a)
        _ip("netns", "add", ns_b)
        _ip("link", "add", link_a, "type", "veth", "peer", "name", link_b)
        _ip("link", "set", link_a, "netns", ns_a)
        _ip("link", "set", link_b, "netns", ns_b)
        for ns, link, host in ((ns_a, link_a, 1), (ns_b, link_b, 2)):
            _ip("-n", ns, "addr", "add", f"{NET}.{host}/24", "dev", link)
            _ip("-n", ns, "link", "set", link, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b, link_b
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _pair(
    procs: Procs,
    url: str,
    room: str,
    *,
    stock: bool,
    ns: tuple[str | None, str | None] = (None, None),
    loopback: bool = True,
) -> tuple[Proc, Proc]:
    if stock:
        args = ["-m", "bench.stock_peer", "--server", url, "--room", room, "--timeout", "600"]
        if loopback:
            args.append("--loopback")
    else:
        args = ["-m", "callapp", "call", "--server", url, "--room", room, "--timeout", "600"]
        if loopback:
            args.append("--allow-loopback")
    a = procs.python(*args, name=f"{room}-A", netns=ns[0])
    a.wait_line(r"^joined room", within=60)
    b = procs.python(*args, name=f"{room}-B", netns=ns[1])
    for proc in (a, b):
        proc.wait_line(r"^first frame:", within=60)
    return a, b


def _survive(a: Proc, cut: float, within: float) -> float | None:
    """Seconds from ``cut`` to A's ``phase: waiting`` (None if not within ``within``)."""
    try:
        at, _ = a.wait_line(r"^phase: waiting", within=within, after=cut)
    except BenchError:
        return None
    return round(at - cut, 3)


def killed(reps: int, *, warm: float, stock: bool = False, cap: float = 60.0) -> list[float | None]:
    results: list[float | None] = []
    with Procs() as procs:
        _, url = start_signaling(procs)
        for rep in range(reps):
            a, b = _pair(procs, url, f"kill-{'stock' if stock else 'ours'}-{rep}", stock=stock)
            time.sleep(warm)
            cut = time.monotonic()
            os.kill(b.pid, signal.SIGKILL)
            results.append(_survive(a, cut, cap))
            a.stop()
            b.stop()
    return results


def dropped(
    reps: int, *, warm: float, stock: bool = False, cap: float = 60.0
) -> list[float | None]:
    results: list[float | None] = []
    with namespaces() as (ns_a, ns_b, link_b), Procs() as procs:
        _, url = start_signaling(procs, "--host", f"{NET}.1", netns=ns_a)
        for rep in range(reps):
            _ip("-n", ns_b, "link", "set", link_b, "up")
            a, b = _pair(
                procs,
                url,
                f"drop-{'stock' if stock else 'ours'}-{rep}",
                stock=stock,
                ns=(ns_a, ns_b),
                loopback=False,
            )
            time.sleep(warm)
            cut = time.monotonic()
            _ip("-n", ns_b, "link", "set", link_b, "down")
            results.append(_survive(a, cut, cap))
            b.signal(signal.SIGKILL)  # cut off, it could only wait out its own timeouts
            a.stop()
            b.stop()
    return results


def run(reps: int, *, warm: float, stock: bool, stock_cap: float = 60.0) -> dict[str, Any]:
    log(f"dead peer: kill -9 x{reps}")
    kill = killed(reps, warm=warm)
    log(f"dead peer: network drop x{reps}")
    drop = dropped(reps, warm=warm)
    result: dict[str, Any] = {
        "killed_s": summary([x for x in kill if x is not None]),
        "killed_missed": sum(x is None for x in kill),
        "network_drop_s": summary([x for x in drop if x is not None]),
        "network_drop_missed": sum(x is None for x in drop),
    }
    if stock:
        log("dead peer: stock aiortc, kill -9 and network drop (one each, side by side)")
        with ThreadPoolExecutor(2) as pool:
            kill_job = pool.submit(killed, 1, warm=warm, stock=True, cap=stock_cap)
            drop_job = pool.submit(dropped, 1, warm=warm, stock=True, cap=stock_cap)
            stock_kill, stock_drop = kill_job.result()[0], drop_job.result()[0]
        result["stock_killed_s"] = stock_kill if stock_kill is not None else f">{stock_cap:g}"
        result["stock_network_drop_s"] = stock_drop if stock_drop is not None else f">{stock_cap:g}"
    return result
