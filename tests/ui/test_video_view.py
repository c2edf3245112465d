"""Frame conversion and painting: colours right, aspect kept, mirrored, latest frame wins."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from callapp.ui.frames import fit_size, to_qimage
from callapp.ui.video_view import BACKGROUND, VideoView


def solid(
    width: int, height: int, rgb: tuple[int, int, int], fmt: str = "yuv420p"
) -> av.VideoFrame:
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, :] = rgb
    return av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format=fmt)


def halves(width: int, height: int) -> av.VideoFrame:
    """Left half red, right half blue."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2] = (220, 20, 20)
    array[:, width // 2 :] = (20, 20, 220)
    return av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format="yuv420p")


def close_to(color: QColor, rgb: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(
        abs(a - b) <= tolerance
        for a, b in zip((color.red(), color.green(), color.blue()), rgb, strict=True)
    )


@pytest.mark.parametrize(
    ("src", "box", "fitted"),
    [
        ((1280, 720), (640, 480), (640, 360)),
        ((640, 480), (1600, 900), (1200, 900)),
        ((640, 480), (640, 480), (640, 480)),
        ((480, 640), (400, 400), (300, 400)),
        ((640, 480), (0, 100), (0, 0)),
    ],
)
def test_fit_size_keeps_the_aspect(
    src: tuple[int, int], box: tuple[int, int], fitted: tuple[int, int]
) -> None:
    assert fit_size(*src, *box) == fitted


def test_to_qimage_converts_colours_and_scales(qtbot: QtBot) -> None:
    converted = to_qimage(solid(1280, 720, (200, 40, 40)), 320, 180)
    image = converted.image
    assert (image.width(), image.height()) == (320, 180)
    assert image.format() == QImage.Format.Format_RGB32
    assert close_to(image.pixelColor(160, 90), (200, 40, 40))
    assert converted.source_size == (1280, 720)


def test_a_view_paints_aspect_correct_with_bars(qtbot: QtBot) -> None:
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(400, 200)
    view.show()
    qtbot.waitExposed(view)
    view.show_frame(solid(320, 240, (30, 200, 30)))  # 4:3 in a 2:1 box
    image = view.grab().toImage()
    assert view.frames_painted == 1
    assert close_to(image.pixelColor(200, 100), (30, 200, 30))
    # 4:3 at height 200 is 266 wide: bars of ~67 px each side
    assert image.pixelColor(20, 100) == BACKGROUND
    assert image.pixelColor(380, 100) == BACKGROUND
    assert close_to(image.pixelColor(140, 100), (30, 200, 30))


def test_the_self_view_is_mirrored(qtbot: QtBot) -> None:
    plain, mirror = VideoView(), VideoView(mirrored=True)
    for view in (plain, mirror):
        qtbot.addWidget(view)
        view.resize(320, 240)
        view.show()
        view.show_frame(halves(320, 240))
    left_plain = plain.grab().toImage().pixelColor(40, 120)
    left_mirror = mirror.grab().toImage().pixelColor(40, 120)
    assert close_to(left_plain, (220, 20, 20))
    assert close_to(left_mirror, (20, 20, 220))


def test_latest_frame_wins_when_painting_lags(qtbot: QtBot) -> None:
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(160, 120)
    view.show()
    qtbot.waitExposed(view)
    for shade in range(10):  # ten frames arrive before the next paint
        view.show_frame(solid(160, 120, (shade * 20, 0, 0)))
    image = view.grab().toImage()
    assert view.frames_received == 10
    assert view.frames_painted == 1
    assert view.frames_dropped == 9
    assert close_to(image.pixelColor(80, 60), (180, 0, 0))  # the last one


def test_placeholder_until_a_frame_and_after_clear(qtbot: QtBot) -> None:
    view = VideoView(placeholder="Waiting for the other person")
    qtbot.addWidget(view)
    view.resize(320, 240)
    view.show()
    states = [view.has_picture]
    view.show_frame(solid(64, 48, (250, 250, 250)))
    view.grab()
    states.append(view.has_picture)
    view.clear()
    image = view.grab().toImage()
    states.append(view.has_picture)
    assert states == [False, True, False]
    assert image.pixelColor(5, 5) == BACKGROUND
    assert view.placeholder == "Waiting for the other person"


def test_letterbox_bars_are_repainted_when_the_shape_changes(qtbot: QtBot) -> None:
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(320, 240)
    view.show()
    qtbot.waitExposed(view)
    view.show_frame(solid(320, 240, (200, 200, 30)))  # fills the whole view
    view.grab()
    view.show_frame(solid(320, 180, (30, 30, 200)))  # 16:9: bars above and below
    image = view.grab().toImage()
    assert image.pixelColor(160, 5) == BACKGROUND
    assert image.pixelColor(160, 235) == BACKGROUND
    assert close_to(image.pixelColor(160, 120), (30, 30, 200))
    assert view.frames_painted == 2
