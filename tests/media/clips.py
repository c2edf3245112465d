"""Short video clips written with PyAV, for tests that play files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_clip(path: Path, *, frames: int, width: int, height: int, fps: int = 30) -> Path:
    """An H.264 clip whose frame ``i`` is flat grey of luma ``10 + 20 * i`` (mod 220)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "qp": "0"}  # lossless: greys stay exact
        for i in range(frames):
            image = np.full((height * 3 // 2, width), 128, np.uint8)
            image[:height] = grey_of(i)
            frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def grey_of(index: int) -> int:
    return 16 + (20 * index) % 220
