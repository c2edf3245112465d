"""Group rooms with real ``callapp call`` processes through a real signaling server.

A group room is a mesh: every member has one leg (one peer connection) to
every other, and each process encodes its camera once per leg. Everything
here runs on 127.0.0.1 (``--allow-loopback``) with the test pattern, a tone
of its own per process and ``--speaker none`` (the mix is pulled in real
time and thrown away: no sound device needed). Figures come from each
process's ``--stats-json`` ``peers`` list (one object per leg); moments from
when output lines arrived (see ``conftest.Proc``).

On a 2-core machine three processes at 640x480 each encode VP8 twice and
decode twice; the measured figures are printed (``-s``) with each process's
CPU share, from ``/proc/PID/stat`` over the call.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sizes import assert_received_as_sent

from .conftest import Proc, Procs

pytestmark = pytest.mark.e2e

LOOPBACK = "--allow-loopback"
#: Received video from each peer, frames per second over the leg.
# Three processes encoding and decoding two streams each fill both cores here
# (about 65% CPU each); a busy shared machine takes a few frames off the 30.
MIN_FPS = 20.0
#: Opus frames are 20 ms: 50 a second; allow for the start and the end of a leg.
MIN_AUDIO_SHARE = 0.8
CLK_TCK = os.sysconf("SC_CLK_TCK")


def stats(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's legs by the peer's display name (each name appears once)."""
    peers = report["peers"]
    names = [peer["name"] for peer in peers]
    assert len(set(names)) == len(names), f"a peer twice in {names}"
    return {peer["name"]: peer for peer in peers}


def finished(proc: Proc, within: float = 30.0) -> None:
    code = proc.wait_exit(within)
    assert code == 0, f"{proc.name} exited {code}:\n{proc.output[-4000:]}"


