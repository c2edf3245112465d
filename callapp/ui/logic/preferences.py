"""The Preferences dialog without a window: checks, wording, and what a change does.

The dialog (:mod:`callapp.ui.views.preferences`) only renders a
:class:`PreferencesForm` and reads it back; everything else is here:

- :func:`form_problems`: what is wrong with the form, in plain words, by field
  (a bad ICE server line, a certificate file that is not there, ...);
- :func:`settings_from_form`: the :class:`~callapp.ui.settings.Settings` it stands for;
- :func:`preference_changes`, :func:`changes_needing_restart`,
  :func:`change_notes`: which changes reach a call in progress at once and
  which wait for the next call or the next time you host.

What reaches a running call is what the engine can change there:
``CallSession.set_volume`` (the speaker volume) and ``CallSession.set_name``
(the others are told). The camera, microphone and speaker are opened when a
call starts, and the video size and ICE servers are fixed by its
negotiation, so those apply to the next call; the hosting port and the
certificate are the server's, and apply the next time you host.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from callapp.ui.settings import (
    MAX_NAME_LENGTH,
    RESOLUTIONS,
    Settings,
    changed_fields,
    clamp_port,
    clamp_volume,
    parse_ice_servers,
)

#: What the others see when no name is set (``callapp.call.wire.DEFAULT_NAME``).
DEFAULT_NAME = "Guest"
ICE_SCHEMES = ("stun", "stuns", "turn", "turns")
ICE_EXAMPLE = "stun:stun.example.org:3478"
#: Friendly words beside the sizes people pick from.
SIZE_WORDS: dict[tuple[int, int], str] = {
    (320, 240): "small",
    (640, 480): "standard",
    (1280, 720): "HD",
}

# -- checks ------------------------------------------------------------------------


def ice_server_problem(url: str) -> str | None:
    """Why ``url`` is not a STUN/TURN address the engine can use; None when it is.

    Accepts what aiortc's ``parse_stun_turn_uri`` does: ``stun:HOST[:PORT]``,
    ``stuns:...``, ``turn:HOST[:PORT][?transport=udp|tcp]``, ``turns:...``.
    """
    scheme, colon, rest = url.partition(":")
    if not colon or scheme.lower() not in ICE_SCHEMES:
        return (
            f"“{url}” does not start with stun:, stuns:, turn: or turns:."
            f" Write it like {ICE_EXAMPLE}."
        )
    if scheme not in ICE_SCHEMES:
        return f"Write “{scheme.lower()}:” in small letters in “{url}”."
    if rest.startswith("//"):
        return f"Leave out the “//” in “{url}”: write {scheme}:{rest.lstrip('/')}."
    address, question, query = rest.partition("?")
    if question:
        if scheme in ("stun", "stuns"):
            return f"Only TURN servers take “?transport=”; remove it from “{url}”."
        if query not in ("transport=udp", "transport=tcp"):
            return f"In “{url}” the transport can only be udp or tcp, as in ?transport=udp."
    if "[" in address or address.count(":") > 1:
        return f"“{url}”: IPv6 addresses cannot be used here; use a host name or an IPv4 address."
    host, _, port = address.partition(":")
    if "@" in host:
        return f"“{url}”: a user name or password cannot be given here, only the server's address."
    if not host:
        return f"“{url}” has no server name after “{scheme}:”."
    if not _host_ok(host):
        return f"“{host}” in “{url}” is not a server name or an IP address."
    if ":" in address:
        if not port.isdigit():
            return f"The port in “{url}” must be a number, as in {scheme}:{host}:3478."
        if not 1 <= int(port) <= 65535:
            return f"The port in “{url}” must be between 1 and 65535."
    return None


def _host_ok(host: str) -> bool:
    return (
        all(ch.isalnum() or ch in ".-_" for ch in host)
        and host[0] not in ".-"
        and host[-1] not in ".-"
        and ".." not in host
    )


def ice_servers_problem(text: str) -> str | None:
    """The first problem in the ICE servers field (one or more per line); None if none.

    With more than one line the message says which line: "Line 2: ...".
    """
    lines = text.splitlines()
    numbered = sum(1 for line in lines if line.strip()) > 1
    for number, line in enumerate(lines, start=1):
        for url in parse_ice_servers(line):
            problem = ice_server_problem(url)
            if problem is not None:
                return f"Line {number}: {problem}" if numbered else problem
    return None


def ice_servers_text(servers: Iterable[str]) -> str:
    """The ICE servers field's text: one server a line."""
    return "\n".join(servers)


