"""The call engine's glue to callapp.media: sources, the frame feed, recording, audio, watch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from callapp.call import errors, ice
from callapp.call.peer import Peer
from callapp.call.recording import CallRecording, FrameFeed
from callapp.call.session import CallSession
from callapp.call.sources import open_source
from callapp.call.state import CallPhase
from callapp.media.pcm import frame_to_pcm
from callapp.media.testpattern import TestPatternTrack
from callapp.media.tone import ToneTrack
from tests.media.conftest import dominant_hz

from .conftest import Sessions, make_config, wait_phase


def frame(index: int, width: int = 320, height: int = 240) -> av.VideoFrame:
    data = np.full((height, width, 3), index % 255, np.uint8)
    out = av.VideoFrame.from_ndarray(data, format="rgb24").reformat(format="yuv420p")
    out.pts = index * 3000
    return out


async def test_test_pattern_has_the_configured_size() -> None:
    track = open_source(make_config(video="test", width=320, height=240))
    try:
        first = await track.recv()
        assert isinstance(first, av.VideoFrame)
        assert (first.width, first.height) == (320, 240)
    finally:
        track.stop()


def test_a_missing_file_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(errors.MediaError):
        open_source(make_config(video=str(tmp_path / "missing.mp4")))


async def test_a_session_with_a_missing_file_sends_the_pattern_and_says_so(
    sessions: Sessions, tmp_path: Path
) -> None:
    a = await sessions(video=str(tmp_path / "missing.mp4"))
    assert a.snapshot.phase is CallPhase.WAITING
    assert a.snapshot.notice is not None
    assert "test pattern" in a.snapshot.notice
    b = await sessions()
    await a.join_room("m")
    await b.join_room("m")
    await wait_phase(b, CallPhase.CONNECTED)


async def test_feed_keeps_the_newest_frames() -> None:
    feed = FrameFeed(max_frames=2)
    for i in range(5):
        feed.push(frame(i))
    assert feed.dropped == 3
    assert (await feed.recv()).pts == 3 * 3000
    assert (await feed.recv()).pts == 4 * 3000
    feed.stop()


async def test_recording_writes_a_file_pyav_reads(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    recording = CallRecording(path)
    for i in range(20):
        recording.write(frame(i))
        await _tick()
    await recording.close()
    assert recording.frames_written >= 10
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == recording.frames_written


def test_recording_to_a_missing_folder_fails_early(tmp_path: Path) -> None:
    with pytest.raises(errors.MediaError):
        CallRecording(tmp_path / "no" / "such" / "folder.mp4")


async def _tick() -> None:
    await asyncio.sleep(0.01)


# -- audio on the way out and in, and the silence watch --------------------------------


def _peer(session: CallSession) -> Peer:
    legs = [leg for leg in session._legs.values() if leg.live]
    assert len(legs) == 1
    assert legs[0].peer is not None
    return legs[0].peer


async def test_a_call_sends_opus_made_on_the_loop_and_plays_what_comes_in(
    sessions: Sessions,
) -> None:
    a = await sessions(audio="tone:440")
    b = await sessions(audio="tone:880", speaker="none")
    heard: list[av.AudioFrame] = []
    b.set_frame_callbacks(remote_audio=heard.append)
    await a.join_room("opus")
    await b.join_room("opus")
    await wait_phase(a, CallPhase.CONNECTED)
    await wait_phase(b, CallPhase.CONNECTED)
    await _eventually(lambda: len(heard) >= 40)
    sender = _peer(a)
    assert sender._sends_opus()
    assert sender.audio_out is not None
    assert sender.audio_out.packets > 0
    # aiortc's receiver decodes what we encoded (as stereo): still the 440 Hz tone.
    samples = np.concatenate([frame_to_pcm(f) for f in heard[-25:]])
    assert dominant_hz(samples[:, 0]) == pytest.approx(440, abs=5)
    # The speaker gets the same frames straight from the leg (a feed, no queue).
    speaker = b._speaker
    assert speaker is not None
    assert speaker.inputs == (a.my_id,)
    assert speaker.frames_received > 0


async def test_a_peer_that_agreed_on_another_codec_gets_frames_for_aiortc_to_encode() -> None:
    other = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    ice.tune_gathering(other, gather_timeout=0.3, allow_loopback=True)
    pcmu = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
    other.addTransceiver("audio", direction="recvonly").setCodecPreferences(pcmu)
    other.addTransceiver("video", direction="recvonly")
    got: list[object] = []
    readers: list[asyncio.Future[None]] = []

    @other.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "audio":

            async def read() -> None:
                while len(got) < 10:
                    got.append(await track.recv())

            readers.append(asyncio.ensure_future(read()))

    config = make_config()
    peer = Peer(config, [], TestPatternTrack(160, 120, 15), audio=ToneTrack(440))
    try:
        await other.setLocalDescription(await other.createOffer())
        answer = await peer.take_offer(other.localDescription.sdp)
        await other.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await _eventually(lambda: len(got) >= 10)
        assert peer._sends_opus() is False
        assert peer.audio_out is not None
        assert peer.audio_out.packets == 0
    finally:
        for reader in readers:
            reader.cancel()
        await peer.close()
        await other.close()


async def test_the_silence_watch_sleeps_while_frames_arrive(sessions: Sessions) -> None:
    a = await sessions(silence_timeout=1.0)
    b = await sessions()
    await a.join_room("watch")
    await b.join_room("watch")
    await wait_phase(a, CallPhase.CONNECTED)
    peer = _peer(a)
    await _eventually(lambda: peer.frames_received > 5)
    counted = []
    real = peer._packets_received

    def counting() -> int:
        counted.append(1)
        return real()

    peer._packets_received = counting  # type: ignore[method-assign]
    await asyncio.sleep(1.5)
    assert len(counted) <= 3, "the watch polled the transports while media flowed"
    assert a.snapshot.phase is CallPhase.CONNECTED


async def _eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    for _ in range(int(within / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("still not true")
