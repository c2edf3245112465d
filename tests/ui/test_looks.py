"""Light and dark schemes, and high DPI: every word on screen stays readable.

A desktop's dark scheme reaches a Qt app as a dark palette (the platform
theme hands Fusion one). What the app adds must follow it: a colour written
into a style sheet for a light window (dark red text, say) vanishes on a dark
one. So each test paints the whole window under a palette, and for every
visible label and button with words measures, on that picture, the contrast
between the words and what is behind them (WCAG's ratio, as a person sees it:
the window's pixels, not the widget's own idea of its colours).

``QT_SCALE_FACTOR=2`` (a 2x screen) is checked by running this module again
in a second process (:func:`test_the_same_at_twice_the_pixel_density`): the
window is painted at twice the pixels, and no text is cut off.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QWidget
from pytestqt.qtbot import QtBot

from callapp.ui.views import chat_panel
from callapp.ui.views.main_window import MainWindow
from tests.ui.harness import Harness, make_window, run

ROOT = Path(__file__).resolve().parents[2]
SCALE_ENV = "CALLAPP_TEST_SCALE"
#: WCAG AA asks 4.5:1 for text; anti-aliased glyph edges only lower the ratio
#: measured on the brightest pixel a little, so the bar is kept.
MIN_CONTRAST = 4.5


def dark_palette() -> QPalette:
    """A palette like the ones dark desktop themes give Qt (Breeze Dark, Adwaita dark)."""
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2a2e32",
        QPalette.ColorRole.WindowText: "#fcfcfc",
        QPalette.ColorRole.Base: "#1b1e20",
        QPalette.ColorRole.AlternateBase: "#232629",
        QPalette.ColorRole.Text: "#fcfcfc",
        QPalette.ColorRole.Button: "#31363b",
        QPalette.ColorRole.ButtonText: "#fcfcfc",
        QPalette.ColorRole.Highlight: "#3daee9",
        QPalette.ColorRole.HighlightedText: "#fcfcfc",
        QPalette.ColorRole.ToolTipBase: "#31363b",
        QPalette.ColorRole.ToolTipText: "#fcfcfc",
        QPalette.ColorRole.PlaceholderText: "#a1a9b1",
        QPalette.ColorRole.Link: "#1d99f3",
    }
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    return palette


@pytest.fixture(params=["light", "dark"])
def scheme(request: pytest.FixtureRequest, qapp: QApplication) -> Iterator[str]:
    before = qapp.palette()
    if request.param == "dark":
        qapp.setPalette(dark_palette())
    yield str(request.param)
    qapp.setPalette(before)


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def window(
    scheme: str, qtbot: QtBot, h: Harness, qloop: asyncio.AbstractEventLoop
) -> Iterator[MainWindow]:
    win = make_window(qtbot, h)
    yield win
    run(qloop, h.app.shutdown())


def luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of sRGB pixels (..., 3) in 0-255."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return np.asarray(linear @ np.array([0.2126, 0.7152, 0.0722]))


def picture(window: MainWindow) -> tuple[np.ndarray, float]:
    """The window as painted (RGB array in device pixels) and its pixel ratio."""
    pixmap = window.grab()
    image = pixmap.toImage().convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes())
    rows = data.reshape(height, image.bytesPerLine())[:, : width * 3]
    return rows.reshape(height, width, 3).copy(), pixmap.devicePixelRatio()


def contrast_of(region: np.ndarray) -> float:
    """Contrast of the words in ``region`` against what is behind them.

    The background is the median shade inside the region's 2-pixel margin
    (borders and button gradients make "the most common colour" a border);
    the words are the shade farthest from it.
    """
    inner = region[2:-2, 2:-2] if min(region.shape[:2]) > 8 else region
    shades = luminance(inner.reshape(-1, 3))
    background = float(np.median(shades))
    lightest, darkest = float(shades.max()), float(shades.min())
    far = lightest if lightest - background > background - darkest else darkest
    high, low = max(far, background), min(far, background)
    return (high + 0.05) / (low + 0.05)


def worded(root: QWidget) -> list[QWidget]:
    """Visible labels and buttons that show words (not pictures: video, QR code)."""
    found: list[QWidget] = []
    for widget in root.findChildren(QWidget):
        if not widget.isVisible() or widget.width() < 4 or widget.height() < 4:
            continue
        if (isinstance(widget, QLabel) and widget.text() and widget.pixmap().isNull()) or (
            isinstance(widget, QAbstractButton) and widget.text()
        ):
            found.append(widget)
    return found


def unreadable(window: MainWindow, root: QWidget) -> list[str]:
    image, ratio = picture(window)
    bad = []
    for widget in worded(root):
        top_left = widget.mapTo(window, QPoint(0, 0))
        rect = QRect(top_left, widget.size()).intersected(window.rect())
        on_top = window.childAt(rect.center())
        if on_top is not None and on_top is not widget and not widget.isAncestorOf(on_top):
            continue  # under an overlay (the toolbar over a tile's name): see covered()
        x0, y0 = round(rect.x() * ratio), round(rect.y() * ratio)
        x1, y1 = round((rect.x() + rect.width()) * ratio), round((rect.y() + rect.height()) * ratio)
        region = image[y0:y1, x0:x1]
        if region.size == 0:
            continue
        contrast = contrast_of(region)
        if contrast < MIN_CONTRAST:
            text = widget.text()  # type: ignore[attr-defined]
            bad.append(f"{type(widget).__name__} {widget.objectName()!r} {text!r}: {contrast:.1f}")
    return bad


def covered(window: MainWindow, root: QWidget) -> list[str]:
    """Worded widgets under another widget at their centre."""
    names = []
    for widget in worded(root):
        centre = widget.mapTo(window, widget.rect().center())
        on_top = window.childAt(centre)
        if on_top is not None and on_top is not widget and not widget.isAncestorOf(on_top):
            names.append(f"{widget.objectName()} {widget.text()!r} under {on_top.objectName()}")  # type: ignore[attr-defined]
    return names


def assert_readable(window: MainWindow, root: QWidget) -> None:
    bad = unreadable(window, root)
    assert not bad, "\n".join(bad)


def clipped(root: QWidget) -> list[str]:
    """Labels and buttons on one line whose words do not fit their width."""
    bad = []
    for widget in worded(root):
        if isinstance(widget, QLabel) and (widget.wordWrap() or "\n" in widget.text()):
            continue
        text = widget.text()  # type: ignore[attr-defined]
        if isinstance(widget, QLabel) and widget.textFormat() != 0 and "<" in text:
            continue  # rich text: measured by its document, not one line
        needed = widget.fontMetrics().horizontalAdvance(text.replace("&", ""))
        room = widget.contentsRect().width()
        if isinstance(widget, QAbstractButton):
            needed += widget.iconSize().width() if not widget.icon().isNull() else 0
            room = widget.width()
        if needed > room + 1:
            bad.append(
                f"{type(widget).__name__} {widget.objectName()!r} {text!r}: {needed} > {room}"
            )
    return bad


def in_call(h: Harness, qloop: asyncio.AbstractEventLoop, *names: str) -> None:
    run(qloop, h.app.call.join_text("10.0.0.7:9000/team"))
    for name in names:
        h.session.add_peer(f"id-{name}", name)


def test_the_window_follows_the_scheme(window: MainWindow, scheme: str) -> None:
    image, _ = picture(window)
    mean = float(luminance(image).mean())
    assert (mean < 0.25) if scheme == "dark" else (mean > 0.5), mean


def test_every_word_in_the_lobby_is_readable(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    assert len(worded(window.lobby)) >= 6
    assert_readable(window, window.lobby)
    # With an error shown, and hosting with the invite.
    run(qloop, h.app.call.join_text("not a server"))
    assert_readable(window, window.lobby)
    assert not (cut := clipped(window.lobby)), "\n".join(cut)


def test_every_word_in_a_call_is_readable(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    in_call(h, qloop, "Ana", "Bo")
    h.session.update_peer("id-Bo", muted=True, camera_off=True)
    screen = window.call_screen
    screen.set_chat_open(True)
    screen.chat_panel.render_error("The message could not be sent. Try again.")
    qtbot.waitUntil(lambda: screen.chat_panel.maximumWidth() == chat_panel.WIDTH)  # slid in
    assert len(worded(screen)) >= 6
    assert_readable(window, screen)
    assert not (cut := clipped(screen)), "\n".join(cut)
    # With the toolbar away (the mouse at rest), nothing covers a name or a badge.
    screen.toolbar.setVisible(False)
    assert covered(window, screen) == []
    assert_readable(window, screen)
    screen.toolbar.setVisible(True)
    # Reconnecting (it covers the top of the stage while it lasts).
    screen.reconnect_bar.setVisible(True)
    screen.reconnect_label.setText("Reconnecting to the server… 25 s left")
    assert_readable(window, screen.reconnect_bar)
    screen.reconnect_bar.setVisible(False)
    h.session.ring("r", "Cy")
    assert_readable(window, screen)


def test_pixel_density(window: MainWindow) -> None:
    # 1 here; 2 in the second process below.
    _, ratio = picture(window)
    assert ratio == float(os.environ.get(SCALE_ENV, "1"))
    assert window.windowIcon().pixmap(32, 32).devicePixelRatio() == ratio
    assert not window.windowIcon().isNull()


@pytest.mark.skipif(os.environ.get(SCALE_ENV) is not None, reason="already the second process")
def test_the_same_at_twice_the_pixel_density() -> None:
    env = dict(os.environ, QT_SCALE_FACTOR="2", QT_QPA_PLATFORM="offscreen")
    env[SCALE_ENV] = "2"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
