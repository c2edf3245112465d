"""One call's RTCPeerConnection and the media plumbing around it.

:class:`Peer` is created per call and thrown away after it, as WebRTC wants.
It knows offers, answers and candidates, but not who the other side is or
how messages travel: :class:`~callapp.call.session.CallSession` decides that.

* The local source is wrapped in a :class:`LocalTap` per call, which counts
  frames, shows them to the local preview and sends black frames while video
  is off (RTP keeps flowing, so the peer can tell "camera off" from "gone").
* Local audio goes out through a :class:`MutableAudioTrack` per call, so mute
  sends digital silence without renegotiation.
* Remote video is pulled by one task that counts frames and hands each one to
  the remote callback at once (latest frame wins; nothing queues here).
  Remote audio is pulled the same way and fanned out: to the speaker (an
  :class:`AudioPlayback` with its jitter buffer) and to the audio callback
  (the recorder).
* Remote candidates wait in a queue until the remote description is set.
* :meth:`Peer.watch` notices a peer that went silent: aiortc has no ICE
  "disconnected" state, and aioice's consent checks take 30 s to give up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from callapp.call import ice, wire
from callapp.call.config import CallConfig
from callapp.call.recording import FrameFeed
from callapp.call.stats import FrameCounters, negotiated_codec
from callapp.media.audio_sources import MutableAudioTrack
from callapp.media.devices import AudioStatus
from callapp.media.playback import AudioPlayback

logger = logging.getLogger(__name__)

FrameCallback = Callable[[av.VideoFrame], None]
AudioCallback = Callable[[av.AudioFrame], None]

_MIME = {"vp8": "video/vp8", "h264": "video/h264"}


def codec_preferences(codec: str) -> list[Any]:
    """aiortc's video codecs with ``codec`` first (then the others, then RTX).

    A preference, not a restriction: a peer that prefers another codec (or
    a browser without it) still finds a common one.
    """
    capabilities = RTCRtpSender.getCapabilities("video").codecs
    wanted = [c for c in capabilities if c.mimeType.lower() == _MIME[codec]]
    rtx = [c for c in capabilities if c.mimeType.lower() == "video/rtx"]
    others = [c for c in capabilities if c not in wanted and c not in rtx]
    return [*wanted, *others, *rtx]


def _black(width: int, height: int) -> av.VideoFrame:
    width, height = width - width % 2, height - height % 2
    data = np.zeros((height * 3 // 2, width), dtype=np.uint8)
    data[height:, :] = 128
    return av.VideoFrame.from_ndarray(data, format="yuv420p")


def black_like(frame: av.VideoFrame) -> av.VideoFrame:
    """A black frame of ``frame``'s size (rounded down to even) and timing."""
    black = _black(frame.width, frame.height)
    black.pts, black.time_base = frame.pts, frame.time_base
    return black


