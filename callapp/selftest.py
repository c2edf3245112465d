"""``callapp --self-test``: can this installation make a call?

Meant first for the frozen bundle (a machine with no Python, where a missing
library shows up only at run time), but it runs the same from a checkout.
Each check prints one line, ``ok`` or ``FAIL`` with a reason, and the exit
code is 0 only when every check passed. The whole run takes a few seconds and
needs no display, no camera, no sound card and no network beyond loopback.

A check that cannot apply yet (a part of the app that this build does not
have) passes with a note that says so, and the note always contains the word
``skipped`` so that a packaging test can insist on it being absent.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from typing import Any

from callapp import eventloop

CHECK_TIMEOUT_S = 10.0
CAMERA_PROBE_TIMEOUT_S = 3.0
#: Set (to anything) to load the device back-ends without opening a device.
SKIP_DEVICES_ENV = "CALLAPP_SELFTEST_SKIP_DEVICES"


@dataclass(frozen=True)
class Result:
    """The outcome of one check: its name, whether it passed, and why."""

    name: str
    ok: bool
    detail: str
    seconds: float

    def line(self) -> str:
        """The one line printed for this check."""
        status = "ok  " if self.ok else "FAIL"
        return f"{status} {self.name}: {self.detail} ({self.seconds:.2f} s)"


class CheckFailed(Exception):
    """Raised by a check with the reason it failed."""


def _frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def _run(coroutine: Coroutine[Any, Any, str]) -> str:
    """Run ``coroutine`` on a fresh loop: a selector loop on Windows, as the app does.

    The Proactor loop Windows defaults to can stop receiving UDP after an ICMP
    port-unreachable (CPython #91227, #127057), which is the call's transport.
    """
    return eventloop.run(coroutine)


def check_runtime() -> str:
    """Report what is running: Python, frozen or not, platform."""
    kind = "frozen bundle" if _frozen() else "source checkout"
    return f"Python {sys.version.split()[0]} on {sys.platform}, {kind}"


def check_qt() -> str:
    """Start Qt (offscreen when there is no display) and show a window."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore
    from PySide6.QtGui import QGuiApplication, QImage
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "callapp"])
    label = QLabel("callapp self-test")
    label.resize(160, 40)
    label.show()
    app.processEvents()
    visible = label.isVisible()
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(0x00FF00)
    pixel = image.pixel(3, 3) & 0xFFFFFF
    label.close()
    label.deleteLater()
    app.processEvents()
    if not visible:
        raise CheckFailed("a window did not become visible")
    if pixel != 0x00FF00:
        raise CheckFailed(f"QImage painted {pixel:06x}, expected 00ff00")
    platform = QGuiApplication.platformName()
    icon = _render_icon()
    return f"Qt {QtCore.qVersion()}, platform {platform}, a window shown, {icon}"


def _render_icon() -> str:
    """Draw the app icon the way the window finds it: inside the package (callapp/resources)."""
    from PySide6.QtGui import QIcon

    from callapp.ui.icon import ICON_FILES, icon_file

    path = icon_file()
    if path is None:
        raise CheckFailed(f"no {ICON_FILES[0]} inside the installed package")
    pixmap = QIcon(str(path)).pixmap(64, 64)
    if pixmap.isNull():
        raise CheckFailed(f"Qt cannot draw {path.name} (no SVG image plugin?)")
    return f"icon {path.name} drawn at {pixmap.width()}x{pixmap.height()}"


def _test_pattern(width: int, height: int) -> Any:
    import numpy as np

    x = np.linspace(0, 255, width, dtype=np.float64)
    y = np.linspace(0, 255, height, dtype=np.float64)
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = x[None, :].astype(np.uint8)
    rgb[..., 1] = y[:, None].astype(np.uint8)
    rgb[..., 2] = 128
    return rgb


