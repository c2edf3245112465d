"""Attack replays against a real ``callapp-signaling`` process with its default limits.

Each attack of issue 15 runs from addresses of its own in 127.0.0.0/8 while a
legitimate client connects from 127.0.0.1 every ``probe_every`` seconds, and
the server's RSS is sampled from ``/proc`` every 20 ms:

* ``slow_readers``: receivers that never read, flooded with 64 KiB messages by
  senders, in ``rounds`` rounds, all from one address (its 256 connections);
* ``deflate_bomb``: 256 connections offering permessage-deflate, each sending
  286-byte compressed frames that would inflate to 256 KiB;
* ``half_open``: 2,000 TCP connections that send half a request and wait,
  against a server whose open-file limit is 1,024 (``prlimit``);
* ``churn``: connect, complete the handshake, drop, as fast as 32 workers go;
* ``spread``: connections from 254 addresses of one /24.

For each: the peak RSS (the largest sample and the kernel's high-water mark
``VmHWM``), the RSS once the attackers have left and how long it took to get
under :data:`RSS_BACK_MIB`, the legitimate client's connect times (TCP
connect to ``welcome``), the refusals and closes counted in ``/metrics``,
and the log: its size, its lines, and any traceback.

    .venv/bin/python -m bench.attacks            # every attack, JSON on stdout
    .venv/bin/python -m bench.attacks churn      # one of them

``tests/signaling/test_attacks.py`` runs the same replays and asserts the
issue's bounds on them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import struct
import sys
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.common import PYTHON, Proc, cpu_seconds, log, peak_rss_bytes, rss_bytes

#: The issue's bounds: peak under this, and back under RSS_BACK_MIB within RSS_BACK_S.
PEAK_MIB = 400
RSS_BACK_MIB = 150
RSS_BACK_S = 5.0
#: A legitimate client connects within this while an attack runs.
CONNECT_S = 1.0

LEGIT = "127.0.0.1"
MESSAGE = 65_000  # characters of data: the message stays under 64 KiB


@dataclass
class Target:
    """A ``callapp-signaling`` process, its port and its output (log) lines."""

    proc: Proc
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def rss_mib(self) -> float:
        return rss_bytes(self.pid) / 2**20

    def log(self) -> str:
        return self.proc.output


@contextlib.contextmanager
def target(*args: str, nofile: int | None = None, name: str = "signaling") -> Iterator[Target]:
    """Run ``callapp-signaling`` with default limits (plus ``args``) at INFO, stop it after."""
    argv = [PYTHON, "-m", "callapp.signaling.cli", "--port", "0", "--log-level", "INFO", *args]
    if nofile is not None:
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            raise RuntimeError("prlimit (util-linux) is needed for the descriptor limit")
        argv = [prlimit, f"--nofile={nofile}:{nofile}", "--", *argv]
    proc = Proc(argv, name)
    try:
        _, match = proc.wait_line(r"listening on ws://[^:]+:(\d+)/ws", within=30)
        yield Target(proc, int(match.group(1)))
    finally:
        proc.stop()


class Sampler:
    """RSS of one process every ``interval`` seconds, on a thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append((time.monotonic(), rss_bytes(self.pid) / 2**20))
            self._stop.wait(self._interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def peak(self, since: float = 0.0) -> float:
        return max((mib for at, mib in self.samples if at >= since), default=0.0)


# -- raw sockets ---------------------------------------------------------------------


def _request(port: int, path: str, headers: dict[str, str]) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def raw_upgrade(
    port: int,
    source: str,
    path: str = "/ws",
    headers: dict[str, str] | None = None,
    within: float = 5.0,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, dict[str, str]]:
    """A hand-made upgrade request from ``source``: the streams, the status and headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(_request(port, path, headers or {}))
        async with asyncio.timeout(within):
            head = await reader.readuntil(b"\r\n\r\n")
    except BaseException:
        writer.transport.abort()
        raise
    status_line, *lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name:
            parsed[name.strip().lower()] = value.strip()
    return reader, writer, int(status_line.split()[1]), parsed


def frame(payload: bytes, opcode: int = 1, rsv1: bool = False) -> bytes:
    """One masked client frame (RFC 6455 5.2), FIN set."""
    head = 0x80 | (0x40 if rsv1 else 0) | opcode
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", head, 0x80 | n)
    elif n < 2**16:
        header = struct.pack("!BBH", head, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", head, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def deflate_bomb(inflated: int = 256 * 1024) -> bytes:
    """A permessage-deflate payload (RFC 7692) of a JSON text that inflates to ``inflated``."""
    text = b'{"type":"message","data":"' + b" " * (inflated - 28) + b'"}'
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data.removesuffix(b"\x00\x00\xff\xff")


# -- the legitimate client ---------------------------------------------------------------


async def connect_time(port: int, within: float = 10.0) -> float:
    """Seconds from TCP connect to ``welcome`` from 127.0.0.1 (a failure counts ``within``)."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(within):
            async with connect(
                f"ws://127.0.0.1:{port}/ws", proxy=None, open_timeout=None, local_addr=(LEGIT, 0)
            ) as ws:
                welcome = json.loads(await ws.recv())
                elapsed = time.monotonic() - started
    except Exception:
        return within
    return elapsed if welcome.get("type") == "welcome" else within


async def _probe_loop(port: int, every: float) -> None:
    while True:
        elapsed = await connect_time(port)
        print(f"connect {elapsed:.4f}", flush=True)
        await asyncio.sleep(every)


class Probe:
    """A legitimate client in a process of its own, connecting every ``every`` seconds.

    A process of its own: on the attackers' event loop its connects would
    wait behind theirs, and time the attacker rather than the server.
    """

    def __init__(self, port: int, every: float = 0.25) -> None:
        self.proc = Proc([PYTHON, "-m", "bench.attacks", "--probe", str(port), str(every)], "probe")

    def stop(self) -> list[float]:
        """Stop probing; the connect times measured."""
        self.proc.stop()
        return [float(m.group(1)) for _, line in self.proc.lines if (m := _CONNECT.match(line))]


_CONNECT = re.compile(r"^connect (\S+)$")


# -- the attacks -------------------------------------------------------------------------


async def _ws(port: int, source: str) -> tuple[ClientConnection, str] | None:
    try:
        ws = await connect(
            f"ws://127.0.0.1:{port}/ws",
            proxy=None,
            local_addr=(source, 0),
            open_timeout=10,
            compression=None,
            max_queue=None,
            ping_interval=None,
        )
    except Exception:
        return None
    try:
        welcome = json.loads(await ws.recv())
    except Exception:
        ws.transport.abort()
        return None
    return ws, welcome["connectionId"]


async def slow_readers(
    port: int,
    rounds: int = 3,
    receivers: int = 64,
    senders: int = 128,
    sender_addresses: int = 4,
    seconds: float = 2.0,
) -> dict[str, Any]:
    """Receivers that never read, flooded with 64 KiB messages; ``rounds`` times over.

    The receivers connect from 127.0.0.2, the senders from ``sender_addresses``
    addresses after it, so that their inbound shares add up and the
    receivers' outboxes really fill.
    """
    data = secrets.token_urlsafe(MESSAGE)[:MESSAGE]
    sent = 0
    sources = [f"127.0.0.{3 + n}" for n in range(sender_addresses)]
    for _ in range(rounds):
        got = await asyncio.gather(*(_ws(port, "127.0.0.2") for _ in range(receivers)))
        victims = [pair for pair in got if pair is not None]
        got = await asyncio.gather(*(_ws(port, sources[n % len(sources)]) for n in range(senders)))
        attackers = [pair for pair in got if pair is not None]
        for ws, _ in victims:
            ws.transport.pause_reading()
        frames = [json.dumps({"type": "message", "to": cid, "data": data}) for _, cid in victims]
        counts = [0] * len(attackers)

        async def flood(
            n: int, ws: ClientConnection, frames: list[str] = frames, counts: list[int] = counts
        ) -> None:
            with contextlib.suppress(Exception):
                while True:
                    await ws.send(frames[(n + counts[n]) % len(frames)])
                    counts[n] += 1

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await asyncio.gather(*(flood(n, ws) for n, (ws, _) in enumerate(attackers)))
        sent += sum(counts)
        for ws, _ in victims + attackers:
            ws.transport.abort()
        await asyncio.sleep(0.2)
    return {
        "messages_sent": sent,
        "rounds": rounds,
        "receivers": receivers,
        "senders": senders,
        "sender_addresses": sender_addresses,
    }


async def deflate_bombs(port: int, connections: int = 256, seconds: float = 4.0) -> dict[str, Any]:
    """Connections offering permessage-deflate, each sending compressed bombs until closed."""
    source = "127.0.0.3"
    bomb = frame(deflate_bomb(), rsv1=True)
    deadline = time.monotonic() + seconds
    stats = {"frames_sent": 0, "deflate_accepted": 0, "upgrades": 0, "refused": 0}

    async def one() -> None:
        while time.monotonic() < deadline:
            try:
                _, writer, status, headers = await raw_upgrade(
                    port,
                    source,
                    headers={"Sec-WebSocket-Extensions": "permessage-deflate"},
                )
            except Exception:
                await asyncio.sleep(0.05)
                continue
            if status != 101:
                stats["refused"] += 1
                writer.transport.abort()
                await asyncio.sleep(0.1)
                continue
            stats["upgrades"] += 1
            if "permessage-deflate" in headers.get("sec-websocket-extensions", ""):
                stats["deflate_accepted"] += 1
            try:
                while time.monotonic() < deadline and not writer.is_closing():
                    writer.write(bomb * 8)
                    stats["frames_sent"] += 8
                    await writer.drain()
                    await asyncio.sleep(0.01)
            except Exception:
                pass
            writer.transport.abort()

    await asyncio.gather(*(one() for _ in range(connections)))
    return stats


async def half_open(port: int, connections: int = 2000, hold: float = 6.0) -> dict[str, Any]:
    """TCP connections that send half an upgrade request and wait for ``hold`` seconds."""
    source = "127.0.0.4"
    half = f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n".encode()
    writers: list[asyncio.StreamWriter] = []
    failed = 0
    gate = asyncio.Semaphore(200)

    async def one() -> None:
        nonlocal failed
        async with gate:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
                writer.write(half)
                writers.append(writer)
            except OSError:
                failed += 1

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(connections)))
    opened_s = time.monotonic() - started
    await asyncio.sleep(1.0)
    # What the server kept: sockets it has not closed on us.
    alive = 0
    for writer in writers:
        with contextlib.suppress(Exception):
            writer.write(b"X-Still: here\r\n")
    await asyncio.sleep(0.2)
    for writer in writers:
        if not writer.is_closing() and not writer.transport.is_closing():
            alive += 1
    await asyncio.sleep(max(0.0, hold - (time.monotonic() - started)))
    for writer in writers:
        writer.transport.abort()
    return {
        "attempted": connections,
        "connect_failed": failed,
        "open_s": round(opened_s, 2),
        "still_open_after_1s": alive,
    }


