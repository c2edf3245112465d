"""The app's own sounds: a ring for an incoming call and a test chime for the speaker.

Both are generated, not recorded files: a :class:`Chime` is a list of notes
(frequency and length, 0 Hz for a rest), each shaped by a short attack and a
longer decay so that no note starts or stops with a click. A
:class:`ChimeTrack` plays one as a paced aiortc audio track, once (it ends
after the last note, so a playback reading it sees the track end) or over
and over until stopped, which is how the ring keeps ringing until someone
answers. Sample-exact: the note boundaries do not depend on the frame size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from callapp.media.clock import Clock
from callapp.media.pcm import FRAME_SAMPLES, SAMPLE_RATE, Pcm
from callapp.media.tone import PacedAudioTrack

#: Attack and the shortest decay of every note, in seconds: long enough not to click.
_ATTACK = 0.01
_RELEASE = 0.03


@dataclass(frozen=True)
class Note:
    """``seconds`` of ``hz`` (0: a rest), the peak at ``amplitude`` of full scale."""

    hz: float
    seconds: float
    amplitude: float = 0.3

    def __post_init__(self) -> None:
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"a note lasts a positive time, got {self.seconds!r} s")
        if not 0 <= self.hz < SAMPLE_RATE / 2:
            raise ValueError(f"a note's pitch must be 0 to {SAMPLE_RATE // 2} Hz, got {self.hz!r}")
        if not 0 <= self.amplitude <= 1:
            raise ValueError(f"amplitude must be in [0, 1], got {self.amplitude!r}")


@dataclass(frozen=True)
class Chime:
    """Notes played one after another; ``name`` says what it is for (logs, tests)."""

    name: str
    notes: tuple[Note, ...]

    @property
    def seconds(self) -> float:
        return sum(note.seconds for note in self.notes)

    def render(self) -> Pcm:
        """The whole chime as ``(samples, 1)`` ``int16`` at 48 kHz."""
        parts = [_render_note(note) for note in self.notes]
        if not parts:
            return np.zeros((0, 1), dtype=np.int16)
        return np.concatenate(parts).reshape(-1, 1)


def _render_note(note: Note) -> np.ndarray:
    count = round(note.seconds * SAMPLE_RATE)
    if note.hz == 0 or note.amplitude == 0:
        return np.zeros(count, dtype=np.int16)
    t = np.arange(count, dtype=np.float64) / SAMPLE_RATE
    # A bell-like note: a quick rise, then an exponential fall that reaches
    # silence by the note's end (the last _RELEASE seconds fade to exactly 0).
    envelope = np.minimum(1.0, t / _ATTACK) * np.exp(-3.0 * t / note.seconds)
    tail = max(1, round(min(_RELEASE, note.seconds / 2) * SAMPLE_RATE))
    envelope[-tail:] *= np.linspace(1.0, 0.0, tail)
    wave = np.sin(2 * math.pi * note.hz * t) * envelope * (note.amplitude * 32767.0)
    samples: np.ndarray = np.rint(wave).astype(np.int16)
    return samples


#: An incoming call: two rising double notes, then a pause (2 s a cycle, as phones ring).
RING = Chime(
    "ring",
    (
        Note(660, 0.18),
        Note(880, 0.32),
        Note(0, 0.1),
        Note(660, 0.18),
        Note(880, 0.32),
        Note(0, 0.9),
    ),
)
#: The speaker test: three rising notes, about a second.
TEST_SOUND = Chime("test sound", (Note(523.25, 0.25), Note(659.25, 0.25), Note(783.99, 0.5)))


class ChimeTrack(PacedAudioTrack):
    """``chime`` as 20 ms frames of mono ``s16``: once, or ``repeat``-ing until stopped.

    Played once, :meth:`recv` raises MediaStreamError after the last note
    (and the track reads as ended); repeating, the chime starts over where it
    ended, with no gap beyond its own rests. After a stall the pacer skips
    ahead and so does the position in the chime.
    """

    def __init__(
        self,
        chime: Chime,
        *,
        repeat: bool = False,
        frame_samples: int = FRAME_SAMPLES,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(frame_samples=frame_samples, clock=clock)
        self.chime = chime
        self.repeat = repeat
        self._samples = chime.render()[:, 0]
        if not len(self._samples):
            raise ValueError("a chime needs at least one note")
        self._position = 0

    def generate(self, samples: int, skipped: int) -> Pcm:
        total = len(self._samples)
        start = self._position + skipped
        if self.repeat:
            indices = (start + np.arange(samples)) % total
            self._position = (start + samples) % total
            return self._samples[indices].reshape(-1, 1)
        out = np.zeros(samples, dtype=np.int16)
        if start < total:
            piece = self._samples[start : start + samples]
            out[: len(piece)] = piece
        self._position = start + samples
        return out.reshape(-1, 1)

    @property
    def finished(self) -> bool:
        """Played once and past its last note."""
        return not self.repeat and self._position >= len(self._samples)

    async def recv(self) -> AudioFrame:
        if self.finished:
            self.stop()
            raise MediaStreamError
        return await super().recv()
