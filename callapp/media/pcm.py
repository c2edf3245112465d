"""Audio buffers: 48 kHz signed 16-bit PCM as numpy arrays, and ``av.AudioFrame``.

Every audio source in this package produces 20 ms frames of packed ``s16``
mono at 48 kHz, pts counting samples: what aiortc's Opus encoder wants (it
resamples anything else first, and only accepts ``s16`` mono or stereo).
Its decoder hands back packed ``s16`` stereo, 960 samples a frame. In
between, samples are numpy arrays shaped ``(samples, channels)``.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
from av import AudioFrame

SAMPLE_RATE = 48_000
"""Opus's native rate; every source and sink here runs at it."""

FRAME_SAMPLES = 960
"""Samples in one 20 ms frame at :data:`SAMPLE_RATE` (Opus's usual packet)."""

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE

AUDIO_TIME_BASE = Fraction(1, SAMPLE_RATE)

#: The level reported for digital silence, in dBFS.
SILENCE_DBFS = -120.0

Pcm = npt.NDArray[np.int16]
"""Samples shaped ``(samples, channels)``, interleaved in memory (C order)."""

WidePcm = npt.NDArray[np.int32]
"""Samples as :data:`Pcm`, widened to 32 bits: a sum of ``int16`` blocks before clipping."""

_LAYOUTS = {1: "mono", 2: "stereo"}


def pcm_to_frame(pcm: Pcm, pts: int | None = None, sample_rate: int = SAMPLE_RATE) -> AudioFrame:
    """A packed ``s16`` frame holding ``pcm`` (1 or 2 channels), stamped ``pts``."""
    if pcm.ndim != 2 or pcm.shape[1] not in _LAYOUTS:
        raise ValueError(f"expected (samples, 1 or 2) int16 samples, got shape {pcm.shape}")
    data = np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1)
    frame = AudioFrame.from_ndarray(data, format="s16", layout=_LAYOUTS[pcm.shape[1]])
    frame.sample_rate = sample_rate
    frame.time_base = Fraction(1, sample_rate)
    frame.pts = pts
    return frame


def silent_frame(samples: int = FRAME_SAMPLES, pts: int | None = None) -> AudioFrame:
    """A frame of digital silence (packed ``s16`` mono)."""
    return pcm_to_frame(np.zeros((samples, 1), dtype=np.int16), pts)


def frame_samples(frame: AudioFrame) -> Pcm:
    """The samples of a packed ``s16`` frame as a read-only view shaped ``(samples, channels)``.

    No copy: the view keeps the frame's buffer alive and shows what it holds,
    which nobody may change (frames are shared, see :mod:`callapp.media.fanout`).
    Any other format is converted into a new array, as :func:`frame_to_pcm` does.
    """
    if frame.format.name != "s16":
        return frame_to_pcm(frame)
    channels = len(frame.layout.channels)
    count = frame.samples * channels
    view: Pcm = np.frombuffer(memoryview(frame.planes[0]), dtype=np.int16, count=count)
    view = view.reshape(-1, channels)
    view.flags.writeable = False
    return view


def frame_to_pcm(frame: AudioFrame) -> Pcm:
    """The frame's samples as a new int16 array shaped ``(samples, channels)``.

    Accepts packed or planar frames of 16-bit, 32-bit or float samples (what
    decoders and files give); floats are clipped to [-1, 1]. Packed ``s16``
    is copied once, straight out of the frame.
    """
    channels = len(frame.layout.channels)
    if frame.format.name == "s16":
        return np.array(frame_samples(frame), dtype=np.int16, copy=True)
    data: npt.NDArray[Any] = np.asarray(frame.to_ndarray())
    if frame.format.is_planar:
        data = data.T
    data = data.reshape(-1, channels)
    if data.dtype == np.int16:
        return np.array(data, dtype=np.int16, copy=True)
    if data.dtype == np.int32:
        return (data >> 16).astype(np.int16)
    if data.dtype.kind == "f":
        scaled: Pcm = (np.clip(data, -1.0, 1.0) * 32767.0).astype(np.int16)
        return scaled
    if data.dtype == np.uint8:
        return ((data.astype(np.int16) - 128) << 8).astype(np.int16)
    raise ValueError(f"unsupported audio sample format {frame.format.name}")


def take_samples(chunks: collections.deque[Pcm], n: int, channels: int) -> Pcm:
    """Up to ``n`` samples off the front of ``chunks``, oldest first, as one array.

    For buffers kept as a queue of the blocks that arrived (so that adding
    is cheap): the block the end falls in is split, its rest left at the
    front. Fewer than ``n`` come back only if ``chunks`` runs out; none is
    an empty ``(0, channels)`` array.
    """
    parts: list[Pcm] = []
    need = n
    while need > 0 and chunks:
        head = chunks[0]
        if head.shape[0] <= need:
            parts.append(chunks.popleft())
            need -= head.shape[0]
        else:
            parts.append(head[:need])
            chunks[0] = head[need:]
            need = 0
    if not parts:
        return np.zeros((0, channels), dtype=np.int16)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def to_channels(pcm: Pcm, channels: int) -> Pcm:
    """``pcm`` with ``channels`` channels: mono is copied out, more is averaged down."""
    have = pcm.shape[1]
    if have == channels:
        return pcm
    if have == 1:
        return np.repeat(pcm, channels, axis=1)
    mono = pcm.astype(np.int32).mean(axis=1, keepdims=True).astype(np.int16)
    return mono if channels == 1 else np.repeat(mono, channels, axis=1)


def level_dbfs(pcm: Pcm) -> float:
    """RMS level in dB relative to full scale; :data:`SILENCE_DBFS` for silence."""
    if pcm.size == 0:
        return SILENCE_DBFS
    rms = math.sqrt(float(np.mean(np.square(pcm, dtype=np.float64)))) / 32768.0
    if rms <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(rms))


def mix(
    blocks: Sequence[Pcm], samples: int, channels: int, *, start: float = 1.0, end: float = 1.0
) -> Pcm:
    """The sum of ``blocks`` (each shaped ``(samples, channels)``), times a gain ramp, clipped.

    Summed in ``int32``, so nothing wraps around (30000 + 30000 comes out as
    32767, not -5536); the gain (going from ``start`` to ``end``, see
    :func:`ramp`) scales the sum before it is clipped to ``int16``, so a low
    volume quiets a loud mix instead of clipping it first. No blocks give
    silence; one block at unit gain comes back as it is (no copy).
    """
    unity = start == end == 1.0
    if len(blocks) == 1 and unity:
        return blocks[0]
    total: WidePcm = np.zeros((samples, channels), dtype=np.int32)
    for block in blocks:
        total += block
    if unity:
        clipped: Pcm = np.clip(total, -32768, 32767).astype(np.int16)
        return clipped
    return ramp(total, start, end)


def ramp(pcm: Pcm | WidePcm, start: float, end: float) -> Pcm:
    """``pcm`` scaled by a gain going linearly from ``start`` to ``end``, as new ``int16``.

    Changing gain along a ramp rather than in one step is what keeps mute,
    volume changes and concealment free of clicks. Results beyond ``int16``
    are clipped, so ``pcm`` may be a wide sum (:func:`mix`).
    """
    n = pcm.shape[0]
    if start == end:
        gain: npt.NDArray[np.float32] | float = start
    else:
        gain = np.linspace(start, end, n, endpoint=False, dtype=np.float32)[:, None]
    scaled = np.asarray(pcm, dtype=np.float32) * gain
    out: Pcm = np.clip(np.rint(scaled), -32768, 32767).astype(np.int16)
    return out
