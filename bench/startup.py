"""Start-up: from spawning the desktop app's process to its main window on screen (offscreen).

The app runs through :mod:`bench.gui_probe` (the unchanged launcher plus
marks) with a fresh settings file and ``--quit-after``: ``window_painted`` is
the first paint of anything in the main window, ``imported`` the moment
PySide6 and ``callapp.ui`` finished importing. A bare ``python -c pass`` is
timed beside it as the interpreter's own floor. Memory of the app in a call
comes from the GUI call in :mod:`bench.media`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Procs, log, summary


def run(reps: int) -> dict[str, Any]:
    shown: list[float] = []
    imported: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmpdir, Procs() as procs:
        for rep in range(reps):
            log(f"start-up #{rep + 1}/{reps}")
            proc = procs.python(
                "-m",
                "bench.gui_probe",
                "--",
                "--settings",
                str(Path(tmpdir) / f"startup-{rep}.ini"),
                "--video",
                "test",
                "--quit-after",
                "0.5",
                name=f"startup-{rep}",
            )
            _, painted = proc.wait_line(r"^probe: window_painted ([\d.]+)", within=60)
            _, done_import = proc.wait_line(r"^probe: imported ([\d.]+)", within=5)
            shown.append((float(painted.group(1)) - proc.started_at) * 1000)
            imported.append((float(done_import.group(1)) - proc.started_at) * 1000)
            proc.wait(30)
            floor = procs.python("-c", "pass", name=f"bare-{rep}")
            floor.wait(30)
            bare.append((time.monotonic() - floor.started_at) * 1000)
    return {
        "window_shown_ms": summary(shown),
        "imports_done_ms": summary(imported),
        "bare_python_ms": summary(bare),
    }
