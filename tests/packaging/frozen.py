"""What the packaging tests share: one build of every Linux artefact, and running them.

``build_all`` runs ``packaging/build.py --fast`` once per session (the
``bundle`` fixture in conftest.py): the PyInstaller folder, the tarball, the
.deb and the AppImage, each at its fastest compression. ``Running`` is a
process whose output lines are collected as they come, for calls between
processes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "packaging" / "build.py"


@dataclass(frozen=True)
class Bundle:
    """The artefacts of one ``build.py`` run and what it printed."""

    folder: Path
    archive: Path
    deb: Path | None  # None when built without the installers
    appimage: Path | None
    report: dict[str, Any]
    build_log: str

    def installers(self) -> tuple[Path, Path]:
        """(the .deb, the AppImage); skips the test when they were not built."""
        if self.deb is None or self.appimage is None:
            pytest.skip("built without the installers (they come with --long)")
        return self.deb, self.appimage

    @property
    def callapp(self) -> Path:
        """The frozen ``callapp`` in the folder."""
        return self.folder / "callapp"

    @property
    def signaling(self) -> Path:
        """The frozen ``callapp-signaling`` in the folder."""
        return self.folder / "callapp-signaling"


def build_all(out: Path, installers: bool = True) -> Bundle:
    """Run build.py into ``out`` at the fastest compression; fail with its log's tail.

    Without ``installers`` only the folder and the tarball are made.

    With ``CALLAPP_TEST_BUILD`` set to the ``--out`` folder of an earlier
    ``build.py --fast`` run, its artefacts are used instead (for working on
    these tests; a stale folder tests stale artefacts).
    """
    reuse = os.environ.get("CALLAPP_TEST_BUILD")
    if reuse:
        report = json.loads((Path(reuse) / "build-report.json").read_text())
        return _bundle(report, "(reused) self-test: reused, 0 failed")
    command = [sys.executable, str(BUILD), "--out", str(out), "--work", str(out / "work"), "--fast"]
    if not installers:
        command += ["--no-deb", "--no-appimage"]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    return _bundle(json.loads(result.stdout.strip().splitlines()[-1]), log)


def _bundle(report: dict[str, Any], log: str) -> Bundle:
    deb, appimage = (Path(report[key]) if key in report else None for key in ("deb", "appimage"))
    return Bundle(Path(report["bundle"]), Path(report["archive"]), deb, appimage, report, log)


def frozen_env() -> dict[str, str]:
    """What a desktop user's shell would give: no Python variables, no display."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "offscreen",
    }


def load_packaging_module(name: str) -> Any:
    """A module from packaging/ (not importable by name: PyPI's ``packaging`` is)."""
    folder = str(ROOT / "packaging")
    if folder not in sys.path:  # deb.py and appimage.py import their neighbours
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, ROOT / "packaging" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Running:
    """A process whose output lines are collected as they come."""

    def __init__(
        self, args: Sequence[str | Path], cwd: Path, env: dict[str, str] | None = None
    ) -> None:
        self.popen = subprocess.Popen(
            [str(a) for a in args],
            cwd=cwd,
            env=frozen_env() if env is None else env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def output(self) -> str:
        """Every line so far."""
        return "\n".join(self.lines)

    def wait_line(self, pattern: str, within: float = 30.0) -> re.Match[str]:
        """The first line matching ``pattern``; AssertionError if none comes in time."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + within
        with self._changed:
            while True:
                for line in self.lines:
                    if match := regex.search(line):
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or self.popen.poll() is not None:
                    raise AssertionError(f"no line matching {pattern!r}:\n{self.output}")
                self._changed.wait(min(left, 0.5))

    def finished(self, within: float = 60.0) -> None:
        """Wait for exit 0; AssertionError with the output otherwise."""
        code = self.popen.wait(within)
        time.sleep(0.1)  # let the reader take the last lines
        assert code == 0, f"exit {code}:\n{self.output[-4000:]}"

    def stop(self) -> None:
        """Kill it if it still runs."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)


def call_stats(path: Path) -> dict[str, Any]:
    """The ``--stats-json`` a ``callapp call`` wrote."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data
