"""Calls over impaired links, ours and stock aiortc's media behaviour side by side. Prints JSON.

Not part of ``python -m bench`` (about a minute per call; root for network
namespaces). Each case is one ``callapp call`` between the two sides of a
:class:`tests.net.lab.Lab` (loss and delay from its userspace bridge, rates
from ``tc tbf``), once as the app is and once with ``CALLAPP_STOCK_MEDIA=1``
(aiortc's own jitter buffers, NACK, REMB handling, VP8 floor and Opus at
96 kbit/s; everything else the same), alternating, ``--reps`` times::

    .venv/bin/python -m bench.impaired_calls                    # every case, 3 reps
    .venv/bin/python -m bench.impaired_calls --case loss5 --reps 1 --seconds 15

Cases: ``loss5`` (5 % loss, 50 ms each way), ``loss10`` (10 %, 100 ms),
``rate500`` / ``rate250`` (tbf both ways, a 400 ms queue), ``widen`` (250
kbit/s for the first half, then no limit: does quality come back?). Per run
it keeps both sides' ``--stats-json`` figures (fps received, longest freeze
by arrival, time frozen, RTT, loss, what was sent, the quality verdict) and
the exit codes; per case the medians over runs, per arm.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.net.calls import run_call
from tests.net.lab import Lab, namespaces_problem

KEYS = (
    "fps_received",
    "freeze_max_ms",
    "freezes",
    "frozen_ms",
    "rtt_ms",
    "packet_loss",
    "bitrate_sent",
    "video_target_bitrate",
    "audio_bitrate",
    "audio_frames_received",
    "received_size",
    "quality",
)


def _widen(lab: Lab, started: float, seconds: float) -> None:
    time.sleep(max(0.0, started + seconds / 2 - time.monotonic()))
    lab.set_rate(None)


CASES: dict[str, dict[str, Any]] = {
    "loss5": {"loss": 0.05, "delay": 0.050},
    "loss10": {"loss": 0.10, "delay": 0.100},
    "rate500": {"rate": 500},
    "rate250": {"rate": 250},
    "widen": {"rate": 250, "widen": True},
}


def one_call(case: str, *, stock: bool, seconds: float, seed: int) -> dict[str, Any]:
    spec = CASES[case]
    with Lab(seed=seed) as lab, tempfile.TemporaryDirectory() as tmp:
        if "loss" in spec:
            lab.impair(spec["loss"], spec["delay"])
        if "rate" in spec:
            lab.set_rate(spec["rate"])
        during: Callable[[Lab, float], None] | None = None
        if spec.get("widen"):

            def during(lab: Lab, started: float) -> None:
                _widen(lab, started, seconds)

        try:
            result = run_call(lab, Path(tmp), seconds=seconds, stock=stock, during=during)
        except AssertionError as exc:  # no first frame in 30 s: a failed call, kept as such
            return {"failed": str(exc)[:2000]}
        sides = {side: {key: result.stats[side].get(key) for key in KEYS} for side in ("a", "b")}
        return {"codes": result.codes, "sides": sides, "bridge": result.bridge}


def medians(all_runs: list[dict[str, Any]]) -> dict[str, Any]:
    runs = [run for run in all_runs if "failed" not in run]
    out: dict[str, Any] = {"calls_failed": len(all_runs) - len(runs)}
    for key in KEYS:
        values = [
            run["sides"][side][key]
            for run in runs
            for side in ("a", "b")
            if isinstance(run["sides"][side].get(key), int | float)
            and not isinstance(run["sides"][side].get(key), bool)
        ]
        if values:
            out[key] = round(statistics.median(values), 3)
    out["quality"] = [run["sides"][side]["quality"] for run in runs for side in ("a", "b")]
    out["exit_codes"] = [run["codes"] for run in runs]
    out["freeze_max_ms_worst"] = max(
        (run["sides"][side]["freeze_max_ms"] or 0.0 for run in runs for side in ("a", "b")),
        default=None,
    )
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.impaired_calls")
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-stock", action="store_true", help="only our own behaviour")
    args = parser.parse_args(argv)
    problem = namespaces_problem()
    if problem is not None:
        print(json.dumps({"benchmark": "impaired_calls", "skipped": problem}))
        return 0
    cases = args.case or list(CASES)
    report: dict[str, Any] = {
        "benchmark": "impaired_calls",
        "seconds": args.seconds,
        "reps": args.reps,
        "load_at_start": os.getloadavg(),
        "cases": {},
    }
    for case in cases:
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "stock": []}
        for rep in range(args.reps):
            for arm in ("ours", "stock"):
                if arm == "stock" and args.no_stock:
                    continue
                print(f"[impaired_calls] {case} {arm} rep {rep + 1}", file=sys.stderr, flush=True)
                runs[arm].append(
                    one_call(case, stock=arm == "stock", seconds=args.seconds, seed=rep + 1)
                )
        report["cases"][case] = {
            "spec": CASES[case],
            **{f"{arm}_median": medians(r) for arm, r in runs.items() if r},
            "runs": runs,
        }
    report["load_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
