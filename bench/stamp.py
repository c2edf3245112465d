"""A video source that writes each frame's index and capture time into its pixels.

The frame is the project's own test pattern (bars, a moving square, a clock),
with a block barcode over its top-left corner: 64 bits in 4 rows of 16 square
blocks, each block black (Y=16) or white (Y=235) on neutral chroma. Blocks are
``width // 40`` pixels wide (16 at 640x480, 32 at 1280x720), large enough to
survive VP8 at 500 kbps. The reader samples the middle half of every block.

Payload: frame index (24 bits), capture time as ``time.monotonic()`` in units
of 0.1 ms modulo 2**32 (32 bits), and an 8-bit check, so a misread frame is
counted as unreadable rather than giving a wrong latency. ``time.monotonic()``
is ``CLOCK_MONOTONIC``, shared by every process on the machine, so the sender
and the receiver can be different processes.
"""

from __future__ import annotations

import time

import numpy as np
from av import VideoFrame

from callapp.media.frames import VIDEO_TIME_BASE, plane_views
from callapp.media.testpattern import PatternRenderer, TestPatternTrack

ROWS, COLS = 4, 16
BITS = ROWS * COLS
BLACK, WHITE = 16, 235
TICKS_PER_S = 10_000  # 0.1 ms
_WRAP = 1 << 32


def block_size(width: int) -> int:
    return max(8, (width // 40) & ~1)


def _check(index: int, ticks: int) -> int:
    value = 0xA5
    for byte in index.to_bytes(3, "big") + ticks.to_bytes(4, "big"):
        value = ((value << 1) | (value >> 7)) & 0xFF
        value ^= byte
    return value


def encode_bits(index: int, ticks: int) -> np.ndarray:
    index &= (1 << 24) - 1
    ticks %= _WRAP
    word = (index << 40) | (ticks << 8) | _check(index, ticks)
    bits = [(word >> (BITS - 1 - i)) & 1 for i in range(BITS)]
    return np.array(bits, dtype=np.uint8).reshape(ROWS, COLS)


def stamp(frame: VideoFrame, index: int, when: float) -> None:
    """Write ``index`` and ``when`` (a ``time.monotonic()`` instant) into ``frame``."""
    y, u, v = plane_views(frame)
    size = block_size(frame.width)
    bits = encode_bits(index, round(when * TICKS_PER_S))
    blocks = np.where(bits == 1, WHITE, BLACK).astype(np.uint8)
    grid = np.kron(blocks, np.ones((size, size), dtype=np.uint8))
    top = left = size
    y[top : top + ROWS * size, left : left + COLS * size] = grid
    half = size // 2
    u[top // 2 : top // 2 + ROWS * half, left // 2 : left // 2 + COLS * half] = 128
    v[top // 2 : top // 2 + ROWS * half, left // 2 : left // 2 + COLS * half] = 128


def read(frame: VideoFrame) -> tuple[int, float] | None:
    """``(index, capture time)`` from a stamped frame, or None if unreadable."""
    plane = frame.planes[0]
    width, height = frame.width, frame.height
    size = block_size(width)
    top = left = size
    if top + ROWS * size > height or left + COLS * size > width:
        return None
    luma = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)[
        :height, :width
    ]
    region = luma[top : top + ROWS * size, left : left + COLS * size].reshape(
        ROWS, size, COLS, size
    )
    quarter = size // 4
    middle = region[:, quarter : size - quarter, :, quarter : size - quarter]
    means = middle.mean(axis=(1, 3))
    bits = (means > (BLACK + WHITE) / 2).astype(np.uint64).ravel()
    word = 0
    for bit in bits:
        word = (word << 1) | int(bit)
    index = word >> 40
    ticks = (word >> 8) & (_WRAP - 1)
    if word & 0xFF != _check(index, ticks):
        return None
    # Unwrap the 32-bit tick count against our own clock (it wraps every ~5 days).
    now_ticks = round(time.monotonic() * TICKS_PER_S)
    base = now_ticks - (now_ticks % _WRAP)
    full = base + ticks
    if full > now_ticks + _WRAP // 2:
        full -= _WRAP
    return index, full / TICKS_PER_S


class StampTrack(TestPatternTrack):
    """The test pattern, each frame stamped at the instant it is handed out."""

    async def recv(self) -> VideoFrame:
        frame = await super().recv()
        stamp(frame, self.frames_sent - 1, time.monotonic())
        return frame


def survives_vp8(width: int, height: int, frames: int = 60, bitrate: int = 500_000) -> float:
    """Fraction of stamped frames read back after aiortc's VP8 encoder at ``bitrate``.

    A check of the barcode itself, in-process (encode, depacketize, decode):
    the latency figures mean something only if this is close to 1.
    """
    from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, VpxPayloadDescriptor
    from aiortc.jitterbuffer import JitterFrame

    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    encoder.target_bitrate = bitrate
    renderer = PatternRenderer(width, height)
    good = 0
    for index in range(frames):
        frame = renderer.render(index, index / 30, time.time())
        stamp(frame, index, time.monotonic())
        frame.pts, frame.time_base = index * 3000, VIDEO_TIME_BASE
        payloads, timestamp = encoder.encode(frame, force_keyframe=index == 0)
        data = b"".join(VpxPayloadDescriptor.parse(p)[1] for p in payloads)
        for decoded in decoder.decode(JitterFrame(data=data, timestamp=timestamp)):
            assert isinstance(decoded, VideoFrame)  # a video decoder's frames
            found = read(decoded)
            good += found is not None and found[0] == index
    return round(good / frames, 3)
