"""Colours and style sheets shared by the views (dark video, the system palette elsewhere).

Text drawn on the system palette follows its scheme: a colour chosen for a
light window is unreadable on a dark one (tests/ui/test_looks.py measures
the contrast of every word on screen in both).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QWidget

BANNER = (
    "QLabel { background: #fbe3e4; color: #8a1f11; border: 1px solid #e4a1a1;"
    " border-radius: 6px; padding: 6px 10px; }"
)
NOTICE = (
    "QLabel { background: #fff4d6; color: #6b4e00; border: 1px solid #e8cf87;"
    " border-radius: 6px; padding: 6px 10px; }"
)
OVERLAY = "background: rgba(20, 22, 26, 200); color: white; border-radius: 8px;"
OVERLAY_TEXT = "color: white; background: transparent;"
BAR = (
    "QFrame#toolbar, QFrame#topBar { background: rgba(20, 22, 26, 210); border-radius: 10px; }"
    " QToolButton { color: white; background: rgba(255,255,255,24); border: none;"
    " border-radius: 6px; padding: 8px 12px; }"
    " QToolButton:checked { background: rgba(255,255,255,70); }"
    " QToolButton:hover, QToolButton:focus { background: rgba(255,255,255,90);"
    " outline: 2px solid #8ab4f8; }"
    " QToolButton#hangUpButton { background: #d93025; }"
    " QToolButton#hangUpButton:focus { outline: 2px solid white; }"
    " QLabel { color: white; background: transparent; }"
)
#: Accept / Decline: the box model (a border set) so Qt draws the colour flat
#: instead of lightening it into its bevel; both at least 5:1 with white text.
ACCEPT_BUTTON = (
    "QPushButton { background: #137333; color: white; border: none; border-radius: 6px;"
    " padding: 8px 18px; font-weight: bold; }"
    " QPushButton:hover { background: #0d652d; }"
    " QPushButton:focus { outline: 2px solid #8ab4f8; }"
)
DECLINE_BUTTON = ACCEPT_BUTTON.replace("#137333", "#b3261e").replace("#0d652d", "#8c1d18")
STAGE_BACKGROUND = "#181a1e"
#: Error text on the system palette: (light scheme, dark scheme).
ERROR_TEXT = ("#b00020", "#ff8a80")


def is_dark(palette: QPalette) -> bool:
    """Whether ``palette`` is a dark scheme's (light text on a dark window)."""
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


class ErrorLabel(QLabel):
    """Words about a problem, in red that reads on the palette's window, light or dark.

    The colour is chosen again when the palette changes (the desktop switched
    between light and dark while the app runs).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self._follow_palette()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._follow_palette()

    def _follow_palette(self) -> None:
        colour = ERROR_TEXT[is_dark(self.palette())]
        sheet = f"QLabel {{ color: {colour}; }}"
        if self.styleSheet() != sheet:
            self.setStyleSheet(sheet)


QUALITY_COLOURS = {"good": "#34a853", "weak": "#fbbc04", "bad": "#ea4335"}
