"""frame_view: a header of one's own over shared pixels (or, without PyAV's help, a copy)."""

from __future__ import annotations

import gc
from fractions import Fraction

import numpy as np
import pytest
from av import VideoFrame

from callapp.media import frames
from callapp.media.frames import VIDEO_TIME_BASE, frame_view, luma_view, plane_views

from .conftest import flat_frame


def striped(size: tuple[int, int] = (48, 32)) -> VideoFrame:
    frame = flat_frame(0, pts=1234, size=size)
    y, u, v = plane_views(frame)
    y[:] = np.arange(size[0], dtype=np.uint8)
    u[:] = 60
    v[:] = 200
    return frame


def test_a_view_shares_the_pixels_but_not_the_header() -> None:
    frame = striped()
    view = frame_view(frame)
    assert view is not frame
    assert (view.width, view.height, view.format.name) == (48, 32, "yuv420p")
    assert (view.pts, view.time_base) == (1234, VIDEO_TIME_BASE)
    for mine, theirs in zip(plane_views(view), plane_views(frame), strict=True):
        assert np.shares_memory(mine, theirs), "a view must not copy the pixels"
        assert np.array_equal(mine, theirs)
    view.pts, view.time_base = 7, Fraction(1, 30)
    view.pict_type = 1  # what aiortc's H.264 encoder does to the frame it is given
    assert (frame.pts, frame.time_base) == (1234, VIDEO_TIME_BASE)
    assert frame.pict_type != view.pict_type


def test_a_view_outlives_the_frame_it_was_made_from() -> None:
    frame = striped()
    expected = luma_view(frame).copy()
    view = frame_view(frame)
    del frame
    gc.collect()
    assert np.array_equal(luma_view(view), expected)
    assert int(plane_views(view)[2][0, 0]) == 200


def test_a_new_frame_without_a_time_base_can_be_viewed() -> None:
    view = frame_view(VideoFrame(64, 48, "yuv420p"))
    assert view.pts is None
    assert view.time_base is None


def test_without_dlpack_the_pixels_are_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    class OldPyAV:
        """VideoFrame as PyAV before DLPack import (its type cannot be subclassed)."""

        def __new__(cls, *args: object, **kwargs: object) -> VideoFrame:  # type: ignore[misc]
            return VideoFrame(*args, **kwargs)

        @staticmethod
        def from_dlpack(*args: object, **kwargs: object) -> VideoFrame:
            raise AttributeError("type object 'VideoFrame' has no attribute 'from_dlpack'")

    monkeypatch.setattr(frames, "VideoFrame", OldPyAV)
    frame = striped((50, 30))  # odd line sizes: rows are padded differently
    copy = frame_view(frame)
    assert (copy.pts, copy.time_base) == (1234, VIDEO_TIME_BASE)
    for mine, theirs in zip(plane_views(copy), plane_views(frame), strict=True):
        assert not np.shares_memory(mine, theirs)
        assert np.array_equal(mine, theirs)
