"""Settings kept between runs: a plain model, a QSettings-backed store, and the policy.

:class:`Settings` is a frozen value the window edits; :class:`SettingsStore`
reads and writes it. Tests point the store at a temporary INI file.

The policy (:class:`Overrides`, :func:`effective`, :func:`saved_after_edit`,
:class:`SettingsKeeper`): command-line flags apply to one run and are never
written back; what the person changes (in the Preferences dialog, or the
server and room they typed) is; and nothing is written on every volume tick,
only when asked (the dialog's Save, the window closing).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QSettings

#: Set to an INI file path to keep settings there instead of the platform default.
SETTINGS_ENV = "CALLAPP_SETTINGS"

VIDEO_CHOICES = ("camera", "test")
RESOLUTIONS: tuple[tuple[int, int], ...] = ((320, 240), (640, 480), (1280, 720))
#: The port Host listens on unless the person picks another (0: any free port).
DEFAULT_HOST_PORT = 8765
#: The longest display name the others are shown (``callapp.call.wire.MAX_NAME_CHARS``).
MAX_NAME_LENGTH = 64


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
    #: Send media only through a TURN relay (``iceTransportPolicy: "relay"``).
    relay_only: bool = False
    #: Host with TLS: PEM certificate and private key files ("" for plain ws://).
    cert_file: str = ""
    key_file: str = ""
    #: Your display name, shown to the others ("" until chosen: the call says "Guest").
    name: str = ""
    #: The port Host listens on; 0 for any free port.
    host_port: int = DEFAULT_HOST_PORT

    @property
    def resolution(self) -> tuple[int, int]:
        """``(width, height)`` of the video sent."""
        return (self.width, self.height)

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
        name: str | None = None,
        host_port: int | None = None,
        relay_only: bool | None = None,
    ) -> Settings:
        """A copy with the given fields replaced (None leaves a field as it is)."""
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
            relay_only=self.relay_only if relay_only is None else relay_only,
            cert_file=self.cert_file if cert_file is None else cert_file,
            key_file=self.key_file if key_file is None else key_file,
            name=self.name if name is None else name,
            host_port=self.host_port if host_port is None else clamp_port(host_port),
        )

    def with_overrides(self, overrides: Overrides) -> Settings:
        """These settings with this run's command-line flags over them (:func:`effective`)."""
        return effective(self, overrides)


def clamp_volume(percent: int) -> int:
    """A speaker volume in percent, held to 0..200."""
    return max(0, min(200, percent))


def clamp_port(port: int) -> int:
    """A TCP port, held to 0..65535 (0: any free port)."""
    return max(0, min(65535, port))


def parse_ice_servers(text: str) -> tuple[str, ...]:
    """ICE server URLs from free text: separated by commas, spaces or new lines."""
    pieces = text.replace(",", " ").split()
    return tuple(p for p in pieces if p)


@dataclass(frozen=True, slots=True)
class Overrides:
    """One run's command-line flags: used for this run, never saved.

    None leaves the saved value; anything else replaces it in
    :func:`effective`. Build it from the launcher's flags with :meth:`from_args`.
    """

    server_url: str | None = None
    room: str | None = None
    video: str | None = None
    audio: str | None = None
    speaker: str | None = None
    resolution: tuple[int, int] | None = None
    ice_servers: tuple[str, ...] | None = None
    cert_file: str | None = None
    key_file: str | None = None
    name: str | None = None
    host_port: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Overrides:
        """The overrides in ``callapp``'s parsed flags.

        Reads ``--server``, ``--room``, ``--video``, ``--audio``, ``--speaker``,
        ``--cert``/``--key``, ``--port``, and ``--name``, ``--size WxH``,
        ``--ice-server`` (repeatable) where the parser has them; a flag that is
        missing or None is not an override. ``--port`` counts only when given:
        its default must be None for the saved port to be used.
        """

        def flag(name: str) -> object:
            return getattr(args, name, None)

        def text(name: str) -> str | None:
            value = flag(name)
            return str(value) if value is not None else None

        cert = text("cert")
        port = flag("port")
        ice = flag("ice_server")
        return cls(
            server_url=text("server") or None,
            room=text("room") or None,
            video=text("video") or None,
            audio=text("audio") or None,
            speaker=text("speaker"),  # "" is a choice: the default speaker
            resolution=_size(flag("size")),
            ice_servers=tuple(str(u) for u in ice) if isinstance(ice, list | tuple) else None,
            cert_file=cert or None,
            key_file=(text("key") or "") if cert else None,
            name=text("name"),
            host_port=port if isinstance(port, int) and not isinstance(port, bool) else None,
        )

    def fields(self) -> tuple[str, ...]:
        """The :class:`Settings` fields these flags replace, in the settings' order."""
        given = {f.name for f in fields(self) if getattr(self, f.name) is not None}
        if "resolution" in given:
            given |= {"width", "height"}
        return tuple(f.name for f in fields(Settings) if f.name in given)

    def __bool__(self) -> bool:
        return bool(self.fields())


def _size(value: object) -> tuple[int, int] | None:
    if isinstance(value, tuple) and len(value) == 2:
        w, h = value
        return (int(w), int(h))
    if isinstance(value, str):
        width, sep, height = value.lower().partition("x")
        if sep and width.isdigit() and height.isdigit() and int(width) and int(height):
            return (int(width), int(height))
    return None


def effective(saved: Settings, overrides: Overrides) -> Settings:
    """What this run uses: the saved settings with the command-line flags over them."""
    return saved.with_changes(
        server_url=overrides.server_url,
        room=overrides.room,
        video=overrides.video,
        audio=overrides.audio,
        speaker=overrides.speaker,
        resolution=overrides.resolution,
        ice_servers=overrides.ice_servers,
        cert_file=overrides.cert_file,
        key_file=overrides.key_file,
        name=overrides.name,
        host_port=overrides.host_port,
    )


