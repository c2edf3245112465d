"""The browser client's care for people, in a real headless Chromium (issue 13).

Each feature is checked by what a person would see or get, against the real
signaling server on 127.0.0.1:

- the call timer's text advances once media flows;
- the camera, microphone and speaker pickers list Chromium's fake devices
  (``device-count=3`` gives three cameras), and switching them keeps the call's
  video flowing without a new offer (replaceTrack);
- full screen by button, by ``f``, by double-clicking a tile; Escape leaves;
- the keyboard shortcuts, the ``?`` list, and an accessible name on every control;
- a signaling server that restarts on the same port: the countdown shows,
  the call goes on peer to peer meanwhile, the pages rejoin and the call is up;
  one that stays away: the page gives up after ``?reconnect=SECONDS``, says so
  and offers Try again; Cancel stops retrying;
- a signaling server process killed mid-call (SIGKILL) and started again 2 s
  later on the same port (issue 14): the pages, or a page and ``callapp
  call``, rejoin and tell each other their new ids over the call's data
  channel (RELINK), and the call goes on untouched: the same
  RTCPeerConnection, no new offer, painted frames with no gap over 0.5 s;
- problems (camera refused, screen sharing refused, a camera that will not
  start, a full room, a bad room name) are said in plain words, with nothing
  like an exception name or JavaScript wording on screen.

The machine running these is shared and slow: timeouts are generous, and no
test asserts how fast something happened (the RELINK tests print it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from callapp.signaling.server import SignalingServer
from tests.e2e.chromium import Chromium, Page, launch_or_skip
from tests.e2e.conftest import Proc, Procs
from tests.e2e.test_browser import hook
from tests.e2e.test_browser_apps import line

pytestmark = pytest.mark.e2e

#: Three fake cameras (fake_device_0..2); microphones and speakers come as
#: "Fake Audio Input 1/2" and "Fake Audio Output 1/2" anyway. The last of
#: repeated switches wins, so this overrides the default flag's count of 1.
#: fake_device_1 is no use for calls: it paints in a depth format (Y16) whose
#: frames show in a <video> but that WebRTC never encodes, with or without
#: callapp (a bare replaceTrack between two RTCPeerConnections stalls too);
#: fake_device_2 (MJPEG) is an ordinary second camera.
THREE_CAMERAS = ("--use-fake-device-for-media-stream=device-count=3",)
SECOND_CAMERA = "fake_device_2"

#: Remote frames a connection must decode before it counts as carrying video.
MIN_FRAMES = 10

#: Words that must never reach the screen: exception names, JavaScript values.
TECHNICAL = re.compile(
    r"Error\b|Exception|undefined|\bnull\b|\bNaN\b|\[object|TypeError|NotAllowedError"
    r"|NotFoundError|NotReadableError|DOMException|OverconstrainedError|\bstack\b|\bat \w+ \("
)

#: Every text the page shows about its state or a problem, as shown.
SHOWN_TEXTS = """(() => {
  const shown = (id) => {
    const element = document.getElementById(id);
    return element && !element.hidden && element.closest("[hidden]") === null
      ? element.textContent.trim() : "";
  };
  const texts = ["status", "reconnect-text", "media-problem-text", "notice-text", "chat-error",
                 "local-caption"].map(shown);
  for (const caption of document.querySelectorAll("#videos figcaption, #videos .held")) {
    texts.push(caption.textContent.trim());
  }
  return texts.filter(Boolean);
})()"""


@pytest.fixture
async def cameras() -> AsyncIterator[Chromium]:
    """A headless Chromium with three fake cameras."""
    async with contextlib.AsyncExitStack() as stack:
        yield await launch_or_skip(stack, extra_flags=THREE_CAMERAS)


def care_url(server: SignalingServer, room: str, name: str, **extra: str) -> str:
    return f"{server.http_url}?{urlencode({'room': room, 'name': name, **extra})}"


async def open_page(browser: Chromium, url: str) -> Page:
    page = await browser.new_page()
    await page.navigate(url)
    return page


async def in_call(page: Page, frames: int = MIN_FRAMES, within: float = 30) -> None:
    """Wait until ``page`` has one connected peer whose video it decodes."""
    await page.wait_for(
        f"""(() => {{
          const peers = window.callapp.peers;
          return window.callapp.state === "connected" && peers.length === 1
            && peers[0].state === "connected" && peers[0].framesReceived >= {frames};
        }})()""",
        within=within,
    )


async def frames(page: Page) -> int:
    value = await page.evaluate("window.callapp.peers[0]?.framesReceived ?? 0")
    assert isinstance(value, int)
    return value


async def more_frames(page: Page, than: int, by: int = 20, within: float = 20) -> None:
    """Wait until ``page`` has decoded ``by`` more remote frames than ``than``."""
    await page.wait_for(
        "window.callapp.peers.length === 1"
        f" && window.callapp.peers[0].framesReceived >= {than + by}",
        within=within,
    )


def seconds(timer: object) -> int:
    """``m:ss`` (or ``h:mm:ss``) as seconds."""
    assert isinstance(timer, str)
    assert re.fullmatch(r"(\d+:)?\d+:\d\d", timer), timer
    total = 0
    for part in timer.split(":"):
        total = total * 60 + int(part)
    return total


async def shown_texts(page: Page) -> list[str]:
    value = await page.evaluate(SHOWN_TEXTS)
    assert isinstance(value, list)
    return [str(text) for text in value]


def assert_plain(texts: list[str]) -> None:
    for text in texts:
        assert not TECHNICAL.search(text), f"technical wording on screen: {text!r}"


async def choose(page: Page, picker: str, label: str) -> str:
    """Choose the option labelled ``label`` in the <select> ``picker``, as a person
    would (the value changes, then ``change`` fires); its device id."""
    device_id = await page.evaluate(
        f"""(() => {{
          const picker = document.getElementById({json.dumps(picker)});
          const option = [...picker.options].find((o) => o.textContent === {json.dumps(label)});
          if (!option) return null;
          picker.value = option.value;
          picker.dispatchEvent(new Event("change"));
          return option.value;
        }})()"""
    )
    assert isinstance(device_id, str), f"no {label!r} in #{picker}"
    return device_id


async def labels(page: Page, kind: str) -> list[str]:
    value = await page.evaluate(
        f"window.callapp.devices[{json.dumps(kind)}].options.map((o) => o.label)"
    )
    assert isinstance(value, list)
    return value


#: Interactive roles in Chromium's accessibility tree.
CONTROL_ROLES = {
    "button",
    "combobox",
    "textbox",
    "checkbox",
    "slider",
    "link",
    "listbox",
    "menuitem",
    "radio",
    "searchbox",
    "spinbutton",
    "switch",
    "tab",
}


async def accessible_controls(page: Page) -> tuple[set[str], list[dict[str, Any]]]:
    """The names of the controls in the accessibility tree (what a screen reader
    gets), and the controls that have none."""
    tree = await page.send("Accessibility.getFullAXTree")
    names: set[str] = set()
    missing = []
    for node in tree["nodes"]:
        if node.get("ignored"):
            continue
        role = node.get("role", {}).get("value")
        name = str(node.get("name", {}).get("value", "")).strip()
        if role in CONTROL_ROLES:
            if name:
                names.add(name)
            else:
                missing.append(node)
    return names, missing


async def test_timer_devices_full_screen_and_shortcuts_in_a_call(
    server: SignalingServer, cameras: Chromium
) -> None:
    ana = await open_page(cameras, care_url(server, "care", "Ana"))
    await ana.wait_for("window.callapp.state === 'waiting'")
    assert await hook(ana, "callTime") is None  # no call, no timer
    bo = await open_page(cameras, care_url(server, "care", "Bo"))
    await in_call(ana)
    await in_call(bo)

    # The call timer: m:ss, and it advances.
    start = seconds(await ana.wait_for("window.callapp.callTime", within=10))
    await ana.wait_for(
        f"(t => t && t.split(':').reduce((s, p) => s * 60 + Number(p), 0) > {start})"
        "(window.callapp.callTime)",
        within=15,
    )
    assert seconds(await ana.evaluate("document.getElementById('call-timer').textContent")) > start

    # The pickers list the fake devices, the ones in use chosen.
    listed = await labels(ana, "videoinput")
    assert {"fake_device_0", SECOND_CAMERA} <= set(listed), listed
    assert "Fake Audio Input 1" in await labels(ana, "audioinput")
    assert "Fake Audio Output 1" in await labels(ana, "audiooutput")
    assert (await ana.evaluate("window.callapp.peers[0].sendingVideo")) == "fake_device_0"

    # The second camera: the call's sender gets it, no new offer, Bo still gets video.
    before = await frames(bo)
    await choose(ana, "camera-select", SECOND_CAMERA)
    await ana.wait_for(f"window.callapp.peers[0].sendingVideo === '{SECOND_CAMERA}'", within=10)
    await more_frames(bo, before)
    assert await ana.evaluate("window.callapp.peers[0].negotiations") == 1
    local_camera = "document.getElementById('local-video').srcObject.getVideoTracks()[0].label"
    assert await ana.evaluate(local_camera) == SECOND_CAMERA
    picked = "document.getElementById('camera-select').selectedOptions[0].text"
    assert await ana.evaluate(picked) == SECOND_CAMERA
    # Another microphone, and another speaker (setSinkId on the remote video).
    await choose(ana, "microphone-select", "Fake Audio Input 1")
    await ana.wait_for("window.callapp.peers[0].sendingAudio === 'Fake Audio Input 1'", within=10)
    speaker = await choose(ana, "speaker-select", "Fake Audio Output 1")
    await ana.wait_for(f"document.getElementById('remote-video').sinkId === {json.dumps(speaker)}")
    before = await frames(bo)
    await more_frames(bo, before)
    assert await ana.evaluate("window.callapp.peers[0].negotiations") == 1

    # Full screen: the button, Escape, the f key, a double-click on a tile. (The
    # button's words change on "fullscreenchange", a frame after the element.)
    full = (
        "document.fullscreenElement && document.fullscreenElement.id === 'stage'"
        " && document.getElementById('fullscreen').textContent === 'Leave full screen'"
    )
    left = (
        "document.fullscreenElement === null && !document.querySelector('.spotlight')"
        " && document.getElementById('fullscreen').textContent === 'Full screen'"
    )
    await ana.click("#fullscreen")
    await ana.wait_for(full, within=10)
    assert await hook(ana, "fullscreen") is True
    await ana.press("Escape")
    await ana.wait_for(left, within=10)
    await ana.press("f")
    await ana.wait_for(full, within=10)
    await ana.press("f")
    await ana.wait_for(left, within=10)
    await ana.click("#videos .remote video", count=2)
    await ana.wait_for(
        f"{full} && document.querySelector('#videos .remote').classList.contains('spotlight')",
        within=10,
    )
    await ana.press("Escape")
    await ana.wait_for(left, within=10)

    # Shortcuts: m mutes (Bo sees it), v turns the camera off, ? lists the keys.
    await ana.press("m")
    assert await hook(ana, "muted") is True
    assert await ana.evaluate("document.getElementById('mute').getAttribute('aria-pressed')") == (
        "true"
    )
    await bo.wait_for("window.callapp.peers[0].muted === true", within=10)
    await ana.press("m")
    assert await hook(ana, "muted") is False
    await ana.press("v")
    assert await hook(ana, "cameraOff") is True
    await bo.wait_for("window.callapp.peers[0].cameraOff === true", within=10)
    await ana.press("v")
    assert await hook(ana, "cameraOff") is False
    # s shares the screen (Chromium's fake one, 16:9) and stops sharing, by replaceTrack.
    await ana.press("s")
    await ana.wait_for("window.callapp.sharing === true", within=10)
    await bo.wait_for("window.callapp.peers[0].screen === true", within=10)
    await ana.press("s")
    await ana.wait_for(
        f"!window.callapp.sharing && window.callapp.peers[0].sendingVideo === '{SECOND_CAMERA}'",
        within=10,
    )
    assert await ana.evaluate("window.callapp.peers[0].negotiations") == 1
    await ana.press("?")
    await ana.wait_for("document.getElementById('shortcuts').open")
    listed = await ana.evaluate(
        "[...document.querySelectorAll('#shortcuts-list kbd')].map((k) => k.textContent)"
    )
    assert listed == ["m", "v", "s", "c", "f", "h", "?", "Esc"]
    mute_keys = "document.getElementById('mute').getAttribute('aria-keyshortcuts')"
    assert await ana.evaluate(mute_keys) == "M"
    await ana.press("Escape")
    await ana.wait_for("!document.getElementById('shortcuts').open")
    # c focuses the chat; keys typed there are text, not shortcuts.
    await ana.press("c")
    await ana.wait_for("document.activeElement.id === 'chat-input'")
    assert await ana.evaluate("document.getElementById('chat-input').value") == ""
    await ana.press("m")
    assert await ana.evaluate("document.getElementById('chat-input').value") == "m"
    assert await hook(ana, "muted") is False
    await ana.evaluate("document.getElementById('chat-input').blur()")

    # Every control has an accessible name, as a screen reader gets it.
    names, unnamed = await accessible_controls(ana)
    assert unnamed == []
    expected = {
        "Room",
        "Size",
        "Join",
        "Your name",
        "Mute",
        "Camera off",
        "Share screen",
        "Full screen",
        "Shortcuts",
        "Hang up",
        "Camera",
        "Microphone",
        "Speaker",
        "Chat message",
        "Send",
    }
    assert expected <= names, expected - names
    assert_plain(await shown_texts(ana))

    # h hangs up: Bo is told, both timers stop.
    await ana.press("h")
    await ana.wait_for("window.callapp.state === 'idle'")
    await bo.wait_for("window.callapp.state === 'waiting' && window.callapp.callTime === null")
    assert await hook(ana, "callTime") is None


@contextlib.asynccontextmanager
async def restartable_server() -> AsyncIterator[list[SignalingServer]]:
    """A signaling server on 127.0.0.1 that a test may stop and start again on the
    same port (``stop_server`` / ``start_server``); the last one is stopped at the end."""
    first = SignalingServer("127.0.0.1", 0)
    await first.start()
    running = [first]
    try:
        yield running
    finally:
        await running[-1].stop()


async def start_server(running: list[SignalingServer]) -> SignalingServer:
    """A new server on the port of the last one (the page's address stays the same)."""
    again = SignalingServer("127.0.0.1", running[-1].port)
    await again.start()
    running.append(again)
    return again


async def countdown(page: Page) -> int:
    """The seconds left that the reconnection panel shows, once it shows them."""
    text = await page.wait_for(
        """(() => {
          const panel = document.getElementById("reconnect");
          const text = document.getElementById("reconnect-text").textContent;
          return !panel.hidden && /giving up in \\d+ s/.test(text) && text;
        })()""",
        within=15,
    )
    match = re.search(r"giving up in (\d+) s", str(text))
    assert match, text
    return int(match.group(1))


async def test_pages_rejoin_when_the_server_comes_back_and_the_call_goes_on(
    browser: Chromium,
) -> None:
    async with restartable_server() as running:
        server = running[0]
        ana = await open_page(browser, care_url(server, "comeback", "Ana"))
        await ana.wait_for("window.callapp.state === 'waiting'")
        bo = await open_page(browser, care_url(server, "comeback", "Bo"))
        await in_call(ana)
        await in_call(bo)
        await ana.wait_for("window.callapp.callTime", within=10)
        old_ids = {await hook(ana, "connectionId"), await hook(bo, "connectionId")}

        await server.stop()
        for page in (ana, bo):
            left = await countdown(page)
            assert 0 < left <= 30
            assert await hook(page, "reconnecting") is True
            assert await page.evaluate("!document.getElementById('reconnect-cancel').hidden")
            assert "call goes on" in str(await hook(page, "status"))
            assert_plain(await shown_texts(page))
        # Meanwhile the call is peer to peer: video keeps coming, chat goes over
        # the data channel, the timer runs.
        await more_frames(ana, await frames(ana))
        assert await ana.evaluate("window.callapp.sendChat('still here?')") is True
        paths = await ana.evaluate("window.callapp.chat.at(-1).paths")
        assert isinstance(paths, dict)
        assert list(paths.values()) == ["channel"]
        await bo.wait_for("window.callapp.chat.some((c) => c.text === 'still here?')", within=10)
        before = seconds(await hook(ana, "callTime"))
        # The countdown counts down.
        await ana.wait_for(
            "(m => m && Number(m[1]) < "
            f"{await countdown(ana)})(document.getElementById('reconnect-text')"
            ".textContent.match(/giving up in (\\d+) s/))",
            within=10,
        )

        again = await start_server(running)
        for page in (ana, bo):
            await page.wait_for(
                "window.callapp.room === 'comeback' && !window.callapp.reconnecting"
                " && document.getElementById('reconnect').hidden",
                within=30,
            )
        new_ids = set(again.router.members("comeback"))
        assert len(new_ids) == 2
        assert not new_ids & old_ids  # new connections, the same room
        for page in (ana, bo):
            # The call is up again, with the other page's new connection.
            await in_call(page, within=30)
            assert await page.evaluate("window.callapp.peers[0].id") in new_ids
            await more_frames(page, await frames(page))
            assert_plain(await shown_texts(page))
        # The same call: its timer went on.
        assert seconds(await hook(ana, "callTime")) >= before


# -- a server process killed mid-call: RELINK (issue 14) -------------------------------

#: How long the killed server stays away.
OUTAGE_S = 2.0
#: The longest stretch without a newly painted remote frame that is no gap.
MAX_GAP_S = 0.5
#: How long ``callapp call`` stays in its call with the page.
APP_CALL_S = 12

#: Every 50 ms, the first call's RTCPeerConnection (its serial) and the remote
#: frames it has painted, into window.frameSamples.
SAMPLE_FRAMES = """(() => {
  window.frameSamples = [];
  window.frameSampler = setInterval(() => {
    const peer = window.callapp.peers[0];
    window.frameSamples.push([performance.now(), peer ? peer.serial : 0,
                              peer ? peer.framesRendered : 0]);
  }, 50);
  return true;
})()"""


#: Makes a page deaf and mute to RELINK on its data channels, as a client from
#: before RELINK is (install it before the page's call begins).
NO_RELINK = """(() => {
  const relink = (data) => typeof data === "string" && data.includes('"RELINK"');
  const send = RTCDataChannel.prototype.send;
  RTCDataChannel.prototype.send = function (data) {
    if (!relink(data)) send.call(this, data);
  };
  const handler = Object.getOwnPropertyDescriptor(RTCDataChannel.prototype, "onmessage");
  Object.defineProperty(RTCDataChannel.prototype, "onmessage", {
    configurable: true,
    get: handler.get,
    set(fn) {
      handler.set.call(this, fn && ((event) => relink(event.data) || fn(event)));
    },
  });
  return true;
})()"""
#: The page's RELINK_WAIT_MS, in seconds.
RELINK_WAIT_S = 5.0


async def serve(procs: Procs, port: int = 0) -> tuple[Proc, int]:
    """The signaling server as a process on 127.0.0.1 (``port`` 0: a free one), and its port."""
    proc = procs.start(
        ["-m", "callapp.signaling.cli", "--host", "127.0.0.1", "--port", str(port)],
        f"server on port {port or 'any'}",
    )
    _, match = await asyncio.to_thread(
        proc.wait_line, r"listening on ws://127\.0\.0\.1:(\d+)/ws", 20
    )
    return proc, int(match.group(1))


def port_url(port: int, room: str, name: str) -> str:
    return f"http://127.0.0.1:{port}/?{urlencode({'room': room, 'name': name})}"


async def longest_gap(page: Page) -> tuple[float, int]:
    """The longest time (s) without a newly painted remote frame since SAMPLE_FRAMES
    began, and the connections seen meanwhile (a new connection is no new frame)."""
    samples = await page.evaluate("clearInterval(window.frameSampler), window.frameSamples")
    assert isinstance(samples, list)
    assert len(samples) > 20, samples
    last_new = samples[0][0]
    previous = (samples[0][1], samples[0][2])
    gap = 0.0
    for at, serial, painted in samples[1:]:
        if serial == previous[0] and painted > previous[1]:
            last_new = at
        previous = (serial, painted)
        gap = max(gap, at - last_new)
    return gap / 1000, len({serial for _, serial, _ in samples})


async def kill_and_restart(
    server: Proc, port: int, procs: Procs, pages: list[Page], apps: list[Proc]
) -> float:
    """SIGKILL ``server`` (no close frames), wait until every page and app knows,
    start it again ``OUTAGE_S`` after the kill on the same port; when it listened."""
    for page in pages:
        assert await page.evaluate(SAMPLE_FRAMES) is True
    await asyncio.sleep(0.5)
    killed_at = time.monotonic()
    server.kill()
    for page in pages:
        await page.wait_for(
            "window.callapp.reconnecting && window.callapp.errorCode === 'server-lost'",
            within=10,
        )
        assert "call goes on" in str(await hook(page, "status"))
    for app in apps:
        await asyncio.to_thread(app.wait_line, r"phase: reconnecting", 10, killed_at)
    await asyncio.sleep(max(0.0, killed_at + OUTAGE_S - time.monotonic()))
    await serve(procs, port)
    return time.monotonic()


async def relinked(page: Page, room: str, other_old: str, within: float = 15) -> tuple[str, float]:
    """Wait until ``page`` is back in ``room`` and its one call is relinked from
    ``other_old`` to the other member's new id; that id and when (monotonic)."""
    await page.wait_for(
        f"""(() => {{
          const app = window.callapp;
          const peer = app.peers[0];
          const other = app.members.find((id) => id !== app.connectionId);
          return app.room === {json.dumps(room)} && !app.reconnecting && app.members.length === 2
            && app.peers.length === 1 && other && peer.id === other
            && peer.previousIds.length === 1 && peer.previousIds[0] === {json.dumps(other_old)};
        }})()""",
        within=within,
        interval=0.05,
    )
    at = time.monotonic()
    return str(await page.evaluate("window.callapp.peers[0].id")), at


async def test_a_killed_server_comes_back_and_the_pages_call_goes_on_untouched(
    browser: Chromium, procs: Procs
) -> None:
    server, port = await serve(procs)
    room = "relink-pages"
    ana = await open_page(browser, port_url(port, room, "Ana"))
    await ana.wait_for("window.callapp.state === 'waiting'")
    bo = await open_page(browser, port_url(port, room, "Bo"))
    pages = {"Ana": ana, "Bo": bo}
    for page in pages.values():
        await in_call(page)
    old_ids = {name: str(await hook(page, "connectionId")) for name, page in pages.items()}
    before = {name: await page.evaluate("window.callapp.peers[0]") for name, page in pages.items()}
    assert before["Ana"]["role"] == "caller"  # first in

    back_at = await kill_and_restart(server, port, procs, list(pages.values()), [])
    other = {"Ana": "Bo", "Bo": "Ana"}
    results = await asyncio.gather(
        *(relinked(page, room, old_ids[other[name]]) for name, page in pages.items())
    )
    back = dict(zip(pages, results, strict=True))
    new_ids = {name: str(await hook(page, "connectionId")) for name, page in pages.items()}
    for name, page in pages.items():
        assert new_ids[name] != old_ids[name]
        assert back[name][0] == new_ids[other[name]]  # the other's new id, learnt by RELINK
        # The same RTCPeerConnection goes on: no new one, no new offer, no ICE restart.
        after = await page.evaluate("window.callapp.peers[0]")
        assert after["serial"] == before[name]["serial"] == 1, after
        assert await hook(page, "calls") == 1
        assert after["negotiations"] == before[name]["negotiations"], after
        assert (after["iceRestarts"], after["state"], after["channel"]) == (0, "connected", "open")
        assert after["name"] == other[name]
        assert after["securityCode"] == before[name]["securityCode"] is not None
        await more_frames(page, await frames(page))
        assert_plain(await shown_texts(page))
    gaps = {}
    for name, page in pages.items():
        gaps[name], connections = await longest_gap(page)
        assert connections == 1
        assert gaps[name] < MAX_GAP_S, f"{name}: {gaps[name]:.3f} s without a new frame"

    # Signaling reaches the new ids: the caller restarts ICE in the same connection.
    assert await ana.evaluate("window.callapp.restartIce()") is True
    answered = before["Bo"]["negotiations"] + 1
    await bo.wait_for(f"window.callapp.peers[0].negotiations === {answered}", within=10)
    await ana.wait_for(
        "window.callapp.peers[0].iceRestarts === 1"
        " && window.callapp.peers[0].state === 'connected'",
        within=10,
    )
    await more_frames(bo, await frames(bo))
    for page in pages.values():
        assert await hook(page, "calls") == 1
    print(
        "\npage<->page, server SIGKILLed and back 2 s later: relinked "
        + ", ".join(f"{name} {at - back_at:.2f} s" for name, (_, at) in back.items())
        + " after it listened; longest time without a painted frame "
        + ", ".join(f"{name} {gap * 1000:.0f} ms" for name, gap in gaps.items())
    )


async def test_a_peer_that_does_not_relink_is_called_afresh_once_the_wait_is_over(
    browser: Chromium, procs: Procs
) -> None:
    """The fallback for clients from before RELINK: a member we do not know is
    called after RELINK_WAIT_MS without a RELINK, and the old call is retired."""
    server, port = await serve(procs)
    room = "relink-older"
    older = await open_page(browser, port_url(port, room, "Old"))
    await older.wait_for("window.callapp.state === 'waiting'")
    assert await older.evaluate(NO_RELINK) is True
    newer = await open_page(browser, port_url(port, room, "New"))
    pages = (older, newer)
    for page in pages:
        await in_call(page)

    await kill_and_restart(server, port, procs, list(pages), [])
    for page in pages:
        await page.wait_for(
            f"window.callapp.room === {json.dumps(room)} && !window.callapp.reconnecting"
            " && window.callapp.members.length === 2",
            within=15,
        )
    rejoined_at = time.monotonic()
    for page in pages:
        await page.wait_for(
            """(() => {
              const app = window.callapp;
              const peer = app.peers[0];
              return app.calls === 2 && app.peers.length === 1 && peer.serial === 2
                && peer.id === app.members.find((id) => id !== app.connectionId)
                && peer.previousIds.length === 0;
            })()""",
            within=RELINK_WAIT_S + 15,
        )
    remade_after = time.monotonic() - rejoined_at
    # Held back while the call from before might still relink, then made afresh.
    assert remade_after > RELINK_WAIT_S - 1.0, remade_after
    for page in pages:
        await in_call(page)
        assert_plain(await shown_texts(page))
    print(f"\nno RELINK: the call was made afresh {remade_after:.2f} s after the rejoin")


@pytest.mark.parametrize("page_first", [True, False], ids=["page-calls", "app-calls"])
async def test_a_killed_server_comes_back_and_a_page_and_apps_call_goes_on_untouched(
    browser: Chromium, procs: Procs, tmp_path: Path, page_first: bool
) -> None:
    server, port = await serve(procs)
    room = f"relink-app-{'page' if page_first else 'app'}-first"
    stats = tmp_path / "ana.json"

    def start_app() -> Proc:
        return procs.call(
            "Ana",
            *("--server", f"ws://127.0.0.1:{port}/ws", "--room", room, "--name", "Ana"),
            *("--allow-loopback", "--size", "320x240", "--audio", "none", "--speaker", "none"),
            *("--seconds", str(APP_CALL_S), "--timeout", "30", "--stats-json", str(stats)),
        )

    if page_first:
        page = await open_page(browser, port_url(port, room, "Pat"))
        await page.wait_for("window.callapp.state === 'waiting'")
        ana = start_app()
    else:
        ana = start_app()
        await line(ana, r"joined room")
        page = await open_page(browser, port_url(port, room, "Pat"))
    _, match = await line(ana, r"connection id: (\S+)")
    ana_old = match.group(1)
    await in_call(page)
    page_old = str(await hook(page, "connectionId"))
    await line(ana, rf"peer connected: {page_old} \(Pat\)")
    before = await page.evaluate("window.callapp.peers[0]")
    assert before["role"] == ("caller" if page_first else "callee")

    back_at = await kill_and_restart(server, port, procs, [page], [ana])
    ana_new, page_at = await relinked(page, room, ana_old)
    page_new = str(await hook(page, "connectionId"))
    app_at, _ = await line(ana, rf"peer relinked: {page_old} is now {page_new} \(Pat\)")
    after = await page.evaluate("window.callapp.peers[0]")
    assert after["id"] == ana_new != ana_old
    assert after["serial"] == before["serial"] == 1, after
    assert await hook(page, "calls") == 1
    assert after["negotiations"] == before["negotiations"], after
    assert (after["iceRestarts"], after["state"], after["channel"]) == (0, "connected", "open")
    await more_frames(page, await frames(page))
    gap, connections = await longest_gap(page)
    assert connections == 1
    assert gap < MAX_GAP_S, f"{gap:.3f} s without a new frame"

    # The app hangs up after --seconds, through the new server, to the page's new id.
    code = await asyncio.to_thread(ana.wait_exit, APP_CALL_S + 20)
    assert code == 0, ana.output[-3000:]
    await page.wait_for("window.callapp.peers.length === 0", within=10)
    report = json.loads(stats.read_text())
    assert len(report["peers"]) == 1, "the app made a second call"
    assert report["peers"][0]["id"] == page_new, report["peers"]
    assert report["signaling_reconnects"] == 1, report
    assert report["ice_restarts"] == 0, report
    assert report["freeze_max_ms"] is not None, report
    assert report["freeze_max_ms"] < 500, report
    assert ana.output.count("peer connected") == 1, ana.output
    assert "Traceback" not in ana.output
    print(
        f"\npage<->app ({'page' if page_first else 'app'} calls), server SIGKILLed and back"
        f" 2 s later: relinked on the page {page_at - back_at:.2f} s, in the app"
        f" {app_at - back_at:.2f} s after it listened; the page's longest time without a"
        f" painted frame {gap * 1000:.0f} ms; the app's freeze_max_ms"
        f" {report['freeze_max_ms']}"
    )


async def test_reconnection_gives_up_in_words_and_try_again_or_cancel(browser: Chromium) -> None:
    async with restartable_server() as running:
        server = running[0]
        page = await open_page(browser, care_url(server, "lonely", "Kim", reconnect="3"))
        await page.wait_for("window.callapp.state === 'waiting'")

        await server.stop()
        assert 0 < await countdown(page) <= 3
        assert await hook(page, "errorCode") == "server-lost"
        # It gives up after the bound, says so and offers Try again, not Cancel.
        await page.wait_for("window.callapp.reconnectGaveUp", within=20)
        status = str(await hook(page, "status"))
        assert "did not come back within 3 seconds" in status, status
        assert "Try again" in status
        assert await page.evaluate("!document.getElementById('reconnect-retry').hidden")
        assert await page.evaluate("document.getElementById('reconnect-cancel').hidden")
        assert await hook(page, "state") == "error"
        assert_plain(await shown_texts(page))

        # Try again, with the server back: the page is in its room again.
        again = await start_server(running)
        await page.click("#reconnect-retry")
        await page.wait_for(
            "window.callapp.state === 'waiting' && window.callapp.room === 'lonely'", within=20
        )
        assert await page.evaluate("document.getElementById('reconnect').hidden")
        assert again.router.members("lonely") == (await hook(page, "connectionId"),)

        # Cancel stops the retries at once.
        await again.stop()
        await countdown(page)
        await page.click("#reconnect-cancel")
        await page.wait_for("window.callapp.reconnectGaveUp")
        assert await hook(page, "reconnecting") is False
        assert "Stopped reconnecting" in str(await hook(page, "status"))
        assert_plain(await shown_texts(page))
        # Hang up works here too, and leaves no panel behind.
        await page.click("#hangup")
        await page.wait_for("window.callapp.state === 'idle'")
        assert await page.evaluate("document.getElementById('reconnect').hidden")
        await start_server(running)


#: Make the page's next getDisplayMedia / getUserMedia fail the way a browser does.
REFUSE = """((method, name, message) => {
  navigator.mediaDevices[method] = () => Promise.reject(
    name === "TypeError" ? new TypeError(message) : new DOMException(message, name));
  return true;
})"""


async def test_problems_are_said_in_plain_words_with_what_to_do(
    server: SignalingServer, browser: Chromium
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        refusing = await launch_or_skip(stack, grant_media=False)
        dee = await open_page(refusing, care_url(server, "plain", "Dee"))
        await dee.wait_for("window.callapp.state === 'waiting'")

        # Camera and microphone refused: what happened, and what to do.
        problem = str(await hook(dee, "mediaProblem"))
        assert problem.startswith(
            "The browser did not allow the camera and microphone. Allow them in the site "
            "settings, then press Try again."
        ), problem
        assert await hook(dee, "errorCode") == "media"
        assert await dee.evaluate("!document.getElementById('media-retry').hidden")
        pickers = await hook(dee, "devices")
        assert isinstance(pickers, dict)
        assert pickers["videoinput"]["disabled"] is True
        assert pickers["videoinput"]["options"][0]["label"] == "Allow the camera to choose one"
        assert_plain(await shown_texts(dee))

        # Ana joins: Dee sees her, she gets nothing from Dee yet.
        ana = await open_page(browser, care_url(server, "plain", "Ana"))
        await in_call(dee)
        await ana.wait_for("window.callapp.state === 'connected'")
        assert await frames(ana) == 0

        # Allowed now (as in the site settings): Try again brings Dee's camera
        # into the call that is up.
        origin = server.http_url.rstrip("/")
        await refusing.send(
            "Browser.grantPermissions",
            {"permissions": ["videoCapture", "audioCapture"], "origin": origin},
        )
        await dee.click("#media-retry")
        await dee.wait_for(
            "document.getElementById('media-problem').hidden"
            " && document.getElementById('local-video').srcObject.getVideoTracks().length === 1",
            within=15,
        )
        await in_call(ana, within=30)
        assert await dee.evaluate("window.callapp.devices.videoinput.disabled") is False

        # Screen sharing refused, or impossible: said in words, the call goes on.
        await dee.evaluate(f"({REFUSE})('getDisplayMedia', 'NotAllowedError', 'Permission denied')")
        await dee.click("#screen")
        notice = str(await dee.wait_for("window.callapp.notice", within=10))
        assert notice == (
            "Screen sharing did not start: it was cancelled or not allowed. "
            "Press Share screen to try again."
        )
        assert_plain(await shown_texts(dee))
        await dee.evaluate(f"({REFUSE})('getDisplayMedia', 'TypeError', 'x is undefined')")
        await dee.press("s")
        await dee.wait_for("window.callapp.notice.includes('could not start in this browser')")
        assert_plain(await shown_texts(dee))
        assert await hook(dee, "sharing") is False

        # A camera that will not start: the old one goes on, the picker goes back.
        await dee.evaluate(f"({REFUSE})('getUserMedia', 'NotReadableError', 'Could not start')")
        assert await dee.evaluate("window.callapp.chooseDevice('videoinput', 'unplugged')") is False
        notice = str(await hook(dee, "notice"))
        assert notice.startswith("That camera could not be started"), notice
        assert "Choose another camera" in notice
        assert await dee.evaluate("window.callapp.peers[0].sendingVideo") == "fake_device_0"
        assert_plain(await shown_texts(dee))
        await dee.click("#notice-close")
        assert await hook(dee, "notice") == ""

        # A full room and a bad room name, for a third person.
        cy = await open_page(browser, care_url(server, "plain", "Cy"))
        await cy.wait_for("window.callapp.errorCode === 'full'")
        assert "Ask for another room" in str(await hook(cy, "status"))
        assert_plain(await shown_texts(cy))
        await cy.navigate(care_url(server, "no spaces", "Cy"))
        await cy.wait_for("window.callapp.errorCode === 'bad-room'")
        assert_plain(await shown_texts(cy))
        for page in (dee, ana, cy):
            assert_plain(await shown_texts(page))


async def test_a_page_told_the_host_ended_the_call_says_so_and_stops_knocking(
    browser: Chromium, procs: Procs
) -> None:
    """The host's app closes (SIGTERM): its BYE ``host-ended`` reaches the page
    before its server goes, and the page ends the call in words instead of
    counting down to a server that is not coming back."""
    quiet = ("--audio", "none", "--speaker", "none", "--size", "320x240", "--fps", "15")
    host = procs.call(
        "host", "--host", "--room", "byes", *quiet, "--allow-loopback", "--calls", "0",
        "--timeout", "0",
    )  # fmt: skip
    _, match = host.wait_line(r"invite: (\S+)", within=30)
    page = await open_page(browser, match.group(1))
    await in_call(page)
    host.popen.send_signal(signal.SIGTERM)
    await page.wait_for("window.callapp.errorCode === 'host-ended'", within=15)
    status = str(await hook(page, "status"))
    assert status.startswith("The host ended the call."), status
    assert await page.evaluate("window.callapp.peers.length") == 0
    assert host.wait_exit(15) == 0, host.output
    # The server is gone with the host: no countdown, no retries, the same words.
    await asyncio.sleep(2.0)
    assert await hook(page, "reconnecting") is False
    assert await page.evaluate("document.getElementById('reconnect').hidden")
    assert str(await hook(page, "status")) == status
    assert_plain(await shown_texts(page))