async def churn(port: int, seconds: float = 4.0, workers: int = 32) -> dict[str, Any]:
    """Upgrade and drop as fast as ``workers`` loops go, from one address."""
    source = "127.0.0.5"
    deadline = time.monotonic() + seconds
    statuses: dict[int, int] = {}

    async def worker() -> None:
        while time.monotonic() < deadline:
            try:
                _, writer, status, _ = await raw_upgrade(port, source)
            except Exception:
                statuses[0] = statuses.get(0, 0) + 1
                continue
            statuses[status] = statuses.get(status, 0) + 1
            writer.transport.abort()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(workers)))
    attempts = sum(statuses.values())
    return {
        "attempts": attempts,
        "per_second": round(attempts / (time.monotonic() - started)),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def spread(port: int, per_address: int = 8, hold: float = 3.0) -> dict[str, Any]:
    """Connections from 254 addresses of 127.0.1.0/24, ``per_address`` each, held a while."""
    sources = [f"127.0.1.{n}" for n in range(1, 255)]
    held: list[asyncio.StreamWriter] = []
    statuses: dict[int, int] = {}
    gate = asyncio.Semaphore(100)

    async def one(source: str) -> None:
        async with gate:
            try:
                _, writer, status, _ = await raw_upgrade(port, source)
            except Exception:
                statuses[0] = statuses.get(0, 0) + 1
                return
        statuses[status] = statuses.get(status, 0) + 1
        if status == 101:
            held.append(writer)
        else:
            writer.transport.abort()

    await asyncio.gather(*(one(s) for s in sources for _ in range(per_address)))
    await asyncio.sleep(hold)
    for writer in held:
        writer.transport.abort()
    return {
        "attempted": len(sources) * per_address,
        "held": len(held),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


# -- measuring ---------------------------------------------------------------------------

_METRIC = re.compile(
    r'^callapp_signaling_(connections_(?:refused|closed)_total)\{reason="([^"]+)"\} (\S+)$'
)


async def metrics(port: int) -> dict[str, dict[str, int]]:
    """The refusal and close counters of ``/metrics``, by reason."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    body = (await reader.read()).decode()
    writer.close()
    found: dict[str, dict[str, int]] = {}
    for line in body.splitlines():
        if match := _METRIC.match(line):
            found.setdefault(match.group(1), {})[match.group(2)] = int(float(match.group(3)))
    return found


async def measure(
    server: Target, attack: Callable[[], Awaitable[dict[str, Any]]], probe_every: float = 0.25
) -> dict[str, Any]:
    """Run ``attack`` against ``server`` with a probe beside it; every figure of the module doc."""
    log_before = len(server.log())
    lines_before = len(server.proc.lines)
    await asyncio.sleep(0.3)
    baseline = server.rss_mib()
    with Sampler(server.pid) as sampler:
        probe = Probe(server.port, probe_every)
        await asyncio.sleep(0.5)  # the probe's interpreter starts
        started = time.monotonic()
        cpu_before = cpu_seconds(server.pid)
        details = await attack()
        took = time.monotonic() - started
        cpu = cpu_seconds(server.pid) - cpu_before
        times = sorted(probe.stop())
        left = time.monotonic()
        back_s: float | None = None
        while time.monotonic() - left < RSS_BACK_S + 1.0:
            if server.rss_mib() < RSS_BACK_MIB and back_s is None:
                back_s = time.monotonic() - left
            if back_s is not None and time.monotonic() - left >= 1.0:
                break
            await asyncio.sleep(0.05)
        residual = server.rss_mib()
        peak = max(sampler.peak(), peak_rss_bytes(server.pid) / 2**20)
    counted = await metrics(server.port)
    text = server.log()[log_before:]
    lines = [line for _, line in server.proc.lines[lines_before:]]
    return {
        "attack": details,
        "attack_s": round(took, 2),
        "server_cpu_pct": round(100 * cpu / took, 1),
        "loadavg_1min": round(os.getloadavg()[0], 1),
        "rss_baseline_mib": round(baseline, 1),
        "rss_peak_mib": round(peak, 1),
        "rss_residual_mib": round(residual, 1),
        "rss_back_under_150_s": None if back_s is None else round(back_s, 2),
        "connect_s_max": round(times[-1], 3) if times else None,
        "connect_s_median": round(times[len(times) // 2], 3) if times else None,
        "connects": len(times),
        "refused": counted.get("connections_refused_total", {}),
        "closed": counted.get("connections_closed_total", {}),
        "log_bytes": len(text),
        "log_lines": len(lines),
        "tracebacks": text.count("Traceback"),
        "log_tail": lines[-5:],
        "connect_times": [round(t, 4) for t in times],
        "log": text,
    }


#: Each attack: the server's options (a descriptor limit) and the attack itself.
ATTACKS: dict[str, tuple[dict[str, Any], Callable[..., Awaitable[dict[str, Any]]]]] = {
    "slow_readers": ({}, slow_readers),
    "deflate_bomb": ({}, deflate_bombs),
    "half_open": ({"nofile": 1024}, half_open),
    "churn": ({}, churn),
    "spread": ({}, spread),
}


async def replay(name: str, **params: Any) -> dict[str, Any]:
    """One attack (with ``params`` for its function) against a fresh server, default limits."""
    options, attack = ATTACKS[name]
    with target(name=f"signaling-{name}", **options) as server:
        return await measure(server, lambda: attack(server.port, **params))


def run(names: tuple[str, ...] = tuple(ATTACKS)) -> dict[str, Any]:
    """Every attack in ``names`` at full size, one fresh server each."""
    results: dict[str, Any] = {}
    for name in names:
        log(f"attacks: {name}")
        figures = asyncio.run(replay(name))
        del figures["log"]
        results[name] = figures
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_probe_loop(int(sys.argv[2]), float(sys.argv[3])))
    else:
        chosen = tuple(sys.argv[1:]) or tuple(ATTACKS)
        print(json.dumps(run(chosen), indent=2))
