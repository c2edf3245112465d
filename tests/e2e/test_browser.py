"""The browser client in a real headless Chromium, against the real server.

Chromium runs with its fake camera and microphone (a test pattern at 20 fps
and a beep) and may use loopback for WebRTC. The page exposes its state on
``window.callapp``; these tests read it over the DevTools protocol.

Set ``CALLAPP_SCREENSHOT=docs/browser-call.png`` to save the page in a call with
the desktop app (the browser-first interop test takes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from callapp.signaling.server import SignalingServer
from tests.e2e.chromium import Chromium, Page, launch_or_skip

pytestmark = pytest.mark.e2e

#: Remote video frames each side must decode before a call counts as working
#: (about 1.5 s of Chromium's 20 fps fake camera).
MIN_FRAMES = 30
#: How long the headless desktop app stays in a call.
APP_SECONDS = 6


#: Mean R+G+B (0-765) of the remote video, sampled at 32x24 through a canvas.
REMOTE_BRIGHTNESS = """(() => {
  const canvas = Object.assign(document.createElement("canvas"), {width: 32, height: 24});
  const context = canvas.getContext("2d");
  context.drawImage(document.getElementById("remote-video"), 0, 0, 32, 24);
  const pixels = context.getImageData(0, 0, 32, 24).data;
  let sum = 0;
  for (let i = 0; i < pixels.length; i += 4) sum += pixels[i] + pixels[i + 1] + pixels[i + 2];
  return sum / (pixels.length / 4);
})()"""

#: A function of the kind ("audio"/"video") giving the page's own track of that kind.
LOCAL_TRACK = (
    "(kind => document.getElementById('local-video').srcObject.getTracks()"
    ".find(t => t.kind === kind))"
)


async def save_screenshot(page: Page) -> None:
    """Check the page can be captured; keep it when $CALLAPP_SCREENSHOT names a file."""
    png = await page.screenshot()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    if target := os.environ.get("CALLAPP_SCREENSHOT"):
        await asyncio.to_thread(Path(target).write_bytes, png)


def page_url(server: SignalingServer, room: str) -> str:
    return f"{server.http_url}?room={room}"


async def hook(page: Page, name: str) -> object:
    return await page.evaluate(f"window.callapp.{name}")


async def receiving(page: Page, frames: int = MIN_FRAMES, within: float = 20) -> None:
    """Wait until ``page`` has decoded and painted ``frames`` remote frames."""
    await page.wait_for(
        f"window.callapp.state === 'connected' && window.callapp.framesReceived >= {frames}"
        f" && window.callapp.framesRendered >= {frames // 2}",
        within=within,
    )


async def test_two_browser_pages_call_each_other(
    server: SignalingServer, browser: Chromium
) -> None:
    first, second = await browser.new_page(), await browser.new_page()
    await first.navigate(page_url(server, "pages"))
    await first.wait_for("window.callapp.state === 'waiting'")
    assert "Waiting for a peer" in str(await hook(first, "status"))
    await second.navigate(page_url(server, "pages"))

    await receiving(first)
    await receiving(second)
    assert await hook(first, "role") == "caller"  # first in the room makes the offer
    assert await hook(second, "role") == "callee"
    assert await hook(first, "peerId") == await hook(second, "connectionId")
    # Trickle ICE: every candidate one side gathered reached the other, in order.
    for here, there in ((first, second), (second, first)):
        sent = await hook(here, "localCandidates")
        assert sent, "no ICE candidates gathered"
        assert await hook(there, "remoteCandidates") == sent

    # Camera off reaches the peer as black frames; mute disables the microphone.
    assert await first.wait_for(f"{REMOTE_BRIGHTNESS} > 60")  # the fake camera's green
    await first.evaluate("window.callapp.setCameraOff(true)")
    await second.evaluate("window.callapp.setMuted(true)")
    assert await second.wait_for(f"{REMOTE_BRIGHTNESS} < 20", within=5) is True
    assert await second.evaluate(f"{LOCAL_TRACK}('audio').enabled") is False
    assert await second.evaluate("document.getElementById('mute').textContent") == "Unmute"
    await first.evaluate("window.callapp.setCameraOff(false)")
    assert await second.wait_for(f"{REMOTE_BRIGHTNESS} > 60", within=5) is True
    assert await first.evaluate(f"{LOCAL_TRACK}('audio').enabled") is True

    # Hang up: the other side closes its peer connection and waits again.
    await second.evaluate("window.callapp.hangUp()")
    await first.wait_for("window.callapp.state === 'waiting' && !window.callapp.peerId")
    assert "hung up" in str(await hook(first, "status"))
    assert await hook(second, "state") == "idle"

    # Joining again makes a new "ready" and a fresh call; the one who stayed calls.
    await second.evaluate("window.callapp.join('pages')")
    await receiving(first, frames=10)
    await receiving(second, frames=10)
    assert await hook(first, "calls") == 2
    assert await hook(first, "role") == "caller"

    # A third page finds the room full.
    third = await browser.new_page()
    await third.navigate(page_url(server, "pages"))
    await third.wait_for("window.callapp.errorCode === 'full'")
    assert await hook(third, "state") == "error"
    assert "full" in str(await hook(third, "status"))

    # Closing a page in a call: the other side is told and waits again.
    await second.close()
    await first.wait_for("window.callapp.state === 'waiting' && !window.callapp.peerId")
    assert "left" in str(await hook(first, "status")) or "hung up" in str(
        await hook(first, "status")
    )


#: In a page of its own: a bare RTCPeerConnection with the fake camera makes an
#: offer *without* candidates and gathers them separately.
BARE_OFFER = """(async () => {
  const pc = window.bare = new RTCPeerConnection();
  const candidates = [];
  pc.onicecandidate = ({candidate}) => candidate && candidate.candidate
    && candidates.push(candidate.toJSON());
  const stream = await navigator.mediaDevices.getUserMedia({video: true});
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await new Promise((done) => {
    const check = () => pc.iceGatheringState === "complete" && done();
    pc.onicegatheringstatechange = check;
    check();
  });
  return {sdp: offer.sdp, candidates};
})()"""


async def test_candidates_that_arrive_before_the_offer_wait_for_it(
    server: SignalingServer, browser: Chromium
) -> None:
    """A caller that sends its candidates first: the page keeps them until the
    offer is set, then applies them, and connects with no candidate in the SDP."""
    page, bare = await browser.new_page(), await browser.new_page()
    await bare.navigate(server.http_url)  # any secure-context page will do
    offer = await bare.evaluate(BARE_OFFER)
    assert offer["candidates"]
    assert "a=candidate" not in offer["sdp"]

    async with connect(server.url) as signaling:
        welcome = json.loads(await signaling.recv())
        await signaling.send(json.dumps({"type": "join", "room": "early"}))
        assert json.loads(await signaling.recv())["type"] == "created"
        await page.navigate(page_url(server, "early"))
        page_id = (await server_message(signaling, "ready"))["peers"][1]
        # We are first in the room, so we call: candidates first, then the offer.
        for candidate in offer["candidates"]:
            data = {"type": "ICE", "payload": candidate}
            await signaling.send(json.dumps({"type": "message", "to": page_id, "data": data}))
        data = {"type": "SDP", "payload": {"type": "offer", "sdp": offer["sdp"]}}
        await signaling.send(json.dumps({"type": "message", "to": page_id, "data": data}))

        answer = (await server_message(signaling, "message"))["data"]
        assert answer["type"] == "SDP"
        assert answer["payload"]["type"] == "answer"
        await bare.evaluate(f"window.bare.setRemoteDescription({json.dumps(answer['payload'])})")
        await receiving(page, frames=10)
        assert await hook(page, "peerId") == welcome["connectionId"]
        applied = await hook(page, "remoteCandidates")
        assert applied == [c["candidate"] for c in offer["candidates"]]


async def server_message(signaling: ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of type ``kind`` (others, such as trickled ICE and the
    page's PRESENCE, are skipped)."""
    async with asyncio.timeout(15):
        while True:
            message: dict[str, Any] = json.loads(await signaling.recv())
            if message["type"] == kind and (
                kind != "message" or message["data"].get("type") not in ("ICE", "PRESENCE")
            ):
                return message


