"""Several people's pictures as one: the frame a group call's recording holds.

A recording has one video stream, a group call one picture per person.
:class:`GridComposer` keeps the newest frame of each (by key), and
:meth:`GridComposer.compose` paints them into one ``yuv420p`` canvas, each
scaled into its tile with its aspect kept, on black. Where the tiles go is
the caller's choice (``layout``: the call screen's own grid, so the file looks
like the window); a person who left is :meth:`removed <GridComposer.remove>`
and the others take the room. With one person the canvas is that person's
picture, letterboxed.

Composing runs on the caller's thread and costs a scale per tile and a plane
copy (``PyAV``'s ``reformat`` and numpy): at 1280x720 and 15 fps, a few
milliseconds per frame on this machine's cores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

from av import VideoFrame

from callapp.media.frames import black_frame, plane_views

#: ``layout(aspects, width, height)``: one ``(x, y, w, h)`` tile per aspect, in order.
Layout = Callable[[Sequence[float], int, int], Sequence[tuple[int, int, int, int]]]


Tile = tuple[int, int, int, int]


def side_by_side(aspects: Sequence[float], width: int, height: int) -> list[Tile]:
    """The simplest layout: equal columns, each picture fitted into its own."""
    if not aspects:
        return []
    column = width // len(aspects)
    tiles = []
    for index, aspect in enumerate(aspects):
        w = min(column, round(height * aspect))
        h = min(height, round(w / aspect)) if aspect > 0 else height
        tiles.append((index * column + (column - w) // 2, (height - h) // 2, w, h))
    return tiles


class GridComposer:
    """The newest frame of each of several sources, composed into one canvas.

    ``width`` and ``height`` are the canvas's (even: ``yuv420p``); ``layout``
    places the tiles (:func:`side_by_side` if not given).
    """

    def __init__(self, width: int = 1280, height: int = 720, layout: Layout | None = None) -> None:
        if width < 2 or height < 2 or width % 2 or height % 2:
            raise ValueError(f"a yuv420p canvas needs even sides of 2 or more: {width}x{height}")
        self.width = width
        self.height = height
        self.layout: Layout = layout or side_by_side
        self._latest: dict[str, VideoFrame] = {}
        self.frames = 0

    @property
    def keys(self) -> tuple[str, ...]:
        """The sources with a picture, in the order they first sent one."""
        return tuple(self._latest)

    def put(self, key: str, frame: VideoFrame) -> None:
        """``frame`` is now ``key``'s picture (call on the thread that composes)."""
        self._latest[key] = frame

    def remove(self, key: str) -> None:
        """``key`` is gone (left the call); unknown keys are ignored."""
        self._latest.pop(key, None)

    def compose(self) -> VideoFrame | None:
        """One canvas of every source's newest frame; None while there is none."""
        if not self._latest:
            return None
        canvas = black_frame(self.width, self.height)
        planes = plane_views(canvas)
        frames = list(self._latest.values())
        aspects = [f.width / f.height if f.height else 4 / 3 for f in frames]
        for frame, (x, y, w, h) in zip(
            frames, self.layout(aspects, self.width, self.height), strict=True
        ):
            # Even corners and sides: the chroma planes are half size.
            x, y, w, h = x & ~1, y & ~1, min(w & ~1, self.width - x), min(h & ~1, self.height - y)
            if w < 2 or h < 2:
                continue
            scaled = frame.reformat(width=w, height=h, format="yuv420p")
            for plane, source, shift in zip(planes, plane_views(scaled), (0, 1, 1), strict=True):
                top, left = y >> shift, x >> shift
                rows, cols = source.shape
                plane[top : top + rows, left : left + cols] = source
        canvas.pts = self.frames
        canvas.time_base = Fraction(1, 90_000)
        self.frames += 1
        return canvas


__all__ = ["GridComposer", "Layout", "side_by_side"]
