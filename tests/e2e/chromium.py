"""Drive a headless Chromium over the Chrome DevTools Protocol, with websockets only.

No Playwright, Selenium or puppeteer: they download browsers of their own,
which cannot work offline. This speaks just enough CDP for the e2e tests:
open a page, navigate, evaluate JavaScript (awaiting promises), take a
screenshot.

    async with Chromium.launch() as browser:
        page = await browser.new_page()
        await page.navigate("http://127.0.0.1:8080/?room=a")
        await page.wait_for("window.callapp.state === 'connected'")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

#: Flags for a headless Chromium that needs no display and no network: the
#: fake devices paint a test pattern and beep, and WebRTC may use loopback.
HEADLESS_FLAGS: tuple[str, ...] = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    # Background tabs must keep decoding and painting: two pages share a browser.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


class ChromiumError(RuntimeError):
    """Chromium could not be started, or a DevTools command failed."""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable: ``$CHROMIUM`` first, then ``PATH``."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else shutil.which(explicit)
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One tab, attached with a flat CDP session."""

    def __init__(self, browser: Chromium, target_id: str, session_id: str) -> None:
        self._browser = browser
        self.target_id = target_id
        self.session_id = session_id
        self.console: list[str] = []

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._browser.send(method, params, session_id=self.session_id)

    async def navigate(self, url: str, within: float = 15.0) -> None:
        """Load ``url`` and wait (up to ``within`` seconds) for its ``load`` event."""
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("document.readyState === 'complete'", within=within)

    async def evaluate(self, expression: str) -> Any:
        """Value of a JavaScript expression (promises awaited), as JSON."""
        reply = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise ChromiumError(f"{expression!r} threw: {text}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, within: float = 15.0, interval: float = 0.1) -> Any:
        """Poll ``expression`` until it is truthy, for up to ``within`` seconds.

        Returns its value; raises TimeoutError quoting the page's console.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        value: Any = None
        while True:
            with contextlib.suppress(ChromiumError):
                value = await self.evaluate(expression)
                if value:
                    return value
            if loop.time() > deadline:
                raise TimeoutError(
                    f"{expression!r} still {value!r} after {within} s; "
                    f"console: {self.console[-20:]}"
                )
            await asyncio.sleep(interval)

    async def screenshot(self) -> bytes:
        """The visible viewport, as PNG bytes."""
        reply = await self.send("Page.captureScreenshot", {"format": "png"})
        return base64.b64decode(reply["data"])

    async def set_viewport(self, width: int, height: int) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    async def press(self, key: str) -> None:
        """Press and release one key as a person would: a trusted event, so it
        counts as user activation (full screen, screen picker).

        ``key`` is a letter, ``"?"`` (Shift+/) or ``"Escape"``.
        """
        if key == "Escape":
            code, vk, text, modifiers = "Escape", 27, "", 0
        elif key == "?":
            code, vk, text, modifiers = "Slash", 191, "?", 8  # 8: Shift
        elif len(key) == 1 and key.isalpha():
            code, vk, text = f"Key{key.upper()}", ord(key.upper()), key
            modifiers = 8 if key.isupper() else 0
        else:
            raise ValueError(f"press() does not know the key {key!r}")
        event = {
            "key": key,
            "code": code,
            "windowsVirtualKeyCode": vk,
            "nativeVirtualKeyCode": vk,
            "modifiers": modifiers,
        }
        down = (
            {"type": "keyDown", "text": text, "unmodifiedText": text}
            if text
            else {"type": "rawKeyDown"}
        )
        await self.send("Input.dispatchKeyEvent", {**event, **down})
        await self.send("Input.dispatchKeyEvent", {**event, "type": "keyUp"})

    async def click(self, selector: str, count: int = 1) -> None:
        """Click the middle of the element ``selector`` with the mouse (``count``
        2: a double-click), as trusted input."""
        where = await self.evaluate(
            f"""(() => {{
              const element = document.querySelector({json.dumps(selector)});
              if (!element) return null;
              element.scrollIntoView({{block: "center", inline: "center"}});
              const box = element.getBoundingClientRect();
              return [box.x + box.width / 2, box.y + box.height / 2];
            }})()"""
        )
        if where is None:
            raise ChromiumError(f"nothing on the page matches {selector!r}")
        x, y = where
        for clicks in range(1, count + 1):
            for kind in ("mousePressed", "mouseReleased"):
                await self.send(
                    "Input.dispatchMouseEvent",
                    {"type": kind, "x": x, "y": y, "button": "left", "clickCount": clicks},
                )

    async def close(self) -> None:
        with contextlib.suppress(ChromiumError, OSError):
            await self._browser.send("Target.closeTarget", {"targetId": self.target_id})


class Chromium:
    """A headless Chromium process and one DevTools connection to it."""

    def __init__(self, process: asyncio.subprocess.Process, ws: ClientConnection) -> None:
        self.process = process
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self.stderr_tail: deque[str] = deque(maxlen=50)
        self._reader = asyncio.create_task(self._read())
        self._stderr_task: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(
        cls,
        executable: str | None = None,
        *,
        grant_media: bool = True,
        extra_flags: tuple[str, ...] = (),
    ) -> AsyncIterator[Chromium]:
        """Start Chromium; stop it and remove its profile on exit.

        With ``grant_media`` every camera/microphone request is granted as if
        a person had clicked Allow; without it every request is denied.
        """
        permission = (
            "--use-fake-ui-for-media-stream" if grant_media else "--deny-permission-prompts"
        )
        path = executable or find_chromium()
        if path is None:
            raise ChromiumError("no chromium executable found (set $CHROMIUM or install chromium)")
        with tempfile.TemporaryDirectory(prefix="callapp-chromium-") as profile:
            process = await asyncio.create_subprocess_exec(
                path,
                *HEADLESS_FLAGS,
                permission,
                *extra_flags,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            browser: Chromium | None = None
            try:
                url, early = await _devtools_url(process)
                ws = await connect(url, max_size=None, ping_interval=None)
                browser = cls(process, ws)
                browser.stderr_tail.extend(early)
                browser._stderr_task = asyncio.create_task(browser._drain_stderr())
                yield browser
            finally:
                if browser is not None:
                    await browser._close()
                await _terminate(process)

    async def new_page(self) -> Page:
        """A new tab showing about:blank, attached and ready for commands."""
        # A window of its own keeps every page visible, so each one paints
        # (requestVideoFrameCallback does not fire in a background tab).
        created = await self.send("Target.createTarget", {"url": "about:blank", "newWindow": True})
        target_id = created["targetId"]
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target_id, "flatten": True}
        )
        page = Page(self, target_id, attached["sessionId"])
        self._pages[page.session_id] = page
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        return page

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send one CDP command; its result, or ChromiumError."""
        command_id = next(self._ids)
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        try:
            await self._ws.send(json.dumps(message))
            return await asyncio.wait_for(future, timeout=30)
        finally:
            self._pending.pop(command_id, None)

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                message = json.loads(frame)
                if "id" in message:
                    future = self._pending.get(message["id"])
                    if future is None or future.done():
                        continue
                    if "error" in message:
                        future.set_exception(ChromiumError(f"{message['error']}"))
                    else:
                        future.set_result(message.get("result", {}))
                elif message.get("method") == "Runtime.consoleAPICalled":
                    page = self._pages.get(message.get("sessionId", ""))
                    if page is not None:
                        args = message["params"].get("args", [])
                        text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
                        page.console.append(f"{message['params'].get('type')}: {text}")
        except Exception as exc:  # the connection went away: fail whoever waits
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ChromiumError(f"DevTools connection lost: {exc!r}"))
            return
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChromiumError("DevTools connection closed"))

    async def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.stderr_tail.append(line.decode(errors="replace").rstrip())

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send("Browser.close"), timeout=3)
        await self._ws.close()
        for task in (self._reader, self._stderr_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def _devtools_url(process: asyncio.subprocess.Process) -> tuple[str, list[str]]:
    """Read stderr until Chromium prints its DevTools address."""
    assert process.stderr is not None
    seen: list[str] = []

    async def scan() -> str:
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip()
            seen.append(line)
            marker = "DevTools listening on "
            if marker in line:
                return line.split(marker, 1)[1].strip()
        raise ChromiumError("chromium exited before DevTools listened: " + "\n".join(seen[-20:]))

    try:
        return await asyncio.wait_for(scan(), timeout=30), seen
    except TimeoutError:
        raise ChromiumError("no DevTools address after 30 s: " + "\n".join(seen[-20:])) from None


async def _terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=5)
    except TimeoutError:
        process.kill()
        await process.wait()


async def launch_or_skip(
    stack: contextlib.AsyncExitStack,
    grant_media: bool = True,
    extra_flags: tuple[str, ...] = (),
) -> Chromium:
    """A headless Chromium closed with ``stack``; skips the test if there is none."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium not found: run scripts/setup.sh or set $CHROMIUM")
    try:
        return await stack.enter_async_context(
            Chromium.launch(executable, grant_media=grant_media, extra_flags=extra_flags)
        )
    except ChromiumError as exc:
        pytest.skip(f"Chromium could not start: {exc}")
