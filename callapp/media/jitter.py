"""A small playout buffer between decoded audio frames and a sound device (sans-I/O).

Frames arrive from the network in bursts and with holes; a sound device asks
for samples at its own steady pace. :class:`JitterBuffer` sits between the
two and keeps as little audio as it can get away with. It does no I/O and
reads no clock: :meth:`JitterBuffer.push` takes a decoded frame (samples and
pts), :meth:`JitterBuffer.pull` gives the next ``n`` samples to play. Time is
counted in samples pulled, so a test can replay any arrival pattern exactly.

How it keeps delay low:

* It starts playing once it holds one frame plus a *margin* (at first 10 ms).
* It watches the low-water mark: the fewest samples left after a pull over
  each second. Audio that was never needed in a whole second is surplus
  delay; it is removed a few milliseconds per pull by cutting a short piece
  out with a crossfade (no click, no audible pitch change).
* An underrun (the device wanted samples that had not arrived) raises the
  margin by 10 ms, up to what ``max_delay`` allows; a calm stretch of five
  seconds lowers it again by 2.5 ms, down to ``min_margin``.
* Whatever is buffered beyond ``max_delay`` (a burst after a stall) is
  removed faster, a quarter of each pull at most.

How it hides what is missing:

* On underrun, the last few milliseconds played are mirrored in time and
  faded out (``repeat with decay``), so the wave never jumps; then silence
  until the buffer has refilled, when playing resumes with a short fade-in.
* A hole in the pts (lost packets, up to ``max_conceal``) is filled the same
  way, so the audio after it stays on time; a frame after a hole fades in.
* A frame older than what is already queued (late, duplicated) is dropped,
  or trimmed to its part that is still new. A jump in pts larger than
  ``max_conceal`` either way is a new stream (the sender restarted): the
  buffer follows it without filling anything in.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

from callapp.media.pcm import FRAME_SAMPLES, SAMPLE_RATE, Pcm, ramp, take_samples, to_channels


@dataclass
class JitterStats:
    """Counters since the buffer was made; all in samples unless named otherwise."""

    frames_pushed: int = 0
    frames_late: int = 0
    """Frames dropped because everything in them was older than what was queued."""
    lost: int = 0
    """Samples filled in for holes in the pts (lost packets)."""
    underruns: int = 0
    """Times the device asked for samples that had not arrived."""
    concealed: int = 0
    """Samples played as fade-out or silence because nothing had arrived."""
    dropped: int = 0
    """Samples cut out to bring the delay down."""
    played: int = 0
    """Samples played that came from pushed frames."""


class JitterBuffer:
    """Samples in, samples out; see the module docstring.

    ``channels`` is the shape of what :meth:`pull` returns; pushed samples
    with another channel count are converted. Delays are in seconds.
    """

    def __init__(
        self,
        channels: int = 2,
        *,
        sample_rate: int = SAMPLE_RATE,
        frame_samples: int = FRAME_SAMPLES,
        max_delay: float = 0.060,
        min_margin: float = 0.005,
        initial_margin: float = 0.010,
        max_conceal: float = 0.120,
        fade: float = 0.0025,
        decay: float = 0.010,
        window: float = 1.0,
        calm_windows: int = 5,
    ) -> None:
        if channels < 1:
            raise ValueError("channels must be at least 1")
        self.channels = channels
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples

        def samples(seconds: float) -> int:
            return max(1, round(seconds * sample_rate))

        self.max_fill = max(samples(max_delay), frame_samples)
        self.min_margin = samples(min_margin)
        self.max_margin = max(self.min_margin, self.max_fill - frame_samples)
        self.margin = min(max(samples(initial_margin), self.min_margin), self.max_margin)
        self._margin_up = samples(0.010)
        self._margin_down = samples(0.0025)
        self._hysteresis = samples(0.005)
        self.max_conceal = samples(max_conceal)
        self._fade = samples(fade)
        self._decay_len = samples(decay)
        self._window = samples(window)
        self._calm_windows = calm_windows
        self.stats = JitterStats()

        self._chunks: collections.deque[Pcm] = collections.deque()
        self._fill = 0
        self._next_pts: int | None = None
        self._playing = False
        self._fade_left = 0  # fade-in still to apply to samples about to play
        self._decay: Pcm = self._empty()  # fade-out still to play after an underrun
        self._last: Pcm = self._empty()  # the last samples played, for concealment
        self._to_drop = 0
        self._low = math.inf
        self._window_pos = 0
        self._window_underruns = 0
        self._calm = 0

    # -- observing -------------------------------------------------------------

    @property
    def fill(self) -> int:
        """Samples queued, not yet pulled."""
        return self._fill

    @property
    def delay(self) -> float:
        """Seconds of audio queued: the delay this buffer adds right now."""
        return self._fill / self.sample_rate

    @property
    def playing(self) -> bool:
        """False while (re)filling, when :meth:`pull` gives silence."""
        return self._playing

    # -- input -----------------------------------------------------------------

    def push(self, pcm: Pcm, pts: int | None = None) -> None:
        """Queue a decoded frame; ``pts`` counts samples (None: right after the last)."""
        self.stats.frames_pushed += 1
        if pcm.ndim != 2:
            raise ValueError(f"expected samples shaped (samples, channels), got {pcm.shape}")
        pcm = to_channels(pcm, self.channels)
        if pcm.shape[0] == 0:
            return
        expected = self._next_pts
        if pts is None:
            pts = expected if expected is not None else 0
        fade_in = False
        if expected is not None and pts != expected:
            ahead = pts - expected
            if -self.max_conceal <= ahead < 0:  # late: keep only what is new
                if -ahead >= pcm.shape[0]:
                    self.stats.frames_late += 1
                    return
                pcm = pcm[-ahead:]
                pts = expected
                fade_in = True
            elif 0 < ahead <= self.max_conceal and (self._fill > 0 or self._playing):
                self._append(self._concealment(ahead))  # lost packets: stay on time
                self.stats.lost += ahead
                fade_in = True
            else:
                fade_in = self._fill > 0  # a new stream; fade in if it follows audio
        if fade_in:
            pcm = self._faded_in(pcm)
        self._append(pcm)
        self._next_pts = pts + pcm.shape[0]

    def reset(self) -> None:
        """Forget everything queued (e.g. the remote track was replaced)."""
        self._chunks.clear()
        self._fill = 0
        self._next_pts = None
        self._playing = False
        self._to_drop = 0

    # -- output ----------------------------------------------------------------

    def pull(self, n: int) -> Pcm:
        """The next ``n`` samples to play, shaped ``(n, channels)``. Always ``n``."""
        out = np.zeros((n, self.channels), dtype=np.int16)
        if n <= 0:
            return out
        if not self._playing and self._fill > 0 and self._fill >= self.margin + self.frame_samples:
            self._playing = True
            self._fade_left = self._fade
            self._decay = self._empty()
        if not self._playing:
            self._play_silence(out, 0)
            self._account(n)
            return out
        drop = self._plan_drop(n)
        if drop:
            block = self._splice(self._consume(n + drop), n, drop)
            self.stats.dropped += drop
        else:
            block = self._consume(min(n, self._fill))
        if self._fade_left and block.shape[0]:
            block = self._apply_fade_in(block)
        got = block.shape[0]
        out[:got] = block
        self.stats.played += got
        self._remember(block)
        if got < n:
            # Underrun: fade out what was playing, then wait to refill.
            self.stats.underruns += 1
            self._window_underruns += 1
            self._playing = False
            self._to_drop = 0
            self._decay = self._mirror_decay(self._last, self._decay_len)
            self._play_silence(out, got)
            self.margin = min(self.max_margin, self.margin + self._margin_up)
        else:
            self._low = min(self._low, self._fill)
        self._account(n)
        return out

    # -- internals ---------------------------------------------------------------

    def _empty(self) -> Pcm:
        return np.zeros((0, self.channels), dtype=np.int16)

    def _append(self, pcm: Pcm) -> None:
        if pcm.shape[0]:
            self._chunks.append(pcm)
            self._fill += pcm.shape[0]

    def _consume(self, n: int) -> Pcm:
        block = take_samples(self._chunks, n, self.channels)
        self._fill -= block.shape[0]
        return block

    def _tail(self, n: int) -> Pcm:
        """The last ``n`` samples of (what was played + what is queued)."""
        parts: list[Pcm] = []
        have = 0
        for chunk in reversed(self._chunks):
            parts.append(chunk)
            have += chunk.shape[0]
            if have >= n:
                break
        if have < n:
            parts.append(self._last)
        joined = np.concatenate(list(reversed(parts))) if parts else self._empty()
        return joined[-n:]

    def _remember(self, block: Pcm) -> None:
        keep = self._decay_len
        if block.shape[0] >= keep:
            self._last = block[-keep:].copy()
        else:
            self._last = np.concatenate([self._last, block])[-keep:]

    @staticmethod
    def _mirror_decay(tail: Pcm, length: int) -> Pcm:
        """``tail`` played backwards while fading to nothing: starts where the wave ended."""
        piece = tail[::-1][:length]
        if piece.shape[0] == 0:
            return piece
        return ramp(piece, 1.0, 0.0)

    def _concealment(self, n: int) -> Pcm:
        """``n`` samples to stand in for lost ones: a decay of what came before, then silence."""
        out = np.zeros((n, self.channels), dtype=np.int16)
        decay = self._mirror_decay(self._tail(self._decay_len), min(n, self._decay_len))
        out[: decay.shape[0]] = decay
        return out

    def _faded_in(self, pcm: Pcm) -> Pcm:
        k = min(self._fade, pcm.shape[0])
        head = ramp(pcm[:k], 0.0, 1.0)
        return np.concatenate([head, pcm[k:]])

    def _apply_fade_in(self, block: Pcm) -> Pcm:
        done = self._fade - self._fade_left
        k = min(self._fade_left, block.shape[0])
        head = ramp(block[:k], done / self._fade, (done + k) / self._fade)
        self._fade_left -= k
        return np.concatenate([head, block[k:]])

    def _play_silence(self, out: Pcm, start: int) -> None:
        """Fill ``out[start:]`` with what is left of the fade-out, then zeros."""
        room = out.shape[0] - start
        k = min(room, self._decay.shape[0])
        if k:
            out[start : start + k] = self._decay[:k]
            self._decay = self._decay[k:]
        self.stats.concealed += room
        if start == 0:
            self._last = self._empty()

    def _plan_drop(self, n: int) -> int:
        """How many samples to cut out of this pull to bring the delay down."""
        excess = self._fill - n - self.max_fill
        if excess > 0:
            self._to_drop = max(self._to_drop, excess)
        if self._to_drop <= 0:
            return 0
        limit = n // 4 if excess > 0 else n // 8
        drop = min(self._to_drop, limit, self._fill - n)
        if drop <= 0:
            return 0
        self._to_drop -= drop
        return drop

    @staticmethod
    def _splice(block: Pcm, n: int, drop: int) -> Pcm:
        """``n`` samples from ``n + drop``: the middle ``drop`` cut out, joined by a crossfade."""
        mid = n // 2
        width = min(mid, 240)
        out = np.empty((n, block.shape[1]), dtype=np.int16)
        out[: mid - width] = block[: mid - width]
        before = block[mid - width : mid].astype(np.float32)
        after = block[mid - width + drop : mid + drop].astype(np.float32)
        w = np.linspace(0.0, 1.0, width, endpoint=False, dtype=np.float32)[:, None]
        out[mid - width : mid] = np.rint(before * (1 - w) + after * w).astype(np.int16)
        out[mid:] = block[mid + drop :]
        return out

    def _account(self, n: int) -> None:
        """Once a window of samples has been pulled, adapt margin and delay."""
        self._window_pos += n
        if self._window_pos < self._window:
            return
        if self._window_underruns == 0 and self._low != math.inf:
            self._calm += 1
            surplus = int(self._low) - self.margin
            if surplus > self._hysteresis:
                self._to_drop = max(self._to_drop, surplus)
            if self._calm >= self._calm_windows:
                self._calm = 0
                self.margin = max(self.min_margin, self.margin - self._margin_down)
        elif self._window_underruns:
            self._calm = 0
        self._low = math.inf
        self._window_pos = 0
        self._window_underruns = 0
