"""The browser client and ``callapp call`` apps in one group room.

Real processes only: the signaling server (on 127.0.0.1, in this process's
loop, as in ``test_browser.py``), ``callapp call`` apps as subprocesses
(``--allow-loopback``: the host has only loopback) and a headless Chromium
with its fake camera (640x480, 20 fps). The apps send 320x240, so a tile
showing 320x240 video shows an app's frames, not a page's.

The page is read over the DevTools protocol (``window.callapp``); the apps
by their output lines (stamped with ``time.monotonic()`` on arrival, see
``conftest.Proc``) and their ``--stats-json`` report, written at exit.
Checked: a page as the third member of a mesh with two apps (in both join
orders), chat both ways over the ``chat`` data channel whichever side made
it, chat through signaling when no channel is open (a raw WebSocket client
in the room, which never answers), and names, mute and camera state seen
by the other side within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.asyncio.client import ClientConnection, connect

from callapp.signaling.server import SignalingServer
from tests.e2e.chromium import Chromium, Page
from tests.e2e.conftest import Proc, Procs
from tests.e2e.test_browser import hook

pytestmark = pytest.mark.e2e

#: Remote frames a connection must decode before it counts as working.
MIN_FRAMES = 30
#: How soon a presence change must show on the other side.
PRESENCE_WITHIN = 1.0
#: What the apps send: smaller than the page's camera, so their frames are told apart.
APP_SIZE = (320, 240)
#: How long the apps of the mesh test stay in the call once media flows: time for
#: the page to join their call and chat (with 8, the apps of a slow 2-core machine
#: hung up before the chat arrived).
MESH_SECONDS = 14


# -- the apps -----------------------------------------------------------------------


def start_app(procs: Procs, server: SignalingServer, room: str, name: str, *extra: str) -> Proc:
    """``callapp call`` in ``room`` as ``name``; no sound devices are opened."""
    width, height = APP_SIZE
    return procs.call(
        name,
        *("--server", server.url, "--room", room, "--name", name, "--allow-loopback"),
        *("--size", f"{width}x{height}", "--audio", "none", "--speaker", "none"),
        *extra,
    )


async def line(proc: Proc, pattern: str, within: float = 20.0) -> tuple[float, re.Match[str]]:
    """``proc``'s first output line matching ``pattern``, and when it arrived
    (on a thread: the server and the DevTools connection share this loop)."""
    return await asyncio.to_thread(proc.wait_line, pattern, within)


async def app_id(proc: Proc) -> str:
    _, match = await line(proc, r"connection id: (\S+)")
    return match.group(1)


async def exit_code(proc: Proc, within: float) -> int:
    return await asyncio.to_thread(proc.wait_exit, within)


def read_stats(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def legs_by_id(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {leg["id"]: leg for leg in stats["peers"]}


# -- the page -----------------------------------------------------------------------


def room_url(server: SignalingServer, room: str, name: str, capacity: int | None = None) -> str:
    params = {"room": room, "name": name}
    if capacity is not None:
        params["capacity"] = str(capacity)
    return f"{server.http_url}?{urlencode(params)}"


async def enter(
    browser: Chromium, server: SignalingServer, room: str, name: str, capacity: int | None = None
) -> tuple[Page, str]:
    """A new page in ``room`` (once the server has it there), and its connection id."""
    page = await browser.new_page()
    await page.navigate(room_url(server, room, name, capacity))
    await page.wait_for(f"window.callapp.room === {json.dumps(room)}")
    return page, str(await hook(page, "connectionId"))


def find_peer(peer_id: str) -> str:
    """JavaScript: the page's view of connection ``peer_id`` (undefined if none)."""
    return f"window.callapp.peers.find((p) => p.id === {json.dumps(peer_id)})"


async def peers(page: Page) -> dict[str, dict[str, Any]]:
    value = await hook(page, "peers")
    assert isinstance(value, list)
    return {peer["id"]: peer for peer in value}


#: The chat panel's newest line, as shown.
LAST_CHAT_LINE = "document.getElementById('chat-log').lastElementChild.textContent"


async def chat(page: Page) -> list[dict[str, Any]]:
    value = await hook(page, "chat")
    assert isinstance(value, list)
    return value


#: The remote tiles on screen: whose, the name shown, the badges shown.
TILES = """Object.fromEntries([...document.querySelectorAll("#videos .remote")].map((tile) => [
  tile.dataset.peer,
  {name: tile.querySelector(".name").textContent,
   badges: [...tile.querySelectorAll(".badge")].map((badge) => badge.textContent)},
]))"""


