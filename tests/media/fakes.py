"""A scripted stand-in for ``cv2.VideoCapture``, for camera tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from av import VideoFrame

from callapp.media.camera import Capture

from .conftest import luma

W, H = 64, 48


class FakeCapture:
    """A capture that opens (or not), gives ``frames`` grey frames, then fails."""

    def __init__(
        self,
        *,
        opened: bool = True,
        frames: int = 1_000_000,
        grey: int = 200,
        block: threading.Event | None = None,
        block_after: int = 0,
    ) -> None:
        self.opened = opened
        self.remaining = frames
        self.grey = grey
        self.block = block  # read() waits for it after `block_after` frames
        self.block_after = block_after
        self.released = False
        self.props: dict[int, float] = {}
        self.reads = 0
        self.reached = threading.Event()  # set once 20 frames were read

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, Any]:
        if self.block is not None and self.reads >= self.block_after:
            self.block.wait()
            self.block = None
        if self.remaining <= 0:
            return False, None
        self.remaining -= 1
        self.reads += 1
        if self.reads == 20:
            self.reached.set()
        time.sleep(0.002)  # a camera paces its reads; don't spin
        return True, np.full((H, W, 3), self.grey, np.uint8)

    def set(self, prop_id: int, value: float) -> bool:
        self.props[prop_id] = value
        return True

    def get(self, prop_id: int) -> float:
        return {3: float(W), 4: float(H)}.get(prop_id, 0.0)

    def release(self) -> None:
        self.released = True


class Script:
    """A capture factory that hands out prepared captures, then unopened ones."""

    def __init__(self, *captures: FakeCapture) -> None:
        self.captures: Iterator[FakeCapture] = iter(captures)
        self.opened: list[FakeCapture] = []

    def __call__(self, device: int) -> Capture:
        capture = next(self.captures, FakeCapture(opened=False))
        self.opened.append(capture)
        return capture


def is_camera_frame(frame: VideoFrame) -> bool:
    """Fake camera frames are one flat grey; the pattern never is."""
    y = luma(frame)
    return bool((y == y[0, 0]).all())
