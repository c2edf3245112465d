"""Riding out lossy, delayed and narrow links: narrow runtime adjustments to aiortc.

aiortc 1.16 gives NACK, RTX, PLI and REMB, but measured through a bridge that
drops 5 % and delays 50 ms each way (``tests/net``), its stock behaviour freezes
video for 0.6-7 s a few times every 20 s and stalls audio for 320 ms on every
lost packet; on a 250 kbit/s link it keeps sending 96 kbit/s of Opus plus at
least 250 kbit/s of VP8 and the call collapses. What this module changes, per
connection (never aiortc's module globals), and why:

* **NACK until recovered, each NACK twice.** aiortc's receiver sends a NACK
  only when a *new* gap appears, so a lost retransmission is asked for again
  only at the next loss, and a packet missing for 128 packets is forgotten
  while its jitter buffer waits for it until 512 more have arrived (~5 s: the
  long freezes). :class:`LinkTuner` asks again for every still-missing packet
  once per round trip (at most :data:`NACK_RETRIES` times), repeats each ask
  :data:`NACK_ECHO_AFTER` later (two retransmissions: both lost is rare, and a
  lost one costs a round trip of freeze), and stops aiortc asking for packets
  given up; past :data:`ECHO_LOSS` or with a queue building it does not
  repeat (congestion drops the repeat too, and each adds to the queue), past
  :data:`CONGESTED_LOSS` it does not ask again.
* **Keyframes at most twice a second.** aiortc's receiver sends a PLI for every
  frame that fails to decode and its sender forces a keyframe for each: under
  heavy loss a storm that makes the loss worse.
* **Retransmissions do not count as congestion.** aiortc feeds its
  delay-based bandwidth estimator (REMB) every packet, retransmissions too,
  which carry their first send time: each looks a round trip late, and at 5 %
  loss the estimate sinks to the floor on a link with room to spare.
  :class:`OriginalsOnly` feeds it first transmissions only.
* **A hole is given up after a few round trips.** :class:`VideoJitterBuffer`
  (aiortc's, with capacity and frame assembly unchanged) gives a missing
  packet ``hole_timeout`` (3 RTTs + 0.1 s, 0.35-0.8 s; twice that, at most
  0.9 s, for a keyframe, which everything after it needs), counted from when the packet
  after it arrived, not from when the hole reached the head: behind a lossy
  stretch every hole is old by then and goes at once, instead of each being
  waited out in turn (at 250 kbit/s that kept the picture still for seconds
  after the loss had stopped). Then it drops to the next frame that starts
  cleanly and asks for a keyframe (PLI), as aiortc itself does only on
  overflow. The decoder carries on from there (aiortc's own choice after its
  overflow skip: a picture with a smudge until the keyframe, not a freeze).
* **Audio never waits for a lost packet.** aiortc's audio jitter buffer
  (16 packets, 4 prefetched) also waits for a hole until 16 packets have
  arrived. :class:`AudioJitterBuffer` skips a hole as soon as the 4 prefetched
  packets behind it are there (so loss adds no delay); the playback buffer
  (:mod:`callapp.media.jitter`) conceals the missing 20 ms, as it does any hole.
* **Opus with in-band FEC and DTX**, at a voice bitrate that follows the link
  (:func:`audio_bitrate_for`: 40 kbit/s, 24 below 600 kbit/s of estimate, 16
  below 300) instead of a fixed 96 kbit/s (:class:`~callapp.media.opus.OpusTrack`
  takes the bitrate). A browser peer's decoder uses the FEC; FFmpeg's, on our
  side, cannot, and conceals instead.
* **VP8 that fits the link.** aiortc sets the encoder to each REMB, clamped
  to 250 kbit/s-1.5 Mbit/s, and rebuilds it (a keyframe) on every change over
  10 %. Its REMB is delay-based, measured where Python reads each packet, so
  a busy CPU looks like congestion to it: :meth:`AdaptiveVp8Encoder.steer`
  believes a lower REMB only while the round trip shows a queue building (or
  before the first round trip is known: the start is when a narrow link's
  queue fills), and cuts for loss over 10 % as libwebrtc's loss-based
  controller does. The encoder is ours from the track's arrival, starting at
  :data:`START_VIDEO_BITRATE`, even where aiortc made it first (at 500 kbit/s).
  :class:`AdaptiveVp8Encoder` (aiortc's encoder with the class of the one
  instance swapped, so every other line of it runs unchanged) goes down to
  :data:`MIN_VIDEO_BITRATE`, changes the rate in steps (down at once by 15 %
  or more; up by 25 % at most once a second) so the estimate's wobble does
  not cost a keyframe a second, and at low rates halves the resolution (below
  200 kbit/s) and the frame rate (below 120 kbit/s), coming back with margin.

``CALLAPP_STOCK_MEDIA=1`` in the environment turns all of it off (Opus back to
96 kbit/s, no FEC), so that benchmarks can measure aiortc's stock behaviour
with the rest of the app unchanged. Everything here reaches into aiortc's
private attributes by their mangled names; :func:`check_aiortc` says which are
missing (a test fails if an upgrade renames them) and the tuner then stays out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.codecs.vpx import MAX_BITRATE, Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt
from av import VideoFrame
from av.frame import Frame

logger = logging.getLogger(__name__)

#: Set to 1 to measure aiortc's stock media behaviour (see the module docstring).
STOCK_ENV = "CALLAPP_STOCK_MEDIA"

MIN_VIDEO_BITRATE = 80_000
#: What VP8 starts at (aiortc: 500 kbit/s): under most links, so the first seconds
#: do not fill a narrow link's queue before the first estimate (at 300 kbit/s a
#: 250 kbit/s link froze for up to a second while its queue drained); REMB
#: raises it, by 25 % a second at most, and 640x480 holds from 200 kbit/s.
START_VIDEO_BITRATE = 200_000
#: Below these targets VP8 sends half the size (for 640x480; scaled by the picture's
#: pixels) / half the frame rate; back above the second.
HALF_SIZE_BELOW, FULL_SIZE_ABOVE = 200_000, 300_000
HALF_RATE_BELOW, FULL_RATE_ABOVE = 120_000, 180_000
NACK_RETRIES = 4
#: Each NACK is sent again this long (s) after it, while incoming loss is under
#: ECHO_LOSS and no queue shows in the round trip (random loss, not congestion).
NACK_ECHO_AFTER = 0.02
ECHO_LOSS = 0.08
#: The longest wait for a missing packet (s), and for one of a keyframe: under a
#: second, what a viewer reads as a stall.
HOLE_WAIT = 0.8
KEYFRAME_HOLE_WAIT = 0.9
#: Incoming loss over this share means a congested or broken link: no NACK retries.
CONGESTED_LOSS = 0.2
#: Forced keyframes (PLI) at most this often (s): each costs several frames' worth.
KEYFRAME_INTERVAL = 0.5
#: After a cut for loss, REMB may not raise the rate for this long (s).
LOSS_HOLD = 3.0
#: How often the tuner looks at its connection (s).
TICK = 0.03
DEFAULT_RTT = 0.12

_RECEIVER = "_RTCRtpReceiver__"
_SENDER = "_RTCRtpSender__"


def _size_threshold_scale(pixels: int) -> float:
    # The size thresholds are for 640x480 and scale with the picture: a
    # 320x240 one is as sharp at a quarter of the rate, and halving it
    # (160x120) would lose more than the rate saves.
    return min(1.0, pixels / (640 * 480))


def half_size(width: int, height: int) -> tuple[int, int]:
    """The picture VP8 sends below :data:`HALF_SIZE_BELOW`: half each side, kept even."""
    return max(2, width // 2 // 2 * 2), max(2, height // 2 // 2 * 2)


def may_send_half_size(width: int, height: int, target_bitrate: int | None) -> bool:
    """Whether an encoder at ``target_bitrate`` may be sending ``width`` x ``height`` at half size.

    True from :data:`FULL_SIZE_ABOVE` (scaled to the picture) down: between the
    two thresholds the size is whichever it was last.
    """
    scale = _size_threshold_scale(width * height)
    return target_bitrate is not None and target_bitrate <= FULL_SIZE_ABOVE * scale


def stock() -> bool:
    """True when ``CALLAPP_STOCK_MEDIA=1``: leave aiortc's media behaviour as it is."""
    return os.environ.get(STOCK_ENV, "") not in ("", "0")


