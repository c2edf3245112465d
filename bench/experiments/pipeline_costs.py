"""Experiment, not part of `python -m bench`: what each stage of the media pipeline costs.

    .venv/bin/python -m bench.experiments.pipeline_costs [--seconds 5] [--rounds 3]
        [--size 640x480] [--root DIR]

Runs the project's own media classes in this process, on one event loop, in
real time, with no peer connection, no encoder and no network: only what
callapp adds around aiortc. Each case runs for ``--seconds`` and is measured
as CPU time of the process per second of wall time (one core = 100%):

* ``pattern``: ``TestPatternTrack`` read straight by one task (what stock
  aiortc's sender does with it), the floor for the video cases;
* ``video_send``: the call's video path up to the encoder: test pattern ->
  ``SwitchableVideoTrack`` (its own pump, a preview callback) ->
  ``TrackFanout`` -> one ``FanoutTrack`` read by one task (as an aiortc
  sender would);
* ``audio_send``: the call's audio path through the encoder: the source ->
  ``MutableAudioTrack`` -> ``TrackFanout`` -> the leg's track (its
  ``FanoutTrack``, wrapped in an ``OpusTrack`` where the tree has one, as
  ``Peer`` does) -> what aiortc's sender does with each thing it reads (a
  frame: its audio level, then Opus on an executor thread; a packet: packed),
  without RTP. ``--audio`` selects the source: ``mic``, which here is a
  microphone that is not there, the default of ``callapp call``; ``none``;
  ``tone:440``;
* ``audio_receive``: what the session does with a leg's decoded remote
  audio (20 ms stereo ``s16`` frames, 50 a second, from a paced fake remote
  track): read it the way ``Peer`` does and play it on an ``AudioPlayback``
  with ``--speaker`` (``none`` by default, which is also where a missing
  speaker ends up), through the session's own wiring (``CallSession.new_peer``
  is used as it is, on a session that never connects).

Cases alternate within each round, so load from other work hits all alike;
the figures are medians over the rounds. ``--root DIR`` imports ``callapp``
from another checkout (e.g. a copy of an older commit) to compare trees in
one run. Apart from audio encoding this measures the project's own
per-frame work only: the video encoders, the decoders, RTP and SRTP are
aiortc's and cost the same for stock aiortc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from fractions import Fraction
from typing import Any

CASES = ("pattern", "video_send", "audio_send", "audio_receive")


def _parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


async def _consume(track: Any, seconds: float) -> int:
    frames = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await track.recv()
        frames += 1
    return frames


async def _pattern(args: argparse.Namespace) -> int:
    from callapp.media.testpattern import TestPatternTrack

    width, height = args.size
    track = TestPatternTrack(width, height, 30.0)
    try:
        return await _consume(track, args.seconds)
    finally:
        track.stop()


async def _video_send(args: argparse.Namespace) -> int:
    from callapp.media.fanout import TrackFanout
    from callapp.media.switcher import SwitchableVideoTrack
    from callapp.media.testpattern import TestPatternTrack

    previews = [0]

    def on_preview(frame: object) -> None:
        previews[0] += 1

    width, height = args.size
    switcher = SwitchableVideoTrack(
        TestPatternTrack(width, height, 30.0), width=width, height=height, on_preview=on_preview
    )
    switcher.start()
    fanout = TrackFanout(switcher, max_queue=1)
    consumer = fanout.subscribe()
    try:
        return await _consume(consumer, args.seconds)
    finally:
        consumer.stop()
        fanout.stop()
        switcher.stop()


async def _sender_reads(track: Any, seconds: float) -> int:
    """Read ``track`` as aiortc's ``RTCRtpSender._next_encoded_frame`` does (no RTP sent).

    A frame gets its RFC 6465 level worked out and is encoded to Opus on
    the default executor; a packet is only packed. Returns the payloads made.
    """
    from aiortc import rtp
    from aiortc.codecs.opus import OpusEncoder
    from av import AudioFrame

    loop = asyncio.get_running_loop()
    encoder = OpusEncoder()
    payloads = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = await track.recv()
        if isinstance(data, AudioFrame):
            rtp.compute_audio_level_dbov(data)
            out, _ = await loop.run_in_executor(None, encoder.encode, data, False)
        else:
            out, _ = encoder.pack(data)
        payloads += len(out)
    return payloads


async def _audio_send(args: argparse.Namespace) -> int:
    from callapp.media.audio_sources import MutableAudioTrack, open_audio_source
    from callapp.media.fanout import TrackFanout

    source = open_audio_source(args.audio)
    mute = MutableAudioTrack(source)
    fanout = TrackFanout(mute, max_queue=5)
    consumer: Any = fanout.subscribe()
    try:  # what a leg's Peer puts on its audio sender, where there is such a thing
        from callapp.media.opus import OpusTrack

        consumer = OpusTrack(consumer)
    except ImportError:
        pass
    try:
        return await _sender_reads(consumer, args.seconds)
    finally:
        consumer.stop()
        fanout.stop()
        mute.stop()
        source.stop()


class _RemoteAudio:
    """Stands in for aiortc's remote audio track: paced 20 ms stereo s16 frames."""

    kind = "audio"
    readyState = "live"

    def __init__(self) -> None:
        import numpy as np

        from callapp.media.clock import Pacer

        self._pacer = Pacer(50.0)
        self._samples = np.zeros((1, 960 * 2), dtype=np.int16)
        self._pts = 0

    async def recv(self) -> Any:
        from av import AudioFrame

        await self._pacer.next()
        frame = AudioFrame.from_ndarray(self._samples, format="s16", layout="stereo")
        frame.sample_rate = 48_000
        frame.time_base = Fraction(1, 48_000)
        frame.pts = self._pts
        self._pts += 960
        return frame

    def stop(self) -> None:
        self.readyState = "ended"


