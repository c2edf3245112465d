"""The call details panel: a live graph per peer of bitrate, frame rate, round trip and loss.

Beside the video, like the chat. What each graph shows (lines, scales,
labels, the numbers in words) comes from :mod:`callapp.ui.logic.history`;
this module only paints it with ``QPainter`` and keeps one section per peer.
Each graph's accessible name says whose and what it is, its accessible
description (and a text line under the peer's name) says the latest numbers,
so a screen reader gets the numbers, not a picture.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from callapp.ui.logic.history import Chart, StatsHistory
from callapp.ui.logic.shortcuts import Action, with_keys

WIDTH = 380
#: Line colours, by a line's place in its chart (received, sent).
LINE_COLOURS = ("#4fc3f7", "#ffb74d")
GRAPH_BACKGROUND = "#202328"
GRID = "#3a3f47"
TEXT = "#d8dce3"


class ChartView(QWidget):
    """One graph: value labels on the left, the time axis below, a legend above."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chart: Chart | None = None
        self.setMinimumSize(170, 110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(180, 120)

    def set_chart(self, chart: Chart, who: str) -> None:
        self.chart = chart
        self.setObjectName(f"{chart.metric.value}Chart")
        self.setAccessibleName(f"{chart.title} graph for {who}")
        self.setAccessibleDescription(f"{chart.text}. Over the last minute.")
        self.setToolTip(chart.text)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        chart = self.chart
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.fillRect(self.rect(), QColor(GRAPH_BACKGROUND))
            if chart is not None:
                self._paint(painter, chart)
        finally:
            painter.end()

    def _paint(self, painter: QPainter, chart: Chart) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.8))
        painter.setFont(font)
        metrics = painter.fontMetrics()
        line_h = metrics.height()
        left = max(metrics.horizontalAdvance(label) for label in chart.value_labels) + 8
        top = line_h + 6
        plot = QRectF(left, top, self.width() - left - 6, self.height() - top - line_h - 6)
        if plot.width() <= 4 or plot.height() <= 4:
            return
        # Title and legend.
        painter.setPen(QColor(TEXT))
        painter.drawText(QPointF(4, line_h - 2), chart.title)
        x = 4.0 + metrics.horizontalAdvance(chart.title) + 10
        if len(chart.lines) > 1:
            for index, line in enumerate(chart.lines):
                colour = QColor(LINE_COLOURS[index % len(LINE_COLOURS)])
                painter.fillRect(QRectF(x, line_h / 2 - 3, 10, 4), colour)
                x += 13
                painter.setPen(QColor(TEXT))
                painter.drawText(QPointF(x, line_h - 2), line.label)
                x += metrics.horizontalAdvance(line.label) + 10
        # Grid and the value axis: 0, half, top.
        for index, label in enumerate(chart.value_labels):
            y = plot.bottom() - plot.height() * index / (len(chart.value_labels) - 1)
            painter.setPen(QPen(QColor(GRID), 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(QColor(TEXT))
            width = metrics.horizontalAdvance(label)
            painter.drawText(QPointF(left - 4 - width, y + metrics.ascent() / 2 - 1), label)
        # The time axis.
        labels = chart.time_labels
        for index, label in enumerate(labels):
            fraction = index / (len(labels) - 1) if len(labels) > 1 else 1.0
            advance = metrics.horizontalAdvance(label)
            at = plot.left() + plot.width() * fraction - advance * fraction
            painter.drawText(QPointF(at, self.height() - 4), label)
        # The lines.
        for index, line in enumerate(chart.lines):
            if not line.points:
                continue
            colour = QColor(LINE_COLOURS[index % len(LINE_COLOURS)])
            painter.setPen(QPen(colour, 2))
            points = [
                QPointF(plot.left() + px * plot.width(), plot.bottom() - py * plot.height())
                for px, py in line.points
            ]
            if len(points) == 1:
                painter.drawEllipse(points[0], 2, 2)
            else:
                painter.drawPolyline(QPolygonF(points))


class PeerSection(QFrame):
    """One peer: the name, the latest numbers in words, four graphs."""

    def __init__(self, peer_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.peer_id = peer_id
        self.setObjectName("peerDetails")
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 6, 0, 6)
        self.name_label = QLabel()
        self.name_label.setObjectName("detailsName")
        self.summary_label = QLabel()
        self.summary_label.setObjectName("detailsSummary")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column.addWidget(self.name_label)
        column.addWidget(self.summary_label)
        grid = QGridLayout()
        grid.setSpacing(6)
        self.charts = [ChartView(self) for _ in range(4)]
        for index, view in enumerate(self.charts):
            grid.addWidget(view, index // 2, index % 2)
        column.addLayout(grid)

    def show_peer(self, name: str, charts: list[Chart], summary: str) -> None:
        self.name_label.setText(f"<b>{_escape(name)}</b>")
        self.name_label.setAccessibleName(f"Details for {name}")
        text = summary or "No numbers yet."
        self.summary_label.setText(text)
        self.summary_label.setAccessibleName(f"{name}: {text}")
        for view, chart in zip(self.charts, charts, strict=False):
            view.set_chart(chart, name)


class DetailsPanel(QFrame):
    """Renders a :class:`StatsHistory`; forwards Close."""

    closeClicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("detailsPanel")
        self.setAccessibleName("Call details")
        self.setAccessibleDescription(
            "Bitrate, frame rate, round trip and packet loss over the last minute, per person"
        )
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFixedWidth(WIDTH)
        column = QVBoxLayout(self)
        header = QHBoxLayout()
        title = QLabel("<b>Call details</b>")
        header.addWidget(title, 1)
        self.close_button = QPushButton("Close")
        self.close_button.setObjectName("closeDetailsButton")
        self.close_button.setAccessibleName("Close the call details")
        self.close_button.setToolTip(with_keys("Close the call details", Action.DETAILS))
        self.close_button.clicked.connect(self.closeClicked)
        header.addWidget(self.close_button)
        column.addLayout(header)
        self.empty_label = QLabel("The numbers appear here once someone is in the call.")
        self.empty_label.setObjectName("detailsEmpty")
        self.empty_label.setWordWrap(True)
        column.addWidget(self.empty_label)
        self.scroll_area = QScrollArea(self)
        self.scroll_area.setObjectName("detailsScroll")
        self.scroll_area.setAccessibleName("Details for each person")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        self.sections_layout = QVBoxLayout(body)
        self.sections_layout.setContentsMargins(0, 0, 0, 0)
        self.sections_layout.addStretch(1)
        self.scroll_area.setWidget(body)
        column.addWidget(self.scroll_area, 1)
        self.sections: dict[str, PeerSection] = {}
        self.setVisible(False)

    def show_history(self, history: StatsHistory, name_of: Callable[[str], str]) -> None:
        """One section per peer in ``history``, in its order, named by ``name_of``."""
        wanted = history.peers()
        for peer_id in [p for p in self.sections if p not in wanted]:
            section = self.sections.pop(peer_id)
            self.sections_layout.removeWidget(section)
            section.hide()
            section.deleteLater()
        for index, peer_id in enumerate(wanted):
            shown = self.sections.get(peer_id)
            if shown is None:
                shown = self.sections[peer_id] = PeerSection(peer_id)
                self.sections_layout.insertWidget(index, shown)
            shown.show_peer(name_of(peer_id), history.charts(peer_id), history.summary(peer_id))
        self.empty_label.setVisible(not wanted)

    def texts(self) -> list[str]:
        """Every text shown (for the wording checks)."""
        found = [self.empty_label.text()] if self.empty_label.isVisible() else []
        for section in self.sections.values():
            found += [section.name_label.text(), section.summary_label.text()]
            for view in section.charts:
                if view.chart is not None:
                    found += [view.chart.title, *view.chart.value_labels, view.chart.text]
        return found


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = ["ChartView", "DetailsPanel", "PeerSection"]