def cpu_seconds(proc: Proc) -> float:
    """User + system CPU time of a running process (all its threads)."""
    text = Path(f"/proc/{proc.popen.pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuWatch:
    """Each process's CPU share (one core = 100%) between :meth:`start` and :meth:`stop`."""

    def __init__(self, procs: dict[str, Proc]) -> None:
        self.procs = procs
        self.pct: dict[str, float] = {}

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = {name: cpu_seconds(proc) for name, proc in self.procs.items()}

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t0
        self.pct = {
            name: round(100 * (cpu_seconds(proc) - self._cpu0[name]) / elapsed, 1)
            for name, proc in self.procs.items()
        }
        return self.pct


def wait_peers(proc: Proc, count: int, within: float = 30.0) -> float:
    """When ``proc`` printed its ``count``-th ``peer connected:`` line."""
    deadline = time.monotonic() + within
    while True:
        stamps = [at for at, line in list(proc.lines) if line.startswith("peer connected: ")]
        if len(stamps) >= count:
            return stamps[count - 1]
        if time.monotonic() > deadline or proc.popen.poll() is not None:
            raise AssertionError(
                f"{proc.name}: {len(stamps)} of {count} peers connected within {within} s;"
                f" output:\n{proc.output[-4000:]}"
            )
        time.sleep(0.05)


def line_at(proc: Proc, prefix: str) -> float:
    """When ``proc`` printed its first line starting with ``prefix`` (it must have)."""
    for at, line in proc.lines:
        if line.startswith(prefix):
            return at
    raise AssertionError(f"{proc.name}: no line starting {prefix!r}:\n{proc.output[-4000:]}")


def summary(reports: dict[str, dict[str, Any]], cpu: dict[str, float]) -> dict[str, Any]:
    """What to print: per process, per peer, fps / audio frames a second / seconds; CPU."""
    out: dict[str, Any] = {}
    for name, report in reports.items():
        legs = {}
        for peer in report["peers"]:
            duration = peer["duration_s"] or 0.0
            audio = round(peer["audio_frames_received"] / duration, 1) if duration else None
            legs[peer["name"]] = {
                "fps": peer["fps_received"],
                "frames": peer["frames_received"],
                "audio_per_s": audio,
                "s": duration,
                "end": peer["end_reason"],
            }
        out[name] = {"cpu_pct": cpu.get(name), "from": legs}
    return out


def room_args(server_url: str, room: str, capacity: int, name: str, tone: int) -> list[str]:
    return [
        *("--server", server_url, "--room", room, "--capacity", str(capacity), LOOPBACK),
        *("--name", name, "--audio", f"tone:{tone}", "--speaker", "none", "--video", "test"),
    ]


def test_three_in_a_room_each_receive_both_others_and_two_stay_when_one_leaves(
    procs: Procs, server_url: str, tmp_path: Path
) -> None:
    size = ("--size", "640x480")
    paths = {name: tmp_path / f"{name}.json" for name in ("Ana", "Bo", "Cy")}

    def start(name: str, tone: int, seconds: float) -> Proc:
        return procs.call(
            name,
            *room_args(server_url, "trio", 3, name, tone),
            *size,
            *("--seconds", f"{seconds:g}", "--stats-json", str(paths[name])),
        )

    ana = start("Ana", 440, 15)
    ana.wait_line(r"joined room: trio")
    bo = start("Bo", 550, 15)
    cy = start("Cy", 660, 7)  # leaves early: 7 s after its first peer connected
    everyone = {"Ana": ana, "Bo": bo, "Cy": cy}
    all_connected = max(wait_peers(proc, 2) for proc in everyone.values())
    watch = CpuWatch(everyone)
    watch.start()
    cy_left, _ = ana.wait_line(r"peer left: \S+ \(Cy\)", within=15)
    cpu = watch.stop()
    bo.wait_line(r"peer left: \S+ \(Cy\)", within=5)
    for proc in everyone.values():
        finished(proc)
    reports = {name: stats(path) for name, path in paths.items()}
    print(f"\ntrio (CPU over {cy_left - all_connected:.1f} s of three-way media):")
    print(json.dumps(summary(reports, cpu), indent=1))

    # 1. Everyone received both others' video and audio, for >= 5 s of media.
    for name, report in reports.items():
        legs = by_name(report)
        assert set(legs) == set(everyone) - {name}, (name, list(legs))
        for peer_name, leg in legs.items():
            where = f"{name} from {peer_name}: {leg} (CPU {cpu})"
            assert leg["duration_s"] >= 5.0, where
            assert leg["codec"] == "VP8", where
            sender = by_name(reports[peer_name])[name]
            target = sender["video_target_bitrate"]
            assert_received_as_sent(leg["received_size"], (640, 480), target, (where, target))
            assert leg["fps_received"] >= MIN_FPS, where
            assert leg["frames_received"] >= MIN_FPS * (leg["duration_s"] - 1), where
            audio_expected = 50 * leg["duration_s"] * MIN_AUDIO_SHARE
            assert leg["audio_frames_received"] >= audio_expected, where
            assert leg["frames_sent"] > 0, where
            assert leg["audio_frames_sent"] > 0, where

    # 2. Cy hung up early; Ana and Bo saw it go and stayed in the call together.
    for leg in by_name(reports["Cy"]).values():
        assert leg["end_reason"] == "hung_up", leg
    for name in ("Ana", "Bo"):
        assert by_name(reports[name])["Cy"]["end_reason"] in ("peer_hung_up", "peer_left")
        assert "call ended" not in everyone[name].output.split("peer left:")[0]
    ana_bo, bo_ana = by_name(reports["Ana"])["Bo"], by_name(reports["Bo"])["Ana"]
    for name, proc, leg in (("Ana", ana, ana_bo), ("Bo", bo, bo_ana)):
        left_at = line_at(proc, "peer left: ")
        ended_at = line_at(proc, "call ended: ")
        # The leg to the other stayer went on for seconds after Cy left ...
        assert ended_at - left_at >= 3.0, proc.output
        assert leg["duration_s"] >= by_name(reports[name])["Cy"]["duration_s"] + 2.0, leg
        # ... with frames arriving all along. fps_received is (frames - 1) over
        # the time from the first frame to the last, so this is that time: it
        # covers the leg to within 1 s, well past Cy's going, and part 1 checked
        # that the leg's frames came at >= 25 fps over all of it.
        span = (leg["frames_received"] - 1) / leg["fps_received"]
        assert span >= leg["duration_s"] - 1.0, leg
        assert leg["end_reason"] in ("hung_up", "peer_hung_up"), leg


def test_a_fourth_joining_mid_call_gets_a_leg_to_each_of_the_three(
    procs: Procs, server_url: str, tmp_path: Path
) -> None:
    names = ("Ana", "Bo", "Cy", "Dee")
    paths = {name: tmp_path / f"{name}.json" for name in names}

    def start(name: str, tone: int, seconds: float) -> Proc:
        return procs.call(
            name,
            *room_args(server_url, "quartet", 4, name, tone),
            *("--size", "320x240", "--seconds", f"{seconds:g}"),
            *("--stats-json", str(paths[name])),
        )

    ana = start("Ana", 440, 12)
    ana.wait_line(r"joined room: quartet")
    first = {"Ana": ana, "Bo": start("Bo", 550, 12), "Cy": start("Cy", 660, 12)}
    for proc in first.values():
        wait_peers(proc, 2)
    time.sleep(1.0)  # the three are in a call when the fourth arrives
    dee = start("Dee", 770, 3)
    wait_peers(dee, 3)
    for proc in first.values():
        wait_peers(proc, 3, within=10)
    for proc in (*first.values(), dee):
        finished(proc)
    reports = {name: stats(path) for name, path in paths.items()}
    print("\nquartet:", json.dumps(summary(reports, {}), indent=1))

    legs = by_name(reports["Dee"])
    assert set(legs) == {"Ana", "Bo", "Cy"}, legs
    for peer_name, leg in legs.items():
        # Dee joined last: every earlier member offered to it.
        assert leg["role"] == "callee", (peer_name, leg)
        assert leg["frames_received"] >= 30, (peer_name, leg)
        assert leg["audio_frames_received"] >= 50, (peer_name, leg)
        assert leg["end_reason"] == "hung_up", leg
    for name in first:
        leg = by_name(reports[name])["Dee"]
        assert leg["role"] == "caller", (name, leg)
        assert leg["frames_received"] >= 30, (name, leg)
        assert leg["end_reason"] in ("peer_hung_up", "peer_left"), leg


def test_chat_both_ways_and_names_between_apps(
    procs: Procs, server_url: str, tmp_path: Path
) -> None:
    paths = {name: tmp_path / f"{name}.json" for name in ("Ana", "Bo", "Cy")}

    def start(name: str, tone: int, seconds: float, *extra: str) -> Proc:
        return procs.call(
            name,
            *room_args(server_url, "chat", 3, name, tone),
            *("--size", "320x240", "--seconds", f"{seconds:g}"),
            *("--stats-json", str(paths[name]), *extra),
        )

    ana = start("Ana", 440, 10, "--chat", "hello from Ana")
    ana.wait_line(r"joined room: chat")
    bo = start("Bo", 550, 10, "--chat", "hi Ana, Bo here", "--chat", "second line")
    ana.wait_line(r"chat from Bo: second line")
    bo.wait_line(r"chat from Ana: hello from Ana")
    # Cy joins the call in progress; its line goes to both, one leg each.
    cy = start("Cy", 660, 3, "--chat", "Cy says hi to all")
    ana.wait_line(r"chat from Cy: Cy says hi to all")
    bo.wait_line(r"chat from Cy: Cy says hi to all")
    for proc in (ana, bo, cy):
        finished(proc)
    reports = {name: stats(path) for name, path in paths.items()}
    print("\nchat:", json.dumps({n: r["chat_received"] for n, r in reports.items()}))

    assert reports["Ana"]["chat_received"] == [
        {"from_name": "Bo", "text": "hi Ana, Bo here"},
        {"from_name": "Bo", "text": "second line"},
        {"from_name": "Cy", "text": "Cy says hi to all"},
    ]
    assert reports["Bo"]["chat_received"] == [
        {"from_name": "Ana", "text": "hello from Ana"},
        {"from_name": "Cy", "text": "Cy says hi to all"},
    ]
    assert reports["Cy"]["chat_received"] == []  # it came after the others had spoken
    assert "chat from" not in cy.output
    assert "chat from Ana: hello from Ana" not in ana.output  # nobody hears their own line
    # Every leg is named after the peer's --name.
    for name, report in reports.items():
        legs = by_name(report)
        assert set(legs) == {"Ana", "Bo", "Cy"} - {name}, legs
        for leg in legs.values():
            assert leg["frames_received"] > 0, (name, leg)
            assert (leg["peer_muted"], leg["peer_camera_off"]) == (False, False), (name, leg)


def test_muted_and_camera_off_show_on_the_other_side(
    procs: Procs, server_url: str, tmp_path: Path
) -> None:
    paths = {name: tmp_path / f"{name}.json" for name in ("Ana", "Bo", "Cy")}

    def start(name: str, tone: int, *extra: str) -> Proc:
        return procs.call(
            name,
            *room_args(server_url, "presence", 3, name, tone),
            *("--size", "320x240", "--seconds", "4", "--stats-json", str(paths[name]), *extra),
        )

    ana = start("Ana", 440, "--muted")
    ana.wait_line(r"joined room: presence")
    others = (start("Bo", 550, "--camera-off"), start("Cy", 660))
    for proc in (ana, *others):
        finished(proc)
    for name, path in paths.items():
        legs = by_name(stats(path))
        assert set(legs) == {"Ana", "Bo", "Cy"} - {name}, legs
        for peer_name, leg in legs.items():
            assert leg["peer_muted"] is (peer_name == "Ana"), (name, peer_name, leg)
            assert leg["peer_camera_off"] is (peer_name == "Bo"), (name, peer_name, leg)
            # Muted still sends audio (silence); camera-off still sends video, black
            # frames at the switcher's idle rate (5 a second).
            least_frames = 10 if peer_name == "Bo" else 30
            assert leg["frames_received"] >= least_frames, (name, peer_name, leg)
            assert leg["audio_frames_received"] > 50, (name, peer_name, leg)
