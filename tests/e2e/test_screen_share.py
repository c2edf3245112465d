"""Screen sharing between two real ``callapp call`` processes, seen in the peer's recording.

The test starts its own Xvfb (960x540, a size no camera setting here uses)
and paints four solid quadrants on its root window through libX11 (see
tests/xdisplay.py). App A runs with ``DISPLAY`` naming that server and shares
its screen; app B has no display at all and records what it receives with
``--record``. The recording is then decoded with PyAV and every frame is
classified by sampling it at places relative to its size (so scaling by the
recorder, which keeps the first frame's size, does not matter) with a
tolerance far above codec loss and far below the distance between the
colours used:

* *drawing*: the four quadrants in the painted layout;
* *pattern*: the test pattern's colour bars (the reference is rendered with
  :class:`~callapp.media.testpattern.PatternRenderer` itself), at least 11 of
  14 bar samples, since the pattern's moving white square may cover some;
* anything else (a frame mid-switch): neither.

Everything runs on 127.0.0.1 with ``--allow-loopback`` (see test_call_cli.py).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from callapp.media.testpattern import PatternRenderer
from tests.xdisplay import NO_XVFB, RGB, XVFB, fill_quadrants, xvfb

from .conftest import Proc, Procs

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(XVFB is None, reason=NO_XVFB)]

LOOPBACK = "--allow-loopback"
SCREEN_W, SCREEN_H = 960, 540  # A's X screen
CAMERA = (640, 480)  # A's test pattern (--size)
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
DRAWING: tuple[RGB, RGB, RGB, RGB] = (RED, GREEN, BLUE, WHITE)  # TL, TR, BL, BR
ROTATED: tuple[RGB, RGB, RGB, RGB] = (BLUE, RED, WHITE, GREEN)  # the same, turned clockwise
TOLERANCE = 45  # per channel: codec loss is a few levels on flat colour; the colours differ by 64+

# Where frames are sampled, as fractions of width and height.
QUADRANT_POINTS = ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75))
BAR_POINTS = tuple(((i + 0.5) / 7, row) for row in (0.35, 0.65) for i in range(7))
BARS_NEEDED = 11  # of 14: the moving square covers a couple at most


# -- frames ----------------------------------------------------------------------------


def _patch(rgb: NDArray[np.uint8], fx: float, fy: float) -> NDArray[np.float64]:
    """The mean RGB of a small square of ``rgb`` around the point at fractions ``fx, fy``."""
    h, w, _ = rgb.shape
    r = max(2, min(w, h) // 40)
    x, y = int(fx * w), int(fy * h)
    mean: NDArray[np.float64] = rgb[y - r : y + r + 1, x - r : x + r + 1].reshape(-1, 3).mean(0)
    return mean


def _close(actual: NDArray[np.float64], expected: Any) -> bool:
    return bool(np.all(np.abs(actual - np.asarray(expected, np.float64)) <= TOLERANCE))


def shows_quadrants(rgb: NDArray[np.uint8], colours: tuple[RGB, RGB, RGB, RGB]) -> bool:
    return all(
        _close(_patch(rgb, fx, fy), colour)
        for (fx, fy), colour in zip(QUADRANT_POINTS, colours, strict=True)
    )


_PATTERN = PatternRenderer(*CAMERA).render(0, 0.0, 0.0).to_ndarray(format="rgb24")
_BARS = [_patch(_PATTERN, fx, fy) for fx, fy in BAR_POINTS]


def shows_pattern(rgb: NDArray[np.uint8]) -> bool:
    matched = sum(
        _close(_patch(rgb, fx, fy), bar) for (fx, fy), bar in zip(BAR_POINTS, _BARS, strict=True)
    )
    return matched >= BARS_NEEDED


def test_the_classifier_tells_the_drawing_from_the_pattern() -> None:
    """The checks below mean something: each look is recognised, and only itself."""
    drawing = np.zeros((SCREEN_H, SCREEN_W, 3), np.uint8)
    for (fx, fy), colour in zip(((0, 0), (1, 0), (0, 1), (1, 1)), DRAWING, strict=True):
        y, x = fy * SCREEN_H // 2, fx * SCREEN_W // 2
        drawing[y : y + SCREEN_H // 2, x : x + SCREEN_W // 2] = colour
    assert shows_quadrants(drawing, DRAWING)
    assert not shows_quadrants(drawing, ROTATED)
    assert not shows_pattern(drawing)
    for index in (0, 17, 40, 123):  # the moving square in different places
        pattern = PatternRenderer(*CAMERA).render(index, index / 30, 0.0).to_ndarray(format="rgb24")
        assert shows_pattern(pattern)
        assert not shows_quadrants(pattern, DRAWING)
        assert not shows_quadrants(pattern, ROTATED)


def classify(path: Path, looks: dict[str, Any]) -> tuple[list[tuple[str, float]], tuple[int, int]]:
    """Each video frame of the recording at ``path`` as ``(label, time)``, and the video size.

    ``looks`` maps a label to a predicate on an RGB array; a frame gets the
    first label whose predicate holds, or ``"?"``.
    """
    labels: list[tuple[str, float]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")
            label = next((name for name, test in looks.items() if test(rgb)), "?")
            labels.append((label, float(frame.time or 0.0)))
    return labels, size


def runs(labels: list[tuple[str, float]]) -> list[tuple[str, int, float, float]]:
    """Consecutive recognised frames as ``(label, count, first time, last time)``; '?' skipped."""
    known = [item for item in labels if item[0] != "?"]
    out = []
    for label, group in itertools.groupby(known, key=lambda item: item[0]):
        items = list(group)
        out.append((label, len(items), items[0][1], items[-1][1]))
    return out


def audio_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0
        return sum(1 for _ in container.decode(container.streams.audio[0]))


# -- processes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def screen() -> Iterator[str]:
    """The module's Xvfb, as its display name; each test paints what it needs."""
    with xvfb(SCREEN_W, SCREEN_H) as (display, _):
        yield display


