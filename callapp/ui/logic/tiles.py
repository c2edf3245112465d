"""Where the video tiles go: plain geometry, tested without a window.

A tile is the rectangle a peer's picture fills, its aspect kept (no bars of
its own). With one peer, or one peer picked as large (the active speaker, or
one the person clicked), that tile gets most of the area and the others a
strip; otherwise the peers share a grid. The self-view is a small picture in
the bottom-right corner that never covers a tile: when it would, the tiles
give up a column (or a row) for it, whichever leaves them more room.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_ASPECT = 4 / 3
GAP = 8
MARGIN = 12
#: The self-view's width as a share of the area's (never below MIN_SELF_WIDTH px).
SELF_FRACTION = 0.18
MIN_SELF_WIDTH = 120
#: Share of the area the large tile's strip of other peers takes.
STRIP_FRACTION = 0.22


@dataclass(frozen=True, slots=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return max(0, self.w) * max(0, self.h)

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    def intersects(self, other: Rect) -> bool:
        return (
            self.x < other.right
            and other.x < self.right
            and self.y < other.bottom
            and other.y < self.bottom
        )

    def contains(self, other: Rect) -> bool:
        return (
            self.x <= other.x
            and self.y <= other.y
            and other.right <= self.right
            and other.bottom <= self.bottom
        )


@dataclass(frozen=True, slots=True)
class Layout:
    #: One rectangle per peer, in the order the aspects were given.
    tiles: tuple[Rect, ...]
    #: The self-view's rectangle; None when there is none to show.
    self_view: Rect | None


def fit(aspect: float, box: Rect) -> Rect:
    """The largest ``aspect`` (width / height) rectangle centred in ``box``."""
    if box.w <= 0 or box.h <= 0:
        return Rect(box.x, box.y, 0, 0)
    aspect = aspect if aspect > 0 and math.isfinite(aspect) else DEFAULT_ASPECT
    w = min(box.w, box.h * aspect)
    h = w / aspect
    wi, hi = int(w), int(h)
    return Rect(box.x + (box.w - wi) // 2, box.y + (box.h - hi) // 2, wi, hi)


def grid(aspects: Sequence[float], box: Rect, gap: int = GAP) -> list[Rect]:
    """Tiles in the grid (columns x rows) that leaves them the most area."""
    n = len(aspects)
    if n == 0:
        return []
    best: list[Rect] = []
    best_area = -1
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        cell_w = (box.w - gap * (cols - 1)) // cols
        cell_h = (box.h - gap * (rows - 1)) // rows
        if cell_w <= 0 or cell_h <= 0:
            continue
        tiles: list[Rect] = []
        for index, aspect in enumerate(aspects):
            row, col = divmod(index, cols)
            in_row = min(cols, n - row * cols)  # the last row may be short: centre it
            offset = (box.w - (in_row * cell_w + gap * (in_row - 1))) // 2
            cell = Rect(
                box.x + offset + col * (cell_w + gap), box.y + row * (cell_h + gap), cell_w, cell_h
            )
            tiles.append(fit(aspect, cell))
        area = sum(t.area for t in tiles)
        if area > best_area:
            best, best_area = tiles, area
    return best


def speaker(aspects: Sequence[float], large: int, box: Rect, gap: int = GAP) -> list[Rect]:
    """``large``'s tile big, the others in a strip below or beside it (the better one)."""
    n = len(aspects)
    if n == 1:
        return [fit(aspects[0], box)]
    others = [i for i in range(n) if i != large]
    options: list[list[Rect]] = []
    strip_h = int(box.h * STRIP_FRACTION)
    main = Rect(box.x, box.y, box.w, box.h - strip_h - gap)
    strip = Rect(box.x, main.bottom + gap, box.w, strip_h)
    options.append(_place(aspects, large, others, main, _row(len(others), strip, gap)))
    strip_w = int(box.w * STRIP_FRACTION)
    main = Rect(box.x, box.y, box.w - strip_w - gap, box.h)
    strip = Rect(main.right + gap, box.y, strip_w, box.h)
    options.append(_place(aspects, large, others, main, _column(len(others), strip, gap)))
    return max(options, key=lambda tiles: (tiles[large].area, sum(t.area for t in tiles)))


def _place(
    aspects: Sequence[float], large: int, others: list[int], main: Rect, cells: list[Rect]
) -> list[Rect]:
    tiles = [Rect(0, 0, 0, 0)] * len(aspects)
    tiles[large] = fit(aspects[large], main)
    for index, cell in zip(others, cells, strict=True):
        tiles[index] = fit(aspects[index], cell)
    return tiles


def _row(n: int, box: Rect, gap: int) -> list[Rect]:
    w = (box.w - gap * (n - 1)) // n
    return [Rect(box.x + i * (w + gap), box.y, w, box.h) for i in range(n)]


def _column(n: int, box: Rect, gap: int) -> list[Rect]:
    h = (box.h - gap * (n - 1)) // n
    return [Rect(box.x, box.y + i * (h + gap), box.w, h) for i in range(n)]


def self_view_rect(width: int, height: int, aspect: float = DEFAULT_ASPECT) -> Rect:
    """The self-view in the bottom-right corner of a ``width`` x ``height`` area."""
    w = max(MIN_SELF_WIDTH, int(width * SELF_FRACTION))
    w = min(w, max(1, width - 2 * MARGIN))
    h = max(1, int(w / (aspect if aspect > 0 else DEFAULT_ASPECT)))
    return Rect(width - w - MARGIN, height - h - MARGIN, w, h)


def layout(
    width: int,
    height: int,
    aspects: Sequence[float],
    *,
    large: int | None = None,
    self_aspect: float | None = DEFAULT_ASPECT,
) -> Layout:
    """Tiles for ``aspects`` (one per peer) and the self-view, in a ``width`` x ``height`` area.

    ``large`` picks one peer to show big (with one peer, that peer always is);
    ``self_aspect`` None means there is no self-view to place.
    """
    if width <= 0 or height <= 0:
        return Layout(tuple(Rect(0, 0, 0, 0) for _ in aspects), None)
    mine = self_view_rect(width, height, self_aspect) if self_aspect is not None else None
    if not aspects:
        return Layout((), mine)
    if large is not None and not 0 <= large < len(aspects):
        large = None
    if len(aspects) == 1:
        large = 0

    def arrange(box: Rect) -> list[Rect]:
        if large is None:
            return grid(aspects, box)
        return speaker(aspects, large, box)

    whole = Rect(0, 0, width, height)
    tiles = arrange(whole)
    if mine is None or not any(t.intersects(mine) for t in tiles):
        return Layout(tuple(tiles), mine)
    # Give the self-view a column or a row of its own, whichever leaves more.
    column = arrange(Rect(0, 0, max(1, mine.x - GAP), height))
    row = arrange(Rect(0, 0, width, max(1, mine.y - GAP)))
    chosen = max(column, row, key=lambda ts: sum(t.area for t in ts))
    return Layout(tuple(chosen), mine)
