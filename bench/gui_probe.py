"""The desktop app (``callapp``) with a probe: when the window and the first remote frame show.

    python -m bench.gui_probe -- <callapp launcher arguments>

Runs :func:`callapp.ui.launcher.main` unchanged in this process (offscreen
unless ``QT_QPA_PLATFORM`` says otherwise), after wrapping from the outside:

* ``MainWindow.__init__``, to install an application-wide event filter that
  notes the first paint of anything in the main window (the window is on
  screen), then removes itself;
* ``VideoView.paintEvent``, to note when one of the call screen's tiles (a
  remote peer's video) first paints a decoded remote frame;
* ``CallModel.join_text`` / ``join`` / ``dial`` / ``host``, to note when the user
  action started.

Each mark is printed at once as ``probe: NAME <time.monotonic()>``, so the
parent can compare it with its own clock (``CLOCK_MONOTONIC`` is system-wide).
With ``BENCH_GUI_PREIMPORT=1`` it imports the call engine
(``callapp.call.session``) before the launcher runs, which the launcher
itself only does on the first join. With ``BENCH_GUI_PROBE_JSON=PATH`` it
also records when the remote view painted each new frame and writes
``{"paints": [...], "views": {...}}`` there at exit (the views' own
frames-painted and paint-seconds counters (``remote``: every tile's, summed by
``window.call_screen``), and the UI thread's CPU time
inside their ``paintEvent``, from ``time.thread_time()``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_marked: set[str] = set()
_paints: list[float] = []
_windows: list[Any] = []
_paint_cpu: dict[str, float] = {}  # UI-thread CPU time inside paintEvent: remote, local


def mark(name: str) -> None:
    if name not in _marked:
        _marked.add(name)
        print(f"probe: {name} {time.monotonic():.6f}", flush=True)


def install() -> None:
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication, QWidget

    from callapp.ui import video_view
    from callapp.ui.models import call as call_model
    from callapp.ui.views import main_window

    if os.environ.get("BENCH_GUI_PREIMPORT"):
        # What the first join costs without the launcher's lazy import of the engine.
        import callapp.call.session  # noqa: F401

    mark("imported")
    windows = _windows

    class FirstPaint(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if (
                event.type() == QEvent.Type.Paint
                and isinstance(watched, QWidget)
                and windows
                and watched.window() is windows[0]
            ):
                mark("window_painted")
                app = QApplication.instance()
                if app is not None:
                    app.removeEventFilter(self)
            return False

    original_init = main_window.MainWindow.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        windows.append(self)
        app = QApplication.instance()
        if app is not None:
            self._bench_first_paint = FirstPaint(app)
            app.installEventFilter(self._bench_first_paint)

    main_window.MainWindow.__init__ = init  # type: ignore[method-assign]

    original_paint = video_view.VideoView.paintEvent

    def paint_event(self: Any, event: Any) -> None:
        before = self.frames_painted
        cpu = time.thread_time()
        original_paint(self, event)
        kind = _kind(self)
        if kind:
            _paint_cpu[kind] = _paint_cpu.get(kind, 0.0) + time.thread_time() - cpu
        if self.frames_painted != before and kind == "remote":
            _paints.append(time.monotonic())
            mark("remote_painted")

    video_view.VideoView.paintEvent = paint_event  # type: ignore[method-assign]

    for action in ("join_text", "join", "dial", "host"):
        original = getattr(call_model.CallModel, action)

        def wrapped(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            mark("action")
            return _original(self, *args, **kwargs)

        setattr(call_model.CallModel, action, wrapped)


def _kind(view: Any) -> str:
    """ "remote" for a peer's tile in the first window, "local" for its self-view, else ""."""
    if not _windows:
        return ""
    window = _windows[0]
    if view is window.local_view:
        return "local"
    return "remote" if any(t.video is view for t in window.call_screen.tiles.values()) else ""


def _views() -> dict[str, Any]:
    """Frames painted and UI-thread seconds spent painting, per video view."""
    if not _windows:
        return {}
    window = _windows[0]
    screen = window.call_screen
    local = window.local_view
    return {
        "remote": {
            "frames_painted": screen.frames_painted,
            "paint_seconds": screen.paint_seconds,
            "paint_cpu_seconds": _paint_cpu.get("remote", 0.0),
        },
        "local": {
            "frames_painted": local.frames_painted,
            "paint_seconds": local.paint_seconds,
            "paint_cpu_seconds": _paint_cpu.get("local", 0.0),
        },
    }


def main(argv: list[str]) -> int:
    args = argv[1:] if argv[:1] == ["--"] else argv
    install()
    from callapp.ui import launcher

    try:
        return launcher.main(args)
    finally:
        out = os.environ.get("BENCH_GUI_PROBE_JSON")
        if out:
            with open(out, "w") as file:
                json.dump({"paints": _paints, "views": _views(), "exited": time.monotonic()}, file)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
