"""Regression guard: PySide6 must not drop references on emit/processEvents.

PySide6 6.12.0 on CPython 3.11 drops a reference to ``True`` on every
``Signal.emit()`` and one to ``None`` on every ``processEvents()``; qasync
emits per callback, so a call dies after ~30 s with ``Fatal Python error:
bool_dealloc``. ``True`` starts with only a few hundred references, so the
broken build aborts the interpreter long before 10,000 emits: the
measurement runs in a child process, and the test fails (rather than the
whole test session dying) on a count that moved or on a crash.
On 3.12+ True and None are immortal and the counts never move.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

ROUNDS = 10_000
#: Unrelated code may take or drop a few references meanwhile; the bug is ~ROUNDS.
SLACK = 200

CHILD = textwrap.dedent(
    """
    import json, sys
    from PySide6.QtCore import QCoreApplication, QObject, Signal

    ROUNDS = int(sys.argv[1])

    class Emitter(QObject):
        flag = Signal(bool)
        bare = Signal()
        value = Signal(object)

    app = QCoreApplication([])
    emitter = Emitter()
    seen = [0]

    def on_flag(flag):
        seen[0] += 1

    def on_bare():
        seen[0] += 1

    def on_value(value):
        seen[0] += 1

    emitter.flag.connect(on_flag)
    emitter.bare.connect(on_bare)
    emitter.value.connect(on_value)
    for _ in range(100):  # warm-up: caches, first-call allocations
        emitter.flag.emit(True)
        emitter.bare.emit()
        app.processEvents()

    true0, none0 = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(ROUNDS):
        emitter.flag.emit(True)
        emitter.bare.emit()
        emitter.value.emit(None)
    true1 = sys.getrefcount(True)
    for _ in range(ROUNDS):
        app.processEvents()
    true2, none2 = sys.getrefcount(True), sys.getrefcount(None)
    print(json.dumps({
        "slots_run": seen[0],
        "true_after_emits": true1 - true0,
        "true": true2 - true0,
        "none": none2 - none0,
    }))
    """
)


def probe(code: str, rounds: int = ROUNDS) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-c", code, str(rounds)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_signal_emit_and_process_events_keep_refcounts_of_true_and_none() -> None:
    child = probe(CHILD)
    assert child.returncode == 0, (
        f"the refcount probe died (exit {child.returncode}): a PySide6 build that drops "
        f"references to True/None (6.12.0 on Python 3.11?)\n{child.stderr[-2000:]}"
    )
    counts = json.loads(child.stdout.strip().splitlines()[-1])
    assert counts["slots_run"] >= 3 * ROUNDS, "the slots did not run: the guard measured nothing"
    assert abs(counts["true_after_emits"]) < SLACK, counts
    assert abs(counts["true"]) < SLACK, counts
    assert abs(counts["none"]) < SLACK, counts


def test_the_probe_notices_a_dropped_reference() -> None:
    """The guard itself: a slot that drops one reference to True per emit is caught."""
    sabotaged = CHILD.replace(
        "def on_flag(flag):\n    seen[0] += 1",
        "import ctypes\n"
        "def on_flag(flag):\n"
        "    seen[0] += 1\n"
        "    ctypes.pythonapi.Py_DecRef(ctypes.py_object(True))",
    )
    assert sabotaged != CHILD
    child = probe(sabotaged)
    if sys.version_info >= (3, 12):  # immortal True: nothing to drop
        return
    assert child.returncode != 0
    assert "bool_dealloc" in child.stderr
