"""Sending audio as Opus packets made here, on the event loop, instead of by aiortc.

aiortc's ``RTCRtpSender`` encodes every ``AudioFrame`` it reads: it first
works out the frame's RFC 6465 audio level in a pure-Python loop over the
samples (about 80 us per 20 ms frame), then hands the frame to an executor
thread, where its ``OpusEncoder`` resamples it to stereo and encodes it
(twice the work of mono), and waits for the thread to hand the payload back
to the loop: a thread wake-up and a loop wake-up per frame, 50 a second.
Handed an ``av.Packet`` instead, the sender only packetizes it.

:class:`OpusTrack` wraps a leg's audio track (its consumer of the call's one
microphone) and gives that sender Opus packets it encoded itself, in the
channel layout the frames come in (mono, from every source of this package),
by default at aiortc's settings (96 kbit/s, ``voip``), one 20 ms packet per 20
ms frame; a call asks for a voice bitrate with in-band FEC and DTX instead
(:mod:`callapp.media.resilience` says why, and moves the bitrate with the link).
The RTP stream is the same Opus a browser or aiortc decodes (an Opus packet
says in its own first byte whether it is mono or stereo); what the sender
leaves out is the optional ``ssrc-audio-level`` header extension, which
nothing in this project reads.

The leg's codec is negotiated after the track is made: ``sends_opus()`` is
asked on every frame, and while it says False (another codec was agreed,
say G.711 with a peer without Opus) frames go through untouched, for
aiortc to encode.

Encoding runs inline in :meth:`OpusTrack.recv` (about 0.1-0.2 ms per frame
on this project's machines, less than the hand-off it replaces costs).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame
from av.audio.codeccontext import AudioCodecContext
from av.frame import Frame
from av.packet import Packet

from callapp.media.pcm import AUDIO_TIME_BASE, FRAME_SAMPLES, SAMPLE_RATE

#: aiortc's own Opus settings (``aiortc.codecs.opus.OpusEncoder``).
BIT_RATE = 96_000
APPLICATION = "voip"
#: What a call starts with instead (``callapp.media.resilience`` moves it with the
#: link): a voice bitrate, in-band FEC tuned for this much loss (%), and DTX.
VOICE_BIT_RATE = 40_000
FEC_LOSS_PERCENT = 10

_LAYOUTS = ("mono", "stereo")


def _always() -> bool:
    return True


class OpusEncoder:
    """Encodes 48 kHz audio frames into 20 ms Opus packets (pts in 1/48000 s).

    The channel layout is the first frame's (mono or stereo; anything else
    is mixed to stereo). PyAV's codec context cuts and converts what it is
    given into 960-sample ``s16`` frames itself (it never changes the frame
    it is handed), so any frame size, format and rate goes in; a frame whose
    format, layout or rate differs from the one before starts a new encoder.
    Packet pts count samples from 0 at the first packet and keep the gaps the
    frames' pts have (a source that skipped ahead after a stall), so the
    receiver hears a gap rather than audio squeezed together. Frames must
    have pts.
    """

    def __init__(self, bit_rate: int = BIT_RATE, *, fec: bool = False) -> None:
        self.bit_rate = bit_rate
        """Bit/s; a change takes effect at the next frame (with a new encoder)."""
        self.fec = fec
        """In-band FEC (LBRR) and DTX on: a receiver that lost a packet can rebuild it
        from the next one, and silence costs almost nothing."""
        self._codec: AudioCodecContext | None = None
        self._codec_rate = bit_rate
        self._input: tuple[str, str, int] | None = None
        self._origin: int | None = None  # the first frame's pts, in 1/48000 s
        self._shift: int | None = None  # FFmpeg's packet pts minus ours
        self.frames = 0
        """Frames encoded."""

    def encode(self, frame: AudioFrame) -> list[Packet[Any]]:
        """The packets ``frame`` completes (one per 20 ms frame)."""
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._codec is None or shape != self._input or self._codec_rate != self.bit_rate:
            # libopus takes a new bitrate only at open, through PyAV: a new encoder.
            self._codec = _opus_context(frame.layout.name, self.bit_rate, fec=self.fec)
            self._codec_rate = self.bit_rate
            self._input = shape
        packets: list[Packet[Any]] = self._codec.encode(frame)
        self.frames += 1
        start = _samples(frame)
        if self._origin is None and start is not None:
            self._origin = start
        whole = frame.samples == FRAME_SAMPLES and frame.sample_rate == SAMPLE_RATE
        if whole and len(packets) == 1 and start is not None and self._origin is not None:
            # One frame, one packet: the frame's own start, even right after a gap
            # (FFmpeg's framing carries a jump in pts over one packet late).
            packet = packets[0]
            if self._shift is None and packet.pts is not None:
                self._shift = packet.pts - (start - self._origin)  # FFmpeg's own delay
            packet.pts = start - self._origin
        else:
            for packet in packets:
                if packet.pts is not None:
                    if self._shift is None:
                        self._shift = packet.pts  # the first packet is at 0
                    packet.pts -= self._shift
        for packet in packets:
            packet.time_base = AUDIO_TIME_BASE
        return packets


def _samples(frame: AudioFrame) -> int | None:
    """``frame``'s pts in 1/48000 s."""
    if frame.pts is None or frame.time_base is None:
        return None
    return round(frame.pts * frame.time_base * SAMPLE_RATE)


