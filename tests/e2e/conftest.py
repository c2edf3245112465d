"""Multi-process helpers: a signaling server and ``callapp call`` apps as subprocesses.

Every process runs from the repository root with ``sys.executable``, listens
(if it listens at all) on 127.0.0.1, and is killed at teardown whatever the
test did. Output lines are read on a thread and stamped with
``time.monotonic()`` as they arrive, so tests can measure how long one
process took to react to another.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callapp.signaling.server import SignalingServer
from tests.e2e.chromium import Chromium, launch_or_skip

ROOT = Path(__file__).resolve().parents[2]

#: Run inline when ``callapp.signaling.cli`` is not there: the same server class.
_INLINE_SERVER = """
import asyncio
from callapp.signaling.server import SignalingServer

async def main():
    server = SignalingServer("127.0.0.1", 0, max_connections_per_address=10_000)
    await server.start()
    print("listening on", server.url, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class Proc:
    """A subprocess whose output lines are collected with arrival times."""

    def __init__(self, args: list[str], name: str) -> None:
        self.name = name
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_line(
        self, pattern: str, within: float = 20.0, after: float = 0.0
    ) -> tuple[float, re.Match[str]]:
        """The first line at or after time ``after`` matching ``pattern``, and its time."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + within
        with self._changed:
            while True:
                for stamp, line in self.lines:
                    if stamp >= after and (match := regex.search(line)):
                        return stamp, match
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"{self.name}: no line matching {pattern!r} within {within} s;"
                        f" output:\n{self.output[-4000:]}"
                    )
                self._changed.wait(min(left, 0.2))

    def wait_exit(self, within: float = 30.0) -> int:
        try:
            code = self.popen.wait(within)
        except subprocess.TimeoutExpired:
            # Headless commands print every thread's stack on SIGUSR1
            # (callapp/eventloop.py): say what it is stuck on.
            self.popen.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            raise AssertionError(
                f"{self.name} still running after {within} s:\n{self.output[-8000:]}"
            ) from None
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> int:
        """SIGTERM, then wait for a clean exit."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.wait_exit(15)


class Procs:
    """Starts processes for one test and kills whatever is left at the end."""

    def __init__(self) -> None:
        self.started: list[Proc] = []

    def start(self, args: list[str], name: str) -> Proc:
        proc = Proc(args, name)
        self.started.append(proc)
        return proc

    def call(self, name: str, *args: str) -> Proc:
        """``python -m callapp call ARGS``."""
        return self.start(["-m", "callapp", "call", *args], name)

    def close(self) -> None:
        for proc in self.started:
            proc.kill()


@pytest.fixture
def procs() -> Iterator[Procs]:
    started = Procs()
    yield started
    started.close()


@pytest.fixture
def server_url(procs: Procs) -> str:
    """A signaling server subprocess on 127.0.0.1 and a free port; its ws:// URL."""
    if importlib.util.find_spec("callapp.signaling.cli") is not None:
        args = ["-m", "callapp.signaling.cli", "--host", "127.0.0.1", "--port", "0"]
    else:
        args = ["-c", _INLINE_SERVER]
    server = procs.start(args, "server")
    _, match = server.wait_line(r"(ws://127\.0\.0\.1:\d+)(/ws)?", within=20)
    return match.group(1) + "/ws"


@pytest.fixture
async def server() -> AsyncIterator[SignalingServer]:
    """A signaling server in the test's own loop, on 127.0.0.1 and a free port."""
    async with SignalingServer("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Chromium]:
    """A headless Chromium for the test (skipped where there is none)."""
    async with contextlib.AsyncExitStack() as stack:
        yield await launch_or_skip(stack)
