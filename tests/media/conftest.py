"""Helpers for media tests: plane access and fake sources."""

from __future__ import annotations

import numpy as np
from av import VideoFrame

from callapp.media.frames import plane_views


def luma(frame: VideoFrame) -> np.ndarray:
    """A copy of the frame's Y plane (the frame may be reused or mutated later)."""
    return plane_views(frame)[0].copy()


def is_black(frame: VideoFrame) -> bool:
    y, u, v = plane_views(frame)
    return bool((y <= 16).all() and (u == 128).all() and (v == 128).all())
