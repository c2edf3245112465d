"""The browser client in a real headless Chromium, against the real server.

Chromium runs with its fake camera and microphone (a test pattern at 20 fps
and a beep) and may use loopback for WebRTC. The page exposes its state on
``window.callapp``; these tests read it over the DevTools protocol.

Set ``CALLAPP_SCREENSHOT=docs/browser-call.png`` to save the page in a call.
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

import pytest

from callapp.signaling.server import SignalingServer
from tests.e2e.chromium import Chromium, ChromiumError, Page, find_chromium

pytestmark = pytest.mark.e2e

#: Remote video frames each side must decode before a call counts as working
#: (about 1.5 s of Chromium's 20 fps fake camera).
MIN_FRAMES = 30
#: How long the headless desktop app stays in a call.
APP_SECONDS = 8


@pytest.fixture
async def server() -> AsyncIterator[SignalingServer]:
    async with SignalingServer("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Chromium]:
    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium not found: run scripts/setup.sh or set $CHROMIUM")
    async with contextlib.AsyncExitStack() as stack:
        try:
            started = await stack.enter_async_context(Chromium.launch(executable))
        except ChromiumError as exc:
            pytest.skip(f"Chromium could not start: {exc}")
        yield started


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
    await first.set_viewport(1100, 820)
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

    png = await first.screenshot()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    if target := os.environ.get("CALLAPP_SCREENSHOT"):
        await asyncio.to_thread(Path(target).write_bytes, png)

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


def call_cli_missing() -> bool:
    return importlib.util.find_spec("callapp.call.cli") is None


@pytest.mark.parametrize("browser_first", [True, False], ids=["browser-first", "app-first"])
async def test_desktop_app_and_browser_call_each_other(
    server: SignalingServer, browser: Chromium, tmp_path: Path, browser_first: bool
) -> None:
    if call_cli_missing():
        pytest.skip("the headless call CLI (callapp/call/cli.py) has not landed yet")
    room = "interop-browser-first" if browser_first else "interop-app-first"
    stats_path = tmp_path / "app-stats.json"
    page = await browser.new_page()

    async def start_app() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "callapp",
            "call",
            "--server",
            server.url,
            "--room",
            room,
            "--allow-loopback",
            "--seconds",
            str(APP_SECONDS),
            "--stats-json",
            str(stats_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def in_room(members: int) -> None:
        async with asyncio.timeout(20):
            while True:
                if len(server.router.members(room)) >= members:
                    return
                await asyncio.sleep(0.05)

    app: asyncio.subprocess.Process | None = None
    try:
        if browser_first:
            await page.navigate(page_url(server, room))
            await page.wait_for("window.callapp.state === 'waiting'")
            app = await start_app()
        else:
            app = await start_app()
            await in_room(1)
            await page.navigate(page_url(server, room))
        output = asyncio.create_task(app.communicate())

        await receiving(page, within=25)
        assert await hook(page, "role") == ("caller" if browser_first else "callee")

        async with asyncio.timeout(APP_SECONDS + 30):
            stdout, stderr = await output
        report = (stdout + stderr).decode(errors="replace")[-3000:]
        assert app.returncode == 0, report
        stats = json.loads(await asyncio.to_thread(stats_path.read_text))
        assert stats["frames_received"] >= MIN_FRAMES, (stats, report)

        # The app hung up at the end of --seconds: the page waits for the next peer.
        await page.wait_for("window.callapp.state === 'waiting' && !window.callapp.peerId")
    finally:
        if app is not None and app.returncode is None:
            app.kill()
            await app.wait()
