"""Experiment, not part of `python -m bench`: the media goals, before and after, in one run.

    .venv/bin/python -m bench.experiments.before_after --before DIR [--rounds 3]
        [--seconds 10] [--warm 3]

``DIR`` is another checkout of the project (e.g. ``git archive <commit> | tar
-x -C DIR``); this checkout is "after". Each round measures, alternating the
two trees so that load from other work hits both alike, with each tree's own
``bench/media.py`` (so its own ``callapp``):

* ``headless_640x480_vp8``: :func:`bench.media.smoothness` (two ``callapp
  call`` processes): CPU of the busier app, fps of the worse direction, RSS;
* ``gui_1280x720_vp8``: :func:`bench.media.gui_call` (the desktop app
  offscreen against a headless peer): the app's RSS, median and largest
  sample, CPU and frames painted per second;

and once per round ``stock_640x480``: two :mod:`bench.stock_peer` processes
(stock aiortc, video only) in a room, CPU of the busier one over the same
window, for scale. Prints one JSON object: every sample, and per tree and
figure the median over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, CpuMeter, Procs, log, start_signaling

_IN_TREE = """
import json, sys
sys.path.insert(0, ".")
from bench import media
kind, seconds, warm = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
if kind == "headless":
    r = media.smoothness("640x480", "vp8", seconds=seconds, warm=warm)
    out = {"cpu_pct": r["cpu_pct_max"], "fps": r["fps_min"], "rss_mib": r["rss_mib_max"]}
else:
    r = media.gui_call(seconds=seconds, warm=warm, size="1280x720")
    out = {"rss_mib": r["gui_rss_mib"], "rss_max_mib": r["gui_rss_max_mib"],
           "cpu_pct": r["gui_cpu_pct"], "fps": r["gui_fps_painted"]}
print("RESULT " + json.dumps(out))
"""


def in_tree(root: Path, kind: str, seconds: float, warm: float) -> dict[str, float]:
    completed = subprocess.run(
        [PYTHON, "-c", _IN_TREE, kind, str(seconds), str(warm)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, float] = json.loads(line[7:])
            return result
    raise RuntimeError(f"{kind} in {root} failed:\n{completed.stderr[-2000:]}")


def stock(seconds: float, warm: float) -> dict[str, float]:
    """CPU of the busier of two stock aiortc peers in a 640x480 call."""
    with Procs() as procs:
        _, url = start_signaling(procs)

        def peer(name: str) -> Any:
            return procs.python(
                "-m", "bench.stock_peer", "--server", url, "--room", "stock", "--loopback",
                "--size", "640x480", "--seconds", f"{warm + seconds + 3:g}", name=name,
            )  # fmt: skip

        a = peer("A")
        a.wait_line(r"^joined room", within=60)
        b = peer("B")
        connected = max(
            a.wait_line(r"^phase: connected", within=60)[0],
            b.wait_line(r"^phase: connected", within=60)[0],
        )
        time.sleep(max(0.0, connected + warm - time.monotonic()))
        meter = CpuMeter({"A": a.pid, "B": b.pid})
        meter.start()
        time.sleep(seconds)
        cpu = meter.stop()
        return {"cpu_pct": max(cpu.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.experiments.before_after")
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warm", type=float, default=3.0)
    args = parser.parse_args(argv)
    trees = {"before": args.before.resolve(), "after": ROOT}
    samples: dict[str, dict[str, list[dict[str, float]]]] = {
        tree: {"headless_640x480_vp8": [], "gui_1280x720_vp8": []} for tree in trees
    }
    stock_samples: list[dict[str, float]] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for index in range(args.rounds):
        for tree, root in trees.items():
            for kind, name in (("headless", "headless_640x480_vp8"), ("gui", "gui_1280x720_vp8")):
                log(f"round {index + 1}: {tree} {name}")
                samples[tree][name].append(in_tree(root, kind, args.seconds, args.warm))
        log(f"round {index + 1}: stock aiortc 640x480")
        stock_samples.append(stock(args.seconds, args.warm))

    def medians(rows: list[dict[str, float]]) -> dict[str, float]:
        return {key: round(statistics.median(r[key] for r in rows), 1) for key in rows[0]}

    per_tree = {
        tree: {name: medians(rows) for name, rows in figures.items()}
        for tree, figures in samples.items()
    }
    result = {
        "date_utc": started,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "trees": {tree: str(root) for tree, root in trees.items()},
        "rounds": args.rounds,
        "seconds": args.seconds,
        "median": {
            **per_tree,
            "stock_640x480": medians(stock_samples),
        },
        "samples": {**samples, "stock_640x480": stock_samples},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
