"""Memory of a long two-window call in one process. Prints JSON.

Window A hosts (embedded server), window B joins with A's invite link (the
room's secret included); both on one qasync
loop on the offscreen platform, test-pattern video at 640x480. RSS is
sampled every ``--every`` seconds for ``--seconds``; the growth after the
first ``--warmup`` seconds is what a leak would show.

Usage: python bench/gui_call_memory.py [--seconds 120] [--every 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CALLAPP_SETTINGS", str(Path(tempfile.mkdtemp()) / "callapp.ini"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qasync
from PySide6.QtWidgets import QApplication

from callapp.ui.launcher import make_server, make_session
from callapp.ui.models.app import AppModel
from callapp.ui.models.call import CallOptions
from callapp.ui.services import QtUiServices
from callapp.ui.settings import SettingsStore
from callapp.ui.views.main_window import MainWindow


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_window(x: int) -> MainWindow:
    services = QtUiServices()
    model = AppModel(
        make_session,
        make_server,
        services,
        CallOptions(video="test", width=640, height=480, allow_loopback=True),
        host_port=0,
        bind_host="127.0.0.1",
    )
    store = SettingsStore()
    # The lobby's self-preview is the test pattern too (no camera opened).
    saved = store.load().with_changes(video="test", audio="none")
    window = MainWindow(model, store, saved, allow_loopback=True)
    services.set_parent(window)
    window.setGeometry(x, 0, 900, 500)
    window.show()
    return window


def loopback_invite(invite: str, local_url: str) -> str:
    """``invite`` with its host replaced by ``local_url``'s (the host binds 127.0.0.1 here)."""
    invite_parts, local_parts = urlsplit(invite), urlsplit(local_url)
    return urlunsplit(invite_parts._replace(netloc=local_parts.netloc))


async def watch_lag(lags: list[float], period: float = 0.02) -> None:
    """How late the loop wakes a 20 ms sleeper: what a stalled UI thread shows."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period
        await asyncio.sleep(period)
        lags.append(max(0.0, loop.time() - due) * 1000)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 1) if ordered else 0.0


async def run(seconds: float, every: float, warmup: float) -> dict[str, object]:
    a, b = make_window(0), make_window(910)
    lags: list[float] = []
    watcher = asyncio.ensure_future(watch_lag(lags))
    started = time.monotonic()
    await a.app.host("memory-run")
    assert a.app.hosting is not None, a.app.error
    # The invite link, with the room's secret, pointed at the loopback address.
    await b.app.call.join_text(loopback_invite(a.app.hosting.invite, a.app.hosting.local_url))
    samples: list[dict[str, float]] = []
    while (elapsed := time.monotonic() - started) < seconds:
        samples.append(
            {
                "t_s": round(elapsed, 1),
                "rss_mib": round(rss_mib(), 1),
                "painted_a": a.call_screen.frames_painted,
                "painted_b": b.call_screen.frames_painted,
            }
        )
        await asyncio.sleep(every)
    samples.append(
        {
            "t_s": round(time.monotonic() - started, 1),
            "rss_mib": round(rss_mib(), 1),
            "painted_a": a.call_screen.frames_painted,
            "painted_b": b.call_screen.frames_painted,
        }
    )
    watcher.cancel()
    phases = (a.app.snapshot.phase.value, b.app.snapshot.phase.value)
    paint_ms = [
        round(w.call_screen.paint_seconds * 1000 / max(1, w.call_screen.frames_painted), 2)
        for w in (a, b)
    ]
    errors = a.app.errors + b.app.errors
    a.close_without_asking()
    b.close_without_asking()
    while not (a.closed_cleanly and b.closed_cleanly):  # noqa: ASYNC110 - plain flags
        await asyncio.sleep(0.05)
    after_warmup = [s for s in samples if s["t_s"] >= warmup] or samples
    return {
        "benchmark": "gui_call_memory",
        "seconds": seconds,
        "video": "test 640x480@30 VP8, loopback, one process, offscreen",
        "phases_at_end": phases,
        "errors": errors,
        "rss_start_mib": samples[0]["rss_mib"],
        "rss_after_warmup_mib": after_warmup[0]["rss_mib"],
        "rss_end_mib": samples[-1]["rss_mib"],
        "rss_max_mib": max(s["rss_mib"] for s in samples),
        "growth_after_warmup_mib": round(samples[-1]["rss_mib"] - after_warmup[0]["rss_mib"], 1),
        "frames_painted": [samples[-1]["painted_a"], samples[-1]["painted_b"]],
        "rss_after_close_mib": round(rss_mib(), 1),
        "paint_ms_per_frame": paint_ms,
        "loop_lag_ms": {
            "p50": percentile(lags, 0.5),
            "p99": percentile(lags, 0.99),
            "max": round(max(lags), 1) if lags else 0.0,
        },
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(["gui-call-memory"])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        result = loop.run_until_complete(run(args.seconds, args.every, args.warmup))
    finally:
        loop.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
