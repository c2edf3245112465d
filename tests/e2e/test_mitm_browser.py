"""The man in the middle again, with the browser client on one end (issue 12).

The same :class:`~tests.e2e.mitm.MitmRelay` as test_mitm.py, now also passing
the page itself through (plain HTTP, so it sees and could change all of it,
but never the URL fragment where an invite keeps the room secret). One end
is headless Chromium running the served client, the other a real ``callapp
call`` process; both reach the real server only through the relay.

- With a room secret: the page never shows the relay's video, and the call
  is ended as intercepted (on the page, in the app, or on both: whichever
  notices first ends it, and the other may see that as a hang-up).
- Without a secret: the call connects through the relay, and the code on the
  page's tile differs from the app's.

That the codes are equal without a relay, page and app, is
test_browser_security.py's (the same two ends, straight to the server).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

from callapp.call import security
from tests.e2e.chromium import Chromium, Page
from tests.e2e.conftest import Proc, Procs
from tests.e2e.mitm import RelayThread
from tests.e2e.test_browser import hook
from tests.e2e.test_browser_apps import app_id, exit_code, legs_by_id, read_stats
from tests.e2e.test_browser_security import INTERCEPTED, VERIFIED_AND_SHOWN, WATCH_SHOWN

pytestmark = pytest.mark.e2e

APP_SECONDS = 5
INTERCEPTED_LINE = re.compile(r"^(peer left: .*|call ended): the connection was intercepted", re.M)


def page_url(net: RelayThread, room: str, secret: str | None) -> str:
    url = f"{net.http_url}?{urlencode({'room': room, 'name': 'Pat'})}"
    return url if secret is None else f"{url}#secret={secret}"


def start_app(procs: Procs, net: RelayThread, room: str, secret: str | None, stats: Path) -> Proc:
    args = [
        "--server", net.url, "--room", room, "--name", "Ana", "--allow-loopback",
        "--size", "320x240", "--audio", "tone:440", "--speaker", "none",
        "--seconds", str(APP_SECONDS), "--timeout", "20", "--stats-json", str(stats),
    ]  # fmt: skip
    if secret is not None:
        args += ["--room-secret", secret]
    return procs.call("Ana", *args)


async def open_page(browser: Chromium, net: RelayThread, room: str, secret: str | None) -> Page:
    page = await browser.new_page()
    await page.navigate(page_url(net, room, secret))
    await page.evaluate(WATCH_SHOWN)
    await page.wait_for("window.callapp.state === 'waiting'")
    return page


async def test_with_a_secret_the_page_never_shows_the_relay_and_the_call_ends_intercepted(
    browser: Chromium, procs: Procs, tmp_path: Path
) -> None:
    room, secret = "mitm-page-keyed", security.new_room_secret()
    stats = tmp_path / "ana.json"
    with RelayThread() as net:
        page = await open_page(browser, net, room, secret)
        ana = start_app(procs, net, room, secret, stats)
        ana_id = await app_id(ana)
        await page.wait_for(
            "window.callapp.calls >= 1 && window.callapp.peers.length === 0", within=30
        )
        await exit_code(ana, APP_SECONDS + 25)
        assert net.relay is not None
        hijacked = net.call(lambda: net.relay.offers_hijacked if net.relay else 0)
        assert hijacked >= 1, "the relay really was in the middle"
        assert await page.evaluate("window.__everShown") is False
        assert await hook(page, "framesRendered") == 0
        page_saw = await page.evaluate(
            f"window.callapp.insecurePeers.includes({json.dumps(ana_id)})"
        )
        if page_saw:
            assert await hook(page, "errorCode") == "insecure"
            assert await hook(page, "status") == INTERCEPTED
        app_saw = INTERCEPTED_LINE.search(ana.output) is not None
        assert page_saw or app_saw, ana.output[-3000:]
        for leg in read_stats(stats)["peers"]:
            assert leg["peer_verified"] is False
            assert not leg.get("frames_received") or leg["end_reason"] == "insecure", leg


async def test_without_a_secret_the_call_connects_through_the_relay_but_the_codes_differ(
    browser: Chromium, procs: Procs, tmp_path: Path
) -> None:
    room = "mitm-page-open"
    stats = tmp_path / "ana.json"
    with RelayThread() as net:
        page = await open_page(browser, net, room, None)
        ana = start_app(procs, net, room, None, stats)
        ana_id = await app_id(ana)
        await page.wait_for(VERIFIED_AND_SHOWN, within=30)
        seen = await hook(page, "peers[0]")
        assert isinstance(seen, dict)
        assert seen["id"] == ana_id
        assert seen["peerVerified"] is False
        assert await exit_code(ana, APP_SECONDS + 25) == 0, ana.output[-3000:]
        page_id = str(await hook(page, "connectionId"))
        hijacked = net.call(lambda: net.relay.offers_hijacked if net.relay else 0)
    leg = legs_by_id(read_stats(stats))[page_id]
    print(f"\ncodes: page {seen['securityCode']} app {leg['security_code']}")
    assert hijacked == 1, "the relay answered the call itself"
    assert leg["frames_received"] > 0, "the call connected through the relay"
    assert leg["security_code"] != seen["securityCode"]