def audio_bitrate_for(estimate: int | None) -> int:
    """Opus bitrate (bit/s) for a link whose video estimate is ``estimate`` (None: unknown)."""
    if estimate is None or estimate >= 600_000:
        return 40_000
    if estimate >= 300_000:
        return 24_000
    return 16_000


def check_aiortc() -> list[str]:
    """aiortc internals this module uses that this aiortc lacks (empty: all there)."""
    from aiortc import RTCRtpReceiver

    missing = [
        f"RTCRtpReceiver.{name}"
        for name in ("_send_rtcp_nack", "_send_rtcp_pli")
        if not hasattr(RTCRtpReceiver, name)
    ]
    buffer = JitterBuffer(capacity=16)
    missing += [
        f"JitterBuffer.{name}"
        for name in ("_remove_frame", "remove", "_origin", "_packets", "_capacity", "_prefetch")
        if not hasattr(buffer, name)
    ]
    if not hasattr(Vp8Encoder(), "_Vp8Encoder__target_bitrate"):
        missing.append("Vp8Encoder.__target_bitrate")
    return missing


# -- receiving ------------------------------------------------------------------------


class AudioJitterBuffer(JitterBuffer):
    """aiortc's audio jitter buffer, but a lost packet is skipped, not waited for.

    Like aiortc's, it hands a frame on once ``prefetch`` packets stand behind
    it; unlike aiortc's, those may be behind a hole: a missing packet is given
    up once ``prefetch`` later ones have arrived (it would have been played by
    then), and one that arrives after that is dropped by aiortc's own
    misorder rule. Opus sends one packet per frame, so a packet is a frame.
    """

    def __init__(self, capacity: int = 16, prefetch: int = 4) -> None:
        super().__init__(capacity=capacity, prefetch=prefetch)
        self.skipped = 0

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        assert self._origin is not None
        present = [
            count
            for count in range(self._capacity)
            if self._packets[(self._origin + count) % self._capacity] is not None
        ]
        if len(present) <= self._prefetch:
            return None
        if present[0] > 0:  # a hole at the head with enough behind it: give it up
            self.skipped += present[0]
            self.remove(present[0])
        head = self._packets[self._origin % self._capacity]
        assert head is not None
        self.remove(1)
        return JitterFrame(data=head._data, timestamp=head.timestamp)  # type: ignore[attr-defined]


class VideoJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer that gives up a hole after ``hole_timeout`` s.

    A hole's age counts from the arrival of the first packet after it (when
    it became a hole), not from when it reached the head: behind a lossy
    stretch the buffer holds many holes, and waiting out each in turn once it
    is at the head (measured at 250 kbit/s: one per second, no frame out for
    seconds while fresh packets piled up behind) is a freeze that outlives
    the loss. Giving a hole up drops everything up to the next frame whose
    first packet is there (a packet whose timestamp differs from the one
    before it, which is present) and returns ``pli=True`` so that aiortc asks
    for a keyframe.
    """

    def __init__(self, capacity: int = 512, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(capacity=capacity, is_video=True)
        self.hole_timeout = 0.4
        self.clock = clock
        self.skips = 0
        self._arrived = [0.0] * capacity  # clock() when each slot's packet came
        self._newest: int | None = None  # the highest sequence number added

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._newest is None or uint16_gt(seq, self._newest):
            self._newest = seq
        now = self.clock()
        self._arrived[seq % self._capacity] = now
        pli, frame = super().add(packet)
        if frame is not None or self._origin is None:
            return pli, frame
        hole_since = self._head_hole_since()
        if hole_since is None:
            return pli, frame
        # A keyframe is waited for longer: everything after it needs it, and
        # skipping it only buys undecodable frames until the next one. Not
        # much longer: the PLI sent on giving up brings a new one a round trip
        # later (at three times, a full 400 ms queue made a 3.3 s freeze).
        timeout = self.hole_timeout
        if self._head_is_keyframe():
            timeout = min(KEYFRAME_HOLE_WAIT, 2 * timeout)
        if now - hole_since > timeout and self._skip_to_clean_frame():
            self.skips += 1
            return True, self._remove_frame(seq)
        return pli, frame

    def _head_hole_since(self) -> float | None:
        """When the head frame's first missing packet became a hole (None: no such hole).

        That is when the first packet after it arrived; None if the head
        waits on nothing but packets not sent yet.
        """
        assert self._origin is not None
        seen_gap = False
        for count in range(self._span()):
            position = (self._origin + count) % self._capacity
            if self._packets[position] is None:
                seen_gap = True
            elif seen_gap:
                return self._arrived[position]
        return None

    def _head_is_keyframe(self) -> bool:
        """Whether the head frame starts like a VP8 keyframe (its first byte's P bit clear)."""
        assert self._origin is not None
        head = self._packets[self._origin % self._capacity]
        data = getattr(head, "_data", b"") if head is not None else b""
        return bool(data) and not data[0] & 0x01

    def _span(self) -> int:
        """Slots from the head to the newest packet (what is worth looking at)."""
        assert self._origin is not None
        assert self._newest is not None
        return min(self._capacity, uint16_add(self._newest, -self._origin) + 1)

    def _skip_to_clean_frame(self) -> bool:
        """Drop up to the first frame after a hole that starts with its own packet."""
        assert self._origin is not None
        previous: RtpPacket | None = None
        seen_gap = False
        for count in range(self._span()):
            slot = self._packets[(self._origin + count) % self._capacity]
            if slot is None:
                seen_gap = True
            elif (
                seen_gap
                and previous is not None
                and slot.timestamp != previous.timestamp
                and self._packets[(self._origin + count - 1) % self._capacity] is not None
            ):
                self.remove(count)
                return True
            if slot is not None:
                previous = slot
        return False

    def holds(self, sequence_number: int) -> bool:
        """Whether the packet ``sequence_number`` is in the buffer (it arrived, not yet played)."""
        slot = self._packets[sequence_number % self._capacity]
        return slot is not None and slot.sequence_number == sequence_number

    def missing_before(self, sequence_number: int) -> bool:
        """Whether ``sequence_number`` is older than the head (given up or played)."""
        return self._origin is not None and uint16_gt(self._origin, sequence_number)


class OriginalsOnly:
    """aiortc's receive-side bandwidth estimator, fed only first transmissions.

    aiortc feeds its delay-based estimator every RTP packet before unwrapping
    RTX, and a retransmission carries its original abs-send-time: each one
    looks a round trip late, so at 5 % loss the estimate sinks to the floor
    (measured: 150 kbit/s on an unlimited link). ``rtx_ssrcs`` is the
    receiver's own RTX map (filled when it starts receiving).
    """

    def __init__(self, estimator: Any, rtx_ssrcs: dict[int, int]) -> None:
        self.estimator = estimator
        self.rtx_ssrcs = rtx_ssrcs
        self.ignored = 0

    def add(self, **kwargs: Any) -> Any:
        if kwargs.get("ssrc") in self.rtx_ssrcs:
            self.ignored += 1
            return None
        return self.estimator.add(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.estimator, name)


# -- sending --------------------------------------------------------------------------


class AdaptiveVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder with a lower floor, stepped rate changes, and scaling.

    Made by swapping the ``__class__`` of the sender's own encoder (see
    :func:`adopt_vp8`): aiortc's ``encode`` runs as it is, reading the
    ``target_bitrate`` this class reports, so its rebuild rule (a change over
    10 %) only fires on the steps taken here.
    """

    # Set by adopt_vp8 (a swapped instance skips __init__).
    wanted: int
    remb: int | None
    remb_new: bool
    step_at: float
    loss_cut_at: float
    loss_hold_until: float
    keyframe_at: float
    half_size: bool
    half_rate: bool
    skip_next: bool

    def _setup(self) -> None:
        self.wanted = self._Vp8Encoder__target_bitrate
        self.remb = None
        self.remb_new = False
        self.step_at = 0.0
        self.loss_cut_at = 0.0
        self.loss_hold_until = 0.0
        self.keyframe_at = 0.0
        self.half_size = False
        self.half_rate = False
        self.skip_next = False

    def start(self, bitrate: int) -> None:
        """Begin at ``bitrate`` (before the first frame)."""
        self._Vp8Encoder__target_bitrate = bitrate
        self.wanted = bitrate

    @property
    def target_bitrate(self) -> int:
        return int(self._Vp8Encoder__target_bitrate)

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        # aiortc's sender sets this from each REMB; steer() decides what to make of it.
        self.remb = int(bitrate)
        self.remb_new = True

    def steer(self, *, queueing: bool, loss: float, now: float) -> None:
        """Move :attr:`wanted` from the newest REMB, the round trip and the loss.

        aiortc's REMB is delay-based, measured where Python reads the packet:
        a busy CPU (or a retransmission) looks like a queue to it. So a REMB
        above what we want is followed (the link has room), one below only
        while the round trip shows a queue building (``queueing``), and then
        halving at most per REMB (its first answer to an overuse is 85 % of a
        throughput it has barely measured: seen 500 -> 80 kbit/s). Loss over
        10 % (what the peer reports) cuts by half the loss once a second, as
        libwebrtc's loss-based controller does: a narrow link with a short
        queue shows loss before delay.
        """
        wanted = self.wanted
        if self.remb_new and self.remb is not None:
            self.remb_new = False
            if self.remb > wanted:
                if now >= self.loss_hold_until:
                    wanted = self.remb
            elif queueing:
                wanted = max(self.remb, wanted // 2)
        if loss > 0.10 and now - self.loss_cut_at > 1.0:
            # A standing full queue shows no delay gradient (REMB keeps rising) but
            # loses: loss wins, and REMB may not raise the rate again for a while.
            wanted = int(wanted * (1 - 0.5 * loss))
            self.loss_cut_at = now
            self.loss_hold_until = now + LOSS_HOLD
        self.wanted = max(MIN_VIDEO_BITRATE, min(wanted, MAX_BITRATE))

    def _step(self, pixels: int = 640 * 480) -> None:
        current = self.target_bitrate
        wanted = self.wanted
        now = time.monotonic()
        if wanted < current * 0.85 or (wanted > current * 1.25 and now - self.step_at > 1.0):
            applied = wanted if wanted < current else min(wanted, int(current * 1.25))
            self._Vp8Encoder__target_bitrate = applied
            self.step_at = now
        target = self.target_bitrate
        scale = _size_threshold_scale(pixels)
        if target < HALF_SIZE_BELOW * scale:
            self.half_size = True
        elif target > FULL_SIZE_ABOVE * scale:
            self.half_size = False
        if target < HALF_RATE_BELOW:
            self.half_rate = True
        elif target > FULL_RATE_ABOVE:
            self.half_rate = False

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, VideoFrame)
        self._step(frame.width * frame.height)
        if force_keyframe:
            # aiortc forces one per PLI, and its receiver sends a PLI per frame
            # that fails to decode: under heavy loss, a storm of keyframes that
            # makes the loss worse. One per KEYFRAME_INTERVAL answers them all.
            now = time.monotonic()
            if now - self.keyframe_at < KEYFRAME_INTERVAL:
                force_keyframe = False
            else:
                self.keyframe_at = now
        if self.half_rate and not force_keyframe:
            self.skip_next = not self.skip_next
            if self.skip_next:
                return [], 0  # no payloads: aiortc's sender skips the frame
        if self.half_size:
            width, height = half_size(frame.width, frame.height)
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
            frame = scaled
        return super().encode(frame, force_keyframe)


def adopt_vp8(encoder: object) -> AdaptiveVp8Encoder | None:
    """``encoder`` turned into an :class:`AdaptiveVp8Encoder` if it is aiortc's VP8 one."""
    if isinstance(encoder, AdaptiveVp8Encoder):
        return encoder
    if type(encoder) is not Vp8Encoder:
        return None
    encoder.__class__ = AdaptiveVp8Encoder
    assert isinstance(encoder, AdaptiveVp8Encoder)
    encoder._setup()
    return encoder


