"""Call setup: from the second peer's join to the first remote frame, ours beside stock aiortc.

For each case (no ICE servers; a STUN server on 127.0.0.1 that reads and never
answers, configured on both sides) and each repetition, in one run:

* **callapp**: peer A (``callapp call --room R``) waits in the room; peer B is
  started and joins. Figures: B's ``first_frame_ms`` from its
  ``--stats-json`` (its join to its first decoded remote frame); ``both_ms``,
  from B's join to the later of both first frames (media both ways), timed
  from outside on the stamped output lines; ``process_ms``, from spawning B's
  process to its first frame (what a user who starts the app to join waits).
* **stock aiortc**: the same with :mod:`bench.stock_peer` (two plain
  RTCPeerConnections, SDP through the same server, the same test pattern).
  Stock aioice offers no 127.0.0.1 candidates; the stock peers get the
  project's loopback option and nothing else (``--loopback``), as do ours
  (``--allow-loopback``).
* **GUI** (no ICE servers only): peer B is the desktop app, offscreen, through
  :mod:`bench.gui_probe`: from its join action to the first remote frame
  *painted*, and from spawning its process to that paint. Alternating with
  it, the same with the call engine imported before the join
  (``BENCH_GUI_PREIMPORT``), which the launcher otherwise does on the first join.

callapp and stock runs alternate, so load from other work hits both alike.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    BenchError,
    Procs,
    log,
    silent_stun,
    start_gui_probe,
    start_signaling,
    summary,
)

CASES = ("no_ice_servers", "silent_stun")


def _ours(procs: Procs, url: str, room: str, ice: list[str], tmp: Path) -> dict[str, float]:
    common = ["--server", url, "--room", room, "--allow-loopback", "--seconds", "0.5", *ice]
    a = procs.python("-m", "callapp", "call", *common, name=f"ours-A-{room}")
    a.wait_line(r"^joined room", within=60)
    stats_b = tmp / f"{room}-b.json"
    b = procs.python(
        "-m", "callapp", "call", *common, "--stats-json", str(stats_b), name=f"ours-B-{room}"
    )
    spawned = b.started_at
    joined_at, _ = b.wait_line(r"^connection id:", within=60)
    b_ff, _ = b.wait_line(r"^first frame:", within=60)
    a_ff, _ = a.wait_line(r"^first frame:", within=60)
    if b.wait(30) != 0:
        raise BenchError(f"callapp peer B failed:\n{b.tail()}")
    a.wait(30)
    data = json.loads(stats_b.read_text())
    return {
        "first_frame_ms": float(data["first_frame_ms"]),
        "both_ms": round((max(a_ff, b_ff) - joined_at) * 1000, 1),
        "process_ms": round((b_ff - spawned) * 1000, 1),
    }


def _stock(procs: Procs, url: str, room: str, ice: list[str]) -> dict[str, float]:
    common = ["--server", url, "--room", room, "--loopback", "--seconds", "0.5", *ice]
    a = procs.python("-m", "bench.stock_peer", *common, name=f"stock-A-{room}")
    a.wait_line(r"^joined room", within=60)
    b = procs.python("-m", "bench.stock_peer", *common, name=f"stock-B-{room}")
    spawned = b.started_at
    joined_at, _ = b.wait_line(r"^connection id:", within=60)
    b_ff, match = b.wait_line(r"^first frame: (\d+) ms", within=60)
    a_ff, _ = a.wait_line(r"^first frame:", within=60)
    b.wait(30)
    a.wait(30)
    return {
        "first_frame_ms": float(match.group(1)),
        "both_ms": round((max(a_ff, b_ff) - joined_at) * 1000, 1),
        "process_ms": round((b_ff - spawned) * 1000, 1),
    }


def _gui(procs: Procs, url: str, room: str, tmp: Path, *, preimport: bool) -> dict[str, float]:
    a = procs.python(
        "-m",
        "callapp",
        "call",
        "--server",
        url,
        "--room",
        room,
        "--allow-loopback",
        "--seconds",
        "3",
        name=f"gui-A-{room}",
    )
    a.wait_line(r"^joined room", within=60)
    b = start_gui_probe(
        procs,
        url,
        room,
        tmp / f"{room}.ini",
        quit_after=60,
        name=f"gui-B-{room}",
        env={"BENCH_GUI_PREIMPORT": "1"} if preimport else None,
    )
    _, action = b.wait_line(r"^probe: action ([\d.]+)", within=60)
    _, painted = b.wait_line(r"^probe: remote_painted ([\d.]+)", within=60)
    result = {
        "join_to_painted_ms": round((float(painted.group(1)) - float(action.group(1))) * 1000, 1),
        "process_to_painted_ms": round((float(painted.group(1)) - b.started_at) * 1000, 1),
    }
    b.stop()
    a.stop()
    return result


def run(reps: int, *, gui_reps: int = 0, cases: tuple[str, ...] = CASES) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as tmpdir:
        tmp = Path(tmpdir)
        for case in cases:
            ours: list[dict[str, float]] = []
            stock: list[dict[str, float]] = []
            with Procs() as procs, silent_stun() as (stun_url, stun_packets):
                _, url = start_signaling(procs)
                ice = ["--ice-server", stun_url] if case == "silent_stun" else []
                for rep in range(reps):
                    order = ("ours", "stock") if rep % 2 == 0 else ("stock", "ours")
                    for who in order:
                        room = f"{case}-{who}-{rep}"
                        log(f"call setup: {case} {who} #{rep + 1}/{reps}")
                        if who == "ours":
                            ours.append(_ours(procs, url, room, ice, tmp))
                        else:
                            stock.append(_stock(procs, url, room, ice))
            entry: dict[str, Any] = {
                "stun_packets_ignored": stun_packets[0] if case == "silent_stun" else None
            }
            for who, runs in (("callapp", ours), ("stock_aiortc", stock)):
                entry[who] = {key: summary([r[key] for r in runs]) for key in runs[0]}
            ours_median = entry["callapp"]["first_frame_ms"]["median"]
            stock_median = entry["stock_aiortc"]["first_frame_ms"]["median"]
            entry["stock_over_callapp"] = (
                round(stock_median / ours_median, 2) if ours_median and stock_median else None
            )
            results[case] = entry
        if gui_reps:
            # As launched, and with the call engine imported before the join
            # (the launcher imports it lazily, on the first join): alternating.
            gui: dict[bool, list[dict[str, float]]] = {False: [], True: []}
            with Procs() as procs:
                _, url = start_signaling(procs)
                for rep in range(gui_reps):
                    for preimport in (False, True) if rep % 2 == 0 else (True, False):
                        log(f"call setup: GUI #{rep + 1}/{gui_reps} preimport={preimport}")
                        room = f"gui-{rep}-{int(preimport)}"
                        gui[preimport].append(_gui(procs, url, room, tmp, preimport=preimport))
            for preimport, key in ((False, "gui_no_ice_servers"), (True, "gui_engine_preimported")):
                runs = gui[preimport]
                results[key] = {name: summary([g[name] for g in runs]) for name in runs[0]}
    return results
