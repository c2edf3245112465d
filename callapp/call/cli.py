"""``callapp call``: one side of a video call, headless.

Everything the desktop app does with a call, from a terminal or a test::

    callapp call --host                              # serve, wait for calls
    callapp call --server ws://H:P/ws --room demo    # meet in a room
    callapp call --server ws://H:P/ws --to ID        # dial a connection id
    callapp call --server ws://H:P/ws --auto-answer  # wait; answer whoever calls

It prints one short line per change, flushed at once so scripts can follow::

    server: ws://127.0.0.1:41234/ws
    connection id: 2b1Q...
    phase: calling role=caller peer=Xy7...
    phase: connected role=caller peer=Xy7...
    first frame: 182 ms
    call ended: you hung up
    phase: waiting

It exits 0 once ``--calls`` calls (default 1) have had media flowing and
ended, and non-zero with one ``error: ...`` line otherwise (server
unreachable, room full, no call connected within ``--timeout``). With
``--stats-json`` it writes one JSON object about the last call at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from callapp import eventloop
from callapp.call.config import CODECS, CallConfig
from callapp.call.errors import CallError
from callapp.call.recording import CallRecording
from callapp.call.session import CallSession
from callapp.call.state import CallPhase, CallSnapshot
from callapp.call.stats import CallStats
from callapp.media.audio_sources import open_audio_source
from callapp.media.devices import list_audio_devices, portaudio_problem

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, not {text!r}")
    return int(width), int(height)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callapp call", description="Make or take one video call, headless."
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", metavar="URL", help="signaling server, ws://HOST:PORT/ws")
    where.add_argument(
        "--host",
        nargs="?",
        const="127.0.0.1",
        metavar="ADDR",
        help="start a signaling server here (default 127.0.0.1) and use it",
    )
    parser.add_argument("--port", type=int, default=0, help="port for --host (default: any)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--room", metavar="NAME", help="join this room and call whoever is there")
    who.add_argument("--to", metavar="ID", help="dial this connection id")
    parser.add_argument("--auto-answer", action="store_true", help="accept incoming calls")
    parser.add_argument("--video", default="test", help="camera | camera:N | test | PATH")
    parser.add_argument(
        "--audio", default="mic", help="mic | mic:DEVICE | tone:HZ | none | PATH (default: mic)"
    )
    parser.add_argument(
        "--speaker",
        metavar="DEVICE",
        help="play the peer's audio here: an index or part of a name, or none (default: default)",
    )
    parser.add_argument(
        "--list-audio-devices",
        action="store_true",
        help="print the microphones and speakers (index, name) for --audio/--speaker, and exit",
    )
    parser.add_argument("--size", type=_size, default=(640, 480), metavar="WxH")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--codec", choices=CODECS, default="vp8")
    parser.add_argument(
        "--ice-server", action="append", default=[], metavar="URL", help="STUN/TURN URL (repeat)"
    )
    parser.add_argument("--allow-loopback", action="store_true", help="offer 127.0.0.1 candidates")
    parser.add_argument(
        "--seconds", type=float, metavar="N", help="hang up N seconds after media starts"
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=1,
        metavar="N",
        help="exit after N calls have completed (0: keep taking calls)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="give up if no call connects within S seconds of waiting (0: never)",
    )
    parser.add_argument("--record", metavar="PATH", help="record the received video and audio here")
    parser.add_argument("--stats-json", metavar="PATH", help="write the last call's numbers here")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def say(line: str) -> None:
    print(line, flush=True)


def say_error(reason: str) -> None:
    print(f"error: {reason}", file=sys.stderr, flush=True)


def describe(snapshot: CallSnapshot) -> str:
    """One line for a phase: ``phase: connected role=caller peer=ID``."""
    parts = [f"phase: {snapshot.phase.value}"]
    if snapshot.role is not None:
        parts.append(f"role={snapshot.role.value}")
    if snapshot.peer_id is not None:
        parts.append(f"peer={snapshot.peer_id}")
    return " ".join(parts)


@dataclass
class CallRecord:
    """What the CLI measures about one call, for ``--stats-json``."""

    started_at: float
    role: str | None = None
    first_frame_at: float | None = None
    last_frame_at: float | None = None
    frames_received: int = 0
    audio_frames_received: int = 0
    connected_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    stats: CallStats | None = None
    stats_at: float | None = None
    received_times: list[float] = field(default_factory=list)

    def as_json(self, connection_id: str | None) -> dict[str, Any]:
        stats = self.stats
        fps = 0.0
        if self.first_frame_at is not None and self.last_frame_at is not None:
            span = self.last_frame_at - self.first_frame_at
            if span > 0:
                fps = (self.frames_received - 1) / span
        media_s = (
            (self.stats_at - self.connected_at)
            if self.stats_at is not None and self.connected_at is not None
            else 0.0
        )

        def rate(total: int | None) -> float:
            return round(total * 8 / media_s, 1) if total is not None and media_s > 0 else 0.0

        return {
            "connection_id": connection_id,
            "role": self.role,
            "first_frame_ms": (
                round((self.first_frame_at - self.started_at) * 1000, 1)
                if self.first_frame_at is not None
                else None
            ),
            "frames_sent": stats.frames_sent if stats else 0,
            "frames_received": self.frames_received,
            "audio_frames_sent": stats.audio_frames_sent if stats else 0,
            "audio_frames_received": self.audio_frames_received,
            "fps_received": round(fps, 2),
            "bitrate_sent": rate(stats.bytes_sent if stats else None),
            "bitrate_received": rate(stats.bytes_received if stats else None),
            "rtt_ms": round(stats.rtt_ms, 2) if stats and stats.rtt_ms is not None else None,
            "packet_loss": stats.packet_loss if stats else None,
            "codec": stats.codec if stats else None,
            "received_size": list(stats.received_size) if stats and stats.received_size else None,
            "end_reason": self.end_reason,
            "duration_s": (
                round(self.ended_at - self.connected_at, 3)
                if self.ended_at is not None and self.connected_at is not None
                else None
            ),
        }


class Runner:
    """Drives one :class:`CallSession` the way the flags say."""

    def __init__(self, args: argparse.Namespace, session: CallSession) -> None:
        self.args = args
        self.session = session
        self.record: CallRecord | None = None
        self.completed = 0
        self.last: CallRecord | None = None
        self.failure: str | None = None
        self.done = asyncio.Event()
        self.recorder = CallRecording(args.record) if args.record else None
        self._waiting_since = time.monotonic()
        self._hangup: asyncio.TimerHandle | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._previous = session.snapshot

    # -- snapshots -----------------------------------------------------------------

    def on_snapshot(self, snapshot: CallSnapshot) -> None:
        before, self._previous = self._previous, snapshot
        now = time.monotonic()
        in_call = snapshot.phase in (CallPhase.RINGING, CallPhase.CALLING, CallPhase.CONNECTED)
        was_in_call = before.phase in (CallPhase.RINGING, CallPhase.CALLING, CallPhase.CONNECTED)
        if was_in_call and not in_call:
            self._call_ended(snapshot, now)
        if snapshot.phase is not before.phase or snapshot.role is not before.role:
            say(describe(snapshot))
        if snapshot.notice and snapshot.notice != before.notice:
            say(f"notice: {snapshot.notice}")
        if snapshot.phase is CallPhase.RINGING and before.phase is not CallPhase.RINGING:
            say(f"incoming call from {snapshot.peer_id}: not answered (see --auto-answer)")
        if in_call and self.record is None:
            # A call started without dial/join (an incoming one): time it from now.
            self.record = CallRecord(started_at=now)
        if self.record is not None and snapshot.role is not None:
            self.record.role = snapshot.role.value
        if snapshot.phase is CallPhase.CONNECTED and before.phase is not CallPhase.CONNECTED:
            assert self.record is not None
            self.record.connected_at = now
            self._stats_task = asyncio.ensure_future(self._sample_stats(self.record))
            if self.args.seconds is not None:
                loop = asyncio.get_running_loop()
                self._hangup = loop.call_later(
                    self.args.seconds, lambda: asyncio.ensure_future(self._hang_up())
                )
        if snapshot.phase is CallPhase.IDLE and before.phase is not CallPhase.CONNECTING:
            self.fail("lost the signaling server")

    def _call_ended(self, snapshot: CallSnapshot, now: float) -> None:
        record, self.record = self.record, None
        if self._hangup is not None:
            self._hangup.cancel()
            self._hangup = None
        if self._stats_task is not None:
            self._stats_task.cancel()
            self._stats_task = None
        reason = snapshot.end_reason.value if snapshot.end_reason else "ended"
        say(f"call ended: {reason}")
        self._waiting_since = now
        if record is None:
            return
        record.ended_at = now
        record.end_reason = snapshot.end_reason.name.lower() if snapshot.end_reason else None
        self.last = record
        if record.connected_at is not None:
            self.completed += 1
            if self.args.calls and self.completed >= self.args.calls:
                self.done.set()
        elif self.args.to:
            # A dialled call that never connected: nobody else will call.
            self.fail(f"calling {self.args.to} failed: {reason}")

    # -- frames --------------------------------------------------------------------

    def on_remote_frame(self, frame: av.VideoFrame) -> None:
        record = self.record
        if record is None:
            return
        now = time.monotonic()
        if record.first_frame_at is None:
            record.first_frame_at = now
            say(f"first frame: {(now - record.started_at) * 1000:.0f} ms")
        record.last_frame_at = now
        record.frames_received += 1
        if self.recorder is not None:
            self.recorder.write(frame)

    def on_remote_audio(self, frame: av.AudioFrame) -> None:
        record = self.record
        if record is None:
            return
        record.audio_frames_received += 1
        if self.recorder is not None:
            self.recorder.write_audio(frame)

    # -- actions -------------------------------------------------------------------

    async def _sample_stats(self, record: CallRecord) -> None:
        while True:
            await self._take_stats(record)
            await asyncio.sleep(0.5)

    async def _take_stats(self, record: CallRecord) -> None:
        with contextlib.suppress(Exception):
            stats = await self.session.stats()
            if stats is not None:
                record.stats, record.stats_at = stats, time.monotonic()

    async def _hang_up(self) -> None:
        if self.record is not None:
            await self._take_stats(self.record)
        await self.session.hang_up()

    def fail(self, reason: str) -> None:
        if self.failure is None and not self.done.is_set():
            self.failure = reason
        self.done.set()

    async def watch_timeout(self) -> None:
        limit = self.args.timeout
        if not limit:
            return
        while not self.done.is_set():
            await asyncio.sleep(0.2)
            phase = self.session.snapshot.phase
            if phase is CallPhase.CONNECTED:
                self._waiting_since = time.monotonic()
            elif time.monotonic() - self._waiting_since > limit:
                what = "no call connected" if self.args.to or self.args.room else "no call came"
                self.fail(f"{what} within {limit:g} s")

    async def start(self) -> None:
        session = self.session
        connection_id = await session.connect()
        say(f"connection id: {connection_id}")
        self._waiting_since = time.monotonic()
        if self.args.room:
            self.record = CallRecord(started_at=time.monotonic())
            await session.join_room(self.args.room)
            say(f"joined room: {self.args.room}")
        elif self.args.to:
            self.record = CallRecord(started_at=time.monotonic())
            await session.dial(self.args.to)


async def run(args: argparse.Namespace) -> int:
    server = None
    if args.host is not None:
        from callapp.signaling.server import SignalingServer

        server = SignalingServer(args.host, args.port)
        try:
            await server.start()
        except OSError as exc:
            say_error(f"cannot start the signaling server: {exc}")
            return EXIT_FAILED
        say(f"server: {server.url}")
    url = server.url if server is not None else args.server
    width, height = args.size
    config = CallConfig(
        server_url=url,
        video=args.video,
        audio=args.audio,
        speaker=args.speaker,
        width=width,
        height=height,
        fps=args.fps,
        codec=args.codec,
        ice_servers=tuple(args.ice_server),
        allow_loopback=args.allow_loopback,
        auto_answer=args.auto_answer,
        **({"ring_timeout": args.timeout} if args.timeout else {}),
    )
    session = CallSession(config)
    try:
        runner = Runner(args, session)
    except CallError as exc:
        say_error(str(exc))
        if server is not None:
            await server.stop()
        return EXIT_FAILED
    session.subscribe(runner.on_snapshot)
    session.set_frame_callbacks(remote=runner.on_remote_frame, remote_audio=runner.on_remote_audio)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, runner.fail, f"stopped by signal {signum}")
    timeout_task = asyncio.ensure_future(runner.watch_timeout())
    try:
        await runner.start()
        await runner.done.wait()
    except CallError as exc:
        runner.fail(str(exc))
    finally:
        timeout_task.cancel()
        if runner.record is not None and runner.record.connected_at is not None:
            await runner._take_stats(runner.record)
        await session.close()
        if runner.recorder is not None:
            try:
                await runner.recorder.close()
                say(f"recorded {runner.recorder.frames_written} frames to {args.record}")
            except CallError as exc:
                runner.fail(f"recording failed: {exc}")
        if server is not None:
            await server.stop()
    record = runner.last or runner.record
    if args.stats_json:
        data = record.as_json(session.snapshot.connection_id) if record else {}
        data.setdefault("connection_id", session.snapshot.connection_id)
        data["completed_calls"] = runner.completed
        text = json.dumps(data, indent=2) + "\n"
        await asyncio.to_thread(Path(args.stats_json).write_text, text)
    if runner.failure is not None and runner.completed < max(args.calls, 1):
        say_error(runner.failure)
        return EXIT_FAILED
    return EXIT_OK


def audio_device_lines() -> list[str]:
    """``--list-audio-devices``: one line per sound device, or why there is none."""
    lines = []
    for device in list_audio_devices():
        ways = "/".join(w for w, ok in (("in", device.is_input), ("out", device.is_output)) if ok)
        marks = [
            mark
            for mark, ok in (
                ("default in", device.is_default_input),
                ("default out", device.is_default_output),
            )
            if ok
        ]
        extra = f"  [{', '.join(marks)}]" if marks else ""
        lines.append(f"{device.index:>3}  {ways:<6}  {device.name} ({device.host_api}){extra}")
    if not lines:
        problem = portaudio_problem()
        lines.append("no sound devices" + (f" (PortAudio: {problem})" if problem else ""))
    return lines


def main(argv: list[str]) -> int:
    """Entry point of ``callapp call``; returns the exit code."""
    if "--list-audio-devices" in argv:  # needs no server, unlike everything else
        for line in audio_device_lines():
            say(line)
        return EXIT_OK
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seconds is not None and args.seconds <= 0:
        parser.error("--seconds must be positive")
    video = args.video
    is_device = video in ("test", "camera") or video.startswith("camera:")
    if not is_device and not Path(video).expanduser().is_file():
        parser.error(f"--video {video!r}: not camera, camera:N, test or a video file")
    try:
        open_audio_source(args.audio).stop()  # checks the spec; opens no device
    except (OSError, ValueError) as exc:
        parser.error(f"--audio: {exc}")
    level = logging.WARNING - 10 * args.verbose
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return eventloop.run(run(args))
    except KeyboardInterrupt:
        return EXIT_FAILED
    except ValueError as exc:  # a bad combination CallConfig rejects
        say_error(str(exc))
        return EXIT_USAGE
