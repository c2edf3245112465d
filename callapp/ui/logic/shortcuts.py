"""The keyboard map: one table, used by the window's actions and by the help overlay.

Ctrl+D and Ctrl+E are Google Meet's (microphone, camera); Ctrl+Shift+H hangs
up as in Teams; F11 is every desktop's full screen. Chords with Ctrl never
clash with typing in the chat field.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.StrEnum):
    MUTE = "mute"
    CAMERA = "camera"
    SHARE = "share"
    CHAT = "chat"
    CODE = "code"
    DETAILS = "details"
    RECORD = "record"
    FULL_SCREEN = "full_screen"
    HANG_UP = "hang_up"
    HELP = "help"


@dataclass(frozen=True, slots=True)
class Shortcut:
    action: Action
    #: Qt key sequences (``QKeySequence`` strings), the first is shown.
    keys: tuple[str, ...]
    #: What the keys do, in the words of the help list.
    description: str
    #: Only on the call screen (the lobby has no call to act on).
    in_call_only: bool = True


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut(Action.MUTE, ("Ctrl+D",), "Mute or unmute your microphone"),
    Shortcut(Action.CAMERA, ("Ctrl+E",), "Turn your camera off or on"),
    Shortcut(Action.SHARE, ("Ctrl+Shift+S",), "Share your screen, or stop sharing"),
    Shortcut(Action.CHAT, ("Ctrl+Shift+C",), "Open or close the chat"),
    Shortcut(Action.CODE, ("Ctrl+Shift+V",), "Show or hide the verification codes"),
    Shortcut(Action.DETAILS, ("Ctrl+Shift+I",), "Show or hide the call details"),
    Shortcut(Action.RECORD, ("Ctrl+Shift+R",), "Record the call, or stop recording"),
    Shortcut(Action.FULL_SCREEN, ("F11",), "Full screen on or off", in_call_only=False),
    Shortcut(Action.HANG_UP, ("Ctrl+Shift+H",), "Hang up and go back to the start"),
    Shortcut(Action.HELP, ("?", "F1"), "Show this list of shortcuts", in_call_only=False),
)


def shortcut_for(action: Action) -> Shortcut:
    """The table's row for ``action``."""
    for row in SHORTCUTS:
        if row.action is action:
            return row
    raise KeyError(action)


def keys_text(action: Action) -> str:
    """The keys of ``action`` as the help list and tooltips show them ("Ctrl+D")."""
    return " or ".join(shortcut_for(action).keys)


def with_keys(label: str, action: Action) -> str:
    """A tooltip: ``label`` followed by the shortcut, e.g. "Mute (Ctrl+D)"."""
    return f"{label} ({keys_text(action)})"


def help_rows() -> list[tuple[str, str]]:
    """``(keys, description)`` for every shortcut, in table order."""
    return [(" or ".join(row.keys), row.description) for row in SHORTCUTS]