def _opus_context(layout: str, bit_rate: int, *, fec: bool) -> AudioCodecContext:
    codec = av.CodecContext.create("libopus", "w")
    assert isinstance(codec, AudioCodecContext)
    codec.bit_rate = bit_rate
    codec.format = "s16"
    codec.layout = layout if layout in _LAYOUTS else "stereo"
    codec.sample_rate = SAMPLE_RATE
    codec.time_base = AUDIO_TIME_BASE
    options = {"application": APPLICATION}
    if fec:
        options |= {"fec": "1", "packet_loss": str(FEC_LOSS_PERCENT), "dtx": "1"}
    codec.options = options
    return codec


class OpusTrack(MediaStreamTrack):
    """``source``'s audio as Opus packets for one aiortc sender; see the module docstring.

    While ``sends_opus()`` is False, ``source``'s frames are handed on as
    they are. :meth:`stop` stops ``source`` too (it is the leg's own
    consumer track). Counters: :attr:`packets` handed out.
    """

    kind = "audio"

    def __init__(
        self,
        source: MediaStreamTrack,
        *,
        sends_opus: Callable[[], bool] = _always,
        bit_rate: int = BIT_RATE,
        fec: bool = False,
    ) -> None:
        super().__init__()
        if source.kind != "audio":
            raise ValueError(f"expected an audio track, got a {source.kind} one")
        self.source = source
        self.sends_opus = sends_opus
        self._encoder = OpusEncoder(bit_rate, fec=fec)
        self._ready: collections.deque[Packet[Any]] = collections.deque()
        self._next = Fraction(0)  # seconds: where a frame without pts goes
        self.packets = 0
        """Opus packets handed out."""

    async def recv(self) -> Frame | Packet[Any]:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._ready:
                self.packets += 1
                return self._ready.popleft()
            frame = await self.source.recv()
            if not isinstance(frame, AudioFrame) or not self.sends_opus():
                return frame
            pts, time_base = frame.pts, frame.time_base
            if pts is None or time_base is None:
                pts, time_base = (
                    round(self._next * frame.sample_rate),
                    Fraction(1, frame.sample_rate),
                )
                frame = self._stamped(frame, pts, time_base)  # no source here sends such frames
            self._next = pts * time_base + Fraction(frame.samples, frame.sample_rate)
            self._ready.extend(self._encoder.encode(frame))

    @property
    def bit_rate(self) -> int:
        """The Opus bitrate (bit/s); setting it takes effect at the next frame."""
        return self._encoder.bit_rate

    @bit_rate.setter
    def bit_rate(self, value: int) -> None:
        self._encoder.bit_rate = value

    def stop(self) -> None:
        super().stop()
        self._ready.clear()
        self.source.stop()

    @staticmethod
    def _stamped(frame: AudioFrame, pts: int, time_base: Fraction) -> AudioFrame:
        """A copy of ``frame`` stamped ``pts`` (the frame may be shared: it is not changed)."""
        copy = AudioFrame.from_ndarray(
            frame.to_ndarray(), format=frame.format.name, layout=frame.layout.name
        )
        copy.sample_rate = frame.sample_rate
        copy.pts = pts
        copy.time_base = time_base
        return copy


__all__ = ["APPLICATION", "BIT_RATE", "VOICE_BIT_RATE", "OpusEncoder", "OpusTrack"]
