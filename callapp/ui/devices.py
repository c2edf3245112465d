"""What the device pickers offer: the system's cameras, microphones and speakers as choices.

Pure apart from :func:`scan_devices`, which asks the system (blocking: the
view-model runs it with ``asyncio.to_thread``). A :class:`Choice` is a label
for people and the spec that goes into ``CallConfig`` (``video``, ``audio``,
``speaker``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The speaker spec for "the system's default" (``CallConfig.speaker`` None).
DEFAULT_SPEAKER = ""
TONE_SPEC = "tone:440"


@dataclass(frozen=True, slots=True)
class Choice:
    label: str
    spec: str


@dataclass(frozen=True, slots=True)
class CameraFound:
    index: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class DeviceScan:
    """What the system has: camera sizes by index, sound device names by direction."""

    cameras: tuple[CameraFound, ...] = ()
    microphones: tuple[str, ...] = ()
    speakers: tuple[str, ...] = ()
    #: False when the cameras were not probed (a call holds one): keep the old list.
    cameras_scanned: bool = True


def camera_choices(cameras: tuple[CameraFound, ...]) -> tuple[Choice, ...]:
    found = tuple(
        Choice(f"Camera {c.index} ({c.width}×{c.height})", f"camera:{c.index}") for c in cameras
    )
    return (Choice("Default camera", "camera"), *found, Choice("Test pattern", "test"))


def microphone_choices(names: tuple[str, ...]) -> tuple[Choice, ...]:
    found = tuple(Choice(name, f"mic:{name}") for name in _real(names))
    return (
        Choice("Default microphone", "mic"),
        *found,
        Choice("Tone (test)", TONE_SPEC),
        Choice("None", "none"),
    )


def speaker_choices(names: tuple[str, ...]) -> tuple[Choice, ...]:
    found = tuple(Choice(name, name) for name in _real(names))
    return (Choice("Default speaker", DEFAULT_SPEAKER), *found, Choice("None", "none"))


def _real(names: tuple[str, ...]) -> list[str]:
    # PortAudio lists ALSA's "default" beside the device it stands for; the
    # "Default ..." choice already says it.
    seen: list[str] = []
    for name in names:
        if name.lower() != "default" and name not in seen:
            seen.append(name)
    return seen


def spec_for(text: str, choices: tuple[Choice, ...]) -> str:
    """The spec of what a picker shows: a choice's label or spec, else the typed text."""
    typed = text.strip()
    for choice in choices:
        if typed == choice.label:
            return choice.spec
    return typed


def speaker_setting(spec: str) -> str | None:
    """``CallConfig.speaker`` from the picker's spec ("" is the default device)."""
    return spec.strip() or None


def scan_devices(*, cameras: bool = True, rescan_audio: bool = False) -> DeviceScan:
    """Ask the system what it has (blocking).

    ``rescan_audio`` makes PortAudio look again (only while no stream is open);
    ``cameras`` False skips opening the cameras (one may be in a call).
    """
    from callapp.call import devices

    if rescan_audio:
        devices.refresh_devices()
    found = (
        tuple(CameraFound(c.index, c.width, c.height) for c in devices.list_cameras())
        if cameras
        else ()
    )
    return DeviceScan(
        cameras=found,
        microphones=tuple(d.name for d in devices.list_audio_devices("input")),
        speakers=tuple(d.name for d in devices.list_audio_devices("output")),
        cameras_scanned=cameras,
    )