class LocalTap(MediaStreamTrack):
    """What a call sends: ``source``'s frames, counted, previewed, maybe blacked out."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, on_frame: Callable[[], FrameCallback | None]):
        super().__init__()
        self._source = source
        self._on_frame = on_frame
        self.enabled = True
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self._black: av.VideoFrame | None = None

    async def recv(self) -> av.VideoFrame:
        frame = await self._source.recv()
        if not isinstance(frame, av.VideoFrame):
            raise TypeError(f"video source produced {type(frame).__name__}, not a VideoFrame")
        if not self.enabled:
            if self._black is None or (self._black.width, self._black.height) != (
                frame.width - frame.width % 2,
                frame.height - frame.height % 2,
            ):
                self._black = _black(frame.width, frame.height)
            black = self._black
            black.pts, black.time_base = frame.pts, frame.time_base
            frame = black
        self.frames += 1
        self.size = (frame.width, frame.height)
        callback = self._on_frame()
        if callback is not None:
            try:
                callback(frame)
            except Exception:
                logger.exception("local frame callback failed")
        return frame


class Peer:
    """One RTCPeerConnection for one call."""

    def __init__(
        self,
        config: CallConfig,
        servers: Sequence[Any],
        source: MediaStreamTrack,
        *,
        audio_source: MediaStreamTrack | None = None,
        video_enabled: bool = True,
        muted: bool = False,
        volume: float = 1.0,
        local_callback: Callable[[], FrameCallback | None] = lambda: None,
        remote_callback: Callable[[], FrameCallback | None] = lambda: None,
        remote_audio_callback: Callable[[], AudioCallback | None] = lambda: None,
        on_speaker_status: Callable[[AudioStatus], None] = lambda status: None,
        on_connection_state: Callable[[str], None] = lambda state: None,
    ) -> None:
        self._config = config
        self.pc = RTCPeerConnection(ice.configuration(servers))
        self.tap = LocalTap(source, local_callback)
        self.tap.enabled = video_enabled
        self.audio_tap = (
            MutableAudioTrack(audio_source, muted=muted) if audio_source is not None else None
        )
        self.playback: AudioPlayback | None = None
        self._volume = volume
        self.audio_frames_received = 0
        self._remote_callback = remote_callback
        self._remote_audio_callback = remote_audio_callback
        self._on_speaker_status = on_speaker_status
        self._on_connection_state = on_connection_state
        self._pending: list[wire.Ice] = []
        self._end_of_candidates = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._gathering: asyncio.Future[Any] | None = None
        self.frames_received = 0
        self.received_size: tuple[int, int] | None = None
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self.closed = False

        # Audio is attached when the roles are known (see _attach_audio).
        transceiver = self.pc.addTransceiver(self.tap, direction="sendrecv")
        transceiver.setCodecPreferences(codec_preferences(config.codec))
        self._tune()

        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._state_changed)

    def _tune(self) -> None:
        ice.tune_gathering(
            self.pc,
            gather_timeout=self._config.gather_timeout,
            allow_loopback=self._config.allow_loopback,
        )

    # -- events from aiortc ----------------------------------------------------

    def _state_changed(self) -> None:
        self._on_connection_state(self.pc.connectionState)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._spawn(self._pump_video(track))
        elif track.kind == "audio" and self.playback is None:
            self._spawn(self._pump_audio(track))
        else:
            self._spawn(self._drain(track))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump_video(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.VideoFrame):
                continue
            now = time.monotonic()
            if self.first_frame_at is None:
                self.first_frame_at = now
            self.last_frame_at = now
            self.frames_received += 1
            self.received_size = (frame.width, frame.height)
            callback = self._remote_callback()
            if callback is not None:
                try:
                    callback(frame)
                except Exception:
                    logger.exception("remote frame callback failed")

    async def _pump_audio(self, track: MediaStreamTrack) -> None:
        speaker = FrameFeed(25, kind="audio")
        device: int | str | None = self._config.speaker
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        self.playback = AudioPlayback(
            speaker,
            device=device,
            volume=self._volume,
            on_status=self._on_speaker_status,
        )
        self.playback.start()
        try:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if not isinstance(frame, av.AudioFrame):
                    continue
                self.audio_frames_received += 1
                speaker.push(frame)
                callback = self._remote_audio_callback()
                if callback is not None:
                    try:
                        callback(frame)
                    except Exception:
                        logger.exception("remote audio callback failed")
        finally:
            speaker.stop()

    async def _drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    # -- offer / answer ----------------------------------------------------------

    def pregather(self) -> None:
        """Start gathering now, so a later answer does not wait for STUN/TURN.

        The callee of a room call knows it will answer before the offer
        arrives; gathering meanwhile overlaps with the caller's own gathering.
        """
        if self._gathering is None:
            gatherers = [
                t.receiver.transport.transport.iceGatherer for t in self.pc.getTransceivers()
            ]
            self._gathering = asyncio.ensure_future(
                asyncio.gather(*(g.gather() for g in gatherers))
            )

    async def _gathered(self) -> None:
        if self._gathering is not None:
            with contextlib.suppress(Exception):
                await self._gathering

    def _attach_audio(self, *, offering: bool) -> None:
        """Put our audio on the call.

        The caller offers an audio section (sending, or receive-only with no
        source). The callee answers only what the offer has: an audio
        transceiver of ours that the offer did not mention would make aiortc
        fail the answer, and a video-only peer (a browser without a
        microphone, an older client) must still be callable.
        """
        if offering:
            if self.audio_tap is not None:
                self.pc.addTransceiver(self.audio_tap, direction="sendrecv")
            else:
                self.pc.addTransceiver("audio", direction="recvonly")
        elif self.audio_tap is not None and any(
            t.kind == "audio" for t in self.pc.getTransceivers()
        ):
            self.pc.addTrack(self.audio_tap)  # reuses the offer's audio transceiver
        self._tune()  # new transceivers have gatherers of their own

    async def make_offer(self) -> str:
        self._attach_audio(offering=True)
        await self._gathered()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def take_offer(self, sdp: str) -> str:
        """Apply the peer's offer and return our answer."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self._attach_audio(offering=False)
        await self._flush_candidates()
        await self._gathered()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def take_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        await self._flush_candidates()

    @property
    def has_remote_description(self) -> bool:
        return self.pc.remoteDescription is not None

    @property
    def signaling_state(self) -> str:
        return str(self.pc.signalingState)

    # -- candidates --------------------------------------------------------------

    async def add_candidate(self, message: wire.Ice) -> None:
        """Apply a trickled remote candidate, or queue it until the remote description."""
        if not self.has_remote_description:
            self._pending.append(message)
            return
        await self._apply(message)

    @property
    def pending_candidates(self) -> int:
        return len(self._pending)

    async def _flush_candidates(self) -> None:
        pending, self._pending = self._pending, []
        for message in pending:
            await self._apply(message)

    async def _apply(self, message: wire.Ice) -> None:
        if message.is_end:
            if self._end_of_candidates:
                return
            self._end_of_candidates = True
            candidate = None
        else:
            candidate = ice.remote_candidate(message)
            if candidate is None:
                return
        try:
            await self.pc.addIceCandidate(candidate)
        except ValueError as exc:  # e.g. a candidate after end-of-candidates
            logger.info("ignoring remote candidate %r: %s", message.candidate, exc)

    # -- liveness and numbers ----------------------------------------------------

    async def watch(self, silence_timeout: float, on_silent: Callable[[], None]) -> None:
        """Call ``on_silent`` once nothing has arrived for ``silence_timeout`` s.

        Counts packets on the transports (RTP and RTCP alike). A peer that
        sends no media at all only sends RTCP about once a second, so until
        its RTP has been seen the limit is at least 5 s.
        """
        last_count = -1
        last_change = time.monotonic()
        while not self.closed:
            await asyncio.sleep(0.1)
            report = await self.pc.getStats()
            count = 0
            rtp_seen = False
            for stat in report.values():
                kind = getattr(stat, "type", "")
                if kind == "transport":
                    count += int(stat.packetsReceived)
                elif kind == "inbound-rtp" and stat.packetsReceived:
                    rtp_seen = True
            now = time.monotonic()
            if count != last_count:
                last_count, last_change = count, now
                continue
            limit = silence_timeout if rtp_seen else max(silence_timeout, 5.0)
            if now - last_change > limit:
                on_silent()
                return

    def counters(self) -> FrameCounters:
        return FrameCounters(
            time=time.monotonic(),
            frames_sent=self.tap.frames,
            frames_received=self.frames_received,
            audio_frames_sent=self.audio_tap.frames if self.audio_tap is not None else 0,
            audio_frames_received=self.audio_frames_received,
            sent_size=self.tap.size,
            received_size=self.received_size,
        )

    def codec(self) -> str | None:
        """The codec we send with (each side may send with its own preference)."""
        for transceiver in self.pc.getTransceivers():
            codecs = getattr(transceiver, "_codecs", None)  # set by negotiation
            if transceiver.kind == "video" and codecs:
                return str(codecs[0].mimeType).partition("/")[2] or None
        description = (
            self.pc.remoteDescription
            if self.pc.localDescription is not None and self.pc.localDescription.type == "offer"
            else self.pc.localDescription
        )
        return negotiated_codec(description.sdp if description is not None else None)

    async def get_stats(self) -> Any:
        return await self.pc.getStats()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._gathering is not None and not self._gathering.done():
            self._gathering.cancel()
        self.tap.stop()
        if self.audio_tap is not None:
            self.audio_tap.stop()
        await self.pc.close()
        if self.playback is not None:
            await self.playback.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)


__all__ = ["FrameCallback", "LocalTap", "Peer", "black_like", "codec_preferences"]
