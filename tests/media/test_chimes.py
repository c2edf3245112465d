"""The app's generated sounds: exact lengths, no clicks, once or repeating, played for real."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from callapp.media.chimes import RING, TEST_SOUND, Chime, ChimeTrack, Note
from callapp.media.pcm import SAMPLE_RATE, Pcm
from callapp.media.playback import AudioPlayback


def test_a_chime_renders_sample_exact_and_starts_and_ends_silent() -> None:
    samples = TEST_SOUND.render()[:, 0].astype(np.int32)
    assert len(samples) == round(TEST_SOUND.seconds * SAMPLE_RATE)
    # No click: each note rises from and falls back to (almost) nothing.
    assert abs(samples[0]) < 200
    assert samples[-1] == 0
    assert np.abs(samples).max() > 0.2 * 32767


def test_rests_are_silence_and_bad_notes_are_refused() -> None:
    chime = Chime("gap", (Note(440, 0.1), Note(0, 0.1)))
    rendered = chime.render()[:, 0]
    assert not rendered[round(0.1 * SAMPLE_RATE) :].any()
    with pytest.raises(ValueError, match="positive time"):
        Note(440, 0)
    with pytest.raises(ValueError, match="pitch"):
        Note(30_000, 0.1)
    with pytest.raises(ValueError, match="at least one note"):
        ChimeTrack(Chime("empty", ()))


def test_the_ring_is_a_two_second_cycle() -> None:
    assert RING.seconds == pytest.approx(2.0)


async def test_played_once_the_track_ends_after_its_last_note() -> None:
    track = ChimeTrack(Chime("short", (Note(440, 0.05),)), frame_samples=480)
    frames = [await track.recv() for _ in range(5)]  # 50 ms in 10 ms frames
    assert all(frame.samples == 480 for frame in frames)
    with pytest.raises(MediaStreamError):
        await track.recv()
    assert track.readyState == "ended"


async def test_repeating_wraps_around_without_a_seam() -> None:
    chime = Chime("loop", (Note(440, 0.03),))
    track = ChimeTrack(chime, repeat=True, frame_samples=480)
    pieces = [track.generate(480, 0)[:, 0] for _ in range(6)]
    played = np.concatenate(pieces)
    once = chime.render()[:, 0]
    assert np.array_equal(played[: len(once)], once)
    assert np.array_equal(played[len(once) : 2 * len(once)], once)
    assert not track.finished
    track.stop()


async def test_the_test_sound_reaches_the_speaker_mix() -> None:
    """Through a real AudioPlayback (its discarding clock, no sound card needed)."""
    heard: list[Pcm] = []
    track = ChimeTrack(Chime("beep", (Note(880, 0.2),)))
    playback = AudioPlayback(track, device="none", capture=lambda block: heard.append(block.copy()))
    playback.start()
    await asyncio.wait_for(playback.wait_ended(), 5)
    await playback.stop()
    mix = np.concatenate(heard)
    assert np.abs(mix.astype(np.int32)).max() > 0.1 * 32767
