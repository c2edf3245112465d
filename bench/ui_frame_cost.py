"""What one 1280x720 video frame costs the UI thread, in milliseconds. Prints JSON.

Measures, on the offscreen Qt platform, for a yuv420p 720p frame (what the
VP8 decoder hands us):

* ``convert``: ``av.VideoFrame.reformat`` to RGB32 at the displayed size and
  wrapping the plane in a QImage (no copy) -- what VideoView does per paint;
* ``paint``: a full synchronous ``repaint()`` of a VideoView showing a new
  frame (conversion + QPainter blit), for a few widget sizes;
* ``naive``: the obvious alternative -- ``to_ndarray("rgb24")`` at full size,
  QImage copy, smooth scaling in QPainter -- for comparison.

Usage: python bench/ui_frame_cost.py [--frames N]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import numpy as np
import PySide6
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication

from callapp.ui.frames import fit_size, to_qimage
from callapp.ui.video_view import VideoView


def make_frames(count: int, width: int = 1280, height: int = 720) -> list[av.VideoFrame]:
    rng = np.random.default_rng(1)
    frames = []
    for i in range(count):
        rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        rgb[:, (i * 8) % width] = 255
        frames.append(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
    return frames


def measure(
    step: Callable[[av.VideoFrame], object], frames: list[av.VideoFrame]
) -> dict[str, float]:
    for frame in frames[:5]:  # warm-up
        step(frame)
    times = []
    for frame in frames:
        started = time.perf_counter()
        step(frame)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 3),
        "max_ms": round(times[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    frames = make_frames(args.frames)
    results: dict[str, object] = {
        "benchmark": "ui_frame_cost",
        "frame": "1280x720 yuv420p",
        "frames": args.frames,
        "python": platform.python_version(),
        "pyside6": PySide6.__version__,
        "av": av.__version__,
        "qpa": os.environ["QT_QPA_PLATFORM"],
    }
    for box in ((1280, 720), (960, 540), (640, 360)):
        w, h = fit_size(1280, 720, *box)
        results[f"convert_to_{w}x{h}"] = measure(
            functools.partial(to_qimage, width=w, height=h), frames
        )

    for box in ((1280, 720), (800, 450), (480, 270)):
        view = VideoView()
        view.resize(*box)
        view.show()
        app.processEvents()

        def paint(frame: av.VideoFrame, view: VideoView = view) -> None:
            view.show_frame(frame)
            view.repaint()

        stats = measure(paint, frames)
        stats["frames_painted"] = view.frames_painted
        results[f"paint_view_{box[0]}x{box[1]}"] = stats
        view.close()

    target = QImage(800, 450, QImage.Format.Format_RGB32)

    def naive(frame: av.VideoFrame) -> None:
        rgb = frame.to_ndarray(format="rgb24")
        image = QImage(
            rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888
        ).copy()
        painter = QPainter(target)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(
            target.rect(),
            image.scaled(
                800,
                450,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            ),
        )
        painter.end()

    results["naive_rgb888_copy_smoothscale_to_800x450"] = measure(naive, frames)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
