"""The benchmarks still work: ``python -m bench --smoke`` runs every benchmark's code path once.

No thresholds (figures depend on the machine and its load); only that the JSON
has every expected figure, as a number. Needs what the benchmarks need: Node.js
with npm (the socket.io reference) and root for network namespaces (the
dead-peer drop case).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

SUMMARY = ("median", "p95", "min", "max", "n")

#: Dotted paths to figures the smoke run must produce; "*" expands SUMMARY.
EXPECTED = [
    *(
        f"call_setup.{case}.{who}.{figure}.*"
        for case in ("no_ice_servers", "silent_stun")
        for who in ("callapp", "stock_aiortc")
        for figure in ("first_frame_ms", "both_ms", "process_ms")
    ),
    "call_setup.no_ice_servers.stock_over_callapp",
    "call_setup.silent_stun.stock_over_callapp",
    "call_setup.silent_stun.stun_packets_ignored",
    "call_setup.gui_no_ice_servers.join_to_painted_ms.*",
    "call_setup.gui_no_ice_servers.process_to_painted_ms.*",
    "call_setup.gui_engine_preimported.join_to_painted_ms.*",
    "media.latency.640x480.latency_ms.*",
    "media.latency.640x480.latency_p99_ms",
    "media.latency.640x480.read_fraction",
    "media.stamp_survives_vp8_500kbps.640x480",
    *(
        f"media.smoothness.640x480_vp8.{key}"
        for key in ("fps_min", "longest_freeze_ms", "cpu_pct_max", "cpu_pct_mean", "rss_mib_max")
    ),
    *(
        f"media.smoothness.640x480_vp8.sides.{side}.{key}"
        for side in ("A", "B")
        for key in ("fps_received", "longest_freeze_ms", "cpu_pct", "rss_mib")
    ),
    *(
        f"media.gui_640x480_vp8.{key}"
        for key in (
            "gui_fps_painted",
            "gui_longest_freeze_ms",
            "headless_fps_received",
            "gui_cpu_pct",
            "headless_cpu_pct",
            "gui_rss_mib",
            "headless_rss_mib",
        )
    ),
    "media.ui_frame_cost.paint_view_800x450.median_ms",
    "dead_peer.killed_s.*",
    "dead_peer.network_drop_s.*",
    "dead_peer.killed_missed",
    "dead_peer.network_drop_missed",
    *(
        f"signaling.{target}.{part}.{key}"
        for target in ("callapp", "socketio")
        for part in ("saturated", "half_load")
        for key in ("msgs_per_s", "rtt_p50_ms", "rtt_p99_ms", "server_cpu_pct")
    ),
    *(
        f"signaling.{target}.idle.{key}"
        for target in ("callapp", "socketio")
        for key in ("opened", "held", "kib_per_idle_connection", "open_s")
    ),
    "signaling.throughput_ratio_callapp_over_socketio",
    "signaling.cpu_per_msg_ratio_callapp_over_socketio",
    "signaling.memory_ratio_callapp_over_socketio",
    *(
        f"signaling_cluster.{part}.{key}"
        for part in ("saturated", "half_load")
        for key in ("msgs_per_s", "rtt_p50_ms", "rtt_p99_ms", "cpu_us_per_msg")
    ),
    "signaling_cluster.idle.kib_per_idle_connection",
    "signaling_cluster.idle.kib_per_idle_connection_with_redis",
    *(
        f"signaling_cluster.outages.{kind}.{key}"
        for kind in ("restart", "stall")
        for key in ("sent", "arrived", "lost", "duplicated", "resumed_after_s")
    ),
    "startup.window_shown_ms.*",
    "startup.imports_done_ms.*",
    "startup.bare_python_ms.*",
    *(
        f"group.3_640x480_vp8.{key}"
        for key in (
            "setup_s",
            "fps_min",
            "fps_median",
            "directions_below_goal",
            "cpu_pct_median",
            "cpu_pct_max",
            "cpu_pct_total",
            "rss_peak_mib_max",
        )
    ),
    *(
        f"group.3_640x480_vp8.processes.{who}.{key}"
        for who in "ABC"
        for key in ("fps_min", "cpu_pct", "rss_peak_mib", "rss_lifetime_peak_mib")
    ),
    *(
        f"group.3_640x480_vp8.processes.{who}.from.{peer}.{key}"
        for who in "ABC"
        for peer in "ABC"
        if peer != who
        for key in ("fps", "fps_per_second_median", "longest_freeze_ms", "stats_fps_received")
    ),
    "fuzz.core.frames_per_s",
    *(
        f"fuzz.{part}.{key}"
        for part in ("sockets", "sockets_default_limits")
        for key in ("frames_per_s", "rss_before_mib", "rss_after_mib", "tracebacks")
    ),
    *(
        f"attacks.churn.{key}"
        for key in ("rss_peak_mib", "rss_residual_mib", "connect_s_max", "tracebacks")
    ),
    "machine.nproc",
    "took_s",
]


def _paths() -> list[str]:
    paths: list[str] = []
    for path in EXPECTED:
        if path.endswith(".*"):
            paths.extend(f"{path[:-2]}.{key}" for key in SUMMARY)
        else:
            paths.append(path)
    return paths


def _lookup(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        assert isinstance(node, dict), f"{path}: not an object above {part!r}"
        assert part in node, f"missing {path} (at {part!r})"
        node = node[part]
    return node


def _prerequisites() -> str | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js and npm are needed for the socket.io reference"
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "network namespaces (root, iproute2) are needed for the network-drop case"
    return None


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.timeout(360)
def test_smoke_run_reports_every_figure(tmp_path: Path) -> None:
    missing = _prerequisites()
    if missing:
        pytest.skip(missing)
    out = tmp_path / "smoke.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--no-docs", "--json-out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=340,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    data = json.loads(out.read_text())
    assert json.loads(completed.stdout) == data
    assert data["mode"] == "smoke"
    not_numbers = {}
    for path in _paths():
        value = _lookup(data, path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            not_numbers[path] = value
    assert not not_numbers, f"figures that are not numbers: {not_numbers}"
