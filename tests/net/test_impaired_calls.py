"""Calls over impaired links, in network namespaces (issue 14's figures).

Two ``callapp call`` processes in namespaces A and B, their media through the
lab's bridge (loss, delay) and ``tc tbf`` (rate), signaling on a clean path
(``tests/net/lab.py``). Figures come from ``--stats-json`` (freezes: gaps
between decoded frames by arrival) and from B's recording (gaps in the
received frames' own timestamps: frames that never made it to the screen).

Stock aiortc, measured the same way (``bench/impaired_calls.py``,
docs/benchmarks.md): at 5 %/50 ms it froze 2-4 times per 20 s for 0.6-7 s.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import pytest

from tests.net.calls import CallResult, run_call
from tests.net.lab import Lab
from tests.sizes import assert_received_as_sent

pytestmark = [pytest.mark.long, pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(150)]

SECONDS = 15.0


def recording_figures(path: Path) -> dict[str, float]:
    """Video frames, the longest gap between consecutive video pts (s), audio seconds."""
    with av.open(str(path)) as container:
        times: list[float] = []
        audio_s = 0.0
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            if packet.stream.type == "video":
                times.append(float(packet.pts * Fraction(packet.time_base)))
            elif packet.stream.type == "audio" and packet.duration:
                audio_s += float(packet.duration * Fraction(packet.time_base))
    times.sort()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {
        "frames": len(times),
        "span_s": times[-1] - times[0] if times else 0.0,
        "max_gap_s": max(gaps) if gaps else 0.0,
        "audio_s": audio_s,
    }


def assert_clean_start(result: CallResult) -> None:
    assert result.codes == {"a": 0, "b": 0}, result.describe()
    for side in ("a", "b"):
        data = result.stats[side]
        assert data["local_candidate_type"] == "host", result.describe()
        assert data["remote_candidate_type"] == "host", result.describe()


def test_five_percent_loss_and_50_ms_each_way(lab: Lab, tmp_path: Path) -> None:
    lab.impair(loss=0.05, delay=0.050)
    result = run_call(lab, tmp_path, seconds=SECONDS, record=True)
    print(result.describe())
    assert_clean_start(result)
    # The bridge did lose about 5 % each way (it is random: 2.5-8 % over ~1500 packets).
    for way in ("ab", "ba"):
        counts = result.bridge[way]
        share = counts["dropped"] / (counts["dropped"] + counts["forwarded"])
        assert 0.025 < share < 0.08, result.describe()
    for side, other in (("a", "b"), ("b", "a")):
        data = result.stats[side]
        assert data["fps_received"] >= 25, result.describe()
        assert data["freeze_max_ms"] <= 500, result.describe()
        # Issue 14 asks for the frame rate and no long freeze; the size may halve
        # where the sender's rate says it may (a loss burst cut it).
        sender_target = result.stats[other]["video_target_bitrate"]
        assert_received_as_sent(data["received_size"], (640, 480), sender_target, result.describe())
        assert 100 <= data["rtt_ms"] <= 400, result.describe()  # 2 x 50 ms through the bridge
        assert data["quality"] == "good", result.describe()
        # Audio kept coming: at least 90 % of its 50 frames a second arrived.
        assert data["audio_frames_received"] >= 0.9 * 50 * SECONDS, result.describe()
        assert data["audio_bitrate"] <= 40_000, result.describe()  # a voice bitrate, FEC on
    assert result.recording is not None
    figures = recording_figures(result.recording)
    assert figures["frames"] >= 25 * SECONDS * 0.95, figures
    assert figures["max_gap_s"] <= 0.5, figures
    assert figures["audio_s"] >= SECONDS * 0.9, figures


def test_500_kbit_link_the_sender_adapts(lab: Lab, tmp_path: Path) -> None:
    lab.set_rate(500)  # both ways, a 400 ms router queue
    result = run_call(lab, tmp_path, seconds=SECONDS, record=True)
    print(result.describe())
    assert_clean_start(result)
    for side in ("a", "b"):
        data = result.stats[side]
        # It adapted instead of queueing: the round trip stays well under the queue's
        # 2 x 400 ms, and what it sends fits the link (audio and video, both ways).
        assert data["rtt_ms"] < 400, result.describe()
        assert data["freeze_max_ms"] <= 1000, result.describe()
        assert data["bitrate_sent"] < 500_000, result.describe()
        assert data["fps_received"] >= 10, result.describe()
        assert data["quality"] in ("good", "poor"), result.describe()
    assert result.recording is not None
    figures = recording_figures(result.recording)
    assert figures["max_gap_s"] <= 1.0, figures
    assert figures["frames"] >= 10 * SECONDS, figures


def test_250_kbit_link_video_steps_down_and_keeps_moving(lab: Lab, tmp_path: Path) -> None:
    lab.set_rate(250)  # both ways, a 400 ms router queue
    result = run_call(lab, tmp_path, seconds=SECONDS, record=True)
    print(result.describe())
    assert_clean_start(result)
    for side in ("a", "b"):
        data = result.stats[side]
        # Half the size or half the rate (VP8 at 80-180 kbit/s), a voice bitrate.
        stepped_down = data["received_size"] != [640, 480] or data["fps_received"] < 20
        assert stepped_down, result.describe()
        assert data["fps_received"] >= 10, result.describe()
        assert data["freeze_max_ms"] <= 1000, result.describe()
        assert data["audio_bitrate"] <= 24_000, result.describe()
        assert data["bitrate_sent"] < 250_000, result.describe()
        assert data["quality"] in ("good", "poor"), result.describe()
    assert result.recording is not None
    figures = recording_figures(result.recording)
    assert figures["max_gap_s"] <= 1.0, figures
    assert figures["frames"] >= 10 * SECONDS, figures
    assert figures["audio_s"] >= SECONDS * 0.9, figures