def check_video_codec() -> str:
    """Encode a test pattern with aiortc's VP8 encoder and decode it back."""
    import numpy as np
    from aiortc.codecs import depayload, get_decoder, get_encoder
    from aiortc.jitterbuffer import JitterFrame
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from av import VideoFrame

    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    encoder = get_encoder(codec)
    decoder = get_decoder(codec)
    rgb = _test_pattern(320, 240)
    frame = VideoFrame.from_ndarray(rgb, format="rgb24")
    frame.pts = 0
    frame.time_base = Fraction(1, 90000)
    payloads, timestamp = encoder.encode(frame, force_keyframe=True)
    if not payloads:
        raise CheckFailed("the VP8 encoder produced no packets")
    data = b"".join(depayload(codec, p) for p in payloads)
    decoded = decoder.decode(JitterFrame(data=data, timestamp=timestamp))
    if not decoded:
        raise CheckFailed(f"the VP8 decoder returned no frame for {len(data)} bytes")
    picture = decoded[0]
    if not isinstance(picture, VideoFrame):
        raise CheckFailed(f"the VP8 decoder returned a {type(picture).__name__}")
    out = picture.to_ndarray(format="rgb24")
    if out.shape != rgb.shape:
        raise CheckFailed(f"decoded {out.shape}, sent {rgb.shape}")
    error = float(np.abs(out.astype(np.int16) - rgb.astype(np.int16)).mean())
    if error > 12.0:
        raise CheckFailed(f"decoded picture differs by {error:.1f} per channel on average")
    return f"VP8 320x240 keyframe, {len(payloads)} packets, mean error {error:.1f}"


def check_audio_codec() -> str:
    """Encode 20 ms of a tone with aiortc's Opus encoder and decode it back."""
    import numpy as np
    from aiortc.codecs import get_decoder, get_encoder
    from aiortc.jitterbuffer import JitterFrame
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from av import AudioFrame

    codec = RTCRtpCodecParameters(
        mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111
    )
    encoder = get_encoder(codec)
    decoder = get_decoder(codec)
    samples = 960
    t = np.arange(samples) / 48000
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    stereo = np.repeat(tone, 2).reshape(1, -1)
    frame = AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = 48000
    frame.pts = 0
    frame.time_base = Fraction(1, 48000)
    payloads, timestamp = encoder.encode(frame)
    if not payloads:
        raise CheckFailed("the Opus encoder produced no packets")
    decoded = decoder.decode(JitterFrame(data=payloads[0], timestamp=timestamp))
    got = sum(f.samples for f in decoded if isinstance(f, AudioFrame))
    if got != samples:
        raise CheckFailed(f"the Opus decoder returned {got} samples, expected {samples}")
    return f"Opus 48 kHz stereo, {len(payloads[0])} bytes for 20 ms"


def check_peer_connection() -> str:
    """Two RTCPeerConnections in this process send a video frame over loopback."""
    if importlib.util.find_spec("callapp.call.ice") is None:
        return "skipped: callapp.call.ice is not in this build"
    return _run(_peer_connection_round_trip())


async def _peer_connection_round_trip() -> str:
    from aiortc import RTCPeerConnection, VideoStreamTrack

    ice: Any = importlib.import_module("callapp.call.ice")
    caller = RTCPeerConnection(ice.configuration([]))
    callee = RTCPeerConnection(ice.configuration([]))
    received: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    tasks: list[asyncio.Task[None]] = []

    async def first_frame(track: Any) -> None:
        try:
            frame = await track.recv()
        except Exception as exc:
            if not received.done():
                received.set_exception(exc)
        else:
            if not received.done():
                received.set_result(frame)

    @callee.on("track")
    def on_track(track: Any) -> None:
        tasks.append(asyncio.ensure_future(first_frame(track)))

    started = time.perf_counter()
    try:
        caller.addTrack(VideoStreamTrack())
        ice.tune_gathering(caller, gather_timeout=1.0, allow_loopback=True)
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        ice.tune_gathering(callee, gather_timeout=1.0, allow_loopback=True)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        try:
            frame = await asyncio.wait_for(received, timeout=8)
        except TimeoutError as exc:
            state = f"ICE {caller.iceConnectionState}/{callee.iceConnectionState}"
            raise CheckFailed(f"no frame arrived in 8 s ({state})") from exc
    finally:
        await caller.close()
        await callee.close()
        for task in tasks:
            task.cancel()
    elapsed_ms = (time.perf_counter() - started) * 1000
    return f"{frame.width}x{frame.height} frame over loopback {elapsed_ms:.0f} ms after the offer"


