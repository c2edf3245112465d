"""The call screen: the video is the window.

Tiles for the others fill the stage (:mod:`callapp.ui.logic.tiles` says
where), the self-view sits where it covers no tile, and everything else
floats over the video: the status and timer at the top, the banner, the
toolbar at the bottom (it hides when the mouse rests and comes back on a
move), the incoming-call panel, the invite panel while nobody else is here.
The chat panel slides in beside the stage, and so does the call details
panel (a graph per peer; More → Call details, or its shortcut). While we
record, "● Recording" stays on the video, even when the controls hide.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from callapp.call.state import CallSnapshot, LegState
from callapp.ui.address import invite_hint
from callapp.ui.logic import quality, wording
from callapp.ui.logic.tiles import DEFAULT_ASPECT, layout
from callapp.ui.models.app import AppModel
from callapp.ui.models.hosting import Hosting
from callapp.ui.video_view import VideoView
from callapp.ui.views.announce import announce
from callapp.ui.views.chat_panel import ChatPanel
from callapp.ui.views.details_panel import DetailsPanel
from callapp.ui.views.invite_panel import InvitePanel
from callapp.ui.views.ringing_panel import RingingPanel
from callapp.ui.views.style import BANNER, BAR, NOTICE, QUALITY_COLOURS, STAGE_BACKGROUND
from callapp.ui.views.tile import Tile
from callapp.ui.views.toolbar import Toolbar

#: The toolbar hides after the mouse rested this long (milliseconds).
HIDE_AFTER_MS = 3000


class Stage(QWidget):
    """The dark area the tiles and overlays are placed on."""

    doubleClicked = Signal()
    resized = Signal()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(STAGE_BACKGROUND))
        painter.end()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.resized.emit()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.doubleClicked.emit()
        event.accept()


class CallScreen(QWidget):
    """Renders the call model; forwards presses to it."""

    fullScreenRequested = Signal()
    helpRequested = Signal()
    preferencesRequested = Signal()

    def __init__(self, app: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.setObjectName("callScreen")
        self.tiles: dict[str, Tile] = {}
        self.pinned: str | None = None
        self.show_codes = False
        self._retired = [0, 0, 0.0]  # painted, dropped, paint seconds of tiles gone
        self.first_frame_at: float | None = None
        #: :meth:`video_fraction` as last measured while someone's picture was shown.
        self.last_video_fraction = 0.0
        self.hide_after_ms = HIDE_AFTER_MS
        self._self_aspect = DEFAULT_ASPECT
        self._build()
        self._wire()
        self._render_snapshot(app.call.snapshot)
        self._render_hosting(app.hosting)

    # -- construction ------------------------------------------------------------

    def _build(self) -> None:
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.stage = Stage(self)
        self.stage.setObjectName("stage")
        self.stage.setMouseTracking(True)
        row.addWidget(self.stage, 1)
        self.details_panel = DetailsPanel(self)
        row.addWidget(self.details_panel)
        self.chat_panel = ChatPanel(self)
        row.addWidget(self.chat_panel)

        self.self_view = VideoView(self.stage, mirrored=True, placeholder="Camera off")
        self.self_view.setObjectName("localView")
        self.self_view.setMinimumSize(1, 1)
        self.self_view.setAccessibleName("Your video")
        self.top_bar = QFrame(self.stage)
        self.top_bar.setObjectName("topBar")
        self.top_bar.setStyleSheet(BAR)
        top = QHBoxLayout(self.top_bar)
        top.setContentsMargins(12, 6, 12, 6)
        self.status_label = QLabel()
        self.status_label.setObjectName("statusLabel")
        self.status_label.setAccessibleName("Call status")
        self.timer_label = QLabel()
        self.timer_label.setObjectName("timerLabel")
        self.timer_label.setAccessibleName("Call length")
        self.quality_label = QLabel()
        self.quality_label.setObjectName("qualityLabel")
        self.quality_label.setAccessibleName("Connection quality")
        for label in (self.status_label, self.timer_label, self.quality_label):
            top.addWidget(label)
        # On the stage, not in the top bar: it stays while the controls hide.
        self.recording_label = QLabel(wording.RECORDING_INDICATOR, self.stage)
        self.recording_label.setObjectName("recordingLabel")
        self.recording_label.setAccessibleName(wording.RECORDING_INDICATOR_NAME)
        self.recording_label.setToolTip(wording.RECORDING_INDICATOR_NAME)
        self.recording_label.setStyleSheet(
            "QLabel { color: #ff6b6b; background: rgba(20, 22, 26, 210);"
            " border-radius: 8px; padding: 4px 10px; font-weight: bold; }"
        )
        self.recording_label.setVisible(False)
        self.banner = QLabel(self.stage)
        self.banner.setObjectName("callBanner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(BANNER)
        self.banner.setAccessibleName("Message")
        self.banner.setVisible(False)
        self.notice = QLabel(self.stage)
        self.notice.setObjectName("callNotice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet(NOTICE)
        self.notice.setVisible(False)
        self.reconnect_bar = QFrame(self.stage)
        self.reconnect_bar.setObjectName("reconnectBar")
        self.reconnect_bar.setStyleSheet(BANNER.replace("QLabel", "QFrame#reconnectBar"))
        bar = QHBoxLayout(self.reconnect_bar)
        bar.setContentsMargins(10, 4, 6, 4)
        self.reconnect_label = QLabel()
        self.reconnect_label.setObjectName("reconnectLabel")
        self.reconnect_label.setStyleSheet("color: #8a1f11;")
        self.cancel_reconnect_button = QPushButton("Cancel")
        self.cancel_reconnect_button.setObjectName("cancelReconnectButton")
        self.cancel_reconnect_button.setAccessibleName("Stop reconnecting and leave the call")
        bar.addWidget(self.reconnect_label, 1)
        bar.addWidget(self.cancel_reconnect_button)
        self.reconnect_bar.setVisible(False)
        self.invite_panel = InvitePanel(self.stage)
        self.ringing_panel = RingingPanel(self.stage)
        self.toolbar = Toolbar(self.stage)
        self._hide_timer = QTimer(self)
        self._hide_timer.setSingleShot(True)
        self._hide_timer.timeout.connect(self._rest)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def _wire(self) -> None:
        call, chat = self.app.call, self.app.chat
        call.snapshotChanged.connect(self._render_snapshot)
        call.statusChanged.connect(self._render_status)
        call.timerChanged.connect(self.timer_label.setText)
        call.messageChanged.connect(self._render_banner)
        call.noticeChanged.connect(self._render_notice)
        call.reconnectChanged.connect(self._render_reconnect)
        call.qualityChanged.connect(self._render_quality)
        call.ringingChanged.connect(self._render_ringing)
        call.mutedChanged.connect(self.toolbar.render_muted)
        call.cameraChanged.connect(self._render_camera)
        call.sharingChanged.connect(self.toolbar.render_sharing)
        call.recordingChanged.connect(self._render_recording)
        call.historyChanged.connect(self._render_details)
        call.screenChanged.connect(self._screen_changed)
        self.details_panel.closeClicked.connect(lambda: self.set_details_open(False))
        call.peerFrame.connect(self._peer_frame)
        call.localFrame.connect(self._local_frame)
        self.app.hosting_model.hostingChanged.connect(self._render_hosting)
        chat.linesChanged.connect(self.chat_panel.render_lines)
        chat.unreadChanged.connect(self.toolbar.render_unread)
        chat.errorChanged.connect(self.chat_panel.render_error)
        self.chat_panel.sendRequested.connect(lambda text: chat.send(text))
        self.chat_panel.closeClicked.connect(lambda: self.set_chat_open(False))

        tb = self.toolbar
        tb.muteClicked.connect(call.toggle_muted)
        tb.cameraClicked.connect(call.toggle_camera)
        tb.shareClicked.connect(call.toggle_sharing)
        tb.chatClicked.connect(self.toggle_chat)
        tb.codeClicked.connect(self.toggle_codes)
        tb.hangUpClicked.connect(lambda: call.hang_up())
        tb.recordClicked.connect(call.toggle_recording)
        tb.detailsClicked.connect(self.toggle_details)
        tb.fullScreenClicked.connect(self.fullScreenRequested)
        tb.helpClicked.connect(self.helpRequested)
        tb.preferencesClicked.connect(self.preferencesRequested)
        tb.copyInviteClicked.connect(self._copy_invite)
        self.invite_panel.copyClicked.connect(self.app.services.copy_text)
        self.ringing_panel.acceptClicked.connect(lambda: call.accept())
        self.ringing_panel.declineClicked.connect(lambda: call.decline())
        self.cancel_reconnect_button.clicked.connect(lambda: call.hang_up())
        self.stage.resized.connect(self.relayout)
        self.stage.doubleClicked.connect(self.fullScreenRequested)

    # -- intents ---------------------------------------------------------------------

    def toggle_chat(self) -> None:
        self.set_chat_open(not self.app.chat.panel_open)

    def set_chat_open(self, shown: bool) -> None:
        if shown and self.details_open:  # one side panel at a time: the video keeps its room
            self.set_details_open(False)
        self.app.chat.set_panel_open(shown)
        self.chat_panel.slide(shown)

    @property
    def details_open(self) -> bool:
        return not self.details_panel.isHidden()

    def toggle_details(self) -> None:
        self.set_details_open(not self.details_open)

    def set_details_open(self, shown: bool) -> None:
        """Show or hide the call details panel (a graph per peer); it closes the chat."""
        if shown and self.app.chat.panel_open:
            self.set_chat_open(False)
        self.details_panel.setVisible(shown)
        self.toolbar.render_details(shown)
        if shown:
            self._render_details()
            self.details_panel.close_button.setFocus()

    def _render_details(self) -> None:
        if not self.details_open:
            return
        snap = self.app.call.snapshot

        def name_of(peer_id: str) -> str:
            leg = snap.leg(peer_id)
            return wording.leg_name(leg) if leg is not None else "Someone"

        self.details_panel.show_history(self.app.call.history, name_of)

    def _screen_changed(self, screen: str) -> None:
        if screen != "call" and self.details_open:
            self.set_details_open(False)

    def toggle_codes(self) -> None:
        self.show_codes = not self.show_codes
        self.toolbar.render_code(self.show_codes)
        for tile in self.tiles.values():
            tile.set_code_visible(self.show_codes)

    def _copy_invite(self) -> None:
        hosting = self.app.hosting
        if hosting is not None:
            self.app.services.copy_text(hosting.invite)

    def _pin(self, peer_id: str) -> None:
        self.pinned = None if self.pinned == peer_id else peer_id
        self.relayout()

    # -- rendering ---------------------------------------------------------------------

    def _render_snapshot(self, snap: CallSnapshot) -> None:
        shown = [leg for leg in snap.legs if leg.state is not LegState.RINGING]
        wanted = {leg.peer_id for leg in shown}
        for peer_id in [p for p in self.tiles if p not in wanted]:
            self._retire(self.tiles.pop(peer_id))
        for leg in shown:
            tile = self.tiles.get(leg.peer_id)
            if tile is None:
                tile = Tile(leg.peer_id, self.stage)
                tile.setMouseTracking(True)
                tile.video.setMouseTracking(True)
                tile.clicked.connect(self._pin)
                tile.aspectChanged.connect(self.relayout)
                tile.set_code_visible(self.show_codes)
                tile.show()
                self.tiles[leg.peer_id] = tile
            tile.show_leg(leg)
        if self.pinned not in self.tiles:
            self.pinned = None
        self.self_view.set_placeholder("Camera off" if not snap.video_enabled else "You")
        self._render_waiting(snap)
        self.relayout()
        self._wake()

    def _render_waiting(self, snap: CallSnapshot) -> None:
        alone = not self.tiles
        hosting = self.app.hosting
        if not alone or snap.phase in (snap.phase.IDLE, snap.phase.CLOSED):
            self.invite_panel.setVisible(False)
            return
        if hosting is not None:
            self.invite_panel.show_invite(
                "You are the only one here. Send this link to the people you want to call:",
                hosting.invite,
                invite_hint(hosting.tls),
            )
        elif snap.room:
            self.invite_panel.show_invite("Waiting for the others to join…", "")
        elif snap.connection_id and snap.phase is snap.phase.WAITING:
            self.invite_panel.show_invite(
                f"Waiting for a call. Your id is {snap.connection_id}.", snap.connection_id
            )
        else:
            self.invite_panel.show_invite(wording.status_line(snap), "")
        self.invite_panel.setVisible(True)

    def _render_hosting(self, hosting: Hosting | None) -> None:
        self.toolbar.set_invite_available(hosting is not None)
        self._render_waiting(self.app.call.snapshot)
        self.relayout()

    def _render_status(self, text: str) -> None:
        self.status_label.setText(text)
        announce(self.status_label, text)
        self.top_bar.adjustSize()
        self.relayout()

    def _render_banner(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.setVisible(bool(text))
        announce(self.banner, text, urgent=True)
        self.relayout()

    def _render_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
        self.relayout()

    def _render_reconnect(self, text: str) -> None:
        self.reconnect_label.setText(text)
        announce(self.reconnect_label, text)
        self.reconnect_bar.setVisible(bool(text))
        self.relayout()

    def _render_quality(self, qualities: dict[str, quality.Quality]) -> None:
        overall = quality.worst(qualities.values())
        if overall is None:
            self.quality_label.setText("")
            self.quality_label.setToolTip("")
            return
        colour = QUALITY_COLOURS[overall.level.value]
        self.quality_label.setText(f"<span style='color:{colour}'>●</span> {overall.label}")
        lines = []
        snap = self.app.call.snapshot
        for peer_id, q in qualities.items():
            leg = snap.leg(peer_id)
            name = wording.leg_name(leg) if leg is not None else "Someone"
            lines.append(f"{name}: {q.label.lower()} ({q.details})")
        tip = "\n".join(lines)
        self.quality_label.setToolTip(tip)
        self.quality_label.setAccessibleDescription(f"{overall.label}. {tip}")
        self.top_bar.adjustSize()

    def _render_ringing(self, caller: str) -> None:
        self.ringing_panel.show_caller(caller)
        self.relayout()

    def _render_camera(self, enabled: bool) -> None:
        self.toolbar.render_camera(enabled)
        if not enabled:
            self.self_view.clear()
        self.self_view.set_placeholder("Camera off" if not enabled else "You")

    def _render_recording(self, recording: bool) -> None:
        self.toolbar.render_recording(recording)
        self.recording_label.setVisible(recording)
        self.relayout()

    def _peer_frame(self, peer_id: str, frame: Any) -> None:
        tile = self.tiles.get(peer_id)
        if tile is not None:
            tile.show_frame(frame)
            if self.first_frame_at is None:
                self.first_frame_at = tile.video.first_frame_at
            if tile.video.frames_received % 15 == 1:
                self.last_video_fraction = self.video_fraction()

    def _local_frame(self, frame: Any) -> None:
        width, height = int(frame.width), int(frame.height)
        if width > 0 and height > 0 and abs(width / height - self._self_aspect) > 0.01:
            self._self_aspect = width / height
            self.relayout()
        self.self_view.show_frame(frame)

    def _retire(self, tile: Tile) -> None:
        view = tile.video
        self._retired[0] += view.frames_painted
        self._retired[1] += view.frames_dropped
        self._retired[2] += view.paint_seconds
        tile.hide()
        tile.deleteLater()

    # -- geometry ------------------------------------------------------------------------

    def relayout(self) -> None:
        w, h = self.stage.width(), self.stage.height()
        order = list(self.tiles)
        large = order.index(self.pinned) if self.pinned in order else None
        placed = layout(
            w, h, [self.tiles[p].aspect for p in order], large=large, self_aspect=self._self_aspect
        )
        for peer_id, rect in zip(order, placed.tiles, strict=True):
            self.tiles[peer_id].setGeometry(rect.x, rect.y, rect.w, rect.h)
        if placed.self_view is not None:
            r = placed.self_view
            self.self_view.setGeometry(r.x, r.y, r.w, r.h)
        self.self_view.raise_()
        self.top_bar.adjustSize()
        self.top_bar.move((w - self.top_bar.width()) // 2, 10)
        self.recording_label.adjustSize()
        self.recording_label.move(12, 10)
        y = self.top_bar.y() + self.top_bar.height() + 8
        for box in (self.banner, self.notice, self.reconnect_bar):
            if box.isVisible():
                box.setFixedWidth(min(w - 40, 640))
                box.adjustSize()
                box.move((w - box.width()) // 2, y)
                y += box.height() + 6
        for panel in (self.invite_panel, self.ringing_panel):
            if panel.isVisible():
                panel.adjustSize()
                panel.setFixedWidth(min(w - 40, max(panel.sizeHint().width(), 420)))
                panel.move((w - panel.width()) // 2, max(y, (h - panel.height()) // 2))
        self.toolbar.adjustSize()
        self.toolbar.move((w - self.toolbar.width()) // 2, h - self.toolbar.height() - 16)
        for overlay in (
            self.top_bar,
            self.recording_label,
            self.banner,
            self.notice,
            self.reconnect_bar,
            self.invite_panel,
            self.ringing_panel,
            self.toolbar,
        ):
            overlay.raise_()

    # -- the toolbar that hides ---------------------------------------------------------

    @property
    def controls_shown(self) -> bool:
        return self.toolbar.isVisible()

    def _wake(self) -> None:
        self.toolbar.setVisible(True)
        self.top_bar.setVisible(True)
        self._hide_timer.start(self.hide_after_ms)

    def _rest(self) -> None:
        snap = self.app.call.snapshot
        keep = not snap.in_call or self.toolbar.underMouse() or self.toolbar.menu.isVisible()
        if keep:
            self._hide_timer.start(self.hide_after_ms)
            return
        self.toolbar.setVisible(False)
        self.top_bar.setVisible(False)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        moved = event.type() in (QEvent.Type.MouseMove, QEvent.Type.KeyPress)
        # Restart the rest timer at most 4 times a second, not on every pixel.
        stale = not self.toolbar.isVisible() or (
            self._hide_timer.remainingTime() < self.hide_after_ms - 250
        )
        if moved and stale and self.isVisible() and self._inside(watched):
            self._wake()
        return False

    @staticmethod
    def _has_focus(widget: QWidget) -> bool:
        focused = QApplication.focusWidget()
        return focused is not None and widget.isAncestorOf(focused)

    def _inside(self, watched: QObject) -> bool:
        return isinstance(watched, QWidget) and (watched is self or self.isAncestorOf(watched))

    def wake_controls(self) -> None:
        """Show the toolbar now (a key, a move); it hides again after a rest."""
        self._wake()

    # -- numbers for --stats-json ---------------------------------------------------------

    @property
    def frames_painted(self) -> int:
        return int(self._retired[0]) + sum(t.video.frames_painted for t in self.tiles.values())

    @property
    def frames_dropped(self) -> int:
        return int(self._retired[1]) + sum(t.video.frames_dropped for t in self.tiles.values())

    @property
    def paint_seconds(self) -> float:
        return float(self._retired[2]) + sum(t.video.paint_seconds for t in self.tiles.values())

    def video_fraction(self) -> float:
        """How much of the window the others' pictures cover (letterbox bars not counted)."""
        window = self.window()
        total = window.width() * window.height()
        if total <= 0:
            return 0.0
        covered = 0
        for tile in self.tiles.values():
            size = tile.video.picture_size
            if size is not None:
                rect = tile.video.target_rect(*size)
                covered += rect.width() * rect.height()
        return covered / total

    def texts(self) -> list[str]:
        """Every text shown on this screen now (for the wording checks)."""
        found = [
            self.status_label.text(),
            self.timer_label.text(),
            self.quality_label.text(),
            self.quality_label.toolTip(),
            self.banner.text(),
            self.notice.text(),
            self.reconnect_label.text(),
            self.invite_panel.title_label.text(),
            self.invite_panel.hint_label.text(),
            self.ringing_panel.caller_label.text(),
            self.self_view.placeholder,
            self.recording_label.text() if self.recording_label.isVisible() else "",
            *self.chat_panel.texts(),
            *(self.details_panel.texts() if self.details_open else []),
        ]
        for tile in self.tiles.values():
            found += [
                tile.name_label.text(),
                tile.badges_label.text(),
                tile.code_label.text(),
                tile.video.placeholder,
            ]
        found += [b.text() for b in self.toolbar.buttons()]
        found += [b.toolTip() for b in self.toolbar.buttons()]
        return [text for text in found if text]