async def _audio_receive(args: argparse.Namespace) -> int:
    from callapp.call.config import CallConfig
    from callapp.call.session import CallSession
    from callapp.media.reading import read_track

    config = CallConfig(server_url="ws://127.0.0.1:9/ws", speaker=args.speaker, video="test")
    session = CallSession(config)
    # What new_peer wires for a leg's remote audio, without a peer connection:
    # a Peer hands every decoded frame to its on_audio callback.
    captured: dict[str, Any] = {}

    class _Leg:  # what new_peer reads of a CallLeg
        peer_id = "remote"
        media_key = "remote"
        media_allowed = True
        live = True

    import callapp.call.session as session_module

    # Patched in the module's namespace: new_peer looks Peer up there.
    namespace = vars(session_module)
    real_peer = namespace["Peer"]

    def fake_peer(*a: Any, **kw: Any) -> Any:
        captured.update(kw)
        return None

    namespace["Peer"] = fake_peer
    try:
        session.new_peer(_Leg())  # type: ignore[arg-type]
    finally:
        namespace["Peer"] = real_peer
    # Only the receive side is measured: unsubscribe the leg's send tracks and
    # stop the self-view's pump (new_peer opened the capture).
    for track in (captured.get("audio"), captured.get("video")):
        if track is not None:
            track.stop()
    if session._video is not None:
        session._video.set_source(None)
    on_audio = captured["on_audio"]
    frames = [0]

    def take(frame: object) -> None:
        frames[0] += 1
        on_audio(frame)

    remote = _RemoteAudio()
    task = asyncio.ensure_future(read_track(remote, take, what="remote audio"))  # type: ignore[arg-type]
    await asyncio.sleep(args.seconds)
    task.cancel()
    await session.close()
    return frames[0]


async def _case(name: str, args: argparse.Namespace) -> dict[str, float]:
    runner = {
        "pattern": _pattern,
        "video_send": _video_send,
        "audio_send": _audio_send,
        "audio_receive": _audio_receive,
    }[name]
    await asyncio.sleep(0.2)
    wall0, cpu0 = time.monotonic(), time.process_time()
    frames = await runner(args)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    return {"cpu_pct": round(100 * cpu / wall, 2), "frames": frames, "seconds": round(wall, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.experiments.pipeline_costs")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=_parse_size, default=(640, 480))
    parser.add_argument("--audio", default="mic")
    parser.add_argument("--speaker", default="none")
    parser.add_argument("--root", help="import callapp from this checkout")
    parser.add_argument("--case", action="append", choices=CASES)
    args = parser.parse_args(argv)
    if args.root:
        sys.path.insert(0, args.root)
    import callapp
    import callapp.call.session
    import callapp.media.audio_sources
    import callapp.media.fanout
    import callapp.media.switcher
    import callapp.media.testpattern  # imports are not what is measured

    asyncio.run(_case("pattern", argparse.Namespace(**{**vars(args), "seconds": 0.5})))
    cases = tuple(args.case or CASES)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name in cases:
            rounds[name].append(asyncio.run(_case(name, args)))
    result = {
        "callapp": callapp.__file__,
        "size": "x".join(map(str, args.size)),
        "audio": args.audio,
        "speaker": args.speaker,
        "cpu_pct_median": {
            name: round(statistics.median(r["cpu_pct"] for r in runs), 2)
            for name, runs in rounds.items()
        },
        "rounds": rounds,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
