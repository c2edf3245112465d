"""A 10-minute two-window call: memory slope after warm-up and the longest freeze. Prints JSON.

Not part of ``python -m bench`` (it takes ten minutes): run it by hand::

    .venv/bin/python -m bench.soak_call                 # 600 s, samples every 10 s
    .venv/bin/python -m bench.soak_call --seconds 120   # a shorter look

The two windows of :mod:`bench.gui_call_memory` (A hosts, B joins with the
invite link; one qasync loop, offscreen, test pattern 640x480 VP8 over
loopback). Every ``--every`` seconds it samples RSS and both sessions'
numbers (``CallSession.all_stats``: the longest gap between two decoded
remote frames so far, by arrival, and the frames received). The memory
figure is the least-squares slope of RSS over the samples after
``--warmup`` (MiB per minute: a leak shows as a steady slope, allocator
noise as scatter around a flat line). The verdict fields say whether the
issue's goals held: slope under ``--max-slope`` MiB/min, no freeze over 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import qasync
from PySide6.QtWidgets import QApplication

from bench.gui_call_memory import loopback_invite, make_window, percentile, rss_mib, watch_lag


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) points, in MiB per minute."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (m - mean_m) for t, m in points)
    return round(cov / var * 60, 3)


async def leg_numbers(window: Any) -> dict[str, Any]:
    session = window.app.call.session
    if session is None:
        return {}
    await session.all_stats()
    records = session.records()
    if not records or records[-1].stats is None:
        return {}
    stats = records[-1].stats
    return {
        "freeze_max_ms": round(stats.freeze_max * 1000, 1),
        "freezes": stats.freezes,
        "frames_received": stats.frames_received,
        "fps_received": round(stats.fps_received, 1),
    }


async def run(seconds: float, every: float, warmup: float, max_slope: float) -> dict[str, Any]:
    a, b = make_window(0), make_window(910)
    lags: list[float] = []
    watcher = asyncio.ensure_future(watch_lag(lags))
    started = time.monotonic()
    await a.app.host("soak-run")
    assert a.app.hosting is not None, a.app.error
    await b.app.call.join_text(loopback_invite(a.app.hosting.invite, a.app.hosting.local_url))
    samples: list[dict[str, Any]] = []
    while (elapsed := time.monotonic() - started) < seconds:
        numbers_a, numbers_b = await leg_numbers(a), await leg_numbers(b)
        samples.append(
            {
                "t_s": round(elapsed, 1),
                "rss_mib": round(rss_mib(), 1),
                "phases": [a.app.snapshot.phase.value, b.app.snapshot.phase.value],
                "a": numbers_a,
                "b": numbers_b,
            }
        )
        await asyncio.sleep(every)
    final = {"a": await leg_numbers(a), "b": await leg_numbers(b)}
    watcher.cancel()
    phases = (a.app.snapshot.phase.value, b.app.snapshot.phase.value)
    errors = a.app.errors + b.app.errors
    a.close_without_asking()
    b.close_without_asking()
    while not (a.closed_cleanly and b.closed_cleanly):  # noqa: ASYNC110 - plain flags
        await asyncio.sleep(0.05)
    after = [(s["t_s"], s["rss_mib"]) for s in samples if s["t_s"] >= warmup]
    # A call that ended early (a starved CPU can trip the dead-peer watchdog) is no soak.
    in_call = [s["t_s"] for s in samples if s["phases"] == ["connected", "connected"]]
    slope = slope_per_minute(after)
    freeze = max(final[side].get("freeze_max_ms", 0.0) for side in ("a", "b"))
    return {
        "benchmark": "soak_call",
        "seconds": seconds,
        "video": "test 640x480@30 VP8, loopback, two windows in one process, offscreen",
        "phases_at_end": phases,
        "errors": errors,
        "rss_after_warmup_mib": after[0][1] if after else None,
        "rss_end_mib": samples[-1]["rss_mib"] if samples else None,
        "rss_slope_mib_per_min": slope,
        "freeze_max_ms": freeze,
        "final": final,
        "loop_lag_ms": {
            "p50": percentile(lags, 0.5),
            "p99": percentile(lags, 0.99),
            "max": round(max(lags), 1) if lags else 0.0,
        },
        "connected_until_s": in_call[-1] if in_call else None,
        "call_lasted": bool(in_call) and in_call[-1] >= seconds - 2 * every,
        "memory_flat": slope is not None and abs(slope) <= max_slope,
        "no_freeze_over_1s": freeze <= 1000.0,
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument(
        "--max-slope", type=float, default=0.2, help="MiB/min still called flat (default 0.2)"
    )
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(["soak-call"])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        result = loop.run_until_complete(run(args.seconds, args.every, args.warmup, args.max_slope))
    finally:
        loop.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
