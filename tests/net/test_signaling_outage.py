"""A signaling server killed mid-call and restarted 2 s later (issue 14).

The server runs in the lab's namespace S; the media path A - bridge - B does
not touch it. Killing it (SIGKILL, no close frames) must not stop the media,
which is peer to peer; both clients reconnect with backoff, rejoin the room
with new connection ids within 2 s of the server's return, tell each other
those ids over the call's data channel (RELINK), and the call goes on to its
full length: no gap in the received frames, one reconnect on each side, no
ICE restart, no second call.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.net.lab import Lab

pytestmark = [pytest.mark.long, pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CALL_S = 8.0
OUTAGE_S = 2.0


def _wait(path: Path, pattern: str, within: float, after: int = 0) -> tuple[float, str]:
    """When ``pattern`` first matches ``path``'s text past offset ``after``, and the match."""
    deadline = time.monotonic() + within
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        match = regex.search(text, after)
        if match:
            return time.monotonic(), match.group(0)
        time.sleep(0.02)
    text = path.read_text(errors="replace") if path.exists() else ""
    raise AssertionError(f"no {pattern!r} within {within:g} s in {path.name}:\n{text[-3000:]}")


def _server(lab: Lab, log: Path, port: int) -> subprocess.Popen[Any]:
    with log.open("w") as out:
        return lab.popen(
            "s",
            [
                sys.executable,
                "-m",
                "callapp.signaling.cli",
                "--host",
                "0.0.0.0",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_a_server_restart_mid_call_leaves_the_call_untouched(lab: Lab, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    first_log = tmp_path / "server-1.out"
    server = _server(lab, first_log, 0)
    port = int(re.findall(r":(\d+)/ws", _wait(first_log, r"listening on ws://\S+", 20)[1])[0])
    logs = {side: tmp_path / f"{side}.out" for side in ("a", "b")}
    procs = {}
    for side in ("a", "b"):
        argv = [
            sys.executable, "-m", "callapp", "call",
            "--server", lab.server_url(side, port),
            "--room", f"outage-{lab.tag}", "--name", side.upper(),
            "--video", "test", "--size", "320x240", "--fps", "15",
            "--audio", "tone:440", "--speaker", "none",
            "--stats-json", str(tmp_path / f"{side}.json"), "--timeout", "30",
        ]  # fmt: skip
        if side == "a":
            argv += ["--seconds", str(CALL_S)]
        with logs[side].open("w") as out:
            procs[side] = lab.popen(
                side,
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if side == "a":
            _wait(logs["a"], r"joined room", 30)
    for side in ("a", "b"):
        _wait(logs[side], r"first frame", 30)
    time.sleep(2.0)
    offsets = {side: len(logs[side].read_text()) for side in ("a", "b")}
    server.send_signal(signal.SIGKILL)  # gone without a word: no close frames
    server.wait(5)
    for side in ("a", "b"):
        _wait(logs[side], r"phase: reconnecting", 10, offsets[side])
    time.sleep(OUTAGE_S)
    second_log = tmp_path / "server-2.out"
    server = _server(lab, second_log, port)
    back_at, _ = _wait(second_log, r"listening on", 20)
    relinked = {}
    for side in ("a", "b"):
        relinked[side] = _wait(logs[side], r"peer relinked: ", 10, offsets[side])[0] - back_at
    codes = {side: procs[side].wait(CALL_S + 30) for side in ("a", "b")}
    server.kill()
    reports = {side: json.loads((tmp_path / f"{side}.json").read_text()) for side in ("a", "b")}
    outputs = {side: logs[side].read_text() for side in ("a", "b")}
    print(
        {
            side: f"rejoined and relinked {relinked[side]:.2f} s after the restart"
            for side in relinked
        }
    )
    for side in ("a", "b"):
        report, output = reports[side], outputs[side]
        print(
            side, {k: report.get(k) for k in ("freeze_max_ms", "frames_received", "fps_received")}
        )
        assert codes[side] == 0, output
        assert report["signaling_reconnects"] == 1, output
        assert report["ice_restarts"] == 0, output
        assert len(report["peers"]) == 1, "a second call was made"
        # One leg, left once: at the end of the call.
        assert output.count("peer left") == 1, output
        assert "call ended" in output.split("peer left")[1], output
        assert "Traceback" not in output
        assert report["duration_s"] is not None
        assert report["duration_s"] > CALL_S - 0.5
        # No gap in the received frames: the media never noticed the outage.
        assert report["freeze_max_ms"] is not None
        assert report["freeze_max_ms"] < 500, report
        assert relinked[side] < 2.0
