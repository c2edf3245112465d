"""Running asyncio the same way on every platform, for the headless commands.

On Windows asyncio defaults to the Proactor loop, whose UDP transport can stop
receiving after an ICMP port-unreachable (CPython issues 91227, 127057): a
call's media would silently stop. Every headless entry point (``callapp
call``, ``callapp-signaling``, ``callapp --self-test``) runs on a selector
loop there instead; the GUI does the same through qasync's selector loop.

Where there is ``SIGUSR1``, ``kill -USR1 PID`` makes a headless command
print every thread's stack to stderr and go on: the way to see what a
process that will not finish is waiting for.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop class to use here, or None for asyncio's default."""
    return asyncio.SelectorEventLoop if sys.platform == "win32" else None


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Like :func:`asyncio.run`, on a selector loop on Windows."""
    if hasattr(signal, "SIGUSR1") and sys.stderr is not None:
        # Not where stderr has no file descriptor (a test capturing it).
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            faulthandler.register(signal.SIGUSR1, all_threads=True)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coroutine)
