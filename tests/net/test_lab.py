"""The network lab itself: the bridge loses, delays and goes down as told; tbf limits."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.net.lab import Lab, lab_or_skip

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

#: A UDP echo and a client that sends N datagrams and reports replies and RTTs (ms).
ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
while True:
    data, peer = s.recvfrom(4096)
    s.sendto(data, peer)
"""
PROBE = """
import json, socket, sys, time
host, count, size, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
sent, rtts, start = {}, [], time.monotonic()
for i in range(count):
    sent[i] = time.monotonic()
    s.sendto(i.to_bytes(4, "big") + bytes(size), (host, 9999))
    deadline = time.monotonic() + gap
    while time.monotonic() < deadline:
        try:
            data = s.recv(65536)
            rtts.append((time.monotonic() - sent[int.from_bytes(data[:4], "big")]) * 1000)
        except BlockingIOError:
            time.sleep(0.001)
end = time.monotonic() + 0.6
while time.monotonic() < end:
    try:
        data = s.recv(65536)
        rtts.append((time.monotonic() - sent[int.from_bytes(data[:4], "big")]) * 1000)
    except BlockingIOError:
        time.sleep(0.001)
print(json.dumps({"replies": len(rtts), "rtts": sorted(rtts), "s": time.monotonic() - start}))
"""


def probe(lab: Lab, count: int, *, size: int = 100, gap: float = 0.005) -> dict[str, object]:
    out = lab.run("a", [sys.executable, "-c", PROBE, lab.host_b, str(count), str(size), str(gap)])
    result: dict[str, object] = json.loads(out)
    return result


def test_loss_delay_link_down_and_rate(lab: Lab) -> None:
    lab.popen("b", [sys.executable, "-c", ECHO])
    # The echo binds a moment after it starts: the first datagrams would be lost
    # to its absence, not to the bridge.
    for _ in range(50):
        if probe(lab, 3)["replies"] == 3:
            break
    clean = probe(lab, 50)
    assert clean["replies"] == 50, clean

    lab.impair(loss=0.2, delay=0.04)
    lossy = probe(lab, 400)
    rtts = lossy["rtts"]
    assert isinstance(rtts, list)
    # Both ways: 0.8 * 0.8 of the echoes come back, each 2 x 40 ms late.
    assert 0.55 * 400 < len(rtts) < 0.73 * 400, lossy
    assert 78 < rtts[len(rtts) // 2] < 110, lossy
    counts = lab.bridge_stats()
    for way in ("ab", "ba"):
        share = counts[way]["dropped"] / (counts[way]["dropped"] + counts[way]["forwarded"])
        assert 0.15 < share < 0.25, counts

    lab.impair(loss=0.0, delay=0.0)
    lab.link_down()
    assert probe(lab, 20, gap=0.02)["replies"] == 0
    lab.link_up()
    assert probe(lab, 20)["replies"] == 20
    lab.link_down(0.3)  # back by itself
    time.sleep(0.6)
    assert probe(lab, 20)["replies"] == 20

    lab.set_rate(200)  # 200 kbit/s: 100 datagrams of 1000 bytes take about 4 s
    limited = probe(lab, 100, size=1000, gap=0.0)
    late = limited["rtts"]
    assert isinstance(late, list)
    assert late[-1] > 300, limited  # the tbf queue held them back
    lab.set_rate(None)
    assert probe(lab, 20)["replies"] == 20


def test_namespaces_are_gone_after_close() -> None:
    with lab_or_skip() as lab:
        names = list(lab.ns.values())
        assert all(name in _namespaces() for name in names)
    listed = _namespaces()
    assert not any(name in listed for name in names)


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
