"""Generated audio: a sine tone and silence, as paced aiortc audio tracks.

Both send 20 ms frames of ``s16`` mono at 48 kHz, paced from
``time.monotonic()`` by a :class:`~callapp.media.clock.Pacer`, with pts
counting samples. After a stall the pacer skips ahead instead of sending the
missed frames in a burst; the pts (and the tone's phase) skip with it, so the
receiver sees a gap in time, not a wrong frequency.
"""

from __future__ import annotations

import math
import time

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from callapp.media.clock import Clock, Pacer
from callapp.media.pcm import FRAME_SAMPLES, SAMPLE_RATE, Pcm, pcm_to_frame

DEFAULT_TONE_HZ = 440.0
#: About -15 dBFS RMS: clearly audible, far from clipping after Opus.
DEFAULT_AMPLITUDE = 0.25


class PacedAudioTrack(MediaStreamTrack):
    """An audio track that makes its samples on demand, one frame per 20 ms.

    Subclasses implement :meth:`generate`. ``frame_samples`` may be changed
    for tests (any size the Opus resampler accepts works).
    """

    kind = "audio"

    def __init__(
        self, *, frame_samples: int = FRAME_SAMPLES, clock: Clock = time.monotonic
    ) -> None:
        super().__init__()
        if frame_samples <= 0:
            raise ValueError(f"frame_samples must be positive, got {frame_samples}")
        self.frame_samples = frame_samples
        self._pacer = Pacer(SAMPLE_RATE / frame_samples, clock=clock)
        self._index = -1
        self.frames_sent = 0

    def generate(self, samples: int, skipped: int) -> Pcm:
        """The next ``samples`` samples, shaped ``(samples, 1)``.

        ``skipped`` samples were never asked for (the pacer skipped ahead);
        a generator that keeps phase should advance past them.
        """
        raise NotImplementedError

    async def recv(self) -> AudioFrame:
        """The next frame, at its time. Raises MediaStreamError once stopped."""
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.next()
        if self.readyState != "live":
            raise MediaStreamError
        index = self._pacer.index
        skipped = (index - self._index - 1) * self.frame_samples if self._index >= 0 else 0
        self._index = index
        pcm = self.generate(self.frame_samples, max(0, skipped))
        self.frames_sent += 1
        return pcm_to_frame(pcm, index * self.frame_samples)


class ToneTrack(PacedAudioTrack):
    """A sine wave of ``frequency`` Hz, phase-continuous from frame to frame.

    ``amplitude`` is the peak as a fraction of full scale (0..1].
    """

    def __init__(
        self,
        frequency: float = DEFAULT_TONE_HZ,
        *,
        amplitude: float = DEFAULT_AMPLITUDE,
        frame_samples: int = FRAME_SAMPLES,
        clock: Clock = time.monotonic,
    ) -> None:
        if not (0 < frequency < SAMPLE_RATE / 2 and math.isfinite(frequency)):
            raise ValueError(
                f"tone frequency must be between 0 and {SAMPLE_RATE // 2} Hz, got {frequency:g}"
            )
        if not 0 < amplitude <= 1:
            raise ValueError(f"amplitude must be in (0, 1], got {amplitude:g}")
        super().__init__(frame_samples=frame_samples, clock=clock)
        self.frequency = float(frequency)
        self.amplitude = amplitude
        self._step = 2 * math.pi * self.frequency / SAMPLE_RATE  # radians per sample
        self._phase = 0.0

    def generate(self, samples: int, skipped: int) -> Pcm:
        phase = (self._phase + self._step * skipped) % (2 * math.pi)
        angles = phase + self._step * np.arange(samples, dtype=np.float64)
        self._phase = (phase + self._step * samples) % (2 * math.pi)
        wave = np.sin(angles) * (self.amplitude * 32767.0)
        return np.rint(wave).astype(np.int16).reshape(-1, 1)


class SilenceTrack(PacedAudioTrack):
    """Digital silence: keeps RTP flowing when there is nothing to send."""

    def generate(self, samples: int, skipped: int) -> Pcm:
        return np.zeros((samples, 1), dtype=np.int16)
