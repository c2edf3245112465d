"""A private X server for tests, and drawing on it: Xvfb plus libX11/libXrandr via ctypes.

``xvfb()`` starts a fresh Xvfb on a display number it picks itself and kills
it on exit. ``fill`` paints rectangles of the root window and ``add_monitors``
adds RandR 1.5 monitors, both straight through libX11/libXrandr (no window, no
window manager: the root window keeps what is drawn on it while ``-noreset``
keeps the server from resetting between clients). Used by the screen-capture
tests (tests/media/test_screen.py) and the screen-sharing end-to-end tests
(tests/e2e/test_screen_share.py).
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

XVFB = shutil.which("Xvfb")
#: For ``pytest.mark.skipif(XVFB is None, reason=NO_XVFB)``.
NO_XVFB = "Xvfb is not installed (scripts/setup.sh installs the xvfb package)"

RGB = tuple[int, int, int]
Rect = tuple[int, int, int, int]  # (left, top, width, height)

# No TCP listener (nothing remote needs it), and no server reset when the last
# client disconnects: a reset would wipe what was drawn and the monitors added.
_XVFB_FLAGS = ("-nolisten", "tcp", "-noreset")


@contextmanager
def xvfb(width: int, height: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A fresh Xvfb on a free display number, as ``(":N", process)``; killed on exit.

    ``-displayfd`` makes Xvfb pick a free number itself and write it once it
    accepts connections, so there is neither a race for the number nor a poll.
    """
    assert XVFB is not None, NO_XVFB
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        [XVFB, "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24", *_XVFB_FLAGS],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_fd)
    try:
        number = b""
        deadline = time.monotonic() + 10
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(read_fd, 16) if ready else b""
            if not chunk:
                process.kill()
                _, err = process.communicate(timeout=5)
                pytest.fail(f"Xvfb did not start: {err.decode(errors='replace')[-500:]}")
            number += chunk
        yield f":{int(number)}", process
    finally:
        os.close(read_fd)
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


class _MonitorInfo(ctypes.Structure):
    _fields_ = [  # XRRMonitorInfo from <X11/extensions/Xrandr.h>
        ("name", ctypes.c_ulong),
        ("primary", ctypes.c_int),
        ("automatic", ctypes.c_int),
        ("noutput", ctypes.c_int),
        ("x", ctypes.c_int),
        ("y", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("mwidth", ctypes.c_int),
        ("mheight", ctypes.c_int),
        ("outputs", ctypes.c_void_p),
    ]


def _libs() -> tuple[Any, Any]:
    x11 = ctypes.CDLL("libX11.so.6")
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultScreen.argtypes = [ctypes.c_void_p]
    x11.XDefaultGC.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XDefaultGC.restype = ctypes.c_void_p
    x11.XSetForeground.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong]
    x11.XFillRectangle.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p]
    x11.XFillRectangle.argtypes += [ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.c_uint]
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    xrandr = ctypes.CDLL("libXrandr.so.2")
    xrandr.XRRAllocateMonitor.argtypes = [ctypes.c_void_p, ctypes.c_int]
    xrandr.XRRAllocateMonitor.restype = ctypes.POINTER(_MonitorInfo)
    xrandr.XRRSetMonitor.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(_MonitorInfo)]
    xrandr.XRRFreeMonitors.argtypes = [ctypes.POINTER(_MonitorInfo)]
    return x11, xrandr


@contextmanager
def x_connection(display: str) -> Iterator[tuple[Any, Any, int]]:
    """``(libX11, libXrandr, Display*)`` for ``display``; synced and closed on exit.

    Closed at once so that Xlib's fatal I/O handler (it exits the process)
    never sees a server that a test kills.
    """
    x11, xrandr = _libs()
    connection = x11.XOpenDisplay(display.encode())
    assert connection, f"cannot open {display}"
    try:
        yield x11, xrandr, connection
        x11.XSync(connection, 0)
    finally:
        x11.XCloseDisplay(connection)


def fill(display: str, rects: dict[Rect, RGB]) -> None:
    """Paint each ``(left, top, width, height)`` of the root window in its RGB colour."""
    with x_connection(display) as (x11, _, connection):
        root = x11.XDefaultRootWindow(connection)
        gc = x11.XDefaultGC(connection, x11.XDefaultScreen(connection))
        for (left, top, width, height), (r, g, b) in rects.items():
            x11.XSetForeground(connection, gc, r << 16 | g << 8 | b)  # 24-bit TrueColor
            x11.XFillRectangle(connection, root, gc, left, top, width, height)


def fill_quadrants(
    display: str, width: int, height: int, colours: tuple[RGB, RGB, RGB, RGB]
) -> None:
    """Paint a ``width`` x ``height`` root window as four quadrants of ``colours``.

    ``colours`` go top-left, top-right, bottom-left, bottom-right.
    """
    half_w, half_h = width // 2, height // 2
    corners = [(0, 0), (half_w, 0), (0, half_h), (half_w, half_h)]
    fill(
        display,
        {(x, y, half_w, half_h): colour for (x, y), colour in zip(corners, colours, strict=True)},
    )


def add_monitors(display: str, rects: dict[bytes, Rect]) -> None:
    """Add a RandR 1.5 monitor (no outputs) named by each key, at ``(left, top, w, h)``."""
    with x_connection(display) as (x11, xrandr, connection):
        root = x11.XDefaultRootWindow(connection)
        for name, (left, top, width, height) in rects.items():
            info = xrandr.XRRAllocateMonitor(connection, 0)
            monitor = info.contents
            monitor.name = x11.XInternAtom(connection, name, 0)
            monitor.x, monitor.y, monitor.width, monitor.height = left, top, width, height
            monitor.mwidth, monitor.mheight = width // 4, height // 4
            xrandr.XRRSetMonitor(connection, root, info)
            xrandr.XRRFreeMonitors(info)