async def test_page_reports_bad_rooms_and_a_lost_server(browser: Chromium) -> None:
    page = await browser.new_page()
    async with SignalingServer("127.0.0.1", 0) as server:
        await page.navigate(page_url(server, "no%20spaces%20allowed"))
        await page.wait_for("window.callapp.errorCode === 'bad-room'")
        assert await hook(page, "state") == "error"
        await page.evaluate("window.callapp.join('alone')")
        await page.wait_for("window.callapp.state === 'waiting'")
        assert await hook(page, "connectionId") in server.connection_ids
    await page.wait_for("window.callapp.errorCode === 'server-lost'")
    assert await hook(page, "state") == "error"
    assert "signaling server" in str(await hook(page, "status"))


class DesktopApp:
    """The headless desktop app (``callapp call``) in a subprocess."""

    def __init__(self, server: SignalingServer, room: str, stats_path: Path, seconds: int) -> None:
        self.args = [
            *("-m", "callapp", "call", "--server", server.url, "--room", room),
            *("--allow-loopback", "--seconds", str(seconds), "--timeout", "30"),
            *("--stats-json", str(stats_path)),
        ]
        self.stats_path = stats_path
        self.seconds = seconds
        self.process: asyncio.subprocess.Process | None = None
        self._output: asyncio.Task[tuple[bytes, bytes]] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._output = asyncio.create_task(self.process.communicate())

    async def finish(self) -> dict[str, Any]:
        """Wait for the app to hang up and exit; its --stats-json numbers."""
        assert self.process is not None
        assert self._output is not None
        async with asyncio.timeout(self.seconds + 30):
            stdout, _ = await self._output
        log = stdout.decode(errors="replace")[-3000:]
        assert self.process.returncode == 0, log
        stats: dict[str, Any] = json.loads(await asyncio.to_thread(self.stats_path.read_text))
        return stats

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@contextlib.asynccontextmanager
async def desktop_app(
    server: SignalingServer, room: str, tmp_path: Path, seconds: int = APP_SECONDS
) -> AsyncIterator[DesktopApp]:
    if importlib.util.find_spec("callapp.call.cli") is None:
        pytest.skip("the headless call CLI (callapp/call/cli.py) has not landed yet")
    app = DesktopApp(server, room, tmp_path / f"{room}-stats.json", seconds)
    try:
        yield app
    finally:
        await app.kill()


