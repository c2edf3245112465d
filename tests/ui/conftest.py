"""UI test setup: a qasync loop per test and settings in a temporary place."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication


@pytest.fixture(autouse=True)
def temporary_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the real settings: everything goes under tmp_path."""
    path = tmp_path / "settings" / "callapp.ini"
    monkeypatch.setenv("CALLAPP_SETTINGS", str(path))
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "settings-user"))
        QSettings.setPath(fmt, QSettings.Scope.SystemScope, str(tmp_path / "settings-system"))
    return path


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    """A qasync loop on the test's QApplication; run scenarios with run_until_complete."""
    qapp.setQuitOnLastWindowClosed(False)  # closing a test window must not stop the loop
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
        asyncio.set_event_loop(None)
        # Collect the test's Qt objects here, on the GUI thread. Left to chance,
        # the collector may run on a worker thread (asyncio.to_thread, a camera
        # thread) and destroy a QObject there; Qt then keeps its timer and fires
        # it into freed memory later (a segfault in QTimerInfoList::activateTimers).
        gc.collect()