async def tiles(page: Page) -> dict[str, dict[str, Any]]:
    value = await page.evaluate(TILES)
    assert isinstance(value, dict)
    return value


async def receiving_from(page: Page, app_ids: list[str], within: float = 25) -> None:
    """Wait until ``page`` is connected to exactly ``app_ids``, decoding and
    painting the apps' own 320x240 frames from each."""
    width, height = APP_SIZE
    await page.wait_for(
        f"""(() => {{
          const peers = window.callapp.peers;
          const want = {json.dumps(sorted(app_ids))};
          return JSON.stringify(peers.map((p) => p.id).sort()) === JSON.stringify(want)
            && peers.every((p) => p.state === "connected" && p.framesReceived >= {MIN_FRAMES}
                                  && p.framesRendered >= {MIN_FRAMES // 2}
                                  && p.frameWidth === {width} && p.frameHeight === {height});
        }})()""",
        within=within,
    )


# -- a raw signaling client -------------------------------------------------------------


class RawClient:
    """A bare WebSocket client of the server: it joins rooms and relays call
    messages, but never answers an offer, so nobody ever has a data channel to it."""

    def __init__(self, ws: ClientConnection, connection_id: str) -> None:
        self.ws = ws
        self.id = connection_id
        self.messages: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def connected(cls, url: str) -> AsyncIterator[RawClient]:
        async with connect(url) as ws:
            welcome = json.loads(await ws.recv())
            client = cls(ws, welcome["connectionId"])
            try:
                yield client
            finally:
                client._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await client._reader

    async def _read(self) -> None:
        async for frame in self.ws:
            async with self._arrived:
                self.messages.append(json.loads(frame))
                self._arrived.notify_all()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def relay(self, to: str, data: dict[str, Any]) -> None:
        await self.send({"type": "message", "to": to, "data": data})

    async def next(self, kind: str, within: float = 10.0) -> dict[str, Any]:
        """The first server message of type ``kind`` so far (or the next one)."""
        return await self._first(lambda m: m["type"] == kind, within, kind)

    async def call_message(self, sender: str, kind: str, within: float = 10.0) -> dict[str, Any]:
        """The first relayed call message of type ``kind`` from ``sender``."""

        def wanted(message: dict[str, Any]) -> bool:
            data = message.get("data")
            return (
                message["type"] == "message"
                and message.get("from") == sender
                and isinstance(data, dict)
                and data.get("type") == kind
            )

        return await self._first(wanted, within, f"{kind} from {sender}")

    async def _first(self, wanted: Any, within: float, what: str) -> dict[str, Any]:
        async with self._arrived:
            try:
                async with asyncio.timeout(within):
                    while True:
                        found = next((m for m in self.messages if wanted(m)), None)
                        if found is not None:
                            return found
                        await self._arrived.wait()
            except TimeoutError:
                kinds = [m.get("data", {}).get("type", m["type"]) for m in self.messages]
                raise AssertionError(f"no {what} within {within} s; got {kinds}") from None


# -- the tests --------------------------------------------------------------------------


