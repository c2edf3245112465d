"""Stock aiortc as a tutorial would write it: one RTCPeerConnection, SDP over the same server.

    python -m bench.stock_peer --server ws://HOST:PORT/ws --room NAME
        [--ice-server URL ...] [--default-config] [--loopback] [--seconds N]

Connects to callapp-signaling with plain ``websockets`` (protocol v1), joins
the room and, when the server says ``ready``, the first member offers and the
other answers -- the same roles as ``callapp call --room``. It sends the
project's test pattern so that only the connection handling differs.

What it does not do is the point of the comparison: no bounded STUN wait, no
silence watchdog, no pre-gathering. Two options change that, and only as
stated:

* ``--loopback`` applies the project's loopback option (and nothing else) via
  :func:`callapp.call.ice.tune_gathering` with aioice's own 5 s gather timeout,
  so that two stock peers on a host with only a loopback interface can connect
  at all (aioice never offers 127.0.0.1);
* ``--default-config`` builds ``RTCPeerConnection()`` with no configuration, as
  the aiortc examples do (aiortc then uses Google's STUN server); otherwise
  ``RTCConfiguration(iceServers=[...the --ice-server URLs...])``.

Prints the lines the callapp CLI prints that the benchmarks read
(``joined room``, ``phase: connected``, ``first frame: N ms``, ``call ended``,
``phase: waiting``), timed the same way (from just before ``join``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from websockets.asyncio.client import connect

from callapp.call import ice
from callapp.media.testpattern import TestPatternTrack

AIOICE_GATHER_TIMEOUT = 5.0  # aioice's own default: the stock wait is kept


def say(line: str) -> None:
    print(line, flush=True)


async def run(args: argparse.Namespace) -> int:
    if args.default_config:
        pc = RTCPeerConnection()
    else:
        servers = [RTCIceServer(urls=url) for url in args.ice_server]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
    width, height = args.size
    pc.addTrack(TestPatternTrack(width, height, 30.0))
    if args.loopback:
        ice.tune_gathering(pc, gather_timeout=AIOICE_GATHER_TIMEOUT, allow_loopback=True)
    done = asyncio.Event()
    started = 0.0
    first_frame = [False]

    async def pump(track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                if not first_frame[0]:
                    first_frame[0] = True
                    say(f"first frame: {(time.monotonic() - started) * 1000:.0f} ms")
                    if args.seconds is not None:
                        asyncio.get_running_loop().call_later(args.seconds, done.set)

    pumps: set[asyncio.Future[None]] = set()

    @pc.on("track")
    def on_track(track: Any) -> None:
        if track.kind == "video":
            pumps.add(asyncio.ensure_future(pump(track)))

    @pc.on("connectionstatechange")
    def on_state() -> None:
        say(f"connection state: {pc.connectionState}")
        if pc.connectionState == "connected":
            say("phase: connected")
        elif pc.connectionState in ("failed", "closed"):
            say(f"call ended: {pc.connectionState}")
            say("phase: waiting")
            done.set()

    async with connect(args.server, max_size=2**20) as ws:
        welcome = json.loads(await ws.recv())
        me = welcome["connectionId"]
        say(f"connection id: {me}")
        started = time.monotonic()
        await ws.send(json.dumps({"type": "join", "room": args.room}))

        async def send(to: str, data: dict[str, Any]) -> None:
            await ws.send(json.dumps({"type": "message", "to": to, "data": data}))

        async def read() -> None:
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind in ("created", "joined"):
                    say(f"joined room: {args.room}")
                elif kind == "ready" and message["peers"][0] == me:
                    peer = message["peers"][-1]
                    await pc.setLocalDescription(await pc.createOffer())
                    sdp = {"type": "offer", "sdp": pc.localDescription.sdp}
                    await send(peer, {"type": "SDP", "payload": sdp})
                elif kind == "message":
                    data = message.get("data") or {}
                    if data.get("type") != "SDP":
                        continue
                    payload = data["payload"]
                    description = RTCSessionDescription(sdp=payload["sdp"], type=payload["type"])
                    await pc.setRemoteDescription(description)
                    if payload["type"] == "offer":
                        await pc.setLocalDescription(await pc.createAnswer())
                        answer = {"type": "answer", "sdp": pc.localDescription.sdp}
                        await send(message["from"], {"type": "SDP", "payload": answer})

        reader = asyncio.ensure_future(read())
        waiter = asyncio.ensure_future(done.wait())
        timeout = args.timeout if args.timeout else None
        await asyncio.wait({reader, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        reader.cancel()
        waiter.cancel()
    await pc.close()
    return 0 if first_frame[0] else 1


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.stock_peer")
    parser.add_argument("--server", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--ice-server", action="append", default=[])
    parser.add_argument("--default-config", action="store_true")
    parser.add_argument("--loopback", action="store_true")
    parser.add_argument("--size", type=_size, default=(640, 480))
    parser.add_argument("--seconds", type=float, help="stop N s after the first frame")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
