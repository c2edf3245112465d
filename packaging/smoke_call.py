"""A short call between two frozen ``callapp call`` processes (CI smoke test).

    python packaging/smoke_call.py BUNDLE_DIR       # the folder with callapp[-cli]
    python packaging/smoke_call.py --app-dir callapp.app/Contents/MacOS

Starts the frozen ``callapp-signaling`` on 127.0.0.1, then two frozen
``callapp call`` processes in one room with ``--allow-loopback``; the first
hangs up after 3 s of media. Passes (exit 0) when both exit 0 and each
received at least 30 frames of 320x240. Runs on Linux, Windows (through the
console ``callapp-cli.exe``) and macOS alike; uses only the standard library,
so any Python can drive the frozen programs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


class Proc:
    """A process whose output lines are collected on a thread."""

    def __init__(self, args: list[str], cwd: Path, name: str) -> None:
        self.name = name
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))
            print(f"[{self.name}] {line.rstrip()}", flush=True)

    def wait_line(self, pattern: str, within: float = 60.0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := regex.search(line):
                    return match
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit(f"smoke: {self.name} printed no line matching {pattern!r}")

    def wait_ok(self, within: float = 120.0) -> None:
        code = self.popen.wait(within)
        self._reader.join(5)
        if code != 0:
            raise SystemExit(f"smoke: {self.name} exited {code}")

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


def executables(app_dir: Path) -> tuple[Path, Path]:
    """(console callapp, callapp-signaling) in ``app_dir`` for this platform."""
    if sys.platform == "win32":
        return app_dir / "callapp-cli.exe", app_dir / "callapp-signaling.exe"
    return app_dir / "callapp", app_dir / "callapp-signaling"


def main(argv: list[str] | None = None) -> int:
    """Run the call; exit 0 when both sides got media."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("app_dir", type=Path, help="folder holding the frozen executables")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    callapp, signaling = executables(args.app_dir.resolve())
    started: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="callapp-smoke-") as tmp:
        work = Path(tmp)
        try:
            server = Proc([str(signaling), "--port", "0"], work, "signaling")
            started.append(server)
            url = server.wait_line(r"listening on (ws://\S+)").group(1)
            common = [str(callapp), "call", "--server", url, "--room", "smoke"]
            common += ["--allow-loopback", "--size", "320x240"]
            a = Proc([*common, "--seconds", str(args.seconds), "--stats-json", "a.json"], work, "a")
            started.append(a)
            a.wait_line(r"joined room: smoke")
            b = Proc([*common, "--stats-json", "b.json"], work, "b")
            started.append(b)
            a.wait_ok()
            b.wait_ok()
            for side in ("a", "b"):
                stats = json.loads((work / f"{side}.json").read_text())
                print(f"smoke: {side} {json.dumps(stats)}", flush=True)
                if stats.get("frames_received", 0) < 30 or stats.get("received_size") != [320, 240]:
                    raise SystemExit(f"smoke: {side} got too little video: {stats}")
        finally:
            for proc in started:
                proc.kill()
    print("smoke: frozen call ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
