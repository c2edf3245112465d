"""Two real ``callapp`` windows under Xvfb, at the default size: the video is the window.

The host sends a solid magenta video file; the guest joins through the
host's invite link. The guest's ``--stats-json`` says how much of its window
the host's picture covers (from the widget geometry: the picture's rectangle
inside its tile, letterbox bars not counted), and a grab of the X screen,
where the guest's window lies on top at (0, 0), counts the magenta pixels.
Both must reach 70%.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.xdisplay import NO_XVFB, XVFB, xvfb

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(XVFB is None, reason=NO_XVFB),
]

ROOT = Path(__file__).resolve().parents[2]
MAGENTA = (230, 20, 220)
GRAB = """
import sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
app.primaryScreen().grabWindow(0).save(sys.argv[1])
"""


def solid_video(path: Path, colour: tuple[int, int, int], seconds: int = 4) -> None:
    """A 640x480 VP8 file of one colour, 15 fps."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=15)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.time_base = Fraction(1, 15)
        picture = np.zeros((480, 640, 3), dtype=np.uint8)
        picture[:, :] = colour
        for i in range(seconds * 15):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def callapp(
    tmp: Path, name: str, display: str, *flags: str, seconds: float
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callapp",
            *flags,
            "--audio",
            "none",
            "--speaker",
            "none",
            "--allow-loopback",
            "--quit-after",
            str(seconds),
            "--stats-json",
            str(tmp / f"{name}.json"),
            "--settings",
            str(tmp / f"{name}.ini"),
        ],
        cwd=ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": display},
        # Files, not pipes: a pipe nobody reads fills up and stalls the app.
        stdout=(tmp / f"{name}.out").open("w"),
        stderr=(tmp / f"{name}.err").open("w"),
        text=True,
    )


def read_invite(path: Path, limit: float = 60) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if line.startswith("invite: "):
                return line.removeprefix("invite: ").strip()
        time.sleep(0.2)
    pytest.fail("the host printed no invite link")


def test_the_remote_video_covers_most_of_the_window(tmp_path: Path) -> None:
    video = tmp_path / "magenta.webm"
    solid_video(video, MAGENTA)
    with xvfb(1280, 800) as (display, _):
        host = callapp(
            tmp_path, "host", display, "--host", "--port", "0", "--video", str(video), seconds=75
        )
        link = read_invite(tmp_path / "host.out")
        link = re.sub(r"//[^/]+:", "//127.0.0.1:", link, count=1)  # loopback in a sandbox
        time.sleep(1)  # the guest's window maps last: on top, without a window manager
        guest = callapp(tmp_path, "guest", display, "--invite", link, "--video", "test", seconds=45)
        shot = tmp_path / "screen.png"
        # Grab once the guest has shown the host's picture for a while.
        time.sleep(25)
        grab = subprocess.run(
            [sys.executable, "-c", GRAB, str(shot)],
            env={**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": display},
            capture_output=True,
            text=True,
            timeout=60,
        )
        guest.wait(timeout=120)
        host.kill()
        host.communicate(timeout=30)
    assert grab.returncode == 0, grab.stderr
    assert guest.returncode == 0, (tmp_path / "guest.err").read_text()[-2000:]
    data = json.loads((tmp_path / "guest.json").read_text())
    width, height = data["window_size"]
    assert (width, height) == (1024, 640), "the default window size"
    assert data["frames_painted"] > 0, data
    # Measured while the host's picture was on screen (a loaded machine may
    # lose the call before the guest quits).
    assert data["video_area_fraction_in_call"] >= 0.70, data

    with av.open(str(shot)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    window = image[:height, :width].astype(int)
    close = np.abs(window - np.array(MAGENTA)).max(axis=2) < 48
    assert close.mean() >= 0.70, f"magenta covers {close.mean():.1%} of the window"
