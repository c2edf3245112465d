"""Sound devices through PortAudio (the ``sounddevice`` package).

PortAudio is loaded on first use, not on import: a machine without the
library (``libportaudio2`` on Debian) simply has no devices, and the audio
sources and sinks fall back to silence and discarding. PortAudio scans the
devices once when it starts; :func:`refresh_devices` scans again (after a
device was plugged in, or the ALSA configuration changed).

A device is chosen by index, by exact name, or by a part of its name that
matches one device only (case-insensitive), e.g. ``"USB"`` or ``"null"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, Protocol

from callapp.media.pcm import SAMPLE_RATE

logger = logging.getLogger(__name__)

Direction = Literal["input", "output"]

#: sounddevice's stream callback: ``(data, frames, time, status)``.
StreamCallback = Callable[[Any, int, Any, Any], None]

_lock = threading.Lock()
_module: ModuleType | None = None
_load_error: str | None = None


class AudioState(enum.StrEnum):
    STARTING = "starting"  # opening the device
    LIVE = "live"  # the device is recording / playing
    FALLBACK = "fallback"  # no usable device: sending silence / discarding
    OFF = "off"  # no device was asked for (``none``)
    STOPPED = "stopped"  # stop() was called


@dataclass(frozen=True, slots=True)
class AudioStatus:
    """What a microphone or speaker is doing, in a form a status line can show."""

    state: AudioState
    device: str | None  # the device's name, None for the default or none
    message: str  # e.g. "No microphone found: the other person will hear silence"


class PaceGuard:
    """Holds back a device callback that runs faster than real time.

    A real device calls back at its sample rate. A device without a clock
    (ALSA's ``null``, some virtual devices) calls back as fast as it can,
    which would spin a core and flood the call; this sleeps on the audio
    thread whenever more than ``slack`` seconds of samples are ahead of the
    monotonic clock. It never sleeps for a device that keeps time.
    """

    def __init__(self, rate: int, *, slack: float = 0.1) -> None:
        self.rate = rate
        self.slack = slack
        self.samples = 0
        self.throttled = 0
        """How many callbacks had to wait."""
        self._start: float | None = None

    def after(self, samples: int) -> None:
        """Count ``samples`` just handled; sleep if they run ahead of the clock."""
        now = time.monotonic()
        if self._start is None:
            self._start = now
        self.samples += samples
        ahead = self.samples / self.rate - (now - self._start)
        if ahead > self.slack:
            self.throttled += 1
            time.sleep(ahead - self.slack / 2)


class AudioStream(Protocol):
    """The part of a ``sounddevice`` stream the tracks use; tests inject fakes."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class AudioDeviceError(LookupError):
    """No device matches what was asked for; ``str()`` says why, for people."""


@dataclass(frozen=True, slots=True)
class AudioDevice:
    """A PortAudio device, as :func:`list_audio_devices` finds it."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate: float
    is_default_input: bool = False
    is_default_output: bool = False

    @property
    def is_input(self) -> bool:
        return self.max_input_channels > 0

    @property
    def is_output(self) -> bool:
        return self.max_output_channels > 0

    @property
    def spec(self) -> str:
        """The source spec that records from this device (``mic:NAME``)."""
        return f"mic:{self.name}"


def sounddevice_module() -> ModuleType | None:
    """The ``sounddevice`` module, or None when PortAudio cannot be loaded."""
    global _module, _load_error
    with _lock:
        if _module is None and _load_error is None:
            try:
                import sounddevice  # type: ignore[import-untyped]
            except (OSError, ImportError) as exc:  # no libportaudio2, or not installed
                _load_error = str(exc)
                logger.warning("no sound devices: PortAudio is not available (%s)", exc)
            else:
                _module = sounddevice
        return _module


def portaudio_problem() -> str | None:
    """Why PortAudio could not be loaded, or None if it was (or was not tried yet)."""
    sounddevice_module()
    return _load_error


def refresh_devices() -> None:
    """Scan for devices again. Only while no audio stream is open."""
    sd = sounddevice_module()
    if sd is None:
        return
    with _lock:
        sd._terminate()
        sd._initialize()


def list_audio_devices(direction: Direction | None = None) -> list[AudioDevice]:
    """The devices PortAudio knows, optionally only those that can record or play."""
    sd = sounddevice_module()
    if sd is None:
        return []
    try:
        raw = sd.query_devices()
        apis = sd.query_hostapis()
        default_in, default_out = _defaults(sd)
    except Exception as exc:  # PortAudio in a bad state: treat as no devices
        logger.warning("listing sound devices failed: %s", exc)
        return []
    devices = []
    for info in raw:
        index = int(info["index"])
        device = AudioDevice(
            index=index,
            name=str(info["name"]),
            host_api=str(apis[int(info["hostapi"])]["name"]),
            max_input_channels=int(info["max_input_channels"]),
            max_output_channels=int(info["max_output_channels"]),
            default_sample_rate=float(info["default_samplerate"]),
            is_default_input=index == default_in,
            is_default_output=index == default_out,
        )
        if direction == "input" and not device.is_input:
            continue
        if direction == "output" and not device.is_output:
            continue
        devices.append(device)
    return devices


def _defaults(sd: ModuleType) -> tuple[int, int]:
    default_in, default_out = sd.default.device
    return int(default_in), int(default_out)


def find_device(choice: int | str | None, direction: Direction) -> AudioDevice:
    """The device ``choice`` names (None or ``""``: the default one).

    Raises :exc:`AudioDeviceError` with a message for people when there is no
    such device, it cannot ``direction``, or a name matches several devices.
    """
    what = _device_word(direction)
    devices = list_audio_devices(direction)
    if not devices:
        problem = portaudio_problem()
        detail = f" (PortAudio is not available: {problem})" if problem else ""
        raise AudioDeviceError(f"No {what} found{detail}")
    if choice is None or choice == "":
        for device in devices:
            if device.is_default_input if direction == "input" else device.is_default_output:
                return device
        return devices[0]  # no default set: the first that works that way
    if isinstance(choice, int) or choice.strip().isdigit():
        index = int(choice)
        for device in devices:
            if device.index == index:
                return device
        raise AudioDeviceError(f"No {what} with index {index}")
    name = choice.strip()
    exact = [d for d in devices if d.name == name]
    if exact:
        return exact[0]
    partial = [d for d in devices if name.lower() in d.name.lower()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise AudioDeviceError(f"No {what} named {name!r}")
    names = ", ".join(repr(d.name) for d in partial)
    raise AudioDeviceError(f"{name!r} matches several {what}s: {names}")


def device_label(choice: int | str | None) -> str | None:
    """``choice`` (an index or a name) as :attr:`AudioStatus.device`; None for the default."""
    return None if choice is None or choice == "" else str(choice)


def open_portaudio_stream(
    direction: Direction,
    device: AudioDevice,
    channels: int,
    callback: StreamCallback,
    finished: Callable[[], None],
    **options: Any,
) -> AudioStream:
    """A not yet started 48 kHz ``int16`` stream on ``device``, at PortAudio's lowest latency.

    The microphone and the speaker want the same stream but for its
    direction; ``options`` are passed on to ``sounddevice`` (e.g. ``blocksize``).
    """
    sd = sounddevice_module()
    if sd is None:
        raise OSError("PortAudio is not available")
    kind = sd.InputStream if direction == "input" else sd.OutputStream
    stream: AudioStream = kind(
        device=device.index,
        samplerate=SAMPLE_RATE,
        channels=channels,
        dtype="int16",
        latency="low",
        callback=callback,
        finished_callback=finished,
        **options,
    )
    return stream


async def open_device_stream(
    choice: int | str | None,
    direction: Direction,
    open_stream: Callable[[AudioDevice], AudioStream],
) -> tuple[AudioDevice, AudioStream]:
    """Find the device ``choice`` names, open a stream on it and start it, off the event loop.

    How a microphone and a speaker get going: finding the device and opening
    it block on PortAudio, so both run on worker threads, and whatever goes
    wrong becomes one :exc:`AudioDeviceError` whose ``str()`` says, for
    people, which device could not be used and why (the caller adds what
    that means for the call and falls back).
    """
    what = _device_word(direction)
    try:
        device = await asyncio.to_thread(find_device, choice, direction)
    except AudioDeviceError as exc:
        if choice is None or choice == "":
            raise AudioDeviceError(f"No {what} found") from exc
        raise
    try:
        stream = await asyncio.to_thread(open_stream, device)
        await asyncio.to_thread(stream.start)
    except Exception as exc:
        logger.warning("opening %s %s failed: %s", what, device.name, exc)
        raise AudioDeviceError(f"The {what} {device.name!r} could not be opened ({exc})") from exc
    return device, stream


def close_stream(stream: AudioStream) -> None:
    """Stop and close ``stream``, ignoring errors: a device that went away fails at both."""
    with contextlib.suppress(Exception):
        stream.stop()
    with contextlib.suppress(Exception):
        stream.close()


def notify_loop(loop: asyncio.AbstractEventLoop | None, callback: Callable[[], None]) -> None:
    """Have ``loop`` run ``callback`` soon; from PortAudio's thread, never waiting.

    Nothing happens without a loop or once it is closed: a device callback
    can outlive the loop that opened it.
    """
    if loop is not None:
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(callback)


def report_status(
    on_status: Callable[[AudioStatus], None] | None, status: AudioStatus, what: str
) -> None:
    """Tell ``on_status`` (if any) about ``status``; a failing callback is logged, not raised.

    The callback is the application's; the microphone or speaker that calls
    it must keep working whatever it does. ``what`` names the device kind in the log.
    """
    if on_status is not None:
        try:
            on_status(status)
        except Exception:
            logger.exception("%s status callback failed", what)


def _device_word(direction: Direction) -> str:
    return "microphone" if direction == "input" else "speaker"