def clean_name(name: str) -> str:
    """The name as saved: spaces trimmed and collapsed, no control characters."""
    printable = "".join(ch if ch.isprintable() else " " for ch in name)
    return " ".join(printable.split())


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be your display name; None when it can (empty is "Guest")."""
    cleaned = clean_name(name)
    if len(cleaned) > MAX_NAME_LENGTH:
        return (
            f"A name can be at most {MAX_NAME_LENGTH} characters long; this one has {len(cleaned)}."
        )
    return None


def tls_problems(
    cert_file: str, key_file: str, *, file_exists: Callable[[str], bool] = os.path.isfile
) -> dict[str, str]:
    """What is wrong with the certificate and key fields, by field ("cert_file", "key_file")."""
    cert, key = expand_path(cert_file), expand_path(key_file)
    problems: dict[str, str] = {}
    if cert and not file_exists(cert):
        problems["cert_file"] = f"There is no file at {cert}. Choose the certificate again."
    if key and not cert:
        problems["key_file"] = (
            "A private key goes with a certificate: choose the certificate too, or clear the key."
        )
    elif key and not file_exists(key):
        problems["key_file"] = f"There is no file at {key}. Choose the private key again."
    return problems


def expand_path(path: str) -> str:
    """A typed path as used: spaces trimmed, ``~`` expanded."""
    path = path.strip()
    return os.path.expanduser(path) if path else ""


# -- the form ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreferencesForm:
    """What the dialog's fields hold, as plain values."""

    name: str
    video: str
    audio: str
    speaker: str
    volume: int
    resolution: tuple[int, int]
    ice_text: str
    host_port: int
    cert_file: str
    key_file: str
    relay_only: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> PreferencesForm:
        return cls(
            name=settings.name,
            video=settings.video,
            audio=settings.audio,
            speaker=settings.speaker,
            volume=settings.volume,
            resolution=(settings.width, settings.height),
            ice_text=ice_servers_text(settings.ice_servers),
            relay_only=settings.relay_only,
            host_port=settings.host_port,
            cert_file=settings.cert_file,
            key_file=settings.key_file,
        )


def form_problems(
    form: PreferencesForm, *, file_exists: Callable[[str], bool] = os.path.isfile
) -> dict[str, str]:
    """Every problem in the form, by field name ("name", "ice_servers", "cert_file", ...).

    Empty when the form can be saved.
    """
    problems: dict[str, str] = {}
    name = name_problem(form.name)
    if name is not None:
        problems["name"] = name
    ice = ice_servers_problem(form.ice_text)
    if ice is not None:
        problems["ice_servers"] = ice
    problems.update(tls_problems(form.cert_file, form.key_file, file_exists=file_exists))
    return problems


def settings_from_form(base: Settings, form: PreferencesForm) -> Settings:
    """``base`` with the form's values (check :func:`form_problems` first)."""
    return base.with_changes(
        name=clean_name(form.name),
        video=form.video.strip() or "camera",
        audio=form.audio.strip() or "mic",
        speaker=form.speaker.strip(),
        volume=clamp_volume(form.volume),
        resolution=form.resolution,
        ice_servers=parse_ice_servers(form.ice_text),
        relay_only=form.relay_only,
        host_port=clamp_port(form.host_port),
        cert_file=expand_path(form.cert_file),
        key_file=expand_path(form.key_file),
    )


def size_label(size: tuple[int, int]) -> str:
    """A video size as the picker shows it: "1280×720 (HD)"."""
    width, height = size
    words = SIZE_WORDS.get(size)
    return f"{width}×{height} ({words})" if words else f"{width}×{height}"


def size_choices(current: tuple[int, int]) -> tuple[tuple[str, tuple[int, int]], ...]:
    """The sizes to offer, as (label, size): the usual ones, and ``current`` if it is not."""
    sizes = list(RESOLUTIONS)
    if current not in sizes:
        sizes.append(current)
    return tuple((size_label(size), size) for size in sizes)


def volume_text(percent: int) -> str:
    return f"{percent}%"


def port_text(port: int) -> str:
    """The hosting port in words: "8765", or "any free port" for 0."""
    return "any free port" if port == 0 else str(port)


def location_text(path: str | None) -> str:
    """The line saying where settings live."""
    if not path:
        return "These settings are used for this run only: no settings file is in use."
    return f"Settings are saved in {path}"


# -- what a change does --------------------------------------------------------------


class Applies(Enum):
    """When a changed setting takes effect."""

    #: At once, in the call in progress too.
    NOW = "now"
    #: From the next call on; a call in progress keeps the old one.
    NEXT_CALL = "next call"
    #: The next time you host; a server already running keeps the old one.
    NEXT_HOSTING = "next hosting"


@dataclass(frozen=True, slots=True)
class Change:
    """One setting the person changed: which, in words, and when it applies."""

    #: A :class:`Settings` field, or "resolution" (width and height) or "tls" (cert and key).
    field: str
    words: str
    plural: bool
    applies: Applies


