"""A media path that dies mid-call and comes back: the call renegotiates (issue 14).

Two ``callapp call`` processes in the lab's namespaces A and B; signaling runs
in S over clean links of its own, so it stays alive while the media path
(A - bridge - B) is taken down for 3 s. aiortc has no ``restartIce``: the
caller negotiates a fresh peer connection over signaling once nothing has
arrived for the silence timeout, and again every ``RESTART_RETRY`` s until
one connects. The call must recover within 3 s of the path returning, say
"reconnecting" meanwhile, count one ICE restart on each side, and go on to
its full length (no new call, no hang-up).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.net.calls import run_call
from tests.net.lab import Lab

pytestmark = [pytest.mark.long, pytest.mark.e2e, pytest.mark.slow]

DOWN_S = 3.0
CALL_S = 9.0


def _line_time(path: Path, needle: str, until: float) -> float | None:
    """When ``needle`` shows up in ``path`` (polled), or None by ``until``."""
    while time.monotonic() < until:
        if path.exists() and needle in path.read_text(errors="replace"):
            return time.monotonic()
        time.sleep(0.02)
    return None


def test_a_link_down_for_3_s_recovers_with_one_ice_restart(lab: Lab, tmp_path: Path) -> None:
    seen: dict[str, float | None] = {}

    def during(lab: Lab, started: float) -> None:
        time.sleep(2.0)
        down_at = lab.link_down(DOWN_S)
        seen["down"] = down_at
        seen["up"] = down_at + DOWN_S
        for side in ("a", "b"):
            seen[side] = _line_time(tmp_path / f"{side}.out", "peer reconnected", down_at + 15)

    result = run_call(lab, tmp_path, seconds=CALL_S, size="320x240", during=during)
    print(result.describe())
    assert result.codes == {"a": 0, "b": 0}, result.describe()
    for side in ("a", "b"):
        report = result.stats[side]
        output = result.output[side]
        assert "peer reconnecting:" in output, output  # said while the path was down
        assert report["ice_restarts"] == 1, result.describe()
        assert report["completed_calls"] == 1
        assert len(report["peers"]) == 1, "a second call was made instead of recovering"
        # The whole call, not cut short by the outage.
        assert report["duration_s"] is not None
        assert report["duration_s"] > CALL_S - 0.5
        reconnected = seen[side]
        assert reconnected is not None, output
        recovery = reconnected - (seen["up"] or 0.0)
        print(f"{side}: media path renegotiated {recovery:.2f} s after the path came back")
        assert recovery < 3.0
        # The picture stood still across the outage, and freeze_max_ms says so
        # (the fresh connection's frames count on from the old one's last).
        freeze_s = report["freeze_max_ms"] / 1000
        assert DOWN_S <= freeze_s <= DOWN_S + recovery + 1.5, result.describe()
        assert report["quality"] == "poor", result.describe()
    # Video came back: B received frames after the path returned (more than
    # the 2 s before the outage could give at this size and rate).
    assert result.stats["b"]["frames_received"] > 15 * (CALL_S - DOWN_S - 1.5) * 0.6


def test_a_changed_address_mid_call_recovers(lab: Lab, tmp_path: Path) -> None:
    # B's media address changes (a new network): the old ICE pair is dead for
    # good, and a fresh session gathers the new address.
    seen: dict[str, float | None] = {}

    def during(lab: Lab, started: float) -> None:
        time.sleep(1.5)
        # Keep the new address when the old (primary) one goes: without this
        # the kernel deletes the secondaries of a deleted primary too.
        lab.run("b", ["sysctl", "-qw", "net.ipv4.conf.b0.promote_secondaries=1"])
        lab.change_address("b", 3)
        seen["changed"] = time.monotonic()
        seen["b"] = _line_time(tmp_path / "b.out", "peer reconnected", time.monotonic() + 12)

    result = run_call(lab, tmp_path, seconds=7.0, size="320x240", during=during)
    print(result.describe())
    assert result.codes == {"a": 0, "b": 0}, result.describe()
    assert seen["b"] is not None, result.output["b"]
    print(f"address changed -> renegotiated in {seen['b'] - (seen['changed'] or 0):.2f} s")
    for side in ("a", "b"):
        assert result.stats[side]["ice_restarts"] == 1, result.describe()
        assert len(result.stats[side]["peers"]) == 1
