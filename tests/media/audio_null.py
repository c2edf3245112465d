"""A real sound device without a sound card: ALSA's ``null`` plugin, for audio tests.

:func:`alsa_null_config` writes an ALSA configuration that adds a PCM named
:data:`NULL_DEVICE` (type ``null``: it discards what is played and records
silence) and makes it the default, then points ``ALSA_CONFIG_PATH`` at it and
has PortAudio scan its devices again. :func:`alsa_without_devices` does the
same with ALSA's stock configuration alone, which on a machine without a
sound card lists no device at all. Child processes inherit the environment,
so a ``callapp call`` started inside either sees the same devices.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from callapp.media.devices import portaudio_problem, refresh_devices

NULL_DEVICE = "callapp_null"
ALSA_CONF = Path("/usr/share/alsa/alsa.conf")

_CONFIG = f"""\
pcm.{NULL_DEVICE} {{
    type null
    hint {{ show on description "Discards what is played, records silence" }}
}}
pcm.!default {{
    type plug
    slave.pcm "{NULL_DEVICE}"
}}
"""


def require_alsa() -> None:
    """Skip the test unless PortAudio loads and ALSA's own configuration is here."""
    problem = portaudio_problem()
    if problem is not None:
        pytest.skip(f"PortAudio is not available: {problem} (scripts/setup.sh installs it)")
    if not ALSA_CONF.is_file():
        pytest.skip(f"no ALSA configuration at {ALSA_CONF}")


@contextlib.contextmanager
def _alsa_config_path(value: str) -> Iterator[None]:
    before = os.environ.get("ALSA_CONFIG_PATH")
    os.environ["ALSA_CONFIG_PATH"] = value
    refresh_devices()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ALSA_CONFIG_PATH", None)
        else:
            os.environ["ALSA_CONFIG_PATH"] = before
        refresh_devices()


@contextlib.contextmanager
def alsa_null_config(folder: Path) -> Iterator[Path]:
    """Within the block, PortAudio sees :data:`NULL_DEVICE` (also as ``default``)."""
    require_alsa()
    path = folder / "asound-null.conf"
    path.write_text(_CONFIG)
    with _alsa_config_path(f"{ALSA_CONF}:{path}"):
        yield path


@contextlib.contextmanager
def alsa_without_devices() -> Iterator[None]:
    """Within the block, ALSA has only its stock configuration (no card here: no device)."""
    require_alsa()
    with _alsa_config_path(str(ALSA_CONF)):
        yield
