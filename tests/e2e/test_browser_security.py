"""The browser client's call security, in a real headless Chromium against the real server.

Invite links carry the room secret in the URL fragment (``#secret=...``); the
page joins with the room key derived from it, verifies every connection
(docs/security.md: commit, nonce, reveal and, in a keyed room, the fingerprint
MACs) and shows the verification code on each tile. Checked here:

- a keyed room refuses a page without the secret and one with a wrong secret
  (``unauthorized``, in plain words) and lets in the right one;
- two pages with the secret connect, show the same code and both say
  "verified by the invite"; the secret never appears in ``window.callapp``;
- a signaling path that changes a ``mac`` (a server in the middle: it knows
  the room key, not the secret) gets the call ended as intercepted on both
  pages, and no remote video is ever shown;
- a page and a real ``callapp call`` show the same code: keyed (the app joins
  through the page's invite link, ``--invite``) and keyless (``--room``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from callapp.call import security
from callapp.signaling.messages import Relayed
from callapp.signaling.server import SignalingServer
from tests.e2e.chromium import Chromium, Page
from tests.e2e.conftest import Procs
from tests.e2e.test_browser import hook
from tests.e2e.test_browser_apps import app_id, exit_code, legs_by_id, line, read_stats, start_app

pytestmark = pytest.mark.e2e

NEEDS_SECRET = "This room needs the invite link's secret: ask for the link again."
INTERCEPTED = "The connection was intercepted: someone may be listening. The call was ended."
#: Frames a verified connection must paint before it counts as showing video.
MIN_FRAMES = 10
APP_SECONDS = 5


def invite_url(server: SignalingServer, room: str, name: str, secret: str | None) -> str:
    url = f"{server.http_url}?{urlencode({'room': room, 'name': name})}"
    return url if secret is None else f"{url}#secret={secret}"


async def open_page(
    browser: Chromium, server: SignalingServer, room: str, name: str, secret: str | None
) -> Page:
    page = await browser.new_page()
    await page.navigate(invite_url(server, room, name, secret))
    return page


async def first_peer(page: Page) -> dict[str, Any]:
    value = await hook(page, "peers[0]")
    assert isinstance(value, dict)
    return value


#: JavaScript: the page's one connection is verified and painting the peer's video.
VERIFIED_AND_SHOWN = f"""(() => {{
  const p = window.callapp.peers[0];
  const video = document.querySelector("#videos .remote video");
  return p && p.state === "connected" && p.securityCode && p.mediaShown
    && window.callapp.framesRendered >= {MIN_FRAMES} && video && !video.hidden
    && video.srcObject !== null && !video.muted;
}})()"""

#: JavaScript: the first remote tile's security line, as shown.
TILE_SECURITY = """(() => {
  const tile = document.querySelector("#videos .remote");
  const verified = tile.querySelector(".verified");
  return {code: tile.querySelector(".code").textContent, verified: !verified.hidden,
          verifiedText: verified.textContent};
})()"""

#: Installed on a page: remembers whether any remote video was ever on screen.
WATCH_SHOWN = """(() => {
  window.__everShown = false;
  setInterval(() => {
    for (const video of document.querySelectorAll("#videos .remote video")) {
      if (!video.hidden || video.srcObject !== null || !video.muted) window.__everShown = true;
    }
  }, 5);
  return true;
})()"""


async def test_keyed_room_refuses_without_the_secret_and_two_pages_verify(
    server: SignalingServer, browser: Chromium
) -> None:
    room, secret = "keyed-pages", security.new_room_secret()
    ana = await open_page(browser, server, room, "Ana", secret)
    await ana.wait_for("window.callapp.state === 'waiting'")
    assert server.router.is_keyed(room)
    assert await hook(ana, "keyed") is True

    # Without the secret, and with another one: refused, in plain words; still outside.
    for wrong in (None, security.new_room_secret()):
        intruder = await open_page(browser, server, room, "Eve", wrong)
        await intruder.wait_for("window.callapp.errorCode === 'unauthorized'", within=10)
        assert await hook(intruder, "status") == NEEDS_SECRET
        shown = await intruder.evaluate("document.getElementById('status').textContent")
        assert shown == NEEDS_SECRET
        assert await hook(intruder, "room") is None
        assert await hook(intruder, "keyed") is False
        await intruder.close()
    assert len(server.router.members(room)) == 1

    # The right secret: in, connected, the same code on both, verified by the invite.
    bo = await open_page(browser, server, room, "Bo", secret)
    for page in (ana, bo):
        await page.wait_for(VERIFIED_AND_SHOWN, within=20)
    a, b = await first_peer(ana), await first_peer(bo)
    assert a["securityCode"] == b["securityCode"]
    assert security.CODE_PATTERN.fullmatch(a["securityCode"])
    for peer in (a, b):
        assert peer["peerVerified"] is True
        assert peer["insecure"] is False
        assert peer["keyed"] is True
        assert peer["verification"] == "done"
    for page in (ana, bo):
        tile = await page.evaluate(TILE_SECURITY)
        assert tile["code"] == f"Code {a['securityCode']}"
        assert tile["verified"] is True
        assert tile["verifiedText"] == "verified by the invite"
        # The secret is nowhere in the hooks, the log or the console.
        state = await page.evaluate(
            "JSON.stringify({...window.callapp, peers: window.callapp.peers})"
        )
        assert secret not in state
        assert all(secret not in entry for entry in page.console)


@pytest.mark.parametrize("attack", ["change", "drop"])
async def test_a_mac_changed_or_dropped_on_the_signaling_path_ends_both_pages_as_intercepted(
    server: SignalingServer, browser: Chromium, monkeypatch: pytest.MonkeyPatch, attack: str
) -> None:
    """The server in the middle: it knows the room key (every join shows it)
    but not the secret, so it cannot make a MAC; here it replaces them (the
    check fails at once) or drops them (no proof within 5 s of connecting)."""
    room, secret = f"keyed-{attack}", security.new_room_secret()
    forged = security.b64url_encode(bytes(32))  # well formed, and wrong
    changed: list[str] = []
    deliver = server._deliver

    def tamper(to: str, message: Any) -> None:
        data = getattr(message, "data", None)
        if isinstance(message, Relayed) and isinstance(data, dict) and data.get("type") == "VERIFY":
            payload = data.get("payload")
            if isinstance(payload, dict) and payload.get("step") == "mac":
                changed.append(to)
                if attack == "drop":
                    return
                message = Relayed(
                    message.sender, {"type": "VERIFY", "payload": {"step": "mac", "mac": forged}}
                )
        deliver(to, message)

    monkeypatch.setattr(server, "_deliver", tamper)
    ana = await open_page(browser, server, room, "Ana", secret)
    await ana.evaluate(WATCH_SHOWN)
    await ana.wait_for("window.callapp.state === 'waiting'")
    bo = await open_page(browser, server, room, "Bo", secret)
    await bo.evaluate(WATCH_SHOWN)
    ana_id = await ana.wait_for("window.callapp.connectionId")
    bo_id = await bo.wait_for("window.callapp.connectionId")
    if attack == "change":
        # Each page finds the MAC wrong at once and ends the call as intercepted.
        for page, other in ((ana, bo_id), (bo, ana_id)):
            await page.wait_for(
                f"window.callapp.insecurePeers.includes({json.dumps(other)})"
                " && window.callapp.peers.length === 0",
                within=15,
            )
    else:
        # The first page whose 5 s run out ends the call as intercepted and says
        # BYE; the other ends it on that BYE, or on its own deadline if first.
        for page in (ana, bo):
            await page.wait_for(
                "window.callapp.calls === 1 && window.callapp.peers.length === 0", within=20
            )
        assert (
            await ana.evaluate("window.callapp.insecurePeers.length")
            + await bo.evaluate("window.callapp.insecurePeers.length")
            >= 1
        )
    for page in (ana, bo):
        if await page.evaluate("window.callapp.insecurePeers.length"):
            assert await hook(page, "errorCode") == "insecure"
            assert await hook(page, "status") == INTERCEPTED
        assert await page.evaluate("window.__everShown") is False
        assert await hook(page, "framesRendered") == 0
    assert sorted(changed) == sorted([ana_id, bo_id])


async def test_a_page_and_an_app_in_a_keyed_room_show_the_same_code(
    server: SignalingServer, browser: Chromium, procs: Procs, tmp_path: Path
) -> None:
    """The page makes the room (and offers); the app joins through the page's own link."""
    room, secret = "keyed-app", security.new_room_secret()
    page = await open_page(browser, server, room, "Pat", secret)
    await page.wait_for("window.callapp.state === 'waiting'")
    page_id = str(await hook(page, "connectionId"))
    stats = tmp_path / "ana.json"
    ana = procs.call(
        "Ana",
        *("--invite", invite_url(server, room, "Pat", secret), "--name", "Ana"),
        *("--allow-loopback", "--size", "320x240", "--audio", "none", "--speaker", "none"),
        *("--seconds", str(APP_SECONDS), "--timeout", "20", "--stats-json", str(stats)),
    )
    ana_id = await app_id(ana)
    await page.wait_for(VERIFIED_AND_SHOWN, within=25)
    seen = await first_peer(page)
    assert seen["id"] == ana_id
    assert seen["role"] == "caller"
    assert seen["peerVerified"] is True
    assert await exit_code(ana, APP_SECONDS + 20) == 0, ana.output[-3000:]
    leg = legs_by_id(read_stats(stats))[page_id]
    assert leg["security_code"] == seen["securityCode"]
    assert leg["peer_verified"] is True
    assert leg["end_reason"] != "insecure"
    assert leg["frames_received"] > 0