async def members(server: SignalingServer, room: str, count: int) -> None:
    async with asyncio.timeout(20):
        while True:
            if len(server.router.members(room)) >= count:
                return
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("browser_first", [True, False], ids=["browser-first", "app-first"])
async def test_desktop_app_and_browser_call_each_other(
    server: SignalingServer, browser: Chromium, tmp_path: Path, browser_first: bool
) -> None:
    room = "interop-browser-first" if browser_first else "interop-app-first"
    page = await browser.new_page()
    await page.set_viewport(1100, 820)
    async with desktop_app(server, room, tmp_path) as app:
        if browser_first:
            await page.navigate(page_url(server, room))
            await page.wait_for("window.callapp.state === 'waiting'")
            await app.start()
        else:
            await app.start()
            await members(server, room, 1)
            await page.navigate(page_url(server, room))

        await receiving(page, within=25)
        if browser_first:
            await save_screenshot(page)
        # The first in the room makes the offer, browser or app.
        assert await hook(page, "role") == ("caller" if browser_first else "callee")
        assert await hook(page, "localCandidates"), "the browser trickled no candidates"

        stats = await app.finish()
        assert stats["role"] == ("callee" if browser_first else "caller")
        assert stats["frames_received"] >= MIN_FRAMES, stats

        # The app hung up after --seconds: the page waits for the next peer.
        await page.wait_for("window.callapp.state === 'waiting' && !window.callapp.peerId")


async def test_browser_without_camera_hides_its_addresses_and_still_reaches_the_app(
    server: SignalingServer, tmp_path: Path
) -> None:
    """Denied the camera, Chromium trickles only mDNS ``.local`` host names,
    which aiortc cannot resolve here; the call connects through aiortc's
    candidates in its SDP (aiortc learns the browser's address from the
    checks), and the page receives video without sending any."""
    async with (
        contextlib.AsyncExitStack() as stack,
        desktop_app(server, "no-camera", tmp_path, seconds=4) as app,
    ):
        browser = await launch_or_skip(stack, grant_media=False)
        page = await browser.new_page()
        await page.navigate(page_url(server, "no-camera"))
        await page.wait_for("window.callapp.state === 'waiting'")
        assert await hook(page, "errorCode") == "media"  # receiving only
        await app.start()
        await receiving(page, within=25)
        candidates = await hook(page, "localCandidates")
        assert isinstance(candidates, list)
        assert candidates
        assert all(".local " in c for c in candidates), candidates
        assert await hook(page, "framesSent") == 0
        stats = await app.finish()
        assert stats["frames_sent"] >= MIN_FRAMES, stats
