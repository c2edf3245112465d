"""What every benchmark shares: processes with stamped output, /proc readings, statistics.

Every process runs from the repository root with this interpreter, and every
output line is stamped with ``time.monotonic()`` as it arrives (on a reader
thread), so one process's reaction to another can be timed from outside.
``CLOCK_MONOTONIC`` is system-wide on Linux, so a child may also print its own
``time.monotonic()`` and the parent can compare it with its own clock.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A benchmark could not take its measurement (not: a figure missed its goal)."""


# -- statistics ------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[rank], 3)


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """``{"median", "p95", "min", "max", "n"}`` of ``values``."""
    return {
        "median": median(values),
        "p95": percentile(values, 0.95),
        "min": round(min(values), 3) if values else None,
        "max": round(max(values), 3) if values else None,
        "n": len(values),
    }


# -- the machine -----------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    load = os.getloadavg()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def raise_fd_limit() -> int:
    """Raise this process's (and its children's) open-file limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


# -- /proc -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces and parentheses: split after the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def peak_rss_bytes(pid: int) -> int:
    """The largest resident set size ``pid`` has had so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmHWM for pid {pid}")


class RssSampler:
    """RSS of some processes, sampled every ``interval`` seconds on a thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.25) -> None:
        self.pids = pids
        self.samples: dict[str, list[int]] = {name: [] for name in pids}
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                with contextlib.suppress(OSError, BenchError):
                    self.samples[name].append(rss_bytes(pid))
            self._stop.wait(self._interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, dict[str, float | None]]:
        """Per process: median and largest sample in MiB, and the lifetime peak (VmHWM)."""
        self._stop.set()
        self._thread.join(2)
        result: dict[str, dict[str, float | None]] = {}
        for name, pid in self.pids.items():
            values = self.samples[name]
            peak: float | None = None
            with contextlib.suppress(OSError, BenchError):
                peak = round(peak_rss_bytes(pid) / 2**20, 1)
            result[name] = {
                "median_mib": round(statistics.median(values) / 2**20, 1) if values else None,
                "max_mib": round(max(values) / 2**20, 1) if values else None,
                "lifetime_peak_mib": peak,
            }
        return result


def pss_bytes(pid: int) -> int | None:
    """Proportional set size of ``pid`` (shared pages split among their users)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class CpuMeter:
    """CPU share of a set of processes over an interval (one core = 100%)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t0
        return {
            name: round(100 * (cpu_seconds(pid) - self._start[name]) / elapsed, 1)
            for name, pid in self.pids.items()
        }


# -- processes ---------------------------------------------------------------------


@dataclass
class Proc:
    """A subprocess whose output lines are collected with their arrival times."""

    args: list[str]
    name: str
    env: dict[str, str] | None = None
    netns: str | None = None
    started_at: float = 0.0
    lines: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(self.env or {}))
        argv = list(self.args)
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        self._changed = threading.Condition()
        self.started_at = time.monotonic()
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

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

    def find(self, pattern: str, after: float = 0.0) -> tuple[float, re.Match[str]] | None:
        regex = re.compile(pattern)
        with self._changed:
            for at, line in self.lines:
                if at >= after and (match := regex.search(line)):
                    return at, match
        return None

    def wait_line(
        self, pattern: str, within: float = 30.0, after: float = 0.0
    ) -> tuple[float, re.Match[str]]:
        """The first line at or after ``after`` matching ``pattern``, and its arrival time."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + within
        seen = 0
        with self._changed:
            while True:
                for at, line in self.lines[seen:]:
                    if at >= after and (match := regex.search(line)):
                        return at, match
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(
                        f"{self.name}: no line matching {pattern!r} within {within:g} s;"
                        f" output:\n{self.tail()}"
                    )
                if self.popen.poll() is not None and not self._reader.is_alive():
                    raise BenchError(
                        f"{self.name} exited ({self.popen.returncode}) before {pattern!r};"
                        f" output:\n{self.tail()}"
                    )
                self._changed.wait(min(left, 0.05))

    def tail(self, lines: int = 25) -> str:
        return "\n".join(line for _, line in self.lines[-lines:])

    def wait(self, within: float = 30.0) -> int:
        try:
            return self.popen.wait(within)
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"{self.name} still running after {within:g} s:\n{self.tail()}"
            ) from None

    def signal(self, signum: int) -> None:
        # `ip netns exec` execs the program, so the pid is the program's own either way.
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signum)

    def stop(self, within: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it lingers; always reaps."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(within)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)
        self._reader.join(2)


class Procs:
    """Processes started by one benchmark; all stopped on exit."""

    def __init__(self) -> None:
        self.started: list[Proc] = []

    def python(self, *args: str, name: str, **kwargs: Any) -> Proc:
        proc = Proc([PYTHON, *args], name, **kwargs)
        self.started.append(proc)
        return proc

    def run(self, args: list[str], *, name: str, **kwargs: Any) -> Proc:
        proc = Proc(args, name, **kwargs)
        self.started.append(proc)
        return proc

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.started):
            proc.stop()


def start_gui_probe(
    procs: Procs,
    url: str,
    room: str,
    settings: Path,
    *extra: str,
    quit_after: float,
    name: str,
    env: dict[str, str] | None = None,
) -> Proc:
    """The real ``callapp`` window (offscreen) joining ``room``, under :mod:`bench.gui_probe`."""
    return procs.python(
        "-m",
        "bench.gui_probe",
        "--",
        "--server",
        url,
        "--room",
        room,
        "--video",
        "test",
        "--allow-loopback",
        "--settings",
        str(settings),
        "--quit-after",
        str(quit_after),
        *extra,
        name=name,
        env=env,
    )


def start_signaling(
    procs: Procs, *extra: str, name: str = "signaling", **kwargs: Any
) -> tuple[Proc, str]:
    """``callapp-signaling --port 0`` with benchmark-friendly limits; returns it and its URL."""
    proc = procs.python(
        "-m",
        "callapp.signaling.cli",
        "--port",
        "0",
        "--log-level",
        "WARNING",
        "--max-connections-per-address",
        "20000",
        *extra,
        name=name,
        **kwargs,
    )
    _, match = proc.wait_line(r"listening on (ws://\S+)", within=30)
    return proc, match.group(1)


# -- a STUN server that never answers ------------------------------------------------


@contextlib.contextmanager
def silent_stun(host: str = "127.0.0.1") -> Iterator[tuple[str, list[int]]]:
    """A UDP socket that reads every datagram and answers none; yields its URL and a counter."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(0.2)
    received = [0]
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            received[0] += 1

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        yield f"stun:{host}:{sock.getsockname()[1]}", received
    finally:
        stop.set()
        thread.join(1)
        sock.close()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
