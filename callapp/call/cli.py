"""``callapp call``: one side of a video call, headless.

Everything the desktop app does with a call, from a terminal or a test::

    callapp call --host                              # serve, wait for calls
    callapp call --server ws://H:P/ws --room demo    # meet in a room
    callapp call --server ws://H:P/ws --to ID        # dial a connection id
    callapp call --server ws://H:P/ws --auto-answer  # wait; answer whoever calls
    callapp call --server ws://H:P/ws --room team --capacity 4 --name Ana  # a group room

It prints one short line per change, flushed at once so scripts can follow::

    server: ws://127.0.0.1:41234/ws
    connection id: 2b1Q...
    phase: calling role=caller peer=Xy7...
    phase: connected role=caller peer=Xy7...
    first frame: 182 ms
    peer connected: Xy7... (Ana)
    chat from Ana: hello
    peer left: Xy7... (Ana): the other person hung up
    call ended: you hung up
    phase: waiting
    reconnecting: giving up in 30 s          (the server went away, nobody in a call)
    peer relinked: Xy7... is now Q2w... (Ana) (the server came back; the call goes on)
    peer reconnecting: Xy7... (Ana): the media path was lost   (a fresh ICE session...)
    peer reconnected: Xy7... (Ana)           (...is up: media flows again)
    call ended: the host ended the call      (the host's app, and its server, went away)
    signaling: gone: could not reach the server; gave up

A call lasts while media flows with at least one peer: in a group room
people come and go and the call goes on, and it goes on peer to peer while
the signaling server is away (and untouched when it is back); a media path
that dies while signaling works is renegotiated. ``--relay-only`` sends media
only through a TURN relay (the server's ``welcome`` names one). It exits 0
once ``--calls`` calls (default 1) have had media flowing and ended
(whoever ended them: the host closing its app is an ending like any
other), and non-zero with one ``error: ...`` line
otherwise (server unreachable, room full, the person called is busy, no call
connected within ``--timeout``, the server gone for ``--reconnect-for``
seconds or with its host); 3 when a call's quality collapsed (under 5 fps,
frozen half the time or a third of the packets lost: ``quality`` in the
report, :func:`callapp.call.report.quality`). With ``--host`` this process
hosts: stopping it (SIGINT/SIGTERM) tells the others the host ended the call
before its server stops. With ``--stats-json`` it writes the report of
:mod:`callapp.call.report` at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import signal
import sys
import time
from pathlib import Path

import av

from callapp import eventloop
from callapp.call.config import CODECS, CallConfig
from callapp.call.errors import CallError, ending_error
from callapp.call.recording import CallRecording
from callapp.call.report import session_report
from callapp.call.security import decode_secret, new_room_secret
from callapp.call.session import MAX_CAPACITY, CallSession
from callapp.call.state import (
    CallPhase,
    ChatMessage,
    EndReason,
    LegState,
    LinkEnd,
    LinkState,
    Presence,
    SessionSnapshot,
)
from callapp.media.audio_sources import open_audio_source
from callapp.media.devices import list_audio_devices, portaudio_problem
from callapp.signaling.invite import format_invite, parse_invite

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: The call happened, but its quality collapsed (report ``quality``: "collapsed").
EXIT_COLLAPSED = 3


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
        "--invite",
        metavar="URL",
        help="join with an invite link (server, room and secret in one)",
    )
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
    parser.add_argument(
        "--room-secret",
        metavar="S",
        help="with --room: the room's secret (as in an invite); with --host, a new one is made",
    )
    parser.add_argument(
        "--capacity",
        type=int,
        metavar="N",
        help=f"with --room: make a group room of N people (2-{MAX_CAPACITY}) if it is new",
    )
    parser.add_argument("--name", default="Guest", help="your display name (default: Guest)")
    parser.add_argument(
        "--chat",
        action="append",
        default=[],
        metavar="TEXT",
        help="send TEXT to everyone once the first peer is connected (repeat)",
    )
    parser.add_argument("--muted", action="store_true", help="start with the microphone muted")
    parser.add_argument(
        "--camera-off", action="store_true", help="start with video off (the peers see black)"
    )
    parser.add_argument(
        "--share-screen",
        metavar="SPEC",
        help="once the first peer is connected, send this screen (screen | screen:N)",
    )
    parser.add_argument(
        "--share-for",
        type=float,
        metavar="S",
        help="with --share-screen: go back to the camera after S seconds",
    )
    parser.add_argument("--auto-answer", action="store_true", help="accept incoming calls")
    parser.add_argument(
        "--video", default="test", help="camera | camera:N | screen | screen:N | test | PATH"
    )
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
        "--relay-only",
        action="store_true",
        help="send media only through a TURN relay (the server's, or --ice-server turn:...)",
    )
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
    parser.add_argument(
        "--reconnect-for",
        type=float,
        default=30.0,
        metavar="S",
        help="give up on a signaling server that stays unreachable this long once no"
        " call is live (default: 30)",
    )
    parser.add_argument("--record", metavar="PATH", help="record the received video and audio here")
    parser.add_argument("--stats-json", metavar="PATH", help="write the last call's numbers here")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.set_defaults(server_pin=None)  # from --invite, for a TLS host
    return parser


def say(line: str) -> None:
    print(line, flush=True)


def say_error(reason: str) -> None:
    print(f"error: {reason}", file=sys.stderr, flush=True)


def describe(snapshot: SessionSnapshot) -> str:
    """One line for a phase: ``phase: connected role=caller peer=ID``."""
    parts = [f"phase: {snapshot.phase.value}"]
    if snapshot.role is not None:
        parts.append(f"role={snapshot.role.value}")
    if snapshot.peer_id is not None:
        parts.append(f"peer={snapshot.peer_id}")
    return " ".join(parts)


def describe_presence(peer_id: str, presence: Presence) -> str:
    """``presence: ID (Ana) muted camera-off screen recording`` (only what is on)."""
    flags = [
        word
        for word, on in (
            ("muted", presence.muted),
            ("camera-off", presence.camera_off),
            ("screen", presence.screen),
            ("recording", presence.recording),
        )
        if on
    ]
    return " ".join([f"presence: {peer_id} ({presence.name})", *flags])


def new_chat(before: SessionSnapshot, after: SessionSnapshot) -> tuple[ChatMessage, ...]:
    """The chat lines ``after`` has that ``before`` did not (snapshots keep a bounded tail)."""
    if not before.chat:
        return after.chat
    last = before.chat[-1]
    for index in range(len(after.chat) - 1, -1, -1):
        if after.chat[index] is last:
            return after.chat[index + 1 :]
    return after.chat


def in_a_call(snapshot: SessionSnapshot) -> bool:
    """Ringing, calling or connected with someone: any live leg (also while the
    link is reconnecting: media goes on peer to peer)."""
    return bool(snapshot.legs)


def gone_reason(snapshot: SessionSnapshot, reconnect_for: float) -> str:
    """Why the signaling link is gone, for the ``error:`` line."""
    match snapshot.link_end:
        case LinkEnd.HOST_LEFT:
            return "the host ended the call"
        case LinkEnd.GAVE_UP:
            return (
                f"could not reach the signaling server; gave up after {reconnect_for:g} s"
                " of retrying"
            )
    return "lost the signaling server"


class Runner:
    """Drives one :class:`CallSession` the way the flags say."""

    def __init__(self, args: argparse.Namespace, session: CallSession) -> None:
        self.args = args
        self.session = session
        self.completed = 0
        self.failure: str | None = None
        self.done = asyncio.Event()
        self.recorder = CallRecording(args.record) if args.record else None
        #: When the user asked for the call (join or dial): first frames count from here.
        self.started_at: float | None = None
        self._waiting_since = time.monotonic()
        self._had_media = False
        self._first_frame_said = False
        self._hangup: asyncio.TimerHandle | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._chat_task: asyncio.Task[None] | None = None
        self._share_task: asyncio.Task[None] | None = None
        self._previous = session.snapshot

    # -- snapshots -----------------------------------------------------------------

    def on_snapshot(self, snapshot: SessionSnapshot) -> None:
        before, self._previous = self._previous, snapshot
        now = time.monotonic()
        in_call = in_a_call(snapshot)
        was_in_call = in_a_call(before)
        self._say_legs(before, snapshot)
        if was_in_call and not in_call:
            self._call_ended(snapshot, now)
        if snapshot.phase is not before.phase or snapshot.role is not before.role:
            say(describe(snapshot))
        if snapshot.notice and snapshot.notice != before.notice:
            say(f"notice: {snapshot.notice}")
        for line in new_chat(before, snapshot):
            if not line.mine:
                say(f"chat from {line.sender_name}: {line.text}")
        if snapshot.phase is CallPhase.RINGING and before.phase is not CallPhase.RINGING:
            say(f"incoming call from {snapshot.peer_id}: not answered (see --auto-answer)")
        if in_call and self.started_at is None:
            # A call started without dial/join (an incoming one): time it from now.
            self.started_at = now
        if snapshot.in_call and not before.in_call and not self._had_media:
            self._call_connected()
        deadline = snapshot.reconnect_deadline
        if deadline is not None and deadline != before.reconnect_deadline:
            say(f"reconnecting: giving up in {max(0.0, deadline - now):.0f} s")
        if snapshot.link is LinkState.GONE and before.link is not LinkState.GONE:
            if snapshot.link_end is not None:
                say(f"signaling: gone: {snapshot.link_end.value}")
            self.fail(gone_reason(snapshot, self.args.reconnect_for))

    def _say_legs(self, before: SessionSnapshot, snapshot: SessionSnapshot) -> None:
        was = {leg.peer_id: leg for leg in before.legs}
        now = {leg.peer_id: leg for leg in snapshot.legs}
        moved = {old_id for leg in snapshot.legs for old_id in leg.previous_ids}
        for peer_id, leg in now.items():
            old = was.get(peer_id)
            if old is None:
                earlier = [i for i in leg.previous_ids if i in was]
                if earlier:  # the same call, its peer back on signaling with a new id
                    say(f"peer relinked: {earlier[-1]} is now {peer_id} ({leg.name})")
                    old = was[earlier[-1]]
            if leg.state is LegState.RECONNECTING and (old is None or old.state is not leg.state):
                say(f"peer reconnecting: {peer_id} ({leg.name}): the media path was lost")
            elif leg.state is LegState.CONNECTED and (old is None or old.state is not leg.state):
                if old is not None and old.state is LegState.RECONNECTING:
                    say(f"peer reconnected: {peer_id} ({leg.name})")
                else:
                    say(f"peer connected: {peer_id} ({leg.name})")
            if leg.presence is not None and (old is None or old.presence != leg.presence):
                say(describe_presence(peer_id, leg.presence))
        for peer_id, leg in was.items():
            if peer_id not in now and peer_id not in moved and leg.state is LegState.CONNECTED:
                reason = snapshot.end_reason.value if snapshot.end_reason else "ended"
                say(f"peer left: {peer_id} ({leg.name}): {reason}")

    def _call_connected(self) -> None:
        self._had_media = True
        self._stats_task = asyncio.ensure_future(self._sample_stats())
        if self.args.chat:
            self._chat_task = asyncio.ensure_future(self._send_chat(self.args.chat))
        if self.args.share_screen:
            self._share_task = asyncio.ensure_future(
                self._share(self.args.share_screen, self.args.share_for)
            )
        if self.args.seconds is not None:
            loop = asyncio.get_running_loop()
            self._hangup = loop.call_later(
                self.args.seconds, lambda: asyncio.ensure_future(self._hang_up())
            )

    def _call_ended(self, snapshot: SessionSnapshot, now: float) -> None:
        if self._hangup is not None:
            self._hangup.cancel()
            self._hangup = None
        for task in (self._stats_task, self._chat_task):
            if task is not None:
                task.cancel()
        self._stats_task = self._chat_task = None
        reason = snapshot.end_reason.value if snapshot.end_reason else "ended"
        say(f"call ended: {reason}")
        self._waiting_since = now
        had_media, self._had_media = self._had_media, False
        self._first_frame_said = False
        if had_media:
            self.completed += 1
            if self.args.calls and self.completed >= self.args.calls:
                self.done.set()
        elif self.args.to:
            # A dialled call that never connected: nobody else will call.
            error = ending_error(snapshot.end_reason)
            self.fail(str(error) if error else f"calling {self.args.to} failed: {reason}")
        elif snapshot.end_reason is EndReason.RELAY_FAILED:
            # Every call would go through that relay, and it said no: say why now.
            self.fail(snapshot.notice or reason)

    # -- frames --------------------------------------------------------------------

    def on_remote_frame(self, frame: av.VideoFrame) -> None:
        if not self._first_frame_said and self.started_at is not None:
            self._first_frame_said = True
            say(f"first frame: {(time.monotonic() - self.started_at) * 1000:.0f} ms")
        if self.recorder is not None:
            self.recorder.write(frame)

    def on_remote_audio(self, frame: av.AudioFrame) -> None:
        if self.recorder is not None:
            self.recorder.write_audio(frame)

    # -- actions -------------------------------------------------------------------

    async def _sample_stats(self) -> None:
        while True:
            await self.take_stats()
            await asyncio.sleep(0.5)

    async def take_stats(self) -> None:
        with contextlib.suppress(Exception):
            await self.session.all_stats()

    async def _send_chat(self, lines: list[str]) -> None:
        # The data channel opens a moment after media; give it that moment
        # (the lines go through signaling otherwise, which also works).
        opened = asyncio.Event()

        def check(snapshot: SessionSnapshot) -> None:
            if all(leg.chat_open for leg in snapshot.legs):
                opened.set()

        unsubscribe = self.session.subscribe(check)
        check(self.session.snapshot)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(opened.wait(), 2.0)
        unsubscribe()
        for text in lines:
            try:
                await self.session.send_chat(text)
            except CallError as exc:
                say(f"notice: {exc}")

    async def _share(self, spec: str, seconds: float | None) -> None:
        try:
            await self.session.share_screen(spec)
        except CallError as exc:
            say(f"notice: {exc}")
            return
        say(f"sharing: {spec}")
        if seconds is not None:
            await asyncio.sleep(seconds)
            await self.session.share_screen(None)
            say("sharing: stopped")

    async def _hang_up(self) -> None:
        await self.take_stats()
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
            if self.session.snapshot.in_call:
                self._waiting_since = time.monotonic()
            elif time.monotonic() - self._waiting_since > limit:
                what = "no call connected" if self.args.to or self.args.room else "no call came"
                self.fail(f"{what} within {limit:g} s")

    async def start(self) -> None:
        session = self.session
        if self.args.muted:
            await session.set_muted(True)
        if self.args.camera_off:
            await session.set_video_enabled(False)
        if self.args.record:
            await session.set_recording(True)
        connection_id = await session.connect()
        say(f"connection id: {connection_id}")
        self._waiting_since = time.monotonic()
        if self.args.room:
            self.started_at = time.monotonic()
            await session.join_room(
                self.args.room, capacity=self.args.capacity, secret=self.args.room_secret
            )
            say(f"joined room: {self.args.room}")
        elif self.args.to:
            self.started_at = time.monotonic()
            await session.dial(self.args.to)


async def run(args: argparse.Namespace) -> int:
    server = None
    if args.host is not None:
        from callapp.signaling.server import SignalingServer

        server = SignalingServer(args.host, args.port)
        try:
            await server.start()
        except OSError as exc:
            # asyncio's bind error quotes the socket address tuple: say it in words.
            log.info("cannot listen on %s:%s: %s", args.host, args.port, exc)
            if exc.errno == errno.EADDRINUSE:
                why = f"port {args.port} is already in use: choose another with --port (0: any)"
            elif exc.errno == errno.EACCES:
                why = f"port {args.port} needs more rights: choose one above 1023 with --port"
            else:
                why = f"{args.host} is not an address of this machine: check --host"
            say_error(f"cannot start the signaling server: {why}")
            return EXIT_FAILED
        say(f"server: {server.url}")
        if args.room:
            if args.room_secret is None:
                args.room_secret = new_room_secret()
            say(f"invite: {format_invite(server.url, args.room, secret=args.room_secret)}")
    url = server.url if server is not None else args.server
    width, height = args.size
    config = CallConfig(
        server_url=url,
        name=args.name,
        server_pin=args.server_pin,
        video=args.video,
        audio=args.audio,
        speaker=args.speaker,
        width=width,
        height=height,
        fps=args.fps,
        codec=args.codec,
        ice_servers=tuple(args.ice_server),
        allow_loopback=args.allow_loopback,
        relay_only=args.relay_only,
        auto_answer=args.auto_answer,
        hosting=server is not None,
        reconnect_for=args.reconnect_for,
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
        await runner.take_stats()
        await session.close()
        if runner.recorder is not None:
            try:
                await runner.recorder.close()
                say(f"recorded {runner.recorder.frames_written} frames to {args.record}")
            except CallError as exc:
                runner.fail(f"recording failed: {exc}")
        if server is not None:
            await server.stop()
    data = session_report(
        session.snapshot.connection_id,
        session.records(),
        started_at=runner.started_at,
        chat=session.snapshot.chat,
        signaling_reconnects=session.signaling_reconnects,
    )
    if args.stats_json:
        data["completed_calls"] = runner.completed
        text = json.dumps(data, indent=2) + "\n"
        await asyncio.to_thread(Path(args.stats_json).write_text, text)
    if runner.failure is not None and runner.completed < max(args.calls, 1):
        say_error(runner.failure)
        return EXIT_FAILED
    collapsed = [p for p in data["peers"] if p.get("quality") == "collapsed"]
    if collapsed:
        # A call nobody could follow is not a success, even though it connected.
        for peer in collapsed:
            say(f"quality: collapsed with {peer['id']}: {'; '.join(peer['quality_reasons'])}")
        say_error("the call's quality collapsed (see quality in --stats-json)")
        return EXIT_COLLAPSED
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


def apply_invite(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Turn ``--invite URL`` into ``--server``, ``--room`` and ``--room-secret``."""
    if args.invite is None:
        return
    if args.room or args.to or args.room_secret:
        parser.error("--invite already names the server, the room and its secret")
    try:
        invite = parse_invite(args.invite)
    except ValueError as exc:
        parser.error(f"--invite: {exc}")
    args.server, args.room, args.room_secret = invite.server_url, invite.room, invite.secret
    args.server_pin = invite.pin


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
    apply_invite(args, parser)
    if args.room_secret is not None and not args.room:
        parser.error("--room-secret goes with --room")
    if args.room_secret is not None:
        try:
            decode_secret(args.room_secret)
        except ValueError as exc:
            parser.error(f"--room-secret: {exc}")
    if args.share_for is not None and not args.share_screen:
        parser.error("--share-for goes with --share-screen")
    if args.share_screen and not args.share_screen.startswith("screen"):
        parser.error("--share-screen takes screen or screen:N")
    if args.capacity is not None and not args.room:
        parser.error("--capacity goes with --room")
    if args.capacity is not None and not 2 <= args.capacity <= MAX_CAPACITY:
        parser.error(f"--capacity must be 2 to {MAX_CAPACITY}")
    if not args.reconnect_for >= 0:
        parser.error("--reconnect-for must be 0 or more seconds")
    video = args.video
    is_device = video in ("test", "camera", "screen") or video.startswith(("camera:", "screen:"))
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