#: (topic, words, plural, when), in the order notes list them; by the fields of each.
_TOPICS: tuple[tuple[str, tuple[str, ...], str, bool, Applies], ...] = (
    ("volume", ("volume",), "volume", False, Applies.NOW),
    ("name", ("name",), "name", False, Applies.NOW),
    ("video", ("video",), "camera", False, Applies.NEXT_CALL),
    ("audio", ("audio",), "microphone", False, Applies.NEXT_CALL),
    ("speaker", ("speaker",), "speaker", False, Applies.NEXT_CALL),
    ("resolution", ("width", "height"), "video size", False, Applies.NEXT_CALL),
    ("ice_servers", ("ice_servers",), "ICE servers", True, Applies.NEXT_CALL),
    ("relay_only", ("relay_only",), "relay-only setting", False, Applies.NEXT_CALL),
    ("server_url", ("server_url",), "server", False, Applies.NEXT_CALL),
    ("room", ("room",), "room", False, Applies.NEXT_CALL),
    ("host_port", ("host_port",), "hosting port", False, Applies.NEXT_HOSTING),
    ("tls", ("cert_file", "key_file"), "TLS certificate", False, Applies.NEXT_HOSTING),
)


def preference_changes(old: Settings, new: Settings) -> tuple[Change, ...]:
    """What changed from ``old`` to ``new``, one :class:`Change` per topic."""
    changed = set(changed_fields(old, new))
    return tuple(
        Change(topic, words, plural, applies)
        for topic, names, words, plural, applies in _TOPICS
        if changed.intersection(names)
    )


def applies_now(old: Settings, new: Settings) -> tuple[str, ...]:
    """The changed topics a call in progress should be given at once ("volume", "name").

    The caller passes them on: ``vm.set_volume(new.volume / 100)`` and the
    session's ``set_name(new.name or "Guest")``.
    """
    return tuple(c.field for c in preference_changes(old, new) if c.applies is Applies.NOW)


def topic_words(fields: Iterable[str]) -> list[str]:
    """The words for these :class:`Settings` fields, one per topic, in the usual order."""
    given = set(fields)
    return [words for _, names, words, _, _ in _TOPICS if given.intersection(names)]


def _list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _sentence(changes: list[Change], tail_one: str, tail_many: str) -> str:
    plural = len(changes) > 1 or changes[0].plural
    words = _list([c.words for c in changes])
    return f"The new {words} {tail_many if plural else tail_one}."


def changes_needing_restart(
    old: Settings, new: Settings, *, in_call: bool = True, hosting: bool = True
) -> list[str]:
    """Sentences for the changes that do not reach what is running now.

    ``in_call``: a call is in progress (device, size and ICE changes wait for
    the next one); ``hosting``: this app's server is running (port and
    certificate changes wait until you host again). Empty when everything
    applies at once or nothing is running.
    """
    changes = preference_changes(old, new)
    notes: list[str] = []
    later = [c for c in changes if c.applies is Applies.NEXT_CALL]
    if in_call and later:
        notes.append(_sentence(later, "applies to your next call", "apply to your next call"))
    hosted = [c for c in changes if c.applies is Applies.NEXT_HOSTING]
    if hosting and hosted:
        notes.append(
            _sentence(hosted, "applies the next time you host", "apply the next time you host")
        )
    return notes


def change_notes(
    old: Settings, new: Settings, *, in_call: bool = True, hosting: bool = True
) -> list[str]:
    """Every sentence to show after Save: what applied at once, then what waits."""
    notes: list[str] = []
    now = [c for c in preference_changes(old, new) if c.applies is Applies.NOW]
    if in_call and now:
        notes.append(_sentence(now, "applies to this call at once", "apply to this call at once"))
    return notes + changes_needing_restart(old, new, in_call=in_call, hosting=hosting)


def overridden_text(fields: Iterable[str]) -> str | None:
    """The line naming settings a command-line flag set for this run; None if none."""
    words = topic_words(fields)
    if not words:
        return None
    return (
        f"For this run only, the command line set the {_list(words)}."
        " Change a setting here to keep your choice."
    )


__all__ = [
    "DEFAULT_NAME",
    "ICE_SCHEMES",
    "Applies",
    "Change",
    "PreferencesForm",
    "applies_now",
    "change_notes",
    "changes_needing_restart",
    "clean_name",
    "expand_path",
    "form_problems",
    "ice_server_problem",
    "ice_servers_problem",
    "ice_servers_text",
    "location_text",
    "name_problem",
    "overridden_text",
    "port_text",
    "preference_changes",
    "settings_from_form",
    "size_choices",
    "size_label",
    "tls_problems",
    "topic_words",
    "volume_text",
]
