"""Settings kept between runs: a plain model and a QSettings-backed store.

:class:`Settings` is a frozen value the window edits; :class:`SettingsStore`
reads and writes it. Tests point the store at a temporary INI file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from PySide6.QtCore import QSettings

#: Set to an INI file path to keep settings there instead of the platform default.
SETTINGS_ENV = "CALLAPP_SETTINGS"

VIDEO_CHOICES = ("camera", "test")
RESOLUTIONS: tuple[tuple[int, int], ...] = ((320, 240), (640, 480), (1280, 720))


@dataclass(frozen=True, slots=True)
class Settings:
    """What the app remembers; defaults suit a first run."""

    server_url: str = "ws://127.0.0.1:8765/ws"
    room: str = ""
    #: "camera", "test" or a path to a video file.
    video: str = "camera"
    width: int = 640
    height: int = 480
    #: Audio source spec: "mic", "mic:DEVICE", "tone:HZ", "none" or a file's path.
    audio: str = "mic"
    #: Speaker: "" for the default, a device name (or part of one), or "none".
    speaker: str = ""
    #: Speaker volume in percent, 0 to 200.
    volume: int = 100
    #: STUN/TURN URLs, e.g. ("stun:stun.example.org:3478",).
    ice_servers: tuple[str, ...] = field(default_factory=tuple)
    #: Host with TLS: PEM certificate and private key files ("" for plain ws://).
    cert_file: str = ""
    key_file: str = ""

    @property
    def tls_files(self) -> tuple[str, str] | None:
        """``(cert, key)`` when Host should serve TLS, else None (the key may be in the cert)."""
        if not self.cert_file:
            return None
        return (self.cert_file, self.key_file or self.cert_file)

    def with_changes(
        self,
        *,
        server_url: str | None = None,
        room: str | None = None,
        video: str | None = None,
        resolution: tuple[int, int] | None = None,
        audio: str | None = None,
        speaker: str | None = None,
        volume: int | None = None,
        ice_servers: tuple[str, ...] | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> Settings:
        """A copy with the given fields replaced."""
        w, h = resolution if resolution is not None else (self.width, self.height)
        return replace(
            self,
            server_url=self.server_url if server_url is None else server_url,
            room=self.room if room is None else room,
            video=self.video if video is None else video,
            width=w,
            height=h,
            audio=self.audio if audio is None else audio,
            speaker=self.speaker if speaker is None else speaker,
            volume=self.volume if volume is None else clamp_volume(volume),
            ice_servers=self.ice_servers if ice_servers is None else ice_servers,
            cert_file=self.cert_file if cert_file is None else cert_file,
            key_file=self.key_file if key_file is None else key_file,
        )


def clamp_volume(percent: int) -> int:
    """A speaker volume in percent, held to 0..200."""
    return max(0, min(200, percent))


def parse_ice_servers(text: str) -> tuple[str, ...]:
    """ICE server URLs from free text: separated by commas, spaces or new lines."""
    pieces = text.replace(",", " ").split()
    return tuple(p for p in pieces if p)


class SettingsStore:
    """Loads and saves :class:`Settings` through QSettings.

    ``path`` (or ``$CALLAPP_SETTINGS``) selects an INI file; without either the
    platform's usual place for organization "callapp", application "callapp".
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        chosen = path if path is not None else os.environ.get(SETTINGS_ENV)
        if chosen is not None:
            self._qs = QSettings(str(Path(chosen)), QSettings.Format.IniFormat)
        else:
            self._qs = QSettings(
                QSettings.Format.IniFormat, QSettings.Scope.UserScope, "callapp", "callapp"
            )

    @property
    def location(self) -> str:
        """The file the settings live in."""
        return self._qs.fileName()

    def load(self) -> Settings:
        """The saved settings; defaults for anything missing or unreadable."""
        d = Settings()
        qs = self._qs
        ice = str(qs.value("call/ice_servers", "") or "")
        return Settings(
            server_url=str(qs.value("connection/server_url", d.server_url) or d.server_url),
            room=str(qs.value("connection/room", d.room) or ""),
            video=str(qs.value("media/video", d.video) or d.video),
            width=_int(qs.value("media/width", d.width), d.width),
            height=_int(qs.value("media/height", d.height), d.height),
            audio=str(qs.value("media/audio", d.audio) or d.audio),
            speaker=str(qs.value("media/speaker", d.speaker) or ""),
            volume=_volume(qs.value("media/volume", d.volume), d.volume),
            ice_servers=parse_ice_servers(ice),
            cert_file=str(qs.value("host/cert_file", "") or ""),
            key_file=str(qs.value("host/key_file", "") or ""),
        )

    def save(self, settings: Settings) -> None:
        """Write ``settings`` and flush them to disk."""
        qs = self._qs
        qs.setValue("connection/server_url", settings.server_url)
        qs.setValue("connection/room", settings.room)
        qs.setValue("media/video", settings.video)
        qs.setValue("media/width", settings.width)
        qs.setValue("media/height", settings.height)
        qs.setValue("media/audio", settings.audio)
        qs.setValue("media/speaker", settings.speaker)
        qs.setValue("media/volume", settings.volume)
        qs.setValue("call/ice_servers", " ".join(settings.ice_servers))
        qs.setValue("host/cert_file", settings.cert_file)
        qs.setValue("host/key_file", settings.key_file)
        qs.sync()


def _int(value: object, default: int) -> int:
    try:
        number = int(str(value))
    except ValueError:
        return default
    return number if number > 0 else default


def _volume(value: object, default: int) -> int:
    try:
        return clamp_volume(int(str(value)))
    except ValueError:
        return default
