"""The composition root: the ``callapp`` command.

``callapp call ...`` runs the headless call CLI (:mod:`callapp.call.cli`);
anything else opens the desktop window (:mod:`callapp.ui.launcher`), which
builds the qasync loop and wires the view-model to a call session.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``callapp`` console script; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--self-test"]:
        from callapp.selftest import main as selftest_main

        return selftest_main(args)
    if args[:1] == ["call"]:
        from callapp.call.cli import main as call_main

        return call_main(args[1:])
    from callapp.ui.launcher import main as gui_main

    return gui_main(args)