@pytest.mark.parametrize("browser_first", [False, True], ids=["browser-last", "browser-creates"])
async def test_a_page_is_the_third_member_of_a_mesh_with_two_apps(
    server: SignalingServer,
    browser: Chromium,
    procs: Procs,
    tmp_path: Path,
    browser_first: bool,
) -> None:
    room = "mesh-page-creates" if browser_first else "mesh-page-last"
    ana_json, bo_json = tmp_path / "ana.json", tmp_path / "bo.json"
    common = ("--capacity", "3", "--seconds", str(MESH_SECONDS), "--timeout", "30")
    if browser_first:
        page, page_id = await enter(browser, server, room, "Pat", capacity=3)
        assert await hook(page, "capacity") == 3
        ana = start_app(procs, server, room, "Ana", *common, "--stats-json", str(ana_json))
        ana_id = await app_id(ana)
        await line(ana, r"joined room")
        # Bo's --chat goes once its first call is up (and its channels open): over
        # the channel the page made, to the page, and over Ana's to Ana.
        bo = start_app(
            procs, server, room, "Bo", *common, "--stats-json", str(bo_json), "--chat", "hi, Bo"
        )
        bo_id = await app_id(bo)
    else:
        ana = start_app(procs, server, room, "Ana", *common, "--stats-json", str(ana_json))
        ana_id = await app_id(ana)
        await line(ana, r"joined room")
        bo = start_app(procs, server, room, "Bo", *common, "--stats-json", str(bo_json))
        bo_id = await app_id(bo)
        await line(bo, rf"peer connected: {ana_id} \(Ana\)")  # the two apps are in a call
        page, page_id = await enter(browser, server, room, "Pat")

    # The page shows two tiles, named, each painting an app's frames.
    started = time.monotonic()
    await receiving_from(page, [ana_id, bo_id])
    page_up_s = time.monotonic() - started
    assert server.router.members(room) == (
        (page_id, ana_id, bo_id) if browser_first else (ana_id, bo_id, page_id)
    )
    seen = await peers(page)
    # The earlier member offered to the later one.
    want_role = "caller" if browser_first else "callee"
    assert {p["role"] for p in seen.values()} == {want_role}, seen
    assert {peer_id: tile["name"] for peer_id, tile in (await tiles(page)).items()} == {
        ana_id: "Ana",
        bo_id: "Bo",
    }
    for app in (ana, bo):
        await line(app, rf"peer connected: {page_id} \(Pat\)", within=5)

    # Chat over the data channels: made by the page (browser first) or by the apps.
    await page.wait_for("window.callapp.peers.every((p) => p.channel === 'open')", within=5)
    sent_at = time.monotonic()
    assert await page.evaluate("window.callapp.sendChat('hello, apps')") is True
    assert (await chat(page))[-1]["paths"] == {ana_id: "channel", bo_id: "channel"}
    chat_ms = {}
    for app in (ana, bo):
        arrived, _ = await line(app, r"chat from Pat: hello, apps", within=5)
        chat_ms[app.name] = round((arrived - sent_at) * 1000)
    if browser_first:
        await page.wait_for(
            f"window.callapp.chat.some((c) => c.from === {json.dumps(bo_id)})", within=5
        )
        bo_line = next(c for c in await chat(page) if c["from"] == bo_id)
        assert (bo_line["name"], bo_line["text"], bo_line["via"]) == ("Bo", "hi, Bo", "channel")

    # Each app hangs up after --seconds; their reports have a leg to the page and one
    # to the other app, both with video flowing.
    for app in (ana, bo):
        code = await exit_code(app, MESH_SECONDS + 20)
        assert code == 0, f"{app.name} exited {code}:\n{app.output[-3000:]}"
    await page.wait_for("window.callapp.peers.length === 0", within=10)
    figures = {}
    for name, path, other_id, other in (
        ("Ana", ana_json, bo_id, "Bo"),
        ("Bo", bo_json, ana_id, "Ana"),
    ):
        report = read_stats(path)
        legs = legs_by_id(report)
        assert set(legs) == {page_id, other_id}, report["peers"]
        to_page, to_app = legs[page_id], legs[other_id]
        assert to_page["name"] == "Pat"
        assert to_app["name"] == other
        assert to_page["role"] == ("callee" if browser_first else "caller")
        assert to_app["role"] == ("caller" if name == "Ana" else "callee")  # Ana was first
        for leg in (to_page, to_app):
            assert leg["frames_received"] >= MIN_FRAMES, leg
            assert leg["fps_received"] > 0, leg
        # (Chromium may scale its camera down under load; the apps send as asked.)
        assert to_app["received_size"] == list(APP_SIZE), to_app
        heard = [{"from_name": "Pat", "text": "hello, apps"}]
        if browser_first and name == "Ana":
            heard.append({"from_name": "Bo", "text": "hi, Bo"})  # over their own channel
        assert sorted(report["chat_received"], key=str) == sorted(heard, key=str)
        figures[name] = {
            "from page": (to_page["frames_received"], to_page["fps_received"]),
            f"from {other}": (to_app["frames_received"], to_app["fps_received"]),
        }
    print(
        f"\nmesh ({'page first' if browser_first else 'page last'}): page painting both apps"
        f" {page_up_s:.2f} s after the last member started; chat page->apps ms {chat_ms};"
        f" app legs (frames, fps) {figures}"
    )