def changed_fields(old: Settings, new: Settings) -> tuple[str, ...]:
    """The names of the :class:`Settings` fields that differ, in the settings' order."""
    return tuple(f.name for f in fields(Settings) if getattr(old, f.name) != getattr(new, f.name))


def saved_after_edit(saved: Settings, shown: Settings, edited: Settings) -> Settings:
    """What to save after the person turned ``shown`` into ``edited``.

    Only the fields they changed are taken from ``edited``; every other field
    keeps its saved value, so a command-line flag that made ``shown`` differ
    from ``saved`` is not written back unless the person changed that field.
    """
    changed = changed_fields(shown, edited)
    return replace(saved, **{name: getattr(edited, name) for name in changed})


class SettingsStoreLike(Protocol):
    """What :class:`SettingsKeeper` needs of :class:`SettingsStore`."""

    @property
    def location(self) -> str: ...

    def load(self) -> Settings: ...

    def save(self, settings: Settings) -> None: ...


class SettingsKeeper:
    """One run's settings: the saved ones, the flags over them, and when to write.

    ``current`` is what this run uses (:func:`effective`); :meth:`edit` takes
    what the person changed, in memory; :meth:`save` writes the saved settings
    (never the flags) when they changed. The window calls :meth:`save` on the
    Preferences dialog's Save and on close, not on every volume tick::

        keeper = SettingsKeeper(SettingsStore(args.settings), Overrides.from_args(args))
        settings = keeper.current
        ...
        new = await edit_preferences(window, keeper.current, vm.devices,
                                     settings_path=keeper.location)
        if new is not None:
            keeper.edit(new)
            keeper.save()
    """

    def __init__(
        self,
        store: SettingsStoreLike | None,
        overrides: Overrides | None = None,
        *,
        saved: Settings | None = None,
    ) -> None:
        self._store = store
        self._overrides = overrides if overrides is not None else Overrides()
        if saved is None:
            saved = store.load() if store is not None else Settings()
            self._written: Settings | None = saved
        else:
            self._written = None
        self._saved = saved
        self._current = effective(saved, self._overrides)

    @property
    def store(self) -> SettingsStoreLike | None:
        return self._store

    @property
    def overrides(self) -> Overrides:
        return self._overrides

    @property
    def saved(self) -> Settings:
        """What is (or will be, after :meth:`save`) in the settings file."""
        return self._saved

    @property
    def current(self) -> Settings:
        """What this run uses: the saved settings, the flags, and this run's edits."""
        return self._current

    @property
    def location(self) -> str | None:
        """The settings file's path; None without a store."""
        return self._store.location if self._store is not None else None

    @property
    def dirty(self) -> bool:
        """Whether :meth:`save` has something new to write."""
        return self._saved != self._written

    def edit(self, edited: Settings, *, shown: Settings | None = None) -> Settings:
        """The person turned ``shown`` (default: ``current``) into ``edited``.

        The fields they changed go into this run's settings and the saved ones;
        nothing else does (a flag stays this run's only). Pass ``shown`` when
        ``current`` may have moved on while a dialog was open, so that only the
        dialog's own edits are taken. Nothing is written until :meth:`save`.
        Returns the new ``current``.
        """
        before = self._current if shown is None else shown
        self._saved = saved_after_edit(self._saved, before, edited)
        self._current = saved_after_edit(self._current, before, edited)
        return self._current

    def set_volume(self, percent: int) -> Settings:
        """A volume tick: kept in memory only (saved with the rest by :meth:`save`)."""
        return self.edit(self._current.with_changes(volume=percent))

    def save(self) -> bool:
        """Write the saved settings if they changed (or no file exists yet); True if written."""
        store = self._store
        if store is None:
            return False
        missing = not Path(store.location).exists()
        if not (self.dirty or missing):
            return False
        store.save(self._saved)
        self._written = self._saved
        return True


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
        # The keys are those of every earlier version; new settings get new keys
        # and their defaults when a file does not have them.
        return Settings(
            server_url=_text(qs.value("connection/server_url")) or d.server_url,
            room=_text(qs.value("connection/room")),
            video=_text(qs.value("media/video")) or d.video,
            width=_int(qs.value("media/width", d.width), d.width),
            height=_int(qs.value("media/height", d.height), d.height),
            audio=_text(qs.value("media/audio")) or d.audio,
            speaker=_text(qs.value("media/speaker")),
            volume=_volume(qs.value("media/volume", d.volume), d.volume),
            ice_servers=parse_ice_servers(_text(qs.value("call/ice_servers"), " ")),
            relay_only=_text(qs.value("call/relay_only")).lower() in ("true", "1"),
            cert_file=_text(qs.value("host/cert_file")),
            key_file=_text(qs.value("host/key_file")),
            name=_text(qs.value("profile/name"))[:MAX_NAME_LENGTH],
            host_port=_port(qs.value("host/port", d.host_port), d.host_port),
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
        qs.setValue("call/relay_only", "true" if settings.relay_only else "false")
        qs.setValue("host/cert_file", settings.cert_file)
        qs.setValue("host/key_file", settings.key_file)
        qs.setValue("host/port", settings.host_port)
        qs.setValue("profile/name", settings.name)
        qs.sync()


def _text(value: object, joiner: str = ", ") -> str:
    # QSettings reads an unquoted value with commas (a hand-edited file) as a list.
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return joiner.join(str(v).strip() for v in value)
    return str(value).strip()


def _port(value: object, default: int) -> int:
    try:
        number = int(str(value))
    except ValueError:
        return default
    return number if 0 <= number <= 65535 else default


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
