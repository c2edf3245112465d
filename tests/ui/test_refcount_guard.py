"""Regression guard: PySide6 must not leak or drop references on emit/processEvents.

PySide6 6.12.0 on CPython 3.11 drops a reference to ``True`` on every
``Signal.emit()`` and one to ``None`` on every ``processEvents()``; qasync
emits per callback, so a call dies after ~30 s with ``bool_dealloc``. Here
10,000 of each must leave both counts where they were (within noise). On
3.12+ True and None are immortal and the counts never move.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QCoreApplication, QObject, Signal
from PySide6.QtWidgets import QApplication

ROUNDS = 10_000
#: Unrelated code may take or drop a few references meanwhile; a leak is ~ROUNDS.
SLACK = 200


class Emitter(QObject):
    flag = Signal(bool)
    bare = Signal()
    value = Signal(object)


def test_signal_emit_and_process_events_keep_refcounts_of_true_and_none(
    qapp: QApplication,
) -> None:
    emitter = Emitter()
    seen: list[int] = [0]

    def on_flag(flag: bool) -> None:
        seen[0] += 1

    def on_bare() -> None:
        seen[0] += 1

    def on_value(value: object) -> None:
        seen[0] += 1

    emitter.flag.connect(on_flag)
    emitter.bare.connect(on_bare)
    emitter.value.connect(on_value)
    for _ in range(100):  # warm-up: caches, first-call allocations
        emitter.flag.emit(True)
        emitter.bare.emit()
        QCoreApplication.processEvents()

    before_true, before_none = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(ROUNDS):
        emitter.flag.emit(True)
        emitter.bare.emit()
        emitter.value.emit(None)
    for _ in range(ROUNDS):
        QCoreApplication.processEvents()
    after_true, after_none = sys.getrefcount(True), sys.getrefcount(None)

    assert seen[0] >= 3 * ROUNDS, "the slots did not run: the guard measured nothing"
    assert abs(after_true - before_true) < SLACK, (
        f"refcount of True moved by {after_true - before_true} over {ROUNDS} emits"
    )
    assert abs(after_none - before_none) < SLACK, (
        f"refcount of None moved by {after_none - before_none} over {ROUNDS} emits/processEvents"
    )
