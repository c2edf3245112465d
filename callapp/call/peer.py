"""One leg's RTCPeerConnection and the media plumbing around it.

:class:`Peer` is created per leg and thrown away after it, as WebRTC wants.
It knows offers, answers, candidates and the chat data channel, but not who
the other side is, which state the leg is in or how messages travel:
:class:`~callapp.call.leg.CallLeg` decides that.

* Local media arrives ready to send: the session's one capture is fanned out
  (:class:`~callapp.media.fanout.TrackFanout`), and each leg gets its own
  consumer track of the video and of the (muted or not) audio. Nothing here
  copies or converts a frame.
* Remote video is read by a :class:`~callapp.media.sinks.LatestFrameSink`,
  which counts frames and hands each one to ``on_video`` at once (nothing
  queues here). Remote audio is read the same way (``read_track``) and handed
  to ``on_audio`` (the session mixes it into the speaker and may record it).
* The offerer creates the ordered ``chat`` data channel; the answerer gets it
  from the offer. ``on_chat`` receives each text message.
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
from aiortc import (
    MediaStreamTrack,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from callapp.call import ice, wire
from callapp.call.config import CallConfig
from callapp.call.stats import FrameCounters, negotiated_codec
from callapp.media.reading import read_track
from callapp.media.sinks import LatestFrameSink

logger = logging.getLogger(__name__)

FrameCallback = Callable[[av.VideoFrame], None]
AudioCallback = Callable[[av.AudioFrame], None]

_MIME = {"vp8": "video/vp8", "h264": "video/h264"}

#: The label of the chat data channel (docs/protocol.md).
CHAT_LABEL = "chat"


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


def _ignore(*_: object) -> None:
    return None


class Peer:
    """One RTCPeerConnection for one leg.

    ``video`` and ``audio`` are this leg's own consumer tracks of the
    session's capture; :meth:`close` stops them (not the capture).
    """

    def __init__(
        self,
        config: CallConfig,
        servers: Sequence[Any],
        video: MediaStreamTrack,
        *,
        audio: MediaStreamTrack | None = None,
        on_video: FrameCallback = _ignore,
        on_audio: AudioCallback = _ignore,
        on_connection_state: Callable[[str], None] = _ignore,
        on_chat: Callable[[str], None] = _ignore,
        on_chat_open: Callable[[bool], None] = _ignore,
    ) -> None:
        self._config = config
        self.pc = RTCPeerConnection(ice.configuration(servers))
        self.video = video
        self.audio = audio
        self._on_video = on_video
        self._on_audio = on_audio
        self._on_connection_state = on_connection_state
        self._on_chat = on_chat
        self._on_chat_open = on_chat_open
        self.chat: RTCDataChannel | None = None
        self._pending: list[wire.Ice] = []
        self._end_of_candidates = False
        self._tasks: set[asyncio.Task[BaseException | None]] = set()
        self._gathering: asyncio.Future[Any] | None = None
        #: Reads the remote video once its track arrives (counts, first/last frame).
        self.video_sink: LatestFrameSink | None = None
        self.audio_frames_received = 0
        self.closed = False

        # Audio and the data channel are attached when the roles are known.
        transceiver = self.pc.addTransceiver(video, direction="sendrecv")
        transceiver.setCodecPreferences(codec_preferences(config.codec))
        self._tune()

        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("datachannel", self._adopt_channel)

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
        if track.kind == "video" and self.video_sink is None:
            self.video_sink = LatestFrameSink(track, on_frame=self._on_video)
            self.video_sink.start()
        elif track.kind == "audio":
            task = asyncio.ensure_future(read_track(track, self._audio_frame, what="remote audio"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def frames_received(self) -> int:
        return self.video_sink.frames if self.video_sink is not None else 0

    @property
    def received_size(self) -> tuple[int, int] | None:
        return self.video_sink.size if self.video_sink is not None else None

    @property
    def first_frame_at(self) -> float | None:
        return self.video_sink.first_frame_at if self.video_sink is not None else None

    @property
    def last_frame_at(self) -> float | None:
        return self.video_sink.last_frame_at if self.video_sink is not None else None

    def _audio_frame(self, frame: Any) -> None:
        if not isinstance(frame, av.AudioFrame):
            return
        self.audio_frames_received += 1
        self._on_audio(frame)

    # -- chat ------------------------------------------------------------------------

    def _adopt_channel(self, channel: RTCDataChannel) -> None:
        if channel.label != CHAT_LABEL or self.chat is not None:
            return
        self.chat = channel
        channel.on("message", self._chat_message)
        channel.on("open", lambda: self._on_chat_open(True))
        channel.on("close", lambda: self._on_chat_open(False))
        if channel.readyState == "open":
            self._on_chat_open(True)

    def _chat_message(self, message: object) -> None:
        if isinstance(message, str):
            self._on_chat(message)

    @property
    def chat_open(self) -> bool:
        return self.chat is not None and self.chat.readyState == "open"

    def send_chat(self, text: str) -> bool:
        """Send ``text`` (a JSON call message) on the data channel; False if it is not open."""
        if not self.chat_open:
            return False
        assert self.chat is not None
        try:
            self.chat.send(text)
        except Exception:  # the channel closed under us: let the caller fall back
            logger.info("chat data channel send failed", exc_info=True)
            return False
        return True

    # -- offer / answer ----------------------------------------------------------

    def pregather(self) -> None:
        """Start gathering now, so a later answer does not wait for STUN/TURN.

        A callee that knows it will answer before the offer arrives gathers
        meanwhile, overlapping with the caller's own gathering.
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
        """Put our audio on the leg.

        The caller offers an audio section (sending, or receive-only with no
        source). The callee answers only what the offer has: an audio
        transceiver of ours that the offer did not mention would make aiortc
        fail the answer, and a video-only peer (a browser without a
        microphone, an older client) must still be callable.
        """
        if offering:
            if self.audio is not None:
                self.pc.addTransceiver(self.audio, direction="sendrecv")
            else:
                self.pc.addTransceiver("audio", direction="recvonly")
        elif self.audio is not None and any(t.kind == "audio" for t in self.pc.getTransceivers()):
            self.pc.addTrack(self.audio)  # reuses the offer's audio transceiver
        self._tune()  # new transceivers have gatherers of their own

    async def make_offer(self) -> str:
        if self.chat is None:
            self._adopt_channel(self.pc.createDataChannel(CHAT_LABEL, ordered=True))
        self._attach_audio(offering=True)  # tunes the data channel's gatherer too
        await self._gathered()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def take_offer(self, sdp: str) -> str:
        """Apply the peer's offer and return our answer."""
        first = self.pc.remoteDescription is None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if first:
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

    def _packets_received(self) -> int:
        """Packets received on every DTLS transport (RTP, RTCP and data alike).

        Asks each transport for its own one-entry report (aiortc's sync
        ``_get_stats``) instead of ``getStats()``, which builds the whole
        report for every sender and receiver and runs here ten times a second.
        """
        transports = {t.receiver.transport for t in self.pc.getTransceivers()}
        if self.pc.sctp is not None:
            transports.add(self.pc.sctp.transport)
        count = 0
        for dtls in transports:
            for stat in dtls._get_stats().values():
                if getattr(stat, "type", "") == "transport":
                    count += int(stat.packetsReceived)
        return count

    async def watch(self, silence_timeout: float, on_silent: Callable[[], None]) -> None:
        """Call ``on_silent`` once nothing has arrived for ``silence_timeout`` s.

        Counts packets on the transports (RTP, RTCP and data alike). A peer
        that sends no media at all only sends RTCP about once a second, so
        until its media has been seen the limit is at least 5 s.
        """
        last_count = -1
        last_change = time.monotonic()
        while not self.closed:
            await asyncio.sleep(0.1)
            count = self._packets_received()
            rtp_seen = self.frames_received > 0 or self.audio_frames_received > 0
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
            frames_sent=int(getattr(self.video, "frames", 0)),
            frames_received=self.frames_received,
            audio_frames_sent=int(getattr(self.audio, "frames", 0)),
            audio_frames_received=self.audio_frames_received,
            sent_size=getattr(self.video, "size", None),
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
        self.video.stop()
        if self.audio is not None:
            self.audio.stop()
        await self.pc.close()
        if self.video_sink is not None:
            await self.video_sink.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)


__all__ = ["CHAT_LABEL", "AudioCallback", "FrameCallback", "Peer", "codec_preferences"]
