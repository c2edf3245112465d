"""Calls through a real TURN relay (Debian's coturn) with short-lived credentials (issue 14).

The test starts its own ``turnserver`` on 127.0.0.1 (random ports, no
configuration file, a private user database, TURN REST API credentials:
``use-auth-secret`` + ``static-auth-secret``), and a signaling server that
hands out credentials for it in ``welcome`` (``--turn-url``,
``--turn-secret``). Two ``callapp call --relay-only`` processes then meet
through the relay only: the selected candidate pair is relay on both sides.
A server configured with the wrong secret, and credentials that have
expired, fail with a reason in words.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callapp.call.ice import probe_turn
from callapp.signaling import turn

ROOT = Path(__file__).resolve().parents[2]
SECRET = "callapp-test-secret"

pytestmark = [
    pytest.mark.long,
    pytest.mark.skipif(
        shutil.which("turnserver") is None, reason="coturn's turnserver is not installed"
    ),
]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    """A coturn of the test's own on 127.0.0.1; yields its listening port."""
    port = _free_udp_port()
    low = 20000 + (os.getpid() * 7 + port) % 30000  # a relay port range of our own
    argv = [
        "turnserver", "-c", "/dev/null", "-n",
        "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
        f"--min-port={low}", f"--max-port={low + 200}",
        "--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm=callapp.test",
        "--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp",
        "--no-tcp-relay", f"--userdb={tmp_path / 'turndb'}", f"--pidfile={tmp_path / 'turn.pid'}",
        "--simple-log", f"--log-file={tmp_path / 'turn.log'}", "--no-stdout-log",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        good = turn.ice_server(turn.TurnConfig(("turn:x",), SECRET), "probe", time.time())
        while asyncio.run(
            probe_turn(("127.0.0.1", port), good["username"], good["credential"], within=0.5)
        ):
            assert proc.poll() is None, "turnserver exited at once"
            assert time.monotonic() < deadline, "turnserver did not start"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def signaling(tmp_path: Path, turn_port: int, secret: str) -> Iterator[str]:
    """``callapp-signaling`` handing out credentials for the relay; yields its URL."""
    log = tmp_path / f"signaling-{secret}.out"
    argv = [
        sys.executable, "-m", "callapp.signaling.cli", "--port", "0",
        "--turn-url", f"turn:127.0.0.1:{turn_port}?transport=udp",
        "--turn-secret", secret, "--turn-ttl", "600",
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while "listening on" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the signaling server did not start"
            time.sleep(0.05)
        yield log.read_text().split("listening on ", 1)[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(10)


def relay_call(
    tmp_path: Path, url: str, room: str, seconds: float = 2.0
) -> tuple[list[int], list[str], list[dict[str, Any]]]:
    """Two ``callapp call --relay-only`` in ``room``; exit codes, stderr and reports."""
    procs = []
    for side in ("a", "b"):
        argv = [
            sys.executable, "-m", "callapp", "call", "--server", url, "--room", room,
            "--relay-only", "--video", "test", "--size", "320x240", "--audio", "none",
            "--speaker", "none", "--timeout", "15",
            "--stats-json", str(tmp_path / f"{room}-{side}.json"),
        ]  # fmt: skip
        if side == "a":
            argv += ["--seconds", str(seconds)]
        procs.append(
            subprocess.Popen(
                argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
        if side == "a":
            time.sleep(0.5)  # A joins first: the caller
    outputs = [proc.communicate(timeout=60) for proc in procs]
    reports = []
    for side in ("a", "b"):
        path = tmp_path / f"{room}-{side}.json"
        reports.append(json.loads(path.read_text()) if path.exists() else {})
    return [p.returncode for p in procs], [o[1] + o[0] for o in outputs], reports


def test_a_relay_only_call_goes_through_coturn(tmp_path: Path, coturn: int) -> None:
    with signaling(tmp_path, coturn, SECRET) as url:
        codes, outputs, reports = relay_call(tmp_path, url, "relayed")
    assert codes == [0, 0], outputs
    for report in reports:
        assert report["frames_received"] > 10, report
        assert report["local_candidate_type"] == "relay", report
        assert report["remote_candidate_type"] == "relay", report
        assert report["peers"][0]["relay_problem"] is None


def test_wrong_credentials_fail_in_words(tmp_path: Path, coturn: int) -> None:
    with signaling(tmp_path, coturn, "not-the-relays-secret") as url:
        started = time.monotonic()
        codes, outputs, reports = relay_call(tmp_path, url, "refused")
        took = time.monotonic() - started
    assert codes == [1, 1], outputs
    for output, report in zip(outputs, reports, strict=True):
        error = [line for line in output.splitlines() if line.startswith("error:")]
        assert error == [
            "error: No call through the TURN relay: the TURN relay refused the credentials"
            " the server gave (wrong or expired)."
        ], output
        assert report["peers"][0]["end_reason"] == "relay_failed"
        assert "Traceback" not in output
    assert took < 14, "the failure was not said at once"


def test_expired_credentials_are_refused_by_the_relay(coturn: int) -> None:
    now = time.time()
    expired = turn.make_username(int(now) - 60, "someone")
    fresh = turn.make_username(int(now) + 60, "someone")
    server = ("127.0.0.1", coturn)

    async def ask(username: str) -> str | None:
        return await probe_turn(server, username, turn.make_credential(SECRET, username))

    assert asyncio.run(ask(fresh)) is None
    why = asyncio.run(ask(expired))
    assert why == "the TURN relay refused the credentials the server gave (wrong or expired)"
