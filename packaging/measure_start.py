"""Time from starting ``callapp`` to its window's first paint on screen.

    .venv/bin/python packaging/measure_start.py dist/bundle/callapp/callapp
    .venv/bin/python packaging/measure_start.py --reps 7 EXE [EXE ...]

Each EXE (a frozen ``callapp``, or ``python`` for the source checkout, which
runs ``python -m callapp``) is started REPS times, alternating, with
``--video test --quit-after 3`` and a fresh settings file, on the offscreen
platform unless ``--display`` is given. The app is not changed or wrapped:
Qt itself reports the moment (``QT_LOGGING_RULES=qt.widgets.painting.debug``
logs "Flushing ... to QWidgetWindow" when a widget's backing store first
reaches its window), so this works the same on a frozen bundle.

Prints one JSON object: per EXE, the min / median / max milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

FLUSH = "Flushing"


def first_paint_ms(command: list[str], settings: Path, display: bool, timeout: float) -> float:
    """Milliseconds from spawning ``command`` to Qt's first flush into a window."""
    env = dict(os.environ)
    env["QT_LOGGING_RULES"] = "qt.widgets.painting.debug=true"
    # Qt logs to the system log instead of stderr on macOS, and from a
    # windowed .exe on Windows, unless told otherwise.
    env["QT_FORCE_STDERR_LOGGING"] = "1"
    if not display:
        env["QT_QPA_PLATFORM"] = "offscreen"
    args = [*command, "--settings", str(settings), "--video", "test", "--quit-after", "3"]
    started = time.monotonic()
    proc = subprocess.Popen(
        args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    painted: list[float] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            if not painted and FLUSH.encode() in raw and b"QWidgetWindow" in raw:
                painted.append(time.monotonic())
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen.wait(timeout)
    proc.kill()
    proc.wait(10)
    if not painted:
        raise RuntimeError(f"{' '.join(command)}: no window painted within {timeout:.0f} s")
    return (painted[0] - started) * 1000


def command_for(exe: str) -> list[str]:
    """``python`` means the source checkout; anything else is a frozen callapp."""
    name = Path(exe).name
    if name.startswith("python"):
        return [exe, "-m", "callapp"]
    return [exe]


def main(argv: list[str] | None = None) -> int:
    """Measure each executable, alternating runs; print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("exe", nargs="+", help="a frozen callapp, or a python to run -m callapp")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--display", action="store_true", help="use $DISPLAY, not offscreen")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {exe: [] for exe in args.exe}
    with tempfile.TemporaryDirectory(prefix="callapp-start-") as tmp:
        for rep in range(args.reps):
            for exe in args.exe:
                settings = Path(tmp) / f"{len(times[exe])}-{Path(exe).name}.ini"
                ms = first_paint_ms(command_for(exe), settings, args.display, args.timeout)
                times[exe].append(ms)
                print(f"start: {exe} #{rep + 1}: {ms:.0f} ms", file=sys.stderr, flush=True)
    report = {
        exe: {
            "min_ms": round(min(ms), 1),
            "median_ms": round(statistics.median(ms), 1),
            "max_ms": round(max(ms), 1),
            "reps": len(ms),
        }
        for exe, ms in times.items()
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