async def test_chat_both_ways_between_an_app_and_a_page_and_through_signaling(
    server: SignalingServer, browser: Chromium, procs: Procs, tmp_path: Path
) -> None:
    """A group room of three: a raw client (which never answers), an app
    (started muted, camera off) and a page. The app and the page call each
    other and chat over the channel the app made; the raw client has no data
    channel with anyone, so its chat with the app goes through signaling,
    both ways. Presence: the app's mute and camera state are on the page's
    tile within a second of the call coming up, and the page's new name and
    mute reach the app within a second."""
    room = "app-page-chat"
    stats_json = tmp_path / "ana.json"
    async with RawClient.connected(server.url) as raw:
        await raw.send({"type": "join", "room": room, "capacity": 3})
        assert (await raw.next("created"))["capacity"] == 3

        ana = start_app(
            procs,
            server,
            room,
            "Ana App",
            *("--muted", "--camera-off", "--chat", "hello from Ana", "--timeout", "30"),
            *("--stats-json", str(stats_json)),
        )
        ana_id = await app_id(ana)
        await line(ana, r"joined room")
        page, page_id = await enter(browser, server, room, "Pat")
        # The page's name reached the app before media did (presence goes first).
        connected_at, _ = await line(ana, rf"peer connected: {page_id} \(Pat\)")
        await page.wait_for(
            f"""(() => {{
              const ana = {find_peer(ana_id)};
              const tile = document.querySelector('.remote[data-peer="{ana_id}"]');
              return ana && ana.muted && ana.cameraOff && tile
                && tile.querySelector('.name').textContent === 'Ana App'
                && tile.querySelector('.badges').textContent.includes('muted')
                && tile.querySelector('.badges').textContent.includes('camera off');
            }})()""",
            within=PRESENCE_WITHIN,
        )
        badges_after = time.monotonic() - connected_at
        assert badges_after < PRESENCE_WITHIN
        assert (await peers(page))[ana_id]["role"] == "callee"  # the app was there first
        # Camera off still sends (black) video: the call is a call.
        await page.wait_for(f"{find_peer(ana_id)}.framesReceived >= 10", within=10)

        # The app's --chat: over the data channel it made to the page, through
        # signaling to the raw client, with which it has none.
        await page.wait_for(
            f"window.callapp.chat.some((c) => c.from === {json.dumps(ana_id)})", within=8
        )
        from_app = next(c for c in await chat(page) if c["from"] == ana_id)
        assert (from_app["name"], from_app["text"], from_app["via"]) == (
            "Ana App",
            "hello from Ana",
            "channel",
        )
        assert await page.evaluate(LAST_CHAT_LINE) == "Ana App: hello from Ana"
        fallback = await raw.call_message(ana_id, "CHAT", within=5)
        assert fallback["data"]["payload"] == {"text": "hello from Ana"}
        said = (await raw.call_message(ana_id, "PRESENCE"))["data"]["payload"]
        assert (said["name"], said["muted"], said["cameraOff"]) == ("Ana App", True, True)

        # The raw client's chat reaches the app through signaling, under its name.
        await raw.relay(ana_id, {"type": "PRESENCE", "payload": {"name": "Raw"}})
        await raw.relay(ana_id, {"type": "CHAT", "payload": {"text": "hello from raw"}})
        await line(ana, r"chat from Raw: hello from raw", within=5)

        # The page's chat: to the app over the channel, to the raw client by signaling.
        sent_at = time.monotonic()
        assert await page.evaluate("window.callapp.sendChat('hi from Pat')") is True
        assert (await chat(page))[-1]["paths"] == {ana_id: "channel", raw.id: "signaling"}
        arrived, _ = await line(ana, r"chat from Pat: hi from Pat", within=5)
        chat_ms = (arrived - sent_at) * 1000
        assert (await raw.call_message(page_id, "CHAT"))["data"]["payload"]["text"] == (
            "hi from Pat"
        )

        # A new name and a mute on the page: the app's report has them when it is
        # stopped (SIGTERM) just under a second later; the report is written at exit.
        changed_at = time.monotonic()
        await page.evaluate("window.callapp.setName('Pat Two'); window.callapp.setMuted(true)")
        await asyncio.sleep(max(0.0, changed_at + PRESENCE_WITHIN - 0.1 - time.monotonic()))
        stopped_after = time.monotonic() - changed_at
        ana.popen.terminate()
        await exit_code(ana, 15)
    report = read_stats(stats_json)
    legs = legs_by_id(report)
    assert set(legs) == {page_id}, report["peers"]  # the raw client never had media
    to_page = legs[page_id]
    assert (to_page["name"], to_page["peer_muted"], to_page["peer_camera_off"]) == (
        "Pat Two",
        True,
        False,
    )
    assert to_page["frames_received"] >= MIN_FRAMES, to_page
    assert to_page["fps_received"] > 0, to_page
    assert report["chat_received"] == [
        {"from_name": "Raw", "text": "hello from raw"},
        {"from_name": "Pat", "text": "hi from Pat"},
    ]
    print(
        f"\napp<->page: the app's badges on the page {badges_after * 1000:.0f} ms after its"
        f" 'peer connected'; chat page->app {chat_ms:.0f} ms; the page's name and mute in the"
        f" app's report when stopped {stopped_after:.2f} s after the change; app's leg"
        f" from the page: {to_page['frames_received']} frames at {to_page['fps_received']} fps"
    )