def check_signaling_server() -> str:
    """Start the embedded signaling server on loopback, connect to it, stop it."""
    if importlib.util.find_spec("callapp.signaling.server") is None:
        return "skipped: callapp.signaling.server is not in this build"
    return _run(_signaling_round_trip())


async def _signaling_round_trip() -> str:
    import urllib.request

    import websockets

    server_module = importlib.import_module("callapp.signaling.server")
    server: Any = server_module.SignalingServer(host="127.0.0.1", port=0)
    await server.start()
    try:
        url: str = server.url
        async with websockets.connect(url, open_timeout=5) as ws:
            first = await asyncio.wait_for(ws.recv(), timeout=5)
        greeting = first if isinstance(first, str) else first.decode()

        def fetch_page() -> tuple[int, bytes]:
            with urllib.request.urlopen(server.http_url, timeout=5) as response:
                return int(response.status), bytes(response.read())

        status, page = await asyncio.to_thread(fetch_page)
    finally:
        await server.stop()
    if '"welcome"' not in greeting:
        raise CheckFailed(f"expected a welcome message, got {greeting[:80]!r}")
    if status != 200 or b"<html" not in page.lower():
        raise CheckFailed(f"GET / answered {status} with {page[:60]!r}")
    return f"started at {url}, greeted a client, served / ({len(page)} bytes), stopped"


def check_web_assets() -> str:
    """The browser client files (package data) are present when the app has any."""
    try:
        web = resources.files("callapp.signaling") / "web"
    except ModuleNotFoundError as exc:
        raise CheckFailed(f"callapp.signaling is missing: {exc}") from exc
    if not web.is_dir():
        return "skipped: this build has no callapp/signaling/web"
    names = sorted(entry.name for entry in web.iterdir() if entry.is_file())
    if not names:
        raise CheckFailed("callapp/signaling/web is empty")
    return f"{len(names)} files: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"


def check_camera() -> str:
    """OpenCV loads; probe camera 0 without waiting long for it."""
    import cv2

    backends = [cv2.videoio_registry.getBackendName(b) for b in _camera_backends(cv2)]
    found: list[str] = []

    def probe() -> None:
        capture = cv2.VideoCapture(0)
        try:
            found.append("camera 0 opened" if capture.isOpened() else "no camera found")
        finally:
            capture.release()

    if os.environ.get(SKIP_DEVICES_ENV):
        # CI on macOS: opening a camera from an unsigned app without the
        # user's consent is up to TCC, which may stall or end the process.
        outcome = f"camera not opened ({SKIP_DEVICES_ENV} is set)"
    else:
        thread = threading.Thread(target=probe, name="selftest-camera", daemon=True)
        thread.start()
        thread.join(CAMERA_PROBE_TIMEOUT_S)
        outcome = found[0] if found else f"no answer in {CAMERA_PROBE_TIMEOUT_S:.0f} s"
    ffmpeg = _opencv_ffmpeg_round_trip(cv2)
    return (
        f"OpenCV {cv2.__version__}, back-ends {', '.join(backends) or 'none'}; {ffmpeg}; {outcome}"
    )


