"""Group calls in the browser client: a mesh of real headless Chromium pages.

Rooms of 3 (the ``capacity`` a room's creator asks for on ``join``) on the
real server, each page with Chromium's fake camera and microphone. Checked
here: every page connects to every other one, one leaving leaves the others
up, presence (names, badges) and chat over the ``chat`` data channel and
over signaling, and screen sharing by ``replaceTrack``. Chromium's fake
capture devices also answer ``getDisplayMedia`` (the same test pattern at
800x450, 16:9, where the camera's is 640x480, 4:3), so sharing is tested
with the real API and told apart from the camera by its shape.
The page's state is read from ``window.callapp`` over the DevTools protocol.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.asyncio.client import ClientConnection, connect

from callapp.signaling.server import SignalingServer
from tests.e2e.chromium import Chromium, Page
from tests.e2e.test_browser import hook

pytestmark = pytest.mark.e2e

#: Remote frames each connection must decode (about 1.5 s at 20 fps).
MIN_FRAMES = 30
#: How soon a presence change must show on the other pages.
PRESENCE_WITHIN = 1.0


def group_url(server: SignalingServer, room: str, name: str | None, capacity: int | None) -> str:
    params: dict[str, str] = {"room": room}
    if capacity is not None:
        params["capacity"] = str(capacity)
    if name is not None:
        params["name"] = name
    return f"{server.http_url}?{urlencode(params)}"


async def enter(
    browser: Chromium,
    server: SignalingServer,
    room: str,
    name: str | None,
    capacity: int | None = 3,
) -> Page:
    """A new page in ``room``, once the server has it there (so join order is ours)."""
    page = await browser.new_page()
    await page.navigate(group_url(server, room, name, capacity))
    await page.wait_for(f"window.callapp.room === {json.dumps(room)}")
    return page


async def connected(page: Page, count: int, frames: int = MIN_FRAMES, within: float = 20) -> None:
    """Wait until ``page`` has ``count`` connected peers, each decoding and painting video."""
    await page.wait_for(
        f"""(() => {{
          const peers = window.callapp.peers;
          return peers.length === {count} && window.callapp.state === "connected"
            && peers.every((p) => p.state === "connected" && p.framesReceived >= {frames}
                                  && p.framesRendered >= {frames // 2});
        }})()""",
        within=within,
    )


async def peers(page: Page) -> list[dict[str, Any]]:
    value = await hook(page, "peers")
    assert isinstance(value, list)
    return value


#: The remote tiles on screen: whose, the name shown, the badges shown.
TILES = """[...document.querySelectorAll("#videos .remote")].map((tile) => ({
  peer: tile.dataset.peer,
  name: tile.querySelector(".name").textContent,
  badges: [...tile.querySelectorAll(".badge")].map((badge) => badge.textContent),
}))"""


async def tiles(page: Page) -> list[dict[str, Any]]:
    value = await page.evaluate(TILES)
    assert isinstance(value, list)
    return value


#: The chat panel's newest line, as shown.
LAST_CHAT_LINE = "document.getElementById('chat-log').lastElementChild.textContent"


async def chat(page: Page) -> list[dict[str, Any]]:
    """``window.callapp.chat``: every line, ours included (``from`` null)."""
    value = await hook(page, "chat")
    assert isinstance(value, list)
    return value


async def ids(*pages: Page) -> list[str]:
    return [str(await hook(page, "connectionId")) for page in pages]


async def test_three_pages_call_each_other_and_two_stay_when_one_leaves(
    server: SignalingServer, browser: Chromium
) -> None:
    ana = await enter(browser, server, "trio", "Ana")
    assert await hook(ana, "capacity") == 3  # the server made the room we asked for
    bo = await enter(browser, server, "trio", "Bo")
    cy = await enter(browser, server, "trio", "Cy")
    ana_id, bo_id, cy_id = await ids(ana, bo, cy)
    assert server.router.members("trio") == (ana_id, bo_id, cy_id)

    for page in (ana, bo, cy):
        await connected(page, 2)
    # The earlier member offered to the later one, for every pair.
    roles = {page: {p["id"]: p["role"] for p in await peers(page)} for page in (ana, bo, cy)}
    assert roles[ana] == {bo_id: "caller", cy_id: "caller"}
    assert roles[bo] == {ana_id: "callee", cy_id: "caller"}
    assert roles[cy] == {ana_id: "callee", bo_id: "callee"}
    # One tile per remote peer, with the name its presence gave.
    assert sorted(t["name"] for t in await tiles(ana)) == ["Bo", "Cy"]
    assert sorted(t["name"] for t in await tiles(cy)) == ["Ana", "Bo"]
    assert await cy.evaluate("document.querySelectorAll('video').length") == 3  # + self-view

    # Bo closes the page: Ana and Cy each lose one tile and stay connected.
    before = {p["id"]: p["framesReceived"] for p in await peers(ana)}
    await bo.close()
    for page, other in ((ana, cy_id), (cy, ana_id)):
        await page.wait_for("window.callapp.peers.length === 1", within=10)
        assert [p["id"] for p in await peers(page)] == [other]
        assert [t["peer"] for t in await tiles(page)] == [other]
    await ana.wait_for(
        f"window.callapp.peers[0].framesReceived >= {before[cy_id] + 20}"
        " && window.callapp.peers[0].state === 'connected'",
        within=10,
    )
    assert await hook(ana, "state") == "connected"
    assert "Bo" in str(await hook(ana, "status"))

    # A newcomer takes the free place: both who stayed call it.
    di = await enter(browser, server, "trio", "Di", capacity=None)
    di_id = (await ids(di))[0]
    for page in (ana, cy, di):
        await connected(page, 2, frames=20)
    assert {p["id"]: p["role"] for p in await peers(di)} == {ana_id: "callee", cy_id: "callee"}
    assert sorted(t["name"] for t in await tiles(di)) == ["Ana", "Cy"]
    assert {p["id"] for p in await peers(cy)} == {ana_id, di_id}

    # The room is full now.
    late = await browser.new_page()
    await late.navigate(group_url(server, "trio", "Late", 3))
    await late.wait_for("window.callapp.errorCode === 'full'")
    assert "full" in str(await hook(late, "status"))


async def test_presence_and_chat_reach_everyone_in_a_group(
    server: SignalingServer, browser: Chromium
) -> None:
    ana = await enter(browser, server, "talk", "Ana")
    bo = await enter(browser, server, "talk", "Bo")
    cy = await enter(browser, server, "talk", "Cy")
    ana_id, bo_id, cy_id = await ids(ana, bo, cy)
    for page in (ana, bo, cy):
        await connected(page, 2, frames=10)
        await page.wait_for("window.callapp.peers.every((p) => p.channel === 'open')", within=10)

    # Presence: a mute and a new name show on the others' tiles within a second.
    await ana.evaluate("window.callapp.setMuted(true)")
    await ana.evaluate("window.callapp.setName('  Ana María\\u0007 ')")
    assert await hook(ana, "name") == "Ana María"  # trimmed, control character removed
    for page in (bo, cy):
        await page.wait_for(
            f"""(() => {{
              const tile = document.querySelector('.remote[data-peer="{ana_id}"]');
              return tile.querySelector('.name').textContent === 'Ana María'
                && tile.querySelector('.badges').textContent.includes('muted');
            }})()""",
            within=PRESENCE_WITHIN,
        )
        ana_seen = next(p for p in await peers(page) if p["id"] == ana_id)
        assert ana_seen["muted"] is True
        assert ana_seen["cameraOff"] is False
    await cy.evaluate("window.callapp.setCameraOff(true)")
    await ana.wait_for(
        f"window.callapp.peers.find((p) => p.id === '{cy_id}').cameraOff === true",
        within=PRESENCE_WITHIN,
    )
    await ana.evaluate("window.callapp.setMuted(false)")
    await bo.wait_for(
        f"window.callapp.peers.find((p) => p.id === '{ana_id}').muted === false",
        within=PRESENCE_WITHIN,
    )

    # Chat over the data channels, from the offerer's side and from the answerer's.
    assert await ana.evaluate("window.callapp.sendChat('  hello, both  ')") is True
    mine = (await chat(ana))[-1]
    assert mine["text"] == "hello, both"
    assert mine["paths"] == {bo_id: "channel", cy_id: "channel"}
    for page in (bo, cy):
        await page.wait_for("window.callapp.chat.length === 1", within=5)
        entry = (await chat(page))[0]
        assert (entry["from"], entry["name"], entry["text"], entry["via"]) == (
            ana_id,
            "Ana María",
            "hello, both",
            "channel",
        )
    # Typed into the page's own form, by Cy (the answerer of both calls).
    text = "<b>bold?</b> 😀"
    await cy.evaluate(
        f"""document.getElementById('chat-input').value = {json.dumps(text)};
            document.getElementById('chat-send').click()"""
    )
    assert await cy.evaluate("document.getElementById('chat-input').value") == ""
    for page in (ana, bo):
        await page.wait_for("window.callapp.chat.length === 2", within=5)
        assert (await chat(page))[-1]["via"] == "channel"
        log = await page.evaluate(LAST_CHAT_LINE)
        assert log == f"Cy: {text}"
        assert await page.evaluate("document.querySelector('#chat-log b')") is None

    # Too long or empty: an error in words next to the input, nothing sent.
    too_long = "😀" * 1001
    assert await bo.evaluate(f"window.callapp.sendChat({json.dumps(too_long)})") is False
    error = str(await bo.evaluate("document.getElementById('chat-error').textContent"))
    assert "1000" in error
    assert await bo.evaluate("document.getElementById('chat-error').hidden") is False
    assert await bo.evaluate("window.callapp.sendChat('   ')") is False
    # 1000 code points is allowed (2000 UTF-16 units for these).
    longest = "😀" * 1000
    assert await bo.evaluate(f"window.callapp.sendChat({json.dumps(longest)})") is True
    assert await bo.evaluate("document.getElementById('chat-error').hidden") is True
    await ana.wait_for("window.callapp.chat.length === 3", within=5)
    assert (await chat(ana))[-1]["text"] == longest
    await cy.wait_for("window.callapp.chat.length === 3", within=5)


async def recv_call_message(signaling: ClientConnection, kind: str) -> dict[str, Any]:
    """The next relayed call message whose ``data.type`` is ``kind``."""
    async with asyncio.timeout(10):
        while True:
            message: dict[str, Any] = json.loads(await signaling.recv())
            data = message.get("data")
            if message["type"] == "message" and isinstance(data, dict) and data["type"] == kind:
                return message


async def relay(signaling: ClientConnection, to: str, data: object) -> None:
    await signaling.send(json.dumps({"type": "message", "to": to, "data": data}))


async def test_chat_goes_through_signaling_when_there_is_no_data_channel(
    server: SignalingServer, browser: Chromium
) -> None:
    """A raw WebSocket client in a room of 2 with the page: it never offers, so
    there is no data channel, and chat goes both ways as signaling CHAT."""
    async with connect(server.url) as raw, connect(server.url) as stranger:
        raw_id = json.loads(await raw.recv())["connectionId"]
        json.loads(await stranger.recv())
        await raw.send(json.dumps({"type": "join", "room": "fallback"}))
        assert json.loads(await raw.recv())["type"] == "created"
        page = await enter(browser, server, "fallback", "Pat", capacity=None)
        page_id = (await ids(page))[0]
        assert await hook(page, "capacity") == 2
        await page.wait_for("window.callapp.state === 'calling'")  # waiting for our offer

        # Unknown types and malformed chat are ignored; strangers' chat too.
        await relay(raw, page_id, {"type": "FUTURE-THING", "payload": {"x": 1}})
        await relay(raw, page_id, {"type": "CHAT", "payload": {"text": 42}})
        await relay(raw, page_id, {"type": "CHAT", "payload": {"text": "x" * 1001}})
        await relay(raw, page_id, {"type": "CHAT"})
        await relay(stranger, page_id, {"type": "CHAT", "payload": {"text": "not in the room"}})
        presence = {"name": "Raw\u202e", "muted": True, "cameraOff": False, "screen": False}
        await relay(raw, page_id, {"type": "PRESENCE", "payload": presence})
        html = '<img src=x onerror="window.pwned = 1">'
        await relay(raw, page_id, {"type": "CHAT", "payload": {"text": html}})

        await page.wait_for("window.callapp.chat.length >= 1", within=5)
        lines = await chat(page)
        assert [(c["from"], c["name"], c["text"], c["via"]) for c in lines] == [
            (raw_id, "Raw", html, "signaling")
        ]
        line = await page.evaluate(LAST_CHAT_LINE)
        assert line == f"Raw: {html}"
        assert await page.evaluate("document.querySelector('#chat-log img')") is None
        assert await page.evaluate("window.pwned") is None
        assert await hook(page, "state") == "calling"  # nothing above disturbed the call

        # The page's chat reaches the raw client as a signaling CHAT.
        assert await page.evaluate("window.callapp.sendChat('hi raw')") is True
        assert (await chat(page))[-1]["paths"] == {raw_id: "signaling"}
        message = await recv_call_message(raw, "CHAT")
        assert message["from"] == page_id
        assert message["data"] == {"type": "CHAT", "payload": {"text": "hi raw"}}

        # A name change reaches room members the page has no call with.
        await page.evaluate("window.callapp.setName('Pat Two')")
        update = await recv_call_message(raw, "PRESENCE")
        assert update["data"]["payload"]["name"] == "Pat Two"
        assert update["data"]["payload"]["muted"] is False


async def test_screen_sharing_replaces_the_camera_on_every_connection(
    server: SignalingServer, browser: Chromium
) -> None:
    ana = await enter(browser, server, "screens", "Ana")
    bo = await enter(browser, server, "screens", "Bo")
    cy = await enter(browser, server, "screens", "Cy")
    (ana_id,) = await ids(ana)
    for page in (ana, bo, cy):
        await connected(page, 2, frames=10)
    watch_ana = f"window.callapp.peers.find((p) => p.id === '{ana_id}')"

    async def others_see(screen: bool) -> None:
        """Ana's video at Bo's and Cy's has the screen's shape (16:9) or the camera's (4:3)."""
        shape = "> 1.6" if screen else "< 1.4"
        for page in (bo, cy):
            await page.wait_for(
                f"{watch_ana}.frameWidth / {watch_ana}.frameHeight {shape}"
                f" && {watch_ana}.screen === {str(screen).lower()}",
                within=10,
            )

    await others_see(screen=False)  # the fake camera
    assert await ana.evaluate("window.callapp.setSharing(true)") is True
    await others_see(screen=True)  # the fake screen
    ana_peers = await peers(ana)
    assert all(str(p["sendingVideo"]).startswith("screen") for p in ana_peers), ana_peers
    assert all(p["negotiations"] == 1 for p in ana_peers)  # replaceTrack: no new offer
    for page in (bo, cy):
        badges = next(t["badges"] for t in await tiles(page) if t["peer"] == ana_id)
        assert "sharing screen" in badges
    assert await ana.evaluate("document.getElementById('screen').textContent") == "Stop sharing"

    # Stopping with the button puts the camera back.
    await ana.evaluate("document.getElementById('screen').click()")
    await others_see(screen=False)
    assert await hook(ana, "sharing") is False
    assert all(not str(p["sendingVideo"]).startswith("screen") for p in await peers(ana))

    # The browser's own "Stop sharing" ends the track: the camera comes back too.
    assert await ana.evaluate("window.callapp.setSharing(true)") is True
    await others_see(screen=True)
    await ana.evaluate("window.callapp.screenTrack.dispatchEvent(new Event('ended'))")
    await others_see(screen=False)
    assert all(p["negotiations"] == 1 for p in await peers(ana))
    for page in (bo, cy):
        await connected(page, 2, frames=10)


async def test_names_capacities_and_the_name_field(
    server: SignalingServer, browser: Chromium
) -> None:
    page = await browser.new_page()

    async def name_for(query: str) -> object:
        await page.navigate(f"{server.http_url}?{query}")
        return await hook(page, "name")

    assert await name_for("room=n1") == "Guest"
    assert await name_for("room=n2&name=%20%20") == "Guest"
    assert await name_for("room=n3&name=" + "a" * 65) == "a" * 64  # cut, as the app does
    assert await name_for("room=n4&name=" + "é" * 64) == "é" * 64
    assert await name_for("room=n5&name=Zoe%0A%1B") == "Zoe"

    # The name field is kept for next time.
    await page.evaluate(
        """const field = document.getElementById('name');
           field.value = ' Kim ';
           field.dispatchEvent(new Event('change'))"""
    )
    assert await hook(page, "name") == "Kim"
    assert await name_for("room=n6") == "Kim"
    assert await page.evaluate("document.getElementById('name').value") == "Kim"

    # Capacities: outside 2-8 refused by the page, above the server's limit by the server.
    await page.navigate(group_url(server, "big", "Kim", 9))
    await page.wait_for("window.callapp.errorCode === 'bad-capacity'")
    assert "2 to 8" in str(await hook(page, "status"))
    await page.navigate(group_url(server, "big", "Kim", 8))
    await page.wait_for("window.callapp.errorCode === 'bad-capacity'")
    assert "fewer" in str(await hook(page, "status"))
    assert server.router.members("big") == ()
    await page.navigate(group_url(server, "big", "Kim", 4))
    await page.wait_for("window.callapp.state === 'waiting'")
    assert await hook(page, "capacity") == 4
    assert "capacity=4" in str(await page.evaluate("location.search"))


async def test_presence_goes_before_the_offer_and_bye_ends_only_that_call(
    server: SignalingServer, browser: Chromium
) -> None:
    """A raw client joins a page's group room: the page, already inside, calls
    it, saying who it is first; the offer carries the chat data channel."""
    page = await enter(browser, server, "order", "Ana")
    async with connect(server.url) as raw:
        raw_id = json.loads(await raw.recv())["connectionId"]
        await raw.send(json.dumps({"type": "join", "room": "order"}))
        joined = json.loads(await raw.recv())
        assert joined["type"] == "joined"
        assert joined["capacity"] == 3
        page_id = joined["peers"][0]

        kinds: list[str] = []
        async with asyncio.timeout(10):
            while "SDP" not in kinds:
                message = json.loads(await raw.recv())
                if message["type"] == "message" and message["data"]["type"] != "ICE":
                    assert message["from"] == page_id
                    kinds.append(message["data"]["type"])
                    if kinds[-1] == "PRESENCE":
                        assert message["data"]["payload"] == {
                            "name": "Ana",
                            "muted": False,
                            "cameraOff": False,
                            "screen": False,
                            "recording": False,
                        }
                    else:
                        offer = message["data"]["payload"]
        assert kinds == ["PRESENCE", "SDP"]
        assert offer["type"] == "offer"
        assert "m=application" in offer["sdp"]  # the "chat" data channel
        await page.wait_for(f"window.callapp.peers.map((p) => p.id).join() === '{raw_id}'")
        assert (await peers(page))[0]["role"] == "caller"

        # The raw client hangs up without leaving: its call ends, its tile goes.
        await relay(raw, page_id, {"type": "BYE"})
        await page.wait_for("window.callapp.peers.length === 0", within=5)
        assert await tiles(page) == []
        assert await hook(page, "state") == "waiting"
        assert "hung up" in str(await hook(page, "status"))