async def test_a_page_and_an_app_in_an_open_room_show_the_same_code(
    server: SignalingServer, browser: Chromium, procs: Procs, tmp_path: Path
) -> None:
    """No secret: the app makes the room (and offers); the code is there, unverified."""
    room = "open-app"
    stats = tmp_path / "ana.json"
    ana = start_app(
        procs, server, room, "Ana",
        *("--seconds", str(APP_SECONDS), "--timeout", "20", "--stats-json", str(stats)),
    )  # fmt: skip
    ana_id = await app_id(ana)
    await line(ana, r"joined room")
    page = await open_page(browser, server, room, "Pat", None)
    await page.wait_for(VERIFIED_AND_SHOWN, within=25)
    page_id = str(await hook(page, "connectionId"))
    seen = await first_peer(page)
    assert seen["id"] == ana_id
    assert seen["role"] == "callee"
    assert seen["peerVerified"] is False
    assert seen["keyed"] is False
    assert await hook(page, "keyed") is False
    tile = await page.evaluate(TILE_SECURITY)
    assert tile == {
        "code": f"Code {seen['securityCode']}",
        "verified": False,
        "verifiedText": "verified by the invite",
    }
    assert await exit_code(ana, APP_SECONDS + 20) == 0, ana.output[-3000:]
    leg = legs_by_id(read_stats(stats))[page_id]
    assert leg["security_code"] == seen["securityCode"]
    assert leg["peer_verified"] is False
