"""A ``callapp call`` between clients on two ``callapp-signaling --redis`` processes.

Two real server processes share one real ``redis-server``; the caller talks
to one, the callee to the other, so every offer, answer and ICE candidate
crosses Redis. Then the callee's server is killed with SIGKILL: the caller's
side hears the callee leave (``peer-left``, from the surviving server, once
the dead one's heartbeat expires) and goes back to waiting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.signaling.redis_fixture import RedisServer, redis_server

from .conftest import Proc, Procs

__all__ = ["redis_server"]

pytestmark = pytest.mark.e2e

LOOPBACK = "--allow-loopback"


def signaling(procs: Procs, name: str, redis: RedisServer, *flags: str) -> tuple[Proc, str]:
    """A ``callapp-signaling --redis`` process and its ws:// URL.

    ``flags`` come last, so that a ``--port N`` among them wins over ``--port 0``.
    """
    server = procs.start(
        [
            *("-m", "callapp.signaling.cli", "--host", "127.0.0.1", "--port", "0"),
            *("--redis", redis.url, *flags),
        ],
        name,
    )
    _, match = server.wait_line(r"(ws://127\.0\.0\.1:\d+)(/ws)?", within=20)
    return server, match.group(1) + "/ws"


def stats(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_a_call_between_clients_on_two_servers(
    procs: Procs, redis_server: RedisServer, tmp_path: Path
) -> None:
    _, one = signaling(procs, "server-1", redis_server)
    two_proc, two = signaling(procs, "server-2", redis_server)
    b_json = tmp_path / "b.json"
    a = procs.call(
        "a", "--server", one, "--room", "cluster", LOOPBACK, "--calls", "0", "--timeout", "0"
    )
    a.wait_line(r"joined room: cluster")
    b = procs.call(
        "b",
        *("--server", two, "--room", "cluster", LOOPBACK, "--seconds", "4"),
        *("--stats-json", str(b_json)),
    )
    first, _ = a.wait_line(r"phase: connected", within=30)
    code = b.wait_exit(40)
    assert code == 0, f"b exited {code}:\n{b.output[-4000:]}"
    callee = stats(b_json)
    assert callee["role"] == "callee", callee
    assert callee["frames_received"] >= 60, callee
    assert callee["frames_sent"] >= 60, callee
    waiting, _ = a.wait_line(r"phase: waiting", after=first, within=20)

    # A second callee on server 2, then server 2 dies under it.
    c = procs.call("c", "--server", two, "--room", "cluster", LOOPBACK, "--timeout", "60")
    connected, _ = a.wait_line(r"phase: connected", after=waiting, within=30)
    c.wait_line(r"first frame", within=30)
    two_proc.kill()
    c.kill()
    # a hears c leave from server 1 once server 2's heartbeat expires (3 s).
    back, _ = a.wait_line(r"phase: waiting", after=connected, within=20)
    assert back - connected < 15