# -- the tuner --------------------------------------------------------------------------


class LinkTuner:
    """Applies the adjustments above to one RTCPeerConnection; see the module docstring.

    ``set_audio_bitrate`` is called with a new Opus bitrate when the link's
    estimate moves (the leg's :class:`~callapp.media.opus.OpusTrack`).
    """

    def __init__(
        self,
        pc: RTCPeerConnection,
        *,
        set_audio_bitrate: Callable[[int], None] | None = None,
    ) -> None:
        self.pc = pc
        self.enabled = not stock() and not check_aiortc()
        self._set_audio_bitrate = set_audio_bitrate
        self.audio_bitrate = audio_bitrate_for(None)
        self.nacks_resent = 0
        self._task: asyncio.Task[None] | None = None
        # seq -> (times asked again, when last asked, echoed) for each video receiver
        self._asked: dict[int, dict[int, tuple[int, float, bool]]] = {}
        self._buffers: dict[int, JitterBuffer] = {}
        # receiver -> (since, packets expected then, received then, loss in the last window)
        self._loss_window: dict[int, tuple[float, int, int, float]] = {}
        self.encoder: AdaptiveVp8Encoder | None = None
        self._logged_at = 0.0
        self._smoothed_rtt: float | None = None
        #: The newest raw RTT sample (s) and the least seen: the path without queues.
        self.rtt_sample: float | None = None
        self.base_rtt = float("inf")

    # -- receivers ---------------------------------------------------------------

    def adopt_receivers(self) -> None:
        """Give each receiver that has none of ours yet our jitter buffer (before media)."""
        if not self.enabled:
            return
        for transceiver in self.pc.getTransceivers():
            receiver = transceiver.receiver
            if id(receiver) in self._buffers:
                continue
            buffer: JitterBuffer
            if transceiver.kind == "audio":
                buffer = AudioJitterBuffer()
            elif transceiver.kind == "video":
                buffer = VideoJitterBuffer()
            else:
                continue
            setattr(receiver, f"{_RECEIVER}jitter_buffer", buffer)
            self._buffers[id(receiver)] = buffer
            estimator = getattr(receiver, f"{_RECEIVER}remote_bitrate_estimator", None)
            if estimator is not None:
                rtx = getattr(receiver, f"{_RECEIVER}rtx_ssrc", {})
                setattr(
                    receiver,
                    f"{_RECEIVER}remote_bitrate_estimator",
                    OriginalsOnly(estimator, rtx),
                )

    def start(self) -> None:
        if self.enabled and self._task is None:
            self.adopt_receivers()
            for transceiver in self.pc.getTransceivers():
                if transceiver.kind == "video":
                    self._adopt_encoder(transceiver)
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a tuning step failing must never end a call
                logger.exception("link tuner step failed; tuning stops for this call")
                return

    def rtt(self) -> float:
        """The video sender's smoothed RTT estimate (s), or a default before the first."""
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video":
                rtt = getattr(transceiver.sender, f"{_SENDER}rtt", None)
                if rtt:
                    return float(rtt)
        return DEFAULT_RTT

    async def _tick(self) -> None:
        rtt = self.rtt()
        now = time.monotonic()
        if logger.isEnabledFor(logging.DEBUG) and now - self._logged_at > 1.0:
            self._logged_at = now
            encoder = self.encoder
            logger.debug(
                "tuner: rtt %.0f ms (sample %s, base %s), video remb %s wanted %s target %s"
                " half size %s rate %s, %s",
                rtt * 1000,
                self.rtt_sample,
                self.base_rtt,
                encoder.remb if encoder else None,
                encoder.wanted if encoder else None,
                encoder.target_bitrate if encoder else None,
                encoder.half_size if encoder else None,
                encoder.half_rate if encoder else None,
                self.counters(),
            )
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video":
                await self._renack(transceiver.receiver, rtt, now)
                self._tune_sender(transceiver)

    def _incoming_loss(self, receiver: Any, now: float) -> float:
        """Share of the peer's media packets lost over the last second or so (first sends)."""
        ssrc = self._media_ssrc(receiver)
        stream = getattr(receiver, f"{_RECEIVER}remote_streams", {}).get(ssrc)
        if stream is None or stream.max_seq is None:
            return 0.0
        expected, received = stream.packets_expected, stream.packets_received
        at, expected_before, received_before, loss = self._loss_window.get(
            id(receiver), (now, expected, received, 0.0)
        )
        if now - at >= 1.0:
            span = expected - expected_before
            loss = max(0.0, 1 - (received - received_before) / span) if span > 0 else 0.0
            at, expected_before, received_before = now, expected, received
        self._loss_window[id(receiver)] = (at, expected_before, received_before, loss)
        return float(loss)

    async def _renack(self, receiver: Any, rtt: float, now: float) -> None:
        generator = getattr(receiver, f"{_RECEIVER}nack_generator", None)
        buffer = self._buffers.get(id(receiver))
        if generator is None or not isinstance(buffer, VideoJitterBuffer):
            return
        nack_rtt = min(rtt, self.base_rtt * 1.5) if self.base_rtt < rtt else rtt
        # Three asks (each twice) have had their answers by then.
        buffer.hole_timeout = min(HOLE_WAIT, max(0.35, 3 * nack_rtt + 0.1))
        # Past this much loss the link is congested or broken: retransmissions
        # would only add to it, so each packet gets aiortc's one NACK.
        loss = self._incoming_loss(receiver, now)
        congested = loss > CONGESTED_LOSS
        # Asking twice helps against random loss; a full queue drops the second
        # retransmission too, and each one adds to the queue.
        echo = loss < ECHO_LOSS and not self.queueing()
        asked = self._asked.setdefault(id(receiver), {})
        # aiortc NACKs its whole list of missing packets at every new gap: left
        # there, a lost packet is asked for again at each later loss, and on a
        # congested link (a loss every few packets) each retransmission is
        # asked for many times over, doubling what the link must carry. Every
        # gap aiortc has asked for once is taken over here, timed per packet.
        for seq in generator.missing:
            asked.setdefault(seq, (0, now, not echo))  # aiortc asked as the gap appeared
        generator.missing.clear()
        again: list[int] = []
        for seq, (count, last, echoed) in list(asked.items()):
            hopeless = count >= NACK_RETRIES or congested
            if buffer.holds(seq) or buffer.missing_before(seq):
                del asked[seq]  # arrived, played, or given up
            elif not echoed and now - last >= NACK_ECHO_AFTER:
                # Asked twice, a little apart: the sender retransmits twice, and a
                # retransmission lost too (1 in 20 at 5 % loss, each costing a
                # round trip more of freeze) becomes 1 in 400.
                asked[seq] = (count, last, True)
                again.append(seq)
            elif hopeless:
                if now - last > nack_rtt * 1.5:
                    del asked[seq]  # asked for enough: the hole timeout takes over
            elif now - last > nack_rtt * 1.2 + 0.02:
                asked[seq] = (count + 1, now, not echo)
                again.append(seq)
        if again:
            ssrc = self._media_ssrc(receiver)
            if ssrc is not None:
                self.nacks_resent += len(again)
                await receiver._send_rtcp_nack(ssrc, sorted(again))

    @staticmethod
    def _media_ssrc(receiver: Any) -> int | None:
        streams = getattr(receiver, f"{_RECEIVER}remote_streams", {})
        rtx = getattr(receiver, f"{_RECEIVER}rtx_ssrc", {})
        for ssrc in streams:
            if ssrc not in rtx:
                return int(ssrc)
        return None

    def _round_trip(self, sender: Any) -> None:
        """Follow the sender's RTT: each raw sample, and the least seen (the empty path).

        aiortc keeps only a smoothed RTT (``0.85 * old + 0.15 * sample`` per
        receiver report), which lags a growing queue by seconds; the sample is
        worked back out of each change.
        """
        smoothed = getattr(sender, f"{_SENDER}rtt", None)
        if smoothed is None or smoothed == self._smoothed_rtt:
            return
        before, self._smoothed_rtt = self._smoothed_rtt, float(smoothed)
        sample = self._smoothed_rtt if before is None else (smoothed - 0.85 * before) / 0.15
        self.rtt_sample = max(0.0, sample)
        self.base_rtt = min(self.base_rtt, self.rtt_sample)

    @staticmethod
    def _reported_loss(sender: Any) -> float:
        for stat in getattr(sender, f"{_SENDER}stats", {}).values():
            if getattr(stat, "type", "") == "remote-inbound-rtp" and stat.fractionLost:
                return float(stat.fractionLost) / 256
        return 0.0

    def queueing(self) -> bool:
        """Whether the round trip is well above the least seen: a queue is building."""
        if self.rtt_sample is None:
            return False
        return self.rtt_sample > self.base_rtt + max(0.1, 0.75 * self.base_rtt)

    def _adopt_encoder(self, transceiver: Any) -> AdaptiveVp8Encoder | None:
        """The video sender's encoder made ours (once), starting at START_VIDEO_BITRATE."""
        if self.encoder is None:
            sender = transceiver.sender
            encoder = getattr(sender, f"{_SENDER}encoder", None)
            codecs = getattr(transceiver, "_codecs", None)
            if encoder is None and codecs and str(codecs[0].mimeType).lower() == "video/vp8":
                # Before the first frame: ours from the start (aiortc makes its encoder
                # on the first frame only if it has none).
                encoder = Vp8Encoder()
                setattr(sender, f"{_SENDER}encoder", encoder)
            if encoder is None:
                return None
            self.encoder = adopt_vp8(encoder)
            if self.encoder is not None:
                # Also when aiortc got there first (its 500 kbit/s overfills a narrow
                # link's queue before any estimate comes back): one early rebuild.
                self.encoder.start(START_VIDEO_BITRATE)
        return self.encoder

    def _tune_sender(self, transceiver: Any) -> None:
        sender = transceiver.sender
        if self._adopt_encoder(transceiver) is None:
            return
        assert self.encoder is not None
        self._round_trip(sender)
        self.encoder.steer(
            # Before the first round trip is known nothing says the estimate is
            # wrong, and the start is when a narrow link's queue fills: believe it.
            queueing=self.queueing() or self.rtt_sample is None,
            loss=self._reported_loss(sender),
            now=time.monotonic(),
        )
        bitrate = audio_bitrate_for(self.encoder.wanted)
        if bitrate != self.audio_bitrate:
            self.audio_bitrate = bitrate
            if self._set_audio_bitrate is not None:
                self._set_audio_bitrate(bitrate)

    # -- numbers ---------------------------------------------------------------------

    @property
    def video_target_bitrate(self) -> int | None:
        return self.encoder.target_bitrate if self.encoder is not None else None

    def counters(self) -> dict[str, int]:
        skips = sum(b.skips for b in self._buffers.values() if isinstance(b, VideoJitterBuffer))
        audio = sum(b.skipped for b in self._buffers.values() if isinstance(b, AudioJitterBuffer))
        return {"nacks_resent": self.nacks_resent, "video_skips": skips, "audio_skipped": audio}


def candidate_types(pc: RTCPeerConnection) -> tuple[str | None, str | None]:
    """The selected ICE pair's (local, remote) candidate types, e.g. ("host", "srflx").

    aiortc reports no candidate pairs in ``getStats()``; aioice keeps the
    nominated pair per component on its connection.
    """
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        nominated = getattr(connection, "_nominated", None) or {}
        for pair in nominated.values():
            with contextlib.suppress(AttributeError):
                return str(pair.local_candidate.type), str(pair.remote_candidate.type)
    return None, None


__all__ = [
    "STOCK_ENV",
    "AdaptiveVp8Encoder",
    "AudioJitterBuffer",
    "LinkTuner",
    "VideoJitterBuffer",
    "adopt_vp8",
    "audio_bitrate_for",
    "candidate_types",
    "check_aiortc",
    "stock",
]
