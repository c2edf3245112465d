"""Experiment, not part of `python -m bench`: what one idle signaling connection holds.

    .venv/bin/python -m bench.experiments.idle_memory [--connections 2000]

Runs the real :class:`~callapp.signaling.server.SignalingServer` in this
process with :mod:`tracemalloc` on, has the benchmarks' load generator open
``--connections`` idle connections, and prints the Python heap growth per
connection, by file and by line (the allocation site). tracemalloc sees only
Python allocations: the kernel's socket buffers and allocator slack are not
in it, which is why ``bench/signaling.py`` measures RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tracemalloc

from bench.signaling import REFERENCE
from callapp.signaling.server import SignalingServer


def _short(path: str) -> str:
    for marker in ("site-packages/", "python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


async def measure(connections: int) -> None:
    server = SignalingServer("127.0.0.1", 0, max_connections_per_address=connections + 100)
    await server.start()
    tracemalloc.start(1)
    await asyncio.sleep(0.2)
    before = tracemalloc.take_snapshot()
    options = {
        "target": "callapp",
        "url": server.url,
        "mode": "hold",
        "connections": connections,
        "concurrency": 100,
        "seconds": 3,
    }
    gen = await asyncio.create_subprocess_exec(
        "node", str(REFERENCE / "loadgen.js"), json.dumps(options), stdout=subprocess.PIPE
    )
    assert gen.stdout is not None
    held = json.loads(await gen.stdout.readline())
    await asyncio.sleep(1)
    after = tracemalloc.take_snapshot()
    opened = held["opened"]
    by_file = after.compare_to(before, "filename")
    total = sum(stat.size_diff for stat in by_file)
    print(f"{opened} idle connections: Python heap +{total / opened / 1024:.2f} KiB each")
    print("by file:")
    for stat in by_file[:10]:
        print(f"  {stat.size_diff / opened:7.0f} B  {_short(stat.traceback[0].filename)}")
    print("by line:")
    for stat in after.compare_to(before, "lineno")[:12]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / opened:7.0f} B  {_short(frame.filename)}:{frame.lineno}")
    await gen.wait()
    await server.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.experiments.idle_memory")
    parser.add_argument("--connections", type=int, default=2000)
    args = parser.parse_args(argv)
    from bench.common import raise_fd_limit

    raise_fd_limit()
    asyncio.run(measure(args.connections))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
