"""Telling screen readers what changed: the status line, the banner, an incoming call.

A QLabel whose text changes is not read out by itself; an accessibility
event for it is what makes Orca or NVDA say it. Status changes are name
changes (read when convenient), problems are alerts (read at once).
"""

from __future__ import annotations

from PySide6.QtGui import QAccessible, QAccessibleEvent
from PySide6.QtWidgets import QWidget


def announce(widget: QWidget, text: str, *, urgent: bool = False) -> None:
    """Make ``text`` what assistive technology reads for ``widget``, and tell it so.

    ``urgent`` sends an alert (an error, a call ending) instead of a name change.
    Nothing is sent for "" (a cleared banner is not news).
    """
    widget.setAccessibleDescription(text)
    if not text:
        return
    kind = QAccessible.Event.Alert if urgent else QAccessible.Event.NameChanged
    _send(QAccessibleEvent(widget, kind))


def _send(event: QAccessibleEvent) -> None:
    # One seam: the tests read the events here (no screen reader runs offscreen).
    QAccessible.updateAccessibility(event)


__all__ = ["announce"]
