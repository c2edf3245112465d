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


def fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (not on Windows), else :func:`loop_factory`'s.

    For ``callapp-signaling`` only: its relay costs about 6% less CPU on
    uvloop (``docs/architecture.md``). The desktop app and ``callapp call``
    stay on asyncio's loop, which aiortc and qasync are tested on.
    """
    if sys.platform != "win32":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - a dependency, except on Windows
            pass
        else:
            return uvloop.new_event_loop
    return loop_factory()


def run(
    coroutine: Coroutine[Any, Any, T],
    *,
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Like :func:`asyncio.run`, on a selector loop on Windows (or on ``factory``'s loop)."""
    if hasattr(signal, "SIGUSR1") and sys.stderr is not None:
        # Not where stderr has no file descriptor (a test capturing it).
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            faulthandler.register(signal.SIGUSR1, all_threads=True)
    with asyncio.Runner(loop_factory=factory or loop_factory()) as runner:
        return runner.run(coroutine)
