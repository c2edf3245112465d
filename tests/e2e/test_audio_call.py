"""Audio both ways through the whole stack: tones in, Opus on the wire, speakers out.

Each app plays what it receives into ALSA's ``null`` device (a real PortAudio
device that needs no sound card, see ``tests/media/audio_null.py``) and
records it with ``--record``. A sends 440 Hz, B 880 Hz: each recording must
hold the other's tone, for nearly all of the call. Muting is checked on two
sessions in one process, where the moment of the mute is known exactly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from callapp.call.config import CallConfig
from callapp.call.session import CallSession
from callapp.call.state import CallPhase
from callapp.media.pcm import SAMPLE_RATE, frame_to_pcm, level_dbfs
from callapp.signaling.server import SignalingServer
from tests.media.audio_null import NULL_DEVICE, alsa_null_config, require_alsa

from .conftest import Procs

pytestmark = pytest.mark.e2e

WINDOW = SAMPLE_RATE // 50  # 20 ms


@pytest.fixture
def null_audio(tmp_path: Path) -> Iterator[Path]:
    require_alsa()
    with alsa_null_config(tmp_path) as path:
        yield path


def recorded_audio(path: Path) -> np.ndarray:
    """The recording's audio as mono float samples at 48 kHz."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        assert container.streams.audio, f"{path.name} has no audio stream"
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float64) / 32768.0


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(samples))


def loud_share(samples: np.ndarray, threshold_dbfs: float = -40.0) -> float:
    windows = samples[: len(samples) // WINDOW * WINDOW].reshape(-1, WINDOW)
    rms = np.sqrt(np.mean(windows**2, axis=1))
    loud = 20 * np.log10(np.maximum(rms, 1e-9)) > threshold_dbfs
    return float(np.mean(loud))


def stats(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_tones_cross_both_ways_and_are_recorded(
    null_audio: Path, procs: Procs, server_url: str, tmp_path: Path
) -> None:
    common = ["--server", server_url, "--room", "tones", "--allow-loopback"]
    a = procs.call(
        "a", *common, "--audio", "tone:440", "--seconds", "5",
        "--record", str(tmp_path / "a.mkv"), "--stats-json", str(tmp_path / "a.json"),
    )  # fmt: skip
    a.wait_line(r"joined room: tones")
    b = procs.call(
        "b", *common, "--audio", "tone:880",
        "--record", str(tmp_path / "b.mkv"), "--stats-json", str(tmp_path / "b.json"),
    )  # fmt: skip
    for proc in (a, b):
        code = proc.wait_exit(40)
        assert code == 0, f"{proc.name} exited {code}:\n{proc.output[-4000:]}"

    for name, expected_hz in (("a", 880), ("b", 440)):
        numbers = stats(tmp_path / f"{name}.json")
        assert numbers["audio_frames_received"] > 150, numbers  # 20 ms frames: > 3 s
        samples = recorded_audio(tmp_path / f"{name}.mkv")
        heard = dominant_hz(samples)
        assert abs(heard - expected_hz) < 10, f"{name} heard {heard:.0f} Hz, not {expected_hz}"
        call_s = numbers["duration_s"]
        covered_s = len(samples) / SAMPLE_RATE * loud_share(samples)
        assert covered_s >= 0.95 * call_s, (name, covered_s, call_s)


async def test_muting_silences_the_far_side_within_half_a_second(null_audio: Path) -> None:
    async with SignalingServer(port=0) as server:
        heard: list[tuple[float, float]] = []
        a = CallSession(
            CallConfig(server.url, audio="tone:440", speaker="none", allow_loopback=True)
        )
        b = CallSession(
            CallConfig(server.url, audio="tone:880", allow_loopback=True)  # default: null device
        )
        b.set_frame_callbacks(
            remote_audio=lambda frame: heard.append(
                (time.monotonic(), level_dbfs(frame_to_pcm(frame)))
            )
        )
        try:
            for session in (a, b):
                await session.connect()
                await session.join_room("mute")
            deadline = time.monotonic() + 15
            while not (heard and heard[-1][0] - heard[0][0] > 1.5):
                assert time.monotonic() < deadline, "B heard no audio from A"
                await asyncio.sleep(0.05)
            assert b.snapshot.phase is CallPhase.CONNECTED
            assert max(level for _, level in heard) > -20, "A's tone did not reach B"

            muted_at = time.monotonic()
            await a.set_muted(True)
            assert a.snapshot.muted
            await asyncio.sleep(1.5)
            after = [(at, level) for at, level in heard if at > muted_at]
            assert len(after) > 50, "audio stopped flowing after the mute"
            silent_from = next(
                (at for i, (at, _) in enumerate(after) if all(lv < -60 for _, lv in after[i:])),
                None,
            )
            assert silent_from is not None, "B never went silent"
            assert silent_from - muted_at <= 0.5, silent_from - muted_at

            await a.set_muted(False)
            unmuted_at = time.monotonic()
            await asyncio.sleep(1.0)
            assert max(lv for at, lv in heard if at > unmuted_at) > -20, "unmute did not restore"
        finally:
            await a.close()
            await b.close()


def test_list_audio_devices_names_what_audio_and_speaker_accept(
    null_audio: Path, procs: Procs
) -> None:
    listing = procs.call("list", "--list-audio-devices")  # no server needed
    assert listing.wait_exit(30) == 0, listing.output
    lines = listing.output.splitlines()
    null = [line for line in lines if NULL_DEVICE in line]
    assert null, listing.output
    assert "in/out" in null[0]
    assert any("[default in, default out]" in line for line in lines), listing.output
