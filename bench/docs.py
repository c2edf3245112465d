"""Write the results table of a benchmark run into docs/benchmarks.md.

Only the text between the two markers below is replaced, so everything else
in the file (notes, other engineers' sections) stays as it is. A file without
the markers gets the block appended.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

START = "<!-- bench:results:start (written by `python -m bench`; edits here are lost) -->"
END = "<!-- bench:results:end -->"

Row = tuple[str, str, str, str, str, str]

#: Server CPU (% of a core) from which a closed-loop run counts as saturating it.
SATURATED = 80.0


def _num(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".strip()


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return "—"
    return "met" if ok else "**missed**"


def _get(data: dict[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _at_most(value: Any, limit: float) -> bool | None:
    return None if not isinstance(value, int | float) else value <= limit


def _at_least(value: Any, limit: float) -> bool | None:
    return None if not isinstance(value, int | float) else value >= limit


def _setup_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    cases = (
        ("no_ice_servers", "no ICE servers", 300.0),
        ("silent_stun", "silent STUN server on both sides", 1000.0),
    )
    for key, label, goal in cases:
        ours = _get(r, "call_setup", key, "callapp")
        stock = _get(r, "call_setup", key, "stock_aiortc")
        if ours is None:
            continue
        ratio = _get(r, "call_setup", key, "stock_over_callapp")
        ff = ours["first_frame_ms"]
        beside = (
            f"stock aiortc {_num(stock['first_frame_ms']['median'], 'ms')}"
            f" (p95 {_num(stock['first_frame_ms']['p95'], 'ms')});"
            f" stock ÷ callapp {_num(ratio, '', 2)}"
            if stock
            else ""
        )
        rows.append(
            (
                f"1. Call setup, {label}: 2nd peer's join → its first remote frame decoded",
                _num(ff["median"], "ms"),
                _num(ff["p95"], "ms"),
                f"≤ {goal:,.0f} ms",
                _verdict(_at_most(ff["median"], goal)),
                beside,
            )
        )
        both = ours["both_ms"]
        rows.append(
            (
                f"1. Call setup, {label}: 2nd peer's join → media both ways",
                _num(both["median"], "ms"),
                _num(both["p95"], "ms"),
                "—",
                "—",
                f"stock aiortc {_num(stock['both_ms']['median'], 'ms')}" if stock else "",
            )
        )
        proc = ours["process_ms"]
        rows.append(
            (
                f"1. Call setup, {label}: 2nd peer's process spawned → first remote frame",
                _num(proc["median"], "ms"),
                _num(proc["p95"], "ms"),
                "—",
                "—",
                f"stock aiortc {_num(stock['process_ms']['median'], 'ms')}" if stock else "",
            )
        )
    gui = _get(r, "call_setup", "gui_no_ice_servers")
    if gui:
        rows.append(
            (
                "1. Call setup, GUI (offscreen), no ICE servers: join → first remote frame painted",
                _num(gui["join_to_painted_ms"]["median"], "ms"),
                _num(gui["join_to_painted_ms"]["p95"], "ms"),
                "≤ 300 ms",
                _verdict(_at_most(gui["join_to_painted_ms"]["median"], 300)),
                f"process spawned → painted {_num(gui['process_to_painted_ms']['median'], 'ms')}",
            )
        )
    warm = _get(r, "call_setup", "gui_engine_preimported")
    if warm:
        rows.append(
            (
                "1. Call setup, GUI, the same with the call engine imported before the join",
                _num(warm["join_to_painted_ms"]["median"], "ms"),
                _num(warm["join_to_painted_ms"]["p95"], "ms"),
                "—",
                "—",
                "what the launcher's lazy import of aiortc & co. costs the first join",
            )
        )
    return rows


def _media_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    runs = [(size, 30, lat) for size, lat in (_get(r, "media", "latency") or {}).items()]
    runs += [(size, 15, lat) for size, lat in (_get(r, "media", "latency_15fps") or {}).items()]
    for size, fps, lat in runs:
        goal = 100.0 if size == "640x480" and fps == 30 else None
        read = lat.get("read_fraction")
        rows.append(
            (
                f"2. Glass-to-glass latency {size}@{fps} VP8 (capture → decoded in the other app)",
                _num(lat["latency_ms"]["median"], "ms", 1),
                _num(lat["latency_ms"]["p95"], "ms", 1),
                "≤ 100 ms median" if goal else "—",
                _verdict(_at_most(lat["latency_ms"]["median"], goal)) if goal else "—",
                f"p99 {_num(lat['latency_p99_ms'], 'ms', 1)}; {lat['latency_ms']['n']} frames,"
                f" barcode read {_num(read * 100 if read is not None else None, '%', 1)}",
            )
        )
    # 640x480: the lean-pipeline goal (stock aiortc, video only, costs about 9%).
    cpu_goals = {"640x480_vp8": 15.0, "1280x720_vp8": 70.0}
    for key, s in (_get(r, "media", "smoothness") or {}).items():
        size, codec = key.split("_")
        label = f"{size} {codec.upper().replace('H264', 'H.264')}"
        rows.append(
            (
                f"3. Two-way call {label}: received fps (worse direction)",
                _num(s["fps_min"], "fps", 1),
                "",
                "30 fps both ways",
                _verdict(_at_least(s["fps_min"], 29.5)),
                f"longest freeze {_num(s['longest_freeze_ms'], 'ms')}",
            )
        )
        goal = cpu_goals.get(key)
        sides = s["sides"]
        rows.append(
            (
                f"3. Two-way call {label}: CPU per app (busier of the two)",
                _num(s["cpu_pct_max"], "%", 1),
                "",
                f"≤ {goal:.0f}% of a core" if goal else "—",
                _verdict(_at_most(s["cpu_pct_max"], goal)) if goal else "—",
                f"A {_num(sides['A']['cpu_pct'], '%', 1)}, B {_num(sides['B']['cpu_pct'], '%', 1)};"
                f" negotiated {', '.join(s['codec_negotiated'])}",
            )
        )
    ui = _get(r, "media", "ui_frame_cost")
    if ui and "paint_view_800x450" in ui:
        naive = ui.get("naive_rgb888_copy_smoothscale_to_800x450") or {}
        rows.append(
            (
                "3. UI thread per 1280x720 frame: convert + paint into an 800x450 view"
                " (`bench/ui_frame_cost.py`)",
                _num(ui["paint_view_800x450"]["median_ms"], "ms", 2),
                _num(ui["paint_view_800x450"]["p95_ms"], "ms", 2),
                "—",
                "—",
                "naive (rgb24 ndarray, QImage copy, smooth scale)"
                f" {_num(naive.get('median_ms'), 'ms', 2)}",
            )
        )
    for size, goal in (("640x480", 35.0), ("1280x720", 70.0)):
        gui = _get(r, "media", f"gui_{size}_vp8")
        if not gui:
            continue
        rows.append(
            (
                f"3. GUI (offscreen) in a two-way {size} VP8 call: frames painted per second",
                _num(gui["gui_fps_painted"], "fps", 1),
                "",
                "30 fps",
                _verdict(_at_least(gui["gui_fps_painted"], 29.5)),
                f"longest freeze {_num(gui['gui_longest_freeze_ms'], 'ms')};"
                f" headless peer received {_num(gui['headless_fps_received'], 'fps', 1)}",
            )
        )
        rows.append(
            (
                f"3. GUI (offscreen) in a two-way {size} VP8 call: CPU of the app",
                _num(gui["gui_cpu_pct"], "%", 1),
                "",
                f"≤ {goal:.0f}% of a core",
                _verdict(_at_most(gui["gui_cpu_pct"], goal)),
                f"headless peer {_num(gui['headless_cpu_pct'], '%', 1)}; the two views'"
                f" paintEvent: {_num(gui.get('gui_paint_pct'), '%', 1)} of wall time,"
                f" {_num(gui.get('gui_paint_cpu_pct'), '%', 1)} of a core in CPU",
            )
        )
    return rows


def _dead_rows(r: dict[str, Any]) -> list[Row]:
    d = r.get("dead_peer")
    if not d:
        return []
    rows: list[Row] = []
    for key, label, goal, stock_key in (
        ("killed_s", "peer killed (kill -9)", 2.0, "stock_killed_s"),
        (
            "network_drop_s",
            "peer's network silently drops (veth down)",
            10.0,
            "stock_network_drop_s",
        ),
    ):
        s = d[key]
        missed = d[key.replace("_s", "_missed")]
        stock = d.get(stock_key)
        beside = f"stock aiortc {_num(stock, 's', 1)}" if stock is not None else ""
        if missed:
            beside += f"; {missed} run(s) never got back to waiting"
        rows.append(
            (
                f"4. Dead peer, {label}: survivor back to waiting",
                _num(s["median"], "s", 2),
                _num(s["p95"], "s", 2),
                f"≤ {goal:.0f} s",
                _verdict(_at_most(s["median"], goal) and not missed),
                beside,
            )
        )
    return rows


def _signaling_rows(r: dict[str, Any]) -> list[Row]:
    s = r.get("signaling")
    if not s:
        return []
    ours, ref = s["callapp"], s["socketio"]
    ratio = s["throughput_ratio_callapp_over_socketio"]
    ours_sat, ref_sat = ours["saturated"], ref["saturated"]
    # Throughput compares servers only if both were CPU-bound; with the load
    # generator and other work on the same 2 cores, the reference often is not.
    saturated = ours_sat["server_cpu_pct"] >= SATURATED and ref_sat["server_cpu_pct"] >= SATURATED
    ours_us, ref_us = ours_sat["server_cpu_us_per_msg"], ref_sat["server_cpu_us_per_msg"]
    cost_ratio = s.get("cpu_per_msg_ratio_callapp_over_socketio")
    rounds = s.get("rounds") or []
    of_rounds = ""
    if len(rounds) > 1:
        ratios = ", ".join(_num(r["throughput_ratio"], "", 2) for r in rounds)
        costs = ", ".join(_num(r["callapp_cpu_us_per_msg"], "", 1) for r in rounds)
        of_rounds = f"; medians of {len(rounds)} alternating rounds (ratios {ratios};"
        of_rounds += f" our µs per message {costs})"
    return [
        (
            f"5. Signaling relay throughput ({s['pairs']} pairs, 1 KiB, closed loop)",
            _num(ours_sat["msgs_per_s"], "msg/s"),
            "",
            "≥ 1.5 × socket.io reference",
            _verdict(_at_least(ratio, 1.5)) if saturated else "inconclusive",
            f"socket.io {_num(ref_sat['msgs_per_s'], 'msg/s')} ({_num(ratio, '×', 2)});"
            f" server CPU {_num(ours_sat['server_cpu_pct'], '%')} vs"
            f" {_num(ref_sat['server_cpu_pct'], '%')}"
            + ("" if saturated else " (not both CPU-bound: see the next row)")
            + of_rounds,
        ),
        (
            "5. Signaling relay cost: server CPU per relayed message (at saturation)",
            _num(ours_us, "µs", 1),
            "",
            "≤ 12 µs",
            _verdict(_at_most(ours_us, 12)),
            f"socket.io {_num(ref_us, 'µs', 1)} ({_num(cost_ratio, '×', 2)}): one core relays"
            f" ~{_num(1e6 / ours_us if ours_us else None, 'msg/s')} vs"
            f" ~{_num(1e6 / ref_us if ref_us else None, 'msg/s')}",
        ),
        (
            "5. Signaling round trip at half the saturating load (p50 / p99)",
            _num(ours["half_load"]["rtt_p50_ms"], "ms", 2),
            _num(ours["half_load"]["rtt_p99_ms"], "ms", 2) + " (p99)",
            "p99 < 5 ms",
            _verdict(
                None
                if ours["half_load"]["rtt_p99_ms"] is None
                else ours["half_load"]["rtt_p99_ms"] < 5
            ),
            f"at {_num(ours['half_load']['msgs_per_s'], 'msg/s')}"
            f" ({_num(ours['half_load']['offered_rate'], '')} offered); socket.io at"
            f" {_num(ref['half_load']['msgs_per_s'], 'msg/s')}:"
            f" {_num(ref['half_load']['rtt_p50_ms'], 'ms', 2)}"
            f" / {_num(ref['half_load']['rtt_p99_ms'], 'ms', 2)}",
        ),
        (
            "5. Signaling memory per idle connection",
            _num(ours["idle"]["kib_per_idle_connection"], "KiB", 1),
            "",
            "≤ 14 KiB",
            _verdict(_at_most(ours["idle"]["kib_per_idle_connection"], 14)),
            f"socket.io {_num(ref['idle']['kib_per_idle_connection'], 'KiB', 1)}"
            f" (measured over {ours['idle']['requested']:,} connections)",
        ),
        (
            "5. Signaling connections held",
            _num(ours["idle"]["held"]),
            "",
            "10,000",
            _verdict(_at_least(ours["idle"]["held"], 10_000)),
            f"of {ours['idle']['requested']:,} opened in {_num(ours['idle']['open_s'], 's', 1)};"
            f" socket.io held {_num(ref['idle']['held'])}",
        ),
    ]


def _startup_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    s = r.get("startup")
    if s:
        rows.append(
            (
                "6. Start-up: process spawned → main window painted (offscreen)",
                _num(s["window_shown_ms"]["median"], "ms"),
                _num(s["window_shown_ms"]["p95"], "ms"),
                "≤ 1,500 ms",
                _verdict(_at_most(s["window_shown_ms"]["median"], 1500)),
                f"imports done at {_num(s['imports_done_ms']['median'], 'ms')};"
                f" bare `python -c pass` {_num(s['bare_python_ms']['median'], 'ms')}",
            )
        )
    for size, limit_mb in (("640x480", 350), ("1280x720", 300)):
        gui = _get(r, "media", f"gui_{size}_vp8")
        if not gui:
            continue
        peak = gui.get("gui_rss_max_mib")
        rows.append(
            (
                f"6. Memory of the desktop app in a {size} call (RSS; median, peak over the call)",
                _num(gui["gui_rss_mib"], "MiB"),
                f"{_num(peak, 'MiB')} (peak)",
                f"≤ {limit_mb} MB peak",
                _verdict(_at_most(peak * 2**20 / 1e6 if peak is not None else None, limit_mb)),
                f"= {_num(peak * 2**20 / 1e6 if peak is not None else None, 'MB')} at peak;"
                f" PSS {_num(gui['gui_pss_mib'], 'MiB')};"
                f" lifetime peak (VmHWM) {_num(gui.get('gui_rss_lifetime_peak_mib'), 'MiB')};"
                f" headless peer {_num(gui['headless_rss_mib'], 'MiB')}",
            )
        )
    return rows


def _group_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for g in (r.get("group") or {}).values():
        people, procs = g["people"], g["processes"]
        label = f"{people} people, {g['size']} {g['codec'].upper()} mesh"
        directions = people * (people - 1)
        worst = min(
            (p["fps"], f"{who} from {peer}")
            for who, proc in procs.items()
            for peer, p in proc["from"].items()
        )
        per_second = [
            p["fps_per_second_median"] for proc in procs.values() for p in proc["from"].values()
        ]
        freeze = max(
            p["longest_freeze_ms"] or 0.0 for proc in procs.values() for p in proc["from"].values()
        )
        rows.append(
            (
                f"7. Group call, {label}: received fps, worst of the {directions} directions",
                _num(g["fps_min"], "fps", 1),
                "",
                "≥ 25 fps from each peer",
                _verdict(_at_least(g["fps_min"], 25.0)),
                f"{worst[1]}; median direction {_num(g['fps_median'], 'fps', 1)}, lowest"
                f" per-second median {_num(min(per_second), 'fps', 1)};"
                f" longest freeze {_num(freeze, 'ms')}",
            )
        )
        rows.append(
            (
                f"7. Group call, {label}: CPU per app (busiest of the {people})",
                _num(g["cpu_pct_max"], "%", 1),
                "",
                "—",
                "—",
                ", ".join(f"{who} {_num(proc['cpu_pct'], '%', 1)}" for who, proc in procs.items())
                + f"; all {people}: {_num(g['cpu_pct_total'], '%')} of the machine's"
                f" {_num(100 * (r.get('machine') or {}).get('nproc', 0), '%')}",
            )
        )
        rows.append(
            (
                f"7. Group call, {label}: memory per app (RSS peak, largest of the {people})",
                _num(g["rss_peak_mib_max"], "MiB"),
                "",
                "—",
                "—",
                ", ".join(
                    f"{who} {_num(proc['rss_peak_mib'], 'MiB')}" for who, proc in procs.items()
                ),
            )
        )
    return rows


SECTIONS: tuple[Callable[[dict[str, Any]], list[Row]], ...] = (
    _setup_rows,
    _media_rows,
    _dead_rows,
    _signaling_rows,
    _startup_rows,
    _group_rows,
)


def _code(results: dict[str, Any]) -> str:
    code = results.get("code") or {}
    text = f"commit {code.get('commit') or 'unknown'}"
    if code.get("callapp_uncommitted"):
        text += " plus uncommitted changes in callapp/"
    return text


def table(results: dict[str, Any], command: str) -> str:
    m = results["machine"]
    lines = [
        START,
        "",
        f"Run **{results['date_utc']}** with `{command}` ({results['mode']} mode,"
        f" {results['took_s']:.0f} s) on {m['nproc']} × {m['cpu_model']}, Python {m['python']},"
        f" {m['platform']}; load average at start {', '.join(map(str, m['loadavg_at_start']))};"
        f" code at {_code(results)}."
        " Raw numbers: `bench/results/latest.json`.",
        "",
        "| Figure | Median | p95 | Goal | Verdict | Same run, for comparison |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows: list[Row] = []
    for section in SECTIONS:
        try:
            rows += section(results)
        except (KeyError, TypeError, ValueError) as exc:
            rows.append((f"{section.__name__}: could not render ({exc!r})", "", "", "", "", ""))
    for name, error in (results.get("failed") or {}).items():
        rows.append((f"{name}: **failed** in this run", "", "", "", "", error[:200]))
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    lines += ["", END]
    return "\n".join(lines)


def update(path: Path, results: dict[str, Any], command: str) -> None:
    block = table(results, command)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
