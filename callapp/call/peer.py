"""One leg's RTCPeerConnection and the media plumbing around it.

:class:`Peer` is created per leg and thrown away after it, as WebRTC wants.
It knows offers, answers, candidates and the chat data channel, but not who
the other side is, which state the leg is in or how messages travel:
:class:`~callapp.call.leg.CallLeg` decides that.

* Local media arrives ready to send: the session's one capture is fanned out
  (:class:`~callapp.media.fanout.TrackFanout`), and each leg gets its own
  consumer track of the video and of the (muted or not) audio. Video frames
  go to aiortc's encoder as they come; audio is encoded to Opus here, on the
  loop, by an :class:`~callapp.media.opus.OpusTrack` (mono, no thread
  hand-off), unless the leg agreed on another codec, which aiortc then
  encodes. Nothing here copies or converts a frame.
* Remote video is read by a :class:`~callapp.media.sinks.LatestFrameSink`,
  which counts frames and hands each one to ``on_video`` at once (nothing
  queues here). Remote audio is read the same way (``read_track``) and handed
  to ``on_audio`` (the session mixes it into the speaker and may record it).
* The offerer creates the ordered ``chat`` data channel; the answerer gets it
  from the offer. ``on_chat`` receives each text message.
* Remote candidates wait in a queue until the remote description is set.
* :meth:`Peer.watch` notices a peer that went silent: aiortc has no ICE
  "disconnected" state, and aioice's consent checks take 30 s to give up.
  While frames arrive it only wakes when the newest could be too old.
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
from callapp.media import resilience
from callapp.media.opus import BIT_RATE, VOICE_BIT_RATE, OpusTrack
from callapp.media.reading import read_track
from callapp.media.sinks import LatestFrameSink

logger = logging.getLogger(__name__)

FrameCallback = Callable[[av.VideoFrame], None]
AudioCallback = Callable[[av.AudioFrame], None]

_MIME = {"vp8": "video/vp8", "h264": "video/h264"}

#: How often Peer.watch counts transport packets once media has stopped (s).
_WATCH_POLL = 0.1

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


def _is_turn(server: Any) -> bool:
    urls = server.urls if isinstance(server.urls, list) else [server.urls]
    return any(str(url).startswith(("turn:", "turns:")) for url in urls)


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
        self.pc = RTCPeerConnection(ice.configuration(servers, relay_only=config.relay_only))
        #: Why the TURN relay gave us nothing, in words (relay-only calls only).
        self.relay_problem: str | None = None
        if config.relay_only and not any(_is_turn(server) for server in servers):
            self.relay_problem = "relay-only is on, but no TURN relay is configured"
        self.video = video
        self.audio = audio
        #: What the audio sender reads: ``audio`` as Opus packets (see _sends_opus).
        tuned = not resilience.stock()
        self.audio_out = (
            OpusTrack(
                audio,
                sends_opus=self._sends_opus,
                bit_rate=VOICE_BIT_RATE if tuned else BIT_RATE,
                fec=tuned,
            )
            if audio is not None
            else None
        )
        self._opus: bool | None = None
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
        #: The sink of the connection this one replaces (same call): see resume().
        self.resumes: LatestFrameSink | None = None
        self._remote_camera_off = False
        self.audio_frames_received = 0
        #: ``time.monotonic()`` when the newest remote audio frame was read.
        self.last_audio_at: float | None = None
        self.closed = False

        # Audio and the data channel are attached when the roles are known.
        transceiver = self.pc.addTransceiver(video, direction="sendrecv")
        transceiver.setCodecPreferences(codec_preferences(config.codec))
        self._tune()
        #: Loss, delay and narrow links: NACK retries, hole skipping, bitrates.
        self.tuner = resilience.LinkTuner(self.pc, set_audio_bitrate=self._set_audio_bitrate)
        self.tuner.adopt_receivers()

        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("datachannel", self._adopt_channel)

    def _tune(self) -> None:
        ice.tune_gathering(
            self.pc,
            gather_timeout=self._config.gather_timeout,
            allow_loopback=self._config.allow_loopback,
            on_relay_problem=self._note_relay_problem if self._config.relay_only else None,
        )

    def _note_relay_problem(self, why: str) -> None:
        self.relay_problem = self.relay_problem or why

    # -- events from aiortc ----------------------------------------------------

    def _state_changed(self) -> None:
        self._on_connection_state(self.pc.connectionState)

    def _set_audio_bitrate(self, bit_rate: int) -> None:
        if isinstance(self.audio_out, OpusTrack):
            self.audio_out.bit_rate = bit_rate

    def _on_track(self, track: MediaStreamTrack) -> None:
        # Media starts after this (DTLS comes after the descriptions): the
        # receivers get their jitter buffers before their first packet.
        self.tuner.start()
        if track.kind == "video" and self.video_sink is None:
            self.video_sink = LatestFrameSink(track, on_frame=self._on_video)
            if self.resumes is not None:
                self.video_sink.resume(self.resumes)
                self.resumes = None
            self.video_sink.still = self._remote_camera_off
            self.video_sink.start()
        elif track.kind == "audio":
            task = asyncio.ensure_future(read_track(track, self._audio_frame, what="remote audio"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def remote_camera_off(self) -> bool:
        """What the peer's presence says; its black frames' gaps are then no freezes."""
        return self._remote_camera_off

    @remote_camera_off.setter
    def remote_camera_off(self, value: bool) -> None:
        self._remote_camera_off = value
        if self.video_sink is not None:
            self.video_sink.still = value

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
        self.last_audio_at = time.monotonic()
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
            if self.audio_out is not None:
                self.pc.addTransceiver(self.audio_out, direction="sendrecv")
            else:
                self.pc.addTransceiver("audio", direction="recvonly")
        elif self.audio_out is not None and any(
            t.kind == "audio" for t in self.pc.getTransceivers()
        ):
            self.pc.addTrack(self.audio_out)  # reuses the offer's audio transceiver
        self._tune()  # new transceivers have gatherers of their own
        self.tuner.adopt_receivers()

    def _sends_opus(self) -> bool:
        """Whether our audio sender was started with Opus (asked by it, per frame).

        aiortc starts a sender once, with the first codec negotiated for its
        transceiver (``_codecs``, set by then), and keeps it: the first
        answer is kept too. Anything unexpected means no: aiortc encodes.
        """
        if self._opus is None:
            for transceiver in self.pc.getTransceivers():
                if transceiver.sender.track is self.audio_out:
                    codecs = getattr(transceiver, "_codecs", None)
                    if codecs:
                        self._opus = str(codecs[0].mimeType).lower() == "audio/opus"
                    break
        return bool(self._opus)

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

    def _last_media_at(self) -> float | None:
        """When the newest remote video or audio frame was read, or None before any."""
        video = self.last_frame_at
        audio = self.last_audio_at
        if video is None or audio is None:
            return video if audio is None else audio
        return max(video, audio)

    async def watch(self, silence_timeout: float, on_silent: Callable[[], None]) -> None:
        """Call ``on_silent`` once nothing has arrived for ``silence_timeout`` s.

        While remote media arrives (the frames read here are time-stamped as
        they come anyway), nothing needs counting: the watch sleeps until
        the newest frame would be ``silence_timeout`` old, so it wakes about
        once per ``silence_timeout`` instead of ten times a second. Once
        frames stop (and before the first), it counts packets on the
        transports (RTP, RTCP and data alike) every 0.1 s, the newest frame
        counting as the last thing that arrived. A peer that sends no media
        at all only sends RTCP about once a second, so until its media has
        been seen the limit is at least 5 s.
        """
        last_count: int | None = None
        last_change = time.monotonic()
        while not self.closed:
            media = self._last_media_at()
            now = time.monotonic()
            if media is not None and now - media < _WATCH_POLL:
                # Frames are coming: nothing can be silent before media + timeout.
                last_count, last_change = None, media
                await asyncio.sleep(max(_WATCH_POLL, media + silence_timeout - now))
                continue
            if last_count is None:
                last_count = self._packets_received()  # counting starts here
                if media is not None:
                    last_change = max(last_change, media)
            await asyncio.sleep(_WATCH_POLL)
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
        sink = self.video_sink
        local_type, remote_type = resilience.candidate_types(self.pc)
        return FrameCounters(
            freeze_max=sink.longest_gap if sink is not None else 0.0,
            freezes=sink.freezes if sink is not None else 0,
            frozen=sink.frozen_seconds if sink is not None else 0.0,
            local_candidate_type=local_type,
            remote_candidate_type=remote_type,
            video_target_bitrate=self.tuner.video_target_bitrate,
            audio_bitrate=(
                self.audio_out.bit_rate if isinstance(self.audio_out, OpusTrack) else None
            ),
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
        await self.tuner.stop()
        if self._gathering is not None and not self._gathering.done():
            self._gathering.cancel()
        self.video.stop()
        if self.audio_out is not None:
            self.audio_out.stop()  # and self.audio with it
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
