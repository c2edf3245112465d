"""GridComposer: several pictures into one canvas, aspects kept, on black."""

from __future__ import annotations

import numpy as np
import pytest
from av import VideoFrame

from callapp.media.frames import BLACK_Y, black_frame, plane_views
from callapp.media.grid import GridComposer


def flat(width: int, height: int, grey: int) -> VideoFrame:
    frame = black_frame(width, height)
    plane_views(frame)[0].fill(grey)
    return frame


def luma(frame: VideoFrame) -> np.ndarray:
    return plane_views(frame)[0].copy()


def test_nothing_to_compose_until_a_picture_comes() -> None:
    assert GridComposer(64, 36).compose() is None


def test_one_picture_is_letterboxed_with_its_aspect_kept() -> None:
    canvas = GridComposer(160, 90)
    canvas.put("ana", flat(40, 30, 200))  # 4:3 in 16:9: bars left and right
    y = luma(canvas.compose())  # type: ignore[arg-type]
    assert y.shape == (90, 160)
    lit = np.argwhere(y > 150)
    assert lit[:, 0].min() == 0  # full height
    assert lit[:, 0].max() == 89
    width = lit[:, 1].max() - lit[:, 1].min() + 1
    assert width == pytest.approx(120, abs=2)  # 90 x 4/3
    assert (y[:, :10] == BLACK_Y).all()


def test_two_pictures_side_by_side_and_one_who_left_gives_up_its_room() -> None:
    canvas = GridComposer(160, 60)
    canvas.put("ana", flat(40, 30, 100))
    canvas.put("bo", flat(40, 30, 220))
    y = luma(canvas.compose())  # type: ignore[arg-type]
    assert np.median(y[:, :80][y[:, :80] != BLACK_Y]) == 100
    assert np.median(y[:, 80:][y[:, 80:] != BLACK_Y]) == 220
    canvas.put("ana", flat(40, 30, 120))  # the newest frame wins
    canvas.remove("bo")
    canvas.remove("nobody")
    y = luma(canvas.compose())  # type: ignore[arg-type]
    assert 220 not in y
    assert (y == 120).sum() > 60 * 60
    assert canvas.keys == ("ana",)


def test_an_odd_canvas_is_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        GridComposer(101, 60)
