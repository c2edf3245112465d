"""The switcher and the sink through two real aiortc peer connections (VP8)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc.contrib.media import MediaRelay
from av import VideoFrame

from callapp.media.fanout import FanoutTrack, TrackFanout
from callapp.media.frames import luma_view
from callapp.media.recorder import Recorder
from callapp.media.sinks import LatestFrameSink
from callapp.media.switcher import SwitchableVideoTrack
from callapp.media.testpattern import TestPatternTrack

from .conftest import FlatTrack

# No STUN: aiortc would otherwise ask Google's server and wait up to 5 s.
NO_ICE_SERVERS = RTCConfiguration(iceServers=[])


async def test_switcher_frames_reach_a_remote_sink_and_recorder_through_vp8(
    tmp_path: Path,
) -> None:
    sender = RTCPeerConnection(NO_ICE_SERVERS)
    receiver = RTCPeerConnection(NO_ICE_SERVERS)
    switcher = SwitchableVideoTrack(TestPatternTrack(320, 240, fps=30), idle_fps=30)
    sender.addTrack(switcher)

    frames: list[np.ndarray] = []
    got: dict[str, asyncio.Event] = {"pattern": asyncio.Event(), "black": asyncio.Event()}
    sinks: list[LatestFrameSink] = []
    # One remote track, two consumers: each gets its own relay proxy (two
    # readers of one track would each get half the frames). The view only
    # wants the newest frame; the recorder wants them all.
    relay = MediaRelay()
    recorder = Recorder(tmp_path / "remote.mkv")
    starting: list[asyncio.Future[None]] = []

    def on_frame(frame: VideoFrame) -> None:
        y = luma_view(frame)
        frames.append(y.copy())
        if len(frames) >= 5 and y.std() > 20:
            got["pattern"].set()
        if switcher.enabled is False and y.max() < 40:
            got["black"].set()

    @receiver.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        sink = LatestFrameSink(relay.subscribe(track, buffered=False), on_frame=on_frame)
        sinks.append(sink)
        sink.start()
        recorder.add_track(relay.subscribe(track))
        starting.append(asyncio.ensure_future(recorder.start()))

    try:
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)

        await asyncio.wait_for(got["pattern"].wait(), 20)
        first = sinks[0].latest
        assert first is not None
        assert (first.width, first.height) == (320, 240)

        # Swap in a smaller flat source and then mute: no renegotiation.
        switcher.set_source(FlatTrack(200, fps=30, size=(160, 120)))
        switcher.enabled = False
        await asyncio.wait_for(got["black"].wait(), 20)
    finally:
        for sink in sinks:
            await sink.stop()
        await recorder.stop()
        switcher.stop()
        await sender.close()
        await receiver.close()
    assert sinks[0].frames >= 6
    with av.open(str(tmp_path / "remote.mkv")) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == recorder.frames_written["video"] > 0
    # A file keeps its first size: after the switch, frames are scaled to it.
    assert {(f.width, f.height) for f in frames} == {(320, 240)}


async def test_one_capture_reaches_two_legs_through_vp8_and_h264() -> None:
    """A group call's video: one source, one fan-out, a sender per leg, each its own codec."""
    pattern = TestPatternTrack(320, 240, fps=30)
    switcher = SwitchableVideoTrack(pattern, idle_fps=30)
    fanout = TrackFanout(switcher, max_queue=1)
    pairs: list[tuple[RTCPeerConnection, RTCPeerConnection]] = []
    legs: list[FanoutTrack] = []
    sinks: dict[str, LatestFrameSink] = {}
    seen = {codec: asyncio.Event() for codec in ("vp8", "h264")}

    def sink_for(codec: str, track: MediaStreamTrack) -> None:
        def on_frame(frame: VideoFrame) -> None:
            if luma_view(frame).std() > 20 and sinks[codec].frames >= 10:
                seen[codec].set()

        sinks[codec] = LatestFrameSink(track, on_frame=on_frame)
        sinks[codec].start()

    try:
        for codec in ("vp8", "h264"):
            sender = RTCPeerConnection(NO_ICE_SERVERS)
            receiver = RTCPeerConnection(NO_ICE_SERVERS)
            pairs.append((sender, receiver))
            legs.append(fanout.subscribe())
            transceiver = sender.addTransceiver(legs[-1], direction="sendonly")
            wanted = [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType.lower() == f"video/{codec}"
            ]
            transceiver.setCodecPreferences(wanted)
            receiver.on("track", lambda track, codec=codec: sink_for(codec, track))
            await sender.setLocalDescription(await sender.createOffer())
            await receiver.setRemoteDescription(sender.localDescription)
            await receiver.setLocalDescription(await receiver.createAnswer())
            await sender.setRemoteDescription(receiver.localDescription)
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in seen.values())), 30)
    finally:
        for sink in sinks.values():
            await sink.stop()
        fanout.stop()
        for sender, receiver in pairs:
            await sender.close()
            await receiver.close()
        switcher.stop()

    for codec in ("vp8", "h264"):
        latest = sinks[codec].latest
        assert latest is not None
        assert sinks[codec].size == (320, 240), codec
    # Captured once, sent twice: each frame the switcher sent went to both legs.
    assert switcher.frames_sent == fanout.frames
    assert sum(leg.frames for leg in legs) > 1.5 * switcher.frames_sent
    assert all(leg.size == (320, 240) for leg in legs)
