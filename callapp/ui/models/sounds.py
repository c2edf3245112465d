"""The window's own sounds: the speaker test in the lobby and the ring of an incoming call.

:class:`SoundsModel` plays a :class:`~callapp.media.chimes.Chime` on the
speaker the person picked, through the same
:class:`~callapp.media.playback.AudioPlayback` a call plays through, so the
test sound proves the path the others' voices will take. One sound at a
time: a new one replaces the one playing. What the speaker did is said in
words on :attr:`SoundsModel.speakerStatusChanged` (a speaker that cannot
open is the same plain sentence a call would show). Without a speaker the
ring falls back to the desktop's beep, so an incoming call is never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

from callapp.media.chimes import RING, TEST_SOUND, Chime, ChimeTrack
from callapp.media.devices import AudioState, AudioStatus
from callapp.media.playback import AudioPlayback

logger = logging.getLogger(__name__)

#: Words while the test sound plays, and once it has played.
PLAYING_TEST = "Playing a test sound…"
TEST_PLAYED = "Did you hear three rising notes? If not, pick another speaker."


class Playback(Protocol):
    """What :class:`SoundsModel` needs of a speaker (an ``AudioPlayback``)."""

    @property
    def status(self) -> AudioStatus: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def wait_ended(self) -> None: ...


#: ``(track, speaker, on_status) -> playback``; ``speaker`` as ``CallConfig.speaker``.
PlaybackOpener = Callable[[ChimeTrack, str | None, Callable[[AudioStatus], None]], Playback]


def open_speaker(
    track: ChimeTrack, speaker: str | None, on_status: Callable[[AudioStatus], None]
) -> Playback:
    """``track`` on ``speaker`` (None: the default device; "none": nowhere)."""
    return AudioPlayback(track, device=speaker, on_status=on_status)


class SoundsModel(QObject):
    """Plays the speaker test and the ring; one sound at a time."""

    speakerStatusChanged = Signal(str)  # words about the speaker ("" when quiet)
    playingChanged = Signal(str)  # the chime's name, "" when nothing plays

    def __init__(
        self,
        opener: PlaybackOpener = open_speaker,
        *,
        beep: Callable[[], None] = QApplication.beep,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._opener = opener
        self._beep = beep
        self._playback: Playback | None = None
        self._task: asyncio.Task[None] | None = None
        self._playing = ""
        # Only when the speaker cannot play the ring: the desktop's own bell instead.
        self._bell = QTimer(self)
        self._bell.setInterval(round(RING.seconds * 1000))
        self._bell.timeout.connect(self._ring_bell)

    @property
    def playing(self) -> str:
        """The name of the chime playing now, or ""."""
        return self._playing

    def play_test(self, speaker: str | None) -> None:
        """Play the test chime once on ``speaker``; the words say how it went."""
        self.speakerStatusChanged.emit(PLAYING_TEST)
        self._play(TEST_SOUND, speaker, repeat=False)

    def ring(self, speaker: str | None) -> None:
        """Ring on ``speaker`` until :meth:`stop`; idempotent while ringing."""
        if self._playing != RING.name:
            self._play(RING, speaker, repeat=True)

    def stop(self) -> None:
        """Silence whatever plays (the ring once answered, declined or gone)."""
        self._bell.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        self._set_playing("")

    async def aclose(self) -> None:
        """Stop, and wait until the speaker is closed."""
        task = self._task
        self.stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _play(self, chime: Chime, speaker: str | None, *, repeat: bool) -> None:
        self.stop()
        track = ChimeTrack(chime, repeat=repeat)
        self._set_playing(chime.name)
        # The loop Qt drives; a click arrives between its turns, not inside one.
        self._task = asyncio.get_event_loop().create_task(
            self._run(chime, track, speaker), name=f"sound-{id(track)}"
        )

    async def _run(self, chime: Chime, track: ChimeTrack, speaker: str | None) -> None:
        playback: Playback | None = None

        def on_status(status: AudioStatus) -> None:
            if status.state is AudioState.FALLBACK:
                self.speakerStatusChanged.emit(status.message)
                if chime is RING and not self._bell.isActive():
                    self._ring_bell()
                    self._bell.start()

        try:
            playback = self._opener(track, speaker, on_status)
            playback.start()
            await playback.wait_ended()
            if chime is TEST_SOUND and playback.status.state is not AudioState.FALLBACK:
                self.speakerStatusChanged.emit(TEST_PLAYED)
        except (OSError, ValueError, RuntimeError):
            # A speaker name that no longer exists and the like: the words, not the error.
            logger.warning("could not play the %s", chime.name, exc_info=True)
            self.speakerStatusChanged.emit("This speaker cannot play sound. Pick another one.")
        finally:
            track.stop()
            if playback is not None:
                await playback.stop()
            if self._task is not None and self._task.get_name() == f"sound-{id(track)}":
                self._task = None
                self._bell.stop()
                self._set_playing("")

    def _ring_bell(self) -> None:
        self._beep()

    def _set_playing(self, name: str) -> None:
        if name != self._playing:
            self._playing = name
            self.playingChanged.emit(name)
