"""Glass-to-glass latency, smoothness and CPU of two-way calls between two app processes.

Every call here is two processes meeting in a room on one callapp-signaling
server, both sending and both receiving:

* headless: two ``callapp call`` processes run through :mod:`bench.call_probe`
  (the unchanged CLI plus a per-frame arrival hook; with ``stamp`` they send
  :class:`bench.stamp.StampTrack` and read its barcode back);
* GUI: one headless peer and the desktop app, offscreen, through
  :mod:`bench.gui_probe` (which records when each remote frame was painted).

After both report ``phase: connected`` the call warms up for ``warm`` seconds,
then everything is measured over the next ``seconds`` seconds: CPU of each
process from ``/proc/<pid>/stat`` (one core = 100%), frames received (or
painted) per second, the longest gap between two consecutive frames (the
longest freeze) and, with stamps, capture-to-decoded latency of every frame.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH,
    PYTHON,
    ROOT,
    BenchError,
    CpuMeter,
    Proc,
    Procs,
    RssSampler,
    log,
    percentile,
    pss_bytes,
    start_gui_probe,
    start_signaling,
    summary,
)


@dataclass
class Window:
    start: float
    end: float


def _measure(
    pids: dict[str, int], start_at: float, seconds: float
) -> tuple[dict[str, float], dict[str, dict[str, float | None]], Window]:
    """CPU and RSS of ``pids`` over ``seconds`` from ``start_at`` (monotonic), and that window."""
    time.sleep(max(0.0, start_at - time.monotonic()))
    meter = CpuMeter(pids)
    sampler = RssSampler(pids)
    meter.start()
    sampler.start()
    window = Window(time.monotonic(), 0.0)
    time.sleep(seconds)
    cpu = meter.stop()
    rss = sampler.stop()
    window.end = time.monotonic()
    return cpu, rss, window


def _rate_and_freeze(times: list[float], window: Window) -> tuple[float, float | None]:
    """Frames per second inside ``window`` and the longest gap (ms) touching it."""
    inside = [t for t in times if window.start <= t <= window.end]
    fps = len(inside) / (window.end - window.start)
    before = [t for t in times if t < window.start][-1:]
    after = [t for t in times if t > window.end][:1]
    series = before + inside + after
    if len(series) < 2:
        return round(fps, 2), None
    # A gap still open at the window's end counts up to the end.
    gaps = [b - a for a, b in itertools.pairwise(series)]
    if not after and inside:
        gaps.append(window.end - inside[-1])
    return round(fps, 2), round(max(gaps) * 1000, 1)


def _probe(
    procs: Procs,
    url: str,
    room: str,
    name: str,
    tmp: Path,
    *,
    size: str,
    codec: str,
    stamp: bool,
    call_seconds: float,
    fps: float = 30.0,
) -> tuple[Proc, Path, Path]:
    probe_json = tmp / f"{room}-{name}-probe.json"
    stats_json = tmp / f"{room}-{name}-stats.json"
    args = ["-m", "bench.call_probe", "--probe-json", str(probe_json)]
    if stamp:
        args.append("--stamp")
    args += [
        "--",
        "--server",
        url,
        "--room",
        room,
        "--allow-loopback",
        "--size",
        size,
        "--codec",
        codec,
        "--fps",
        f"{fps:g}",
        "--seconds",
        f"{call_seconds:g}",
        "--stats-json",
        str(stats_json),
    ]
    return procs.python(*args, name=f"{name}-{room}"), probe_json, stats_json


def headless_call(
    size: str,
    codec: str,
    *,
    seconds: float,
    warm: float,
    stamp: bool = False,
    fps: float = 30.0,
) -> dict[str, Any]:
    """One two-way headless call; per side: fps, freeze, CPU, memory (and latencies)."""
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmpdir, Procs() as procs:
        tmp = Path(tmpdir)
        _, url = start_signaling(procs)
        room = f"{codec}-{size}-{fps:g}{'-stamp' if stamp else ''}"
        call_seconds = warm + seconds + 1.5
        kw = {
            "size": size,
            "codec": codec,
            "stamp": stamp,
            "call_seconds": call_seconds,
            "fps": fps,
        }
        a, a_probe, a_stats = _probe(procs, url, room, "A", tmp, **kw)  # type: ignore[arg-type]
        a.wait_line(r"^joined room", within=60)
        b, b_probe, b_stats = _probe(procs, url, room, "B", tmp, **kw)  # type: ignore[arg-type]
        connected = max(
            a.wait_line(r"^phase: connected", within=60)[0],
            b.wait_line(r"^phase: connected", within=60)[0],
        )
        cpu, rss, window = _measure({"A": a.pid, "B": b.pid}, connected + warm, seconds)
        pss = {"A": pss_bytes(a.pid), "B": pss_bytes(b.pid)}
        for proc in (a, b):
            if proc.wait(call_seconds + 30) != 0:
                raise BenchError(f"{proc.name} failed:\n{proc.tail()}")
        sides: dict[str, Any] = {}
        for name, probe_path, stats_path in (("A", a_probe, a_stats), ("B", b_probe, b_stats)):
            probe = json.loads(probe_path.read_text())
            stats = json.loads(stats_path.read_text())
            fps, freeze = _rate_and_freeze(probe["arrivals"], window)
            side_pss = pss[name]
            side: dict[str, Any] = {
                "fps_received": fps,
                "longest_freeze_ms": freeze,
                "cpu_pct": cpu[name],
                "rss_mib": rss[name]["median_mib"],
                "rss_max_mib": rss[name]["max_mib"],
                "rss_lifetime_peak_mib": rss[name]["lifetime_peak_mib"],
                "pss_mib": round(side_pss / 2**20, 1) if side_pss else None,
                "codec": stats.get("codec"),
                "received_size": stats.get("received_size"),
                "bitrate_received": stats.get("bitrate_received"),
            }
            if stamp:
                latencies = [
                    (arrival - captured) * 1000
                    for _, captured, arrival in probe["stamps"]
                    if window.start <= arrival <= window.end
                ]
                read = len(probe["stamps"])
                side["latency_ms"] = latencies
                side["stamps_read"] = read
                side["stamps_unreadable"] = probe["unreadable"]
            sides[name] = side
        return sides


def latency(size: str, *, seconds: float, warm: float, fps: float = 30.0) -> dict[str, Any]:
    """Capture-to-decoded latency, both directions pooled, VP8."""
    sides = headless_call(size, "vp8", seconds=seconds, warm=warm, stamp=True, fps=fps)
    pooled = sides["A"]["latency_ms"] + sides["B"]["latency_ms"]
    unreadable = sides["A"]["stamps_unreadable"] + sides["B"]["stamps_unreadable"]
    read = sides["A"]["stamps_read"] + sides["B"]["stamps_read"]
    if not pooled:
        raise BenchError(f"no stamped frame read at {size}")
    return {
        "latency_ms": summary(pooled),
        "latency_p99_ms": percentile(pooled, 0.99),
        "per_direction_median_ms": {
            "A_from_B": summary(sides["A"]["latency_ms"])["median"],
            "B_from_A": summary(sides["B"]["latency_ms"])["median"],
        },
        "frames_read": read,
        "frames_unreadable": unreadable,
        "read_fraction": round(read / (read + unreadable), 4) if read + unreadable else None,
    }


def smoothness(size: str, codec: str, *, seconds: float, warm: float) -> dict[str, Any]:
    sides = headless_call(size, codec, seconds=seconds, warm=warm)
    return {
        "sides": sides,
        "fps_min": min(s["fps_received"] for s in sides.values()),
        "longest_freeze_ms": max(s["longest_freeze_ms"] or 0.0 for s in sides.values()),
        "cpu_pct_max": max(s["cpu_pct"] for s in sides.values()),
        "cpu_pct_mean": round(sum(s["cpu_pct"] for s in sides.values()) / 2, 1),
        "rss_mib_max": max(s["rss_mib"] for s in sides.values()),
        "codec_negotiated": sorted({str(s["codec"]) for s in sides.values()}),
    }


def gui_call(*, seconds: float, warm: float, size: str = "640x480") -> dict[str, Any]:
    """The desktop app (offscreen) in a two-way VP8 call with a headless peer.

    The app takes its capture size from its settings file (there is no flag),
    so the benchmark writes one.
    """
    with tempfile.TemporaryDirectory(prefix="bench-gui-") as tmpdir, Procs() as procs:
        tmp = Path(tmpdir)
        width, height = size.split("x")
        (tmp / "gui.ini").write_text(f"[media]\nvideo=test\nwidth={width}\nheight={height}\n")
        _, url = start_signaling(procs)
        room = f"gui-call-{size}"
        call_seconds = warm + seconds + 1.5
        a, a_probe, a_stats = _probe(
            procs,
            url,
            room,
            "A",
            tmp,
            size=size,
            codec="vp8",
            stamp=False,
            call_seconds=call_seconds + 30,
        )
        a.wait_line(r"^joined room", within=60)
        paints_json = tmp / "paints.json"
        stats_json = tmp / "gui-stats.json"
        b = start_gui_probe(
            procs,
            url,
            room,
            tmp / "gui.ini",
            "--stats-json",
            str(stats_json),
            quit_after=120,
            name="gui",
            env={"BENCH_GUI_PROBE_JSON": str(paints_json)},
        )
        connected = max(
            a.wait_line(r"^phase: connected", within=60)[0],
            b.wait_line(r"^probe: remote_painted", within=60)[0],
        )
        cpu, rss, window = _measure({"headless": a.pid, "gui": b.pid}, connected + warm, seconds)
        pss = pss_bytes(b.pid)
        b.signal(2)  # SIGINT: the window closes cleanly
        b.wait(30)
        a.stop()
        probe = json.loads(paints_json.read_text()) if paints_json.exists() else {}
        paints = probe.get("paints", [])
        views = probe.get("views", {})
        painting_s = sum(v["paint_seconds"] for v in views.values())
        painting_cpu_s = sum(v.get("paint_cpu_seconds", 0.0) for v in views.values())
        first_paint = paints[0] if paints else None
        # UI-thread time converting and painting both views, as a share of one
        # core, from the first remote frame painted to the app's exit.
        span = probe["exited"] - first_paint if first_paint and probe.get("exited") else None
        paint_pct = round(100 * painting_s / span, 1) if span else None
        paint_cpu_pct = round(100 * painting_cpu_s / span, 1) if span else None
        arrivals = json.loads(a_probe.read_text())["arrivals"] if a_probe.exists() else []
        painted_fps, painted_freeze = _rate_and_freeze(paints, window)
        received_fps, received_freeze = _rate_and_freeze(arrivals, window)
        if not paints:
            raise BenchError(f"the GUI painted no remote frame:\n{b.tail()}")
        return {
            "gui_sent_size": (
                json.loads(a_stats.read_text()).get("received_size") if a_stats.exists() else None
            ),
            "gui_fps_painted": painted_fps,
            "gui_longest_freeze_ms": painted_freeze,
            "headless_fps_received": received_fps,
            "headless_longest_freeze_ms": received_freeze,
            "gui_cpu_pct": cpu["gui"],
            "gui_paint_pct": paint_pct,
            "gui_paint_cpu_pct": paint_cpu_pct,
            "headless_cpu_pct": cpu["headless"],
            "gui_rss_mib": rss["gui"]["median_mib"],
            "gui_rss_max_mib": rss["gui"]["max_mib"],
            "gui_rss_lifetime_peak_mib": rss["gui"]["lifetime_peak_mib"],
            "gui_pss_mib": round(pss / 2**20, 1) if pss else None,
            "headless_rss_mib": rss["headless"]["median_mib"],
        }


def run(
    *,
    seconds: float,
    warm: float,
    sizes: tuple[str, ...] = ("640x480", "1280x720"),
    codecs: tuple[str, ...] = ("vp8", "h264"),
    gui: bool = True,
    latency_15fps: bool = True,
) -> dict[str, Any]:
    results: dict[str, Any] = {"latency": {}, "smoothness": {}, "stamp_survives_vp8_500kbps": {}}
    from bench.stamp import survives_vp8

    for size in sizes:
        width, height = (int(x) for x in size.split("x"))
        results["stamp_survives_vp8_500kbps"][size] = survives_vp8(width, height, frames=30)
        log(f"latency {size}")
        results["latency"][size] = latency(size, seconds=seconds, warm=warm)
    if latency_15fps:
        # aiortc's video jitter buffer hands a frame to the decoder only when the
        # next frame's first packet arrives: at 15 fps that wait doubles.
        log("latency 640x480 at 15 fps")
        results["latency_15fps"] = {
            "640x480": latency("640x480", seconds=seconds, warm=warm, fps=15)
        }
    for codec in codecs:
        for size in sizes:
            log(f"smoothness {size} {codec}")
            results["smoothness"][f"{size}_{codec}"] = smoothness(
                size, codec, seconds=seconds, warm=warm
            )
    if gui:
        for size in sizes:
            log(f"smoothness GUI {size} vp8")
            results[f"gui_{size}_vp8"] = gui_call(seconds=seconds, warm=warm, size=size)
    log("UI frame cost (bench/ui_frame_cost.py)")
    results["ui_frame_cost"] = ui_frame_cost()
    results["cpu_count"] = os.cpu_count()
    return results


def ui_frame_cost(frames: int = 60) -> dict[str, Any]:
    """The UI engineer's ``bench/ui_frame_cost.py``, run as it is; its JSON."""
    completed = subprocess.run(
        [PYTHON, str(BENCH / "ui_frame_cost.py"), "--frames", str(frames)],
        cwd=ROOT,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchError(f"bench/ui_frame_cost.py failed:\n{completed.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(completed.stdout)
    return data
