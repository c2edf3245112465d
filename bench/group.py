"""Group call: N ``callapp call`` processes in one room, each sending to and receiving from all.

    .venv/bin/python -m bench.group                 # 3 people, 640x480 VP8, 10 s measured
    .venv/bin/python -m bench.group --people 4 --seconds 5 --size 320x240
    .venv/bin/python -m bench.group --smoke         # every code path once, a few seconds

The room is a mesh: with N people each process encodes its camera N-1 times
(one VP8 encoder per leg, as aiortc has one per sender) and decodes N-1
streams. Every process runs :func:`callapp.call.cli.main` unchanged, through
this module's probe (``python -m bench.group --probe OUT -- <call args>``),
which only adds a ``remote_by_peer`` frame callback to record when each
decoded frame from each peer arrived (``time.monotonic()``); nothing in
``callapp/`` is changed. Each sends the test pattern and its own tone
(440, 550, 660, ... Hz) and plays nothing (``--speaker none``).

Person A creates the room (``--capacity N``), the others are started together
once A has joined. After every process has said ``peer connected`` for each
of the others, the call warms up for ``warm`` seconds, then for ``seconds``
seconds: CPU of each process from ``/proc/<pid>/stat`` (one core = 100%), its
RSS sampled every 0.25 s (and VmHWM), and per direction the frames received
per second in the window, the median of its one-second counts and the
longest gap between two frames. ``--stats-json`` adds what the app itself
counted per peer (``fps_received`` over the whole leg, audio frames).

Prints one JSON object (see :func:`run`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BenchError,
    CpuMeter,
    Proc,
    Procs,
    RssSampler,
    log,
    machine,
    median,
    start_signaling,
)

NAMES = "ABCDEFGH"
#: One tone per person, so each process sends something of its own.
TONES = (440, 550, 660, 770, 880, 990, 1100, 1210)
#: What counts as receiving a peer smoothly (the goal of the write-up).
GOAL_FPS = 25.0


# -- the probe: runs inside each ``callapp call`` process ----------------------------


def probe_main(argv: list[str]) -> int:
    """``--probe OUT -- ARGS``: run ``callapp call ARGS``; write per-peer arrival times to OUT."""
    out = Path(argv[0])
    call_args = argv[1:]
    if call_args[:1] == ["--"]:
        call_args = call_args[1:]

    from callapp.call import cli
    from callapp.call.session import CallSession

    arrivals: dict[str, list[float]] = {}
    original = CallSession.set_frame_callbacks

    def set_frame_callbacks(self: CallSession, **callbacks: Any) -> None:
        chained = callbacks.get("remote_by_peer")

        def by_peer(peer_id: str, frame: Any) -> None:
            arrivals.setdefault(peer_id, []).append(time.monotonic())
            if chained is not None:
                chained(peer_id, frame)

        original(self, **(callbacks | {"remote_by_peer": by_peer}))

    CallSession.set_frame_callbacks = set_frame_callbacks  # type: ignore[method-assign]
    try:
        return cli.main(call_args)
    finally:
        out.write_text(json.dumps({"arrivals": arrivals}))


# -- the benchmark -------------------------------------------------------------------


def _matches(proc: Proc, pattern: str) -> list[float]:
    """When ``proc`` printed each line matching ``pattern``."""
    regex = re.compile(pattern)
    return [at for at, line in list(proc.lines) if regex.search(line)]


def _wait_count(proc: Proc, pattern: str, count: int, within: float) -> float:
    """When ``proc`` printed its ``count``-th line matching ``pattern``."""
    deadline = time.monotonic() + within
    while True:
        stamps = _matches(proc, pattern)
        if len(stamps) >= count:
            return stamps[count - 1]
        if time.monotonic() > deadline:
            raise BenchError(
                f"{proc.name}: {len(stamps)} of {count} lines matching {pattern!r}"
                f" within {within:g} s; output:\n{proc.tail()}"
            )
        if proc.popen.poll() is not None:
            raise BenchError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        time.sleep(0.05)


def _direction(times: list[float], start: float, end: float) -> dict[str, float | None]:
    """Frames per second of ``times`` in [start, end], its per-second median, longest gap."""
    inside = [t for t in times if start <= t <= end]
    fps = len(inside) / (end - start)
    seconds = int(end - start)
    per_second = [sum(1 for t in inside if start + i <= t < start + i + 1) for i in range(seconds)]
    before = [t for t in times if t < start][-1:]
    after = [t for t in times if t > end][:1]
    series = before + inside + after
    gaps = [b - a for a, b in itertools.pairwise(series)]
    if not after and inside:
        gaps.append(end - inside[-1])  # a gap still open at the end counts up to the end
    return {
        "fps": round(fps, 2),
        "fps_per_second_median": median(per_second) if per_second else None,
        "longest_freeze_ms": round(max(gaps) * 1000, 1) if gaps else None,
    }


def group_call(
    *,
    people: int = 3,
    size: str = "640x480",
    codec: str = "vp8",
    seconds: float = 10.0,
    warm: float = 2.0,
) -> dict[str, Any]:
    """One group call of ``people`` processes; per process and per peer, the figures above."""
    if not 2 <= people <= len(NAMES):
        raise BenchError(f"people must be 2 to {len(NAMES)}")
    names = NAMES[:people]
    with tempfile.TemporaryDirectory(prefix="bench-group-") as tmpdir, Procs() as procs:
        tmp = Path(tmpdir)
        _, url = start_signaling(procs)
        room = f"group-{people}-{size}-{codec}"
        # Each process hangs up --seconds after its own first peer connected;
        # A's first connection comes up to a few seconds before the last one.
        call_seconds = warm + seconds + 6.0
        started: dict[str, Proc] = {}
        files: dict[str, tuple[Path, Path]] = {}

        def start(index: int, name: str) -> Proc:
            probe, stats = tmp / f"{name}-probe.json", tmp / f"{name}-stats.json"
            files[name] = (probe, stats)
            args = [
                *("-m", "bench.group", "--probe", str(probe), "--"),
                *("--server", url, "--room", room, "--capacity", str(people)),
                *("--name", name, "--allow-loopback", "--video", "test", "--size", size),
                *("--codec", codec, "--audio", f"tone:{TONES[index]}", "--speaker", "none"),
                *("--seconds", f"{call_seconds:g}", "--timeout", "60"),
                *("--stats-json", str(stats)),
            ]
            proc = procs.python(*args, name=name)
            started[name] = proc
            return proc

        first = start(0, names[0])
        first.wait_line(r"^joined room", within=60)
        for index, name in enumerate(names[1:], start=1):
            start(index, name)
        connected = max(
            _wait_count(proc, r"^peer connected: ", people - 1, within=60)
            for proc in started.values()
        )
        setup_s = round(connected - first.started_at, 2)
        time.sleep(max(0.0, connected + warm - time.monotonic()))
        pids = {name: proc.pid for name, proc in started.items()}
        meter = CpuMeter(pids)
        sampler = RssSampler(pids)
        meter.start()
        sampler.start()
        window_start = time.monotonic()
        time.sleep(seconds)
        cpu = meter.stop()
        rss = sampler.stop()
        window_end = time.monotonic()
        for proc in started.values():
            ended = _matches(proc, r"^(peer left|call ended): ")
            if ended and ended[0] < window_end:
                raise BenchError(f"{proc.name} lost a peer inside the window:\n{proc.tail()}")
        for proc in started.values():
            if proc.wait(call_seconds + 30) != 0:
                raise BenchError(f"{proc.name} failed:\n{proc.tail()}")

        processes: dict[str, Any] = {}
        for name in names:
            probe_path, stats_path = files[name]
            arrivals = json.loads(probe_path.read_text())["arrivals"]
            report = json.loads(stats_path.read_text())
            peers: dict[str, Any] = {}
            for peer in report["peers"]:
                figures = _direction(arrivals.get(peer["id"], []), window_start, window_end)
                duration = peer.get("duration_s") or 0.0
                peers[peer["name"]] = figures | {
                    "stats_fps_received": peer["fps_received"],
                    "frames_received": peer["frames_received"],
                    "audio_frames_per_s": (
                        round(peer["audio_frames_received"] / duration, 1) if duration else None
                    ),
                    # What this process encoded for that peer (sampled every 0.5 s).
                    "fps_we_sent": round(peer["frames_sent"] / duration, 2) if duration else None,
                    "received_size": peer["received_size"],
                    "codec": peer["codec"],
                }
            missing = set(names) - {name} - set(peers)
            if missing:
                raise BenchError(f"{name} has no leg to {sorted(missing)}: {report['peers']}")
            processes[name] = {
                "from": peers,
                "fps_min": min(p["fps"] for p in peers.values()),
                "cpu_pct": cpu[name],
                "rss_median_mib": rss[name]["median_mib"],
                "rss_peak_mib": rss[name]["max_mib"],
                "rss_lifetime_peak_mib": rss[name]["lifetime_peak_mib"],
            }
        directions = [p["fps"] for proc in processes.values() for p in proc["from"].values()]
        cpus = [proc["cpu_pct"] for proc in processes.values()]
        peaks = [proc["rss_peak_mib"] for proc in processes.values() if proc["rss_peak_mib"]]
        return {
            "people": people,
            "size": size,
            "codec": codec,
            "seconds": seconds,
            "warm": warm,
            "setup_s": setup_s,
            "processes": processes,
            "fps_min": min(directions),
            "fps_median": median(directions),
            "directions_below_goal": sum(1 for fps in directions if fps < GOAL_FPS),
            "cpu_pct_median": median(cpus),
            "cpu_pct_max": max(cpus),
            "cpu_pct_total": round(sum(cpus), 1),
            "rss_peak_mib_max": max(peaks) if peaks else None,
        }


def run(
    *, seconds: float, warm: float, people: int = 3, size: str = "640x480", codec: str = "vp8"
) -> dict[str, Any]:
    """The group call of the write-up: ``people`` (3) at ``size`` (640x480) VP8."""
    log(f"group call: {people} people, {size} {codec}, {seconds:g} s")
    return {
        f"{people}_{size}_{codec}": group_call(
            people=people, size=size, codec=codec, seconds=seconds, warm=warm
        )
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:
        return probe_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bench.group", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--codec", default="vp8", choices=("vp8", "h264"))
    parser.add_argument("--seconds", type=float, default=10.0, help="measured media")
    parser.add_argument("--warm", type=float, default=2.0, help="media before measuring")
    parser.add_argument("--smoke", action="store_true", help="2 s measured, 1 s warm-up")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.warm = 2.0, 1.0
    started = time.monotonic()
    result = {
        "machine": machine(),
        "group": run(
            seconds=args.seconds,
            warm=args.warm,
            people=args.people,
            size=args.size,
            codec=args.codec,
        ),
        "took_s": 0.0,
    }
    result["took_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