def start_with_display(procs: Procs, display: str | None, name: str, *args: str) -> Proc:
    """``callapp call ARGS`` with ``DISPLAY`` set to ``display``, or unset for None."""
    with pytest.MonkeyPatch.context() as env:
        if display is None:
            env.delenv("DISPLAY", raising=False)
        else:
            env.setenv("DISPLAY", display)
        return procs.call(name, *args)


def finished(proc: Proc, within: float = 30.0) -> None:
    code = proc.wait_exit(within)
    assert code == 0, f"{proc.name} exited {code}:\n{proc.output[-4000:]}"


def stats(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# -- the tests -----------------------------------------------------------------------------


def test_shared_screen_reaches_the_peer_then_the_camera_comes_back(
    procs: Procs, server_url: str, tmp_path: Path, screen: str
) -> None:
    """A: test pattern, ``--share-screen screen --share-for 2`` in a 5 s call; B records."""
    fill_quadrants(screen, SCREEN_W, SCREEN_H, DRAWING)
    recording, b_json = tmp_path / "b.mkv", tmp_path / "b.json"
    room = ["--server", server_url, "--room", "e2e-share", LOOPBACK, "--timeout", "20"]
    a = start_with_display(
        procs,
        screen,
        "a",
        *room,
        *("--video", "test", "--size", "x".join(map(str, CAMERA)), "--audio", "tone:440"),
        *("--speaker", "none", "--share-screen", "screen", "--share-for", "2", "--seconds", "5"),
    )
    a.wait_line(r"joined room: e2e-share")
    b = start_with_display(
        procs,
        None,
        "b",
        *room,
        *("--audio", "none", "--speaker", "none"),
        *("--record", str(recording), "--stats-json", str(b_json)),
    )
    b.wait_line(r"first frame", within=20)
    shared_at, _ = a.wait_line(r"^sharing: screen$", within=15)
    told_at, _ = b.wait_line(r"^presence: \S+ \(Guest\) screen$", within=5)
    stopped_at, _ = a.wait_line(r"^sharing: stopped$", within=15, after=shared_at)
    b.wait_line(r"^presence: \S+ \(Guest\)$", within=5, after=told_at)  # and it stopped
    finished(a)
    finished(b)
    assert 1.9 <= stopped_at - shared_at <= 3.0, stopped_at - shared_at
    assert told_at - shared_at < 1.0, "B was told of the share within a second"

    labels, size = classify(
        recording, {"drawing": lambda rgb: shows_quadrants(rgb, DRAWING), "pattern": shows_pattern}
    )
    seen = runs(labels)
    counts = {k: sum(1 for label, _ in labels if label == k) for k in ("drawing", "pattern", "?")}
    print(f"\nscreen share: {len(labels)} frames {size}: {counts}; runs {seen}")
    # The pattern may or may not reach B before the share starts (the share
    # starts as A sees the call connected); after that: the screen, then the
    # camera again, and nothing else.
    if seen and seen[0][0] == "pattern" and len(seen) > 2:
        seen = seen[1:]
    assert [label for label, *_ in seen] == ["drawing", "pattern"], seen
    (_, drawn, first_drawn, last_drawn), (_, after, first_after, last_after) = seen
    assert drawn >= 10, seen  # 2 s of a 15 fps screen: about 30 (fewer on a busy machine)
    assert 1.2 <= last_drawn - first_drawn <= 3.0, seen
    assert after >= 20, seen  # about 3 s of a 30 fps pattern: about 90 (fewer when busy)
    assert last_after - first_after >= 1.5, seen
    assert first_after > last_drawn
    # Mid-switch frames are few: the recognised ones are nearly all.
    assert counts["?"] <= 0.1 * len(labels), counts
    assert audio_frames(recording) > 50  # A's tone came along (over a second of it)
    callee = stats(b_json)
    assert callee["received_size"] == list(CAMERA), callee  # the camera again at the end
    assert callee["frames_received"] >= len(labels) * 0.9, callee


def test_a_call_from_the_screen_shows_it_live_at_its_own_size(
    procs: Procs, server_url: str, tmp_path: Path, screen: str
) -> None:
    """A: ``--video screen`` for 8 s; the test turns its drawing round mid-call; B records."""
    fill_quadrants(screen, SCREEN_W, SCREEN_H, DRAWING)
    recording, b_json = tmp_path / "b.webm", tmp_path / "b.json"
    room = ["--server", server_url, "--room", "e2e-screen", LOOPBACK, "--timeout", "20"]
    a = start_with_display(
        procs,
        screen,
        "a",
        *room,
        # 8 s, though the drawing turns 1 s into the call: B's "first frame"
        # line can reach the test seconds late on a loaded machine.
        *("--video", "screen", "--audio", "tone:440", "--speaker", "none", "--seconds", "8"),
    )
    a.wait_line(r"joined room: e2e-screen")
    b = start_with_display(
        procs,
        None,
        "b",
        *room,
        *("--audio", "none", "--speaker", "none"),
        *("--record", str(recording), "--stats-json", str(b_json)),
    )
    b.wait_line(r"first frame", within=20)
    time.sleep(1.0)
    fill_quadrants(screen, SCREEN_W, SCREEN_H, ROTATED)
    finished(a)
    finished(b)
    assert not any(line.startswith("sharing:") for _, line in a.lines)
    assert os.path.getsize(recording) > 0

    labels, size = classify(
        recording,
        {
            "drawing": lambda rgb: shows_quadrants(rgb, DRAWING),
            "rotated": lambda rgb: shows_quadrants(rgb, ROTATED),
            "pattern": shows_pattern,
        },
    )
    seen = runs(labels)
    counts = {k: sum(1 for label, _ in labels if label == k) for k in ("drawing", "rotated", "?")}
    print(f"\nscreen call: {len(labels)} frames {size}: {counts}; runs {seen}")
    assert size == (SCREEN_W, SCREEN_H)  # the screen's own size, not --size
    assert [label for label, *_ in seen] == ["drawing", "rotated"], seen
    (_, before, *_), (_, after, *_) = seen
    assert before >= 6, seen  # about 1 s at 15 fps before the test turned the drawing
    assert after >= 6, seen  # and over a second after it
    assert counts["?"] <= 0.1 * len(labels), counts
    callee = stats(b_json)
    assert callee["received_size"] == [SCREEN_W, SCREEN_H], callee
