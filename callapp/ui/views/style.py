"""Colours and style sheets shared by the views (dark video, the system palette elsewhere)."""

from __future__ import annotations

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
STAGE_BACKGROUND = "#181a1e"
QUALITY_COLOURS = {"good": "#34a853", "weak": "#fbbc04", "bad": "#ea4335"}
