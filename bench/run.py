"""Run every benchmark, print one JSON object, rewrite the results table in docs/benchmarks.md.

    .venv/bin/python -m bench            # full run (about 10 minutes on 2 cores)
    .venv/bin/python -m bench --quick    # a few minutes: fewer repetitions, shorter calls
    .venv/bin/python -m bench --smoke    # every code path once, about a minute (tests/bench)

Options: ``--json-out PATH`` (default ``bench/results/latest.json`` for full
and quick runs), ``--no-docs`` (leave docs/benchmarks.md alone), ``--only
NAME`` (repeatable: call_setup, media, dead_peer, signaling, signaling_cluster, startup,
group, fuzz, attacks).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import (
    attacks,
    call_setup,
    dead_peer,
    fuzz,
    group,
    media,
    signaling,
    signaling_cluster,
    startup,
)
from bench.common import BENCH, ROOT, log, machine

BENCHMARKS = (
    "call_setup",
    "media",
    "dead_peer",
    "signaling",
    "signaling_cluster",
    "startup",
    "group",
    "fuzz",
    "attacks",
)


@dataclass(frozen=True)
class Mode:
    name: str
    setup_reps: int
    gui_setup_reps: int
    media_seconds: float
    media_warm: float
    media_sizes: tuple[str, ...]
    media_codecs: tuple[str, ...]
    latency_15fps: bool
    dead_reps: int
    dead_stock: bool
    stock_cap: float
    connections: int
    hold: float
    pairs: int
    window: int
    relay_seconds: float
    startup_reps: int
    group_seconds: float
    group_warm: float
    #: Mutated frames for bench.fuzz (sockets and the sans-I/O core each).
    fuzz_frames: int = 2000
    #: Alternating relay rounds of bench.signaling (figures: medians over them).
    relay_rounds: int = 1
    #: The attacks bench.attacks replays against fresh server processes.
    attacks: tuple[str, ...] = ("churn",)


MODES = {
    "smoke": Mode(
        "smoke",
        setup_reps=1,
        gui_setup_reps=1,
        media_seconds=2,
        media_warm=1,
        media_sizes=("640x480",),
        media_codecs=("vp8",),
        latency_15fps=False,
        dead_reps=1,
        dead_stock=False,
        stock_cap=45,
        connections=200,
        hold=1,
        pairs=10,
        window=4,
        relay_seconds=1,
        startup_reps=1,
        group_seconds=2,
        group_warm=1,
    ),
    "quick": Mode(
        "quick",
        setup_reps=3,
        gui_setup_reps=2,
        media_seconds=5,
        media_warm=2,
        media_sizes=("640x480", "1280x720"),
        media_codecs=("vp8", "h264"),
        latency_15fps=True,
        dead_reps=3,
        dead_stock=True,
        stock_cap=45,
        connections=2000,
        hold=3,
        pairs=50,
        window=32,
        relay_seconds=3,
        startup_reps=3,
        group_seconds=5,
        group_warm=2,
        fuzz_frames=20_000,
        relay_rounds=3,
        attacks=("slow_readers", "deflate_bomb", "half_open", "churn", "spread"),
    ),
    "full": Mode(
        "full",
        setup_reps=7,
        gui_setup_reps=5,
        media_seconds=15,
        media_warm=3,
        media_sizes=("640x480", "1280x720"),
        media_codecs=("vp8", "h264"),
        latency_15fps=True,
        dead_reps=5,
        dead_stock=True,
        stock_cap=60,
        connections=10_000,
        hold=10,
        pairs=50,
        window=32,
        relay_seconds=5,
        startup_reps=7,
        group_seconds=10,
        group_warm=2,
        fuzz_frames=100_000,
        relay_rounds=5,
        attacks=("slow_readers", "deflate_bomb", "half_open", "churn", "spread"),
    ),
}


def code_version() -> dict[str, Any]:
    """The commit measured, and whether callapp/ had changes not yet committed."""

    def git(*args: str) -> str:
        completed = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return completed.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "callapp_uncommitted": bool(git("status", "--porcelain", "--", "callapp")),
    }


def run(mode: Mode, only: tuple[str, ...]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "mode": mode.name,
        "settings": asdict(mode),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "code": code_version(),
    }
    started = time.monotonic()
    # One process and two on Redis, measured alike.
    relay: dict[str, Any] = {
        "connections": mode.connections,
        "hold": mode.hold,
        "pairs": mode.pairs,
        "window": mode.window,
        "seconds": mode.relay_seconds,
    }
    jobs: dict[str, Callable[[], dict[str, Any]]] = {
        "call_setup": lambda: call_setup.run(mode.setup_reps, gui_reps=mode.gui_setup_reps),
        "media": lambda: media.run(
            seconds=mode.media_seconds,
            warm=mode.media_warm,
            sizes=mode.media_sizes,
            codecs=mode.media_codecs,
            latency_15fps=mode.latency_15fps,
        ),
        "dead_peer": lambda: dead_peer.run(
            mode.dead_reps, warm=1.0, stock=mode.dead_stock, stock_cap=mode.stock_cap
        ),
        "signaling": lambda: signaling.run(**relay, rounds=mode.relay_rounds),
        "signaling_cluster": lambda: signaling_cluster.run(**relay),
        "startup": lambda: startup.run(mode.startup_reps),
        "group": lambda: group.run(seconds=mode.group_seconds, warm=mode.group_warm),
        "fuzz": lambda: fuzz.run(mode.fuzz_frames),
        "attacks": lambda: attacks.run(mode.attacks),
    }
    failed: dict[str, str] = {}
    for name in BENCHMARKS:
        if name not in only:
            continue
        try:
            results[name] = jobs[name]()
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            log(f"{name} FAILED: {exc}")
            traceback.print_exc()
            failed[name] = f"{type(exc).__name__}: {exc}"
    if failed:
        results["failed"] = failed
    results["took_s"] = round(time.monotonic() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    level = parser.add_mutually_exclusive_group()
    level.add_argument("--quick", action="store_true", help="a few minutes")
    level.add_argument("--smoke", action="store_true", help="every code path once")
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these")
    args = parser.parse_args(argv)
    mode = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    only = tuple(args.only or BENCHMARKS)
    log(f"mode {mode.name}: {', '.join(only)}")
    results = run(mode, only)
    text = json.dumps(results, indent=2)
    print(text)
    out = args.json_out
    if out is None and mode.name != "smoke":
        out = BENCH / "results" / "latest.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        log(f"wrote {out}")
    if not args.no_docs and only == BENCHMARKS:
        from bench import docs

        command = (
            "python -m bench" + {"full": "", "quick": " --quick", "smoke": " --smoke"}[mode.name]
        )
        docs.update(ROOT / "docs" / "benchmarks.md", results, command)
        log("rewrote the results table in docs/benchmarks.md")
    return 1 if results.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