def _opencv_ffmpeg_round_trip(cv2: Any) -> str:
    """Write and read back a short video through OpenCV's FFmpeg back-end.

    The Linux bundle lets OpenCV share PyAV's FFmpeg libraries; this is what
    proves that OpenCV still works on them. Builds without the back-end say so.
    """
    import tempfile

    import numpy as np

    if "FFMPEG" not in {cv2.videoio_registry.getBackendName(b) for b in _backends(cv2)}:
        return "no FFmpeg back-end"
    frames, size = 5, (64, 48)
    with tempfile.TemporaryDirectory(prefix="callapp-selftest-") as tmp:
        path = os.path.join(tmp, "pattern.avi")
        writer = cv2.VideoWriter(path, cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
        if not writer.isOpened():
            raise CheckFailed("OpenCV's FFmpeg back-end cannot write a video")
        for i in range(frames):
            writer.write(np.full((size[1], size[0], 3), 40 * i, dtype=np.uint8))
        writer.release()
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        read = 0
        while True:
            ok, picture = capture.read()
            if not ok:
                break
            if picture.shape[:2] != (size[1], size[0]):
                raise CheckFailed(f"OpenCV read a {picture.shape} frame, wrote {size}")
            read += 1
        capture.release()
    if read != frames:
        raise CheckFailed(f"OpenCV's FFmpeg back-end read {read} of {frames} frames")
    return f"FFmpeg back-end wrote and read {frames} frames"


def _backends(cv2: Any) -> list[Any]:
    try:
        return list(cv2.videoio_registry.getBackends())
    except AttributeError:
        return []


def _camera_backends(cv2: Any) -> list[Any]:
    try:
        return list(cv2.videoio_registry.getCameraBackends())
    except AttributeError:
        return []


def check_audio_devices() -> str:
    """PortAudio loads and lists devices; without it calls are silent, not broken."""
    if importlib.util.find_spec("callapp.media.devices") is None:
        return "skipped: no audio back-end in this build"
    devices: Any = importlib.import_module("callapp.media.devices")
    if devices.sounddevice_module() is None:
        # The app falls back to silence and discarding: a note, not a failure.
        return f"no PortAudio, calls will be silent ({devices.portaudio_problem()})"
    sd: Any = devices.sounddevice_module()
    inputs = len(devices.list_audio_devices("input"))
    outputs = len(devices.list_audio_devices("output"))
    version = str(sd.get_portaudio_version()[1]).split(",")[0]
    return f"PortAudio loads ({version}): {inputs} input, {outputs} output devices"


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("runtime", check_runtime),
    ("qt", check_qt),
    ("video codec", check_video_codec),
    ("audio codec", check_audio_codec),
    ("peer connection", check_peer_connection),
    ("signaling server", check_signaling_server),
    ("web assets", check_web_assets),
    ("camera", check_camera),
    ("audio devices", check_audio_devices),
]


#: Checks that must run on the main thread (Qt's GUI objects live there).
MAIN_THREAD_CHECKS = {"qt"}


def run_check(name: str, check: Callable[[], str]) -> Result:
    """Run one check, turning an exception or a hang into a FAIL with its reason.

    Checks other than Qt run on a worker thread so that one that hangs (a
    device probe, a server that never answers) fails after
    ``CHECK_TIMEOUT_S`` instead of holding the whole self-test.
    """
    start = time.perf_counter()
    outcome: list[tuple[bool, str]] = []

    def attempt() -> None:
        try:
            outcome.append((True, check()))
        except CheckFailed as exc:
            outcome.append((False, str(exc)))
        except Exception as exc:
            outcome.append((False, f"{type(exc).__name__}: {exc}"))

    if name in MAIN_THREAD_CHECKS:
        attempt()
    else:
        worker = threading.Thread(target=attempt, name=f"selftest-{name}", daemon=True)
        worker.start()
        worker.join(CHECK_TIMEOUT_S)
    ok, detail = outcome[0] if outcome else (False, f"no answer in {CHECK_TIMEOUT_S:.0f} s")
    return Result(name, ok, detail, time.perf_counter() - start)


def _emit(text: str) -> None:
    if sys.stdout is not None:  # a windowed Windows exe has no stdout
        print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every check, print one line each; return 0 only when all passed."""
    parser = argparse.ArgumentParser(prog="callapp --self-test", description=__doc__)
    parser.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", default=[], help="run only these checks")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    selected = [(n, c) for n, c in CHECKS if not args.only or n in args.only]
    if not selected:
        parser.error(f"no such check; known: {', '.join(n for n, _ in CHECKS)}")
    results = []
    for name, check in selected:
        result = run_check(name, check)
        results.append(result)
        _emit(result.line())
    failed = [r for r in results if not r.ok]
    _emit(f"self-test: {len(results) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
