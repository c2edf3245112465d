"""ICE restarts between the browser client and ``callapp call`` (issue 14).

aiortc cannot restart ICE inside a peer connection; the browser can
(``restartIce()``). So the two meet halfway: the page (the caller) offers an
ICE restart in its connection; the app, which cannot take it in place,
answers with a fresh connection of its own, offered with ``"restart": true``;
the page takes that offer by making a fresh connection too. Checked: the
call goes on (the app never ends it, one leg, one restart counted on both
sides), the page paints the app's frames again, and the app says
"reconnecting" meanwhile.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callapp.signaling.server import SignalingServer
from tests.e2e.chromium import Chromium
from tests.e2e.conftest import Procs
from tests.e2e.test_browser_apps import (
    app_id,
    enter,
    exit_code,
    find_peer,
    line,
    read_stats,
    receiving_from,
    start_app,
)

pytestmark = pytest.mark.e2e


async def test_an_app_answers_a_pages_ice_restart_with_a_fresh_connection(
    server: SignalingServer, browser: Chromium, procs: Procs, tmp_path: Path
) -> None:
    page, _page_id = await enter(browser, server, "restart", "Pat")  # first in: the caller
    stats = tmp_path / "ana.json"
    ana = start_app(procs, server, "restart", "Ana", "--seconds", "10", "--stats-json", str(stats))
    ana_id = await app_id(ana)
    await receiving_from(page, [ana_id])
    assert await page.evaluate("window.callapp.restartIce()") is True
    await line(ana, r"peer reconnecting: ", within=5)
    await line(ana, r"peer reconnected: ", within=8)
    # A fresh connection on the page too, painting the app's frames again.
    await receiving_from(page, [ana_id], within=15)
    peer = await page.evaluate(find_peer(ana_id))
    assert (peer["role"], peer["iceRestarts"], peer["state"]) == ("caller", 1, "connected"), peer
    assert await exit_code(ana, 30) == 0
    report = read_stats(stats)
    assert report["ice_restarts"] == 1, json.dumps(report)
    assert len(report["peers"]) == 1, "the app made a second call instead"
    assert report["end_reason"] == "hung_up"
