"""A userspace impairment bridge: two interfaces, every frame forwarded late or not at all.

Run inside the lab's middle network namespace (``tests/net/lab.py`` starts
it)::

    ip netns exec NS python tests/net/bridge.py IF_A IF_B

It opens an ``AF_PACKET`` socket on each interface and forwards every frame
that arrives on one to the other, after a fixed delay, unless a random draw
drops it. This machine's kernel has no ``sch_netem``; this is the loss and
delay it would have given. Rate limits are not done here: ``tc tbf`` on the
middle namespace's interfaces does those (the frames this bridge sends go
through their qdisc like any other).

* Only IPv4 frames are impaired. ARP (and anything else) is forwarded at once
  and never dropped, unless the link is down: a lost ARP reply would only add a
  second's wait that no real impaired link shows (ARP is hop-local).
* Frames the socket sees going *out* of an interface (``PACKET_OUTGOING``: our
  own sends) are ignored, or the bridge would forward its own output.
* The veth ends are set up with tx checksumming and segmentation offloads off
  (by the lab), so every frame seen here is complete and no larger than the MTU.
* Each direction has its own random generator (seeded if ``--seed``), loss,
  delay and down flag.

Commands arrive on stdin, one JSON object a line; each gets one JSON line back
on stdout (``{"ok": true, ...}``)::

    {"cmd": "set", "dir": "ab"|"ba"|"both", "loss": 0.05, "delay": 0.05}
    {"cmd": "down", "dir": "both"}          # drop everything (the path dies)
    {"cmd": "up", "dir": "both"}
    {"cmd": "stats"}                        # counters per direction
    {"cmd": "quit"}

It prints ``{"ready": true}`` once both sockets are open. End of stdin ends it.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import random
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
MAX_FRAME = 65536


@dataclass
class Direction:
    """One way through the bridge (``ab``: arrives on IF_A, leaves by IF_B)."""

    name: str
    rng: random.Random
    loss: float = 0.0
    delay: float = 0.0
    down: bool = False
    forwarded: int = 0
    dropped: int = 0
    send_errors: int = 0
    bytes_forwarded: int = 0
    other: int = field(default=0)  # non-IPv4 frames passed through

    def counters(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "delay": self.delay,
            "down": self.down,
            "forwarded": self.forwarded,
            "dropped": self.dropped,
            "send_errors": self.send_errors,
            "bytes_forwarded": self.bytes_forwarded,
            "non_ip": self.other,
        }


def open_socket(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((interface, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.setblocking(False)
    return sock


class Bridge:
    def __init__(self, if_a: str, if_b: str, seed: int | None) -> None:
        self.sock_a = open_socket(if_a)
        self.sock_b = open_socket(if_b)
        seeds = random.Random(seed)
        self.ab = Direction("ab", random.Random(seeds.random()))
        self.ba = Direction("ba", random.Random(seeds.random()))
        self.lock = threading.Lock()
        self.stopping = False
        # (due, order, out socket, frame, direction): a heap, earliest first.
        self._queue: list[tuple[float, int, socket.socket, bytes, Direction]] = []
        self._order = itertools.count()
        # The command thread wakes the forwarding loop through this pipe.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)

    def directions(self, which: str) -> list[Direction]:
        return {"ab": [self.ab], "ba": [self.ba], "both": [self.ab, self.ba]}[which]

    def wake(self) -> None:
        os.write(self._wake_w, b"x")

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.sock_a, selectors.EVENT_READ, (self.sock_b, self.ab))
        selector.register(self.sock_b, selectors.EVENT_READ, (self.sock_a, self.ba))
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        while not self.stopping:
            timeout = None
            if self._queue:
                timeout = max(0.0, self._queue[0][0] - time.monotonic())
            for key, _ in selector.select(timeout):
                if key.data is None:
                    os.read(self._wake_r, 4096)
                    continue
                out, direction = key.data
                self._drain(key.fileobj, out, direction)  # type: ignore[arg-type]
            self._send_due()

    def _drain(self, sock: socket.socket, out: socket.socket, direction: Direction) -> None:
        while True:
            try:
                frame, address = sock.recvfrom(MAX_FRAME)
            except BlockingIOError:
                return
            if address[2] == PACKET_OUTGOING:
                continue  # our own send, seen on the way out
            now = time.monotonic()
            with self.lock:
                ip = len(frame) >= 14 and frame[12:14] == b"\x08\x00"
                if direction.down or (ip and direction.rng.random() < direction.loss):
                    direction.dropped += 1
                    continue
                delay = direction.delay if ip else 0.0
                if not ip:
                    direction.other += 1
            if delay <= 0 and not self._queue:
                self._send(out, frame, direction)
            else:
                heapq.heappush(self._queue, (now + delay, next(self._order), out, frame, direction))

    def _send_due(self) -> None:
        now = time.monotonic()
        while self._queue and self._queue[0][0] <= now:
            _, _, out, frame, direction = heapq.heappop(self._queue)
            self._send(out, frame, direction)

    @staticmethod
    def _send(out: socket.socket, frame: bytes, direction: Direction) -> None:
        try:
            out.send(frame)
        except OSError:
            # ENOBUFS from a full tbf queue is a drop by the rate limit, as on a
            # real narrow link; anything else (interface down) is a drop too.
            direction.send_errors += 1
            return
        direction.forwarded += 1
        direction.bytes_forwarded += len(frame)

    def command(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        with self.lock:
            if cmd == "set":
                for direction in self.directions(request.get("dir", "both")):
                    if "loss" in request:
                        loss = float(request["loss"])
                        if not 0.0 <= loss <= 1.0:
                            return {"ok": False, "error": f"loss {loss} is not in 0..1"}
                        direction.loss = loss
                    if "delay" in request:
                        delay = float(request["delay"])
                        if delay < 0:
                            return {"ok": False, "error": f"delay {delay} is negative"}
                        direction.delay = delay
            elif cmd in ("down", "up"):
                for direction in self.directions(request.get("dir", "both")):
                    direction.down = cmd == "down"
            elif cmd == "stats":
                pass
            elif cmd == "quit":
                self.stopping = True
            else:
                return {"ok": False, "error": f"unknown command {cmd!r}"}
            answer = {"ok": True, "ab": self.ab.counters(), "ba": self.ba.counters()}
        self.wake()
        return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("if_a")
    parser.add_argument("if_b")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    bridge = Bridge(args.if_a, args.if_b, args.seed)
    forwarder = threading.Thread(target=bridge.run, name="forward", daemon=True)
    forwarder.start()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = bridge.command(json.loads(line))
        except (ValueError, TypeError, KeyError) as exc:
            answer = {"ok": False, "error": str(exc)}
        print(json.dumps(answer), flush=True)
        if bridge.stopping:
            break
    bridge.stopping = True
    bridge.wake()
    forwarder.join(2)


if __name__ == "__main__":
    main()
