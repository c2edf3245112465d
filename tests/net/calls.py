"""One ``callapp call`` between the two sides of a :class:`~tests.net.lab.Lab`.

The signaling server runs in the lab's signaling namespace (a clean path to
each side), ``callapp call`` runs in A (it joins first: the caller) and in B,
both sending the test pattern and a tone, both writing ``--stats-json``; B
also records what it receives when asked. :func:`run_call` returns what both
said, for the tests in this folder and for ``bench/impaired_calls.py``.

``during(lab, started_at)`` runs on a thread once media flows on both sides
(to change the link mid-call); ``stock=True`` runs both apps with
``CALLAPP_STOCK_MEDIA=1`` (aiortc's own media behaviour, for comparison).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.net.lab import Lab

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CallResult:
    """Both sides' exit codes, output and ``--stats-json`` reports, and the bridge's counters."""

    codes: dict[str, int | None]
    output: dict[str, str]
    stats: dict[str, dict[str, Any]]
    bridge: dict[str, dict[str, Any]]
    recording: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        keys = (
            "fps_received",
            "freeze_max_ms",
            "freezes",
            "frozen_ms",
            "rtt_ms",
            "packet_loss",
            "received_size",
            "video_target_bitrate",
            "audio_bitrate",
            "quality",
            "quality_reasons",
            "local_candidate_type",
            "remote_candidate_type",
            "frames_received",
            "audio_frames_received",
        )
        lines = [f"exit codes {self.codes}"]
        for side, data in self.stats.items():
            lines.append(f"{side}: " + ", ".join(f"{k}={data.get(k)}" for k in keys))
        lines.append(f"bridge: {self.bridge}")
        for side, text in self.output.items():
            lines.append(f"--- {side} output (tail) ---\n{text[-2500:]}")
        return "\n".join(lines)


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen[Any], within: float) -> str:
    deadline = time.monotonic() + within
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        match = regex.search(text)
        if match:
            return match.group(1) if match.groups() else match.group(0)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    text = path.read_text(errors="replace") if path.exists() else ""
    raise AssertionError(f"no {pattern!r} within {within:g} s; output:\n{text[-3000:]}")


def run_call(
    lab: Lab,
    workdir: Path,
    *,
    seconds: float,
    size: str = "640x480",
    record: bool = False,
    stock: bool = False,
    during: Callable[[Lab, float], None] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 60.0,
) -> CallResult:
    """A call of ``seconds`` of media between A and B through the lab; see the module docstring."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("CALLAPP_STOCK_MEDIA", None)
    if stock:
        env["CALLAPP_STOCK_MEDIA"] = "1"
    server_log = workdir / "server.out"
    with server_log.open("w") as out:
        server = lab.popen(
            "s" if lab.signaling else "a",
            [sys.executable, "-m", "callapp.signaling.cli", "--host", "0.0.0.0", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    port = int(_wait_for(server_log, r"listening on ws://[^:]+:(\d+)", server, 20))
    room = f"lab-{lab.tag}"
    procs: dict[str, subprocess.Popen[Any]] = {}
    logs: dict[str, Path] = {}
    recording = workdir / "b.mkv" if record else None
    for side in ("a", "b"):
        args = [
            sys.executable, "-m", "callapp", "call",
            "--server", lab.server_url(side, port),
            "--room", room, "--name", side.upper(),
            "--video", "test", "--size", size, "--audio", "tone:440", "--speaker", "none",
            "--stats-json", str(workdir / f"{side}.json"), "--timeout", str(timeout),
            *extra_args,
        ]  # fmt: skip
        if side == "a":
            args += ["--seconds", str(seconds)]
        if side == "b" and recording is not None:
            args += ["--record", str(recording)]
        logs[side] = workdir / f"{side}.out"
        with logs[side].open("w") as out:
            procs[side] = lab.popen(
                side,
                args,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if side == "a":
            _wait_for(logs["a"], r"joined room", procs["a"], 30)
    watcher: threading.Thread | None = None
    try:
        for side in ("a", "b"):
            _wait_for(logs[side], r"first frame", procs[side], 30)
        started = time.monotonic()
        if during is not None:
            watcher = threading.Thread(target=during, args=(lab, started), daemon=True)
            watcher.start()
        codes: dict[str, int | None] = {}
        for side in ("a", "b"):
            try:
                codes[side] = procs[side].wait(seconds + 30)
            except subprocess.TimeoutExpired:
                procs[side].kill()
                codes[side] = None
    finally:
        bridge = lab.bridge_stats() if lab.started else {}
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        server.kill()
        if watcher is not None:
            watcher.join(5)
    stats = {}
    for side in ("a", "b"):
        path = workdir / f"{side}.json"
        stats[side] = json.loads(path.read_text()) if path.exists() else {}
    output = {side: logs[side].read_text(errors="replace") for side in ("a", "b")}
    return CallResult(codes, output, stats, bridge, recording)


__all__ = ["CallResult", "run_call"]
