"""Readable random room names, e.g. ``amber-otter-42``."""

from __future__ import annotations

import random
import re
import secrets

_ADJECTIVES = (
    "amber azure brave bright calm clever coral cosy crisp dapper eager early fair gentle "
    "golden happy hazel jolly kind lively lucky merry mellow misty noble olive plucky "
    "quiet rapid rosy royal rustic silver sunny swift tidy violet warm witty zesty"
)
ADJECTIVES = tuple(_ADJECTIVES.split())
_ANIMALS = (
    "badger beaver bison crane dolphin eagle falcon ferret finch fox gecko heron ibis "
    "koala lemur lynx marten meerkat moose newt otter owl panda puffin quail raven robin "
    "seal sloth stoat swan tapir tiger toucan walrus wombat wren yak zebra"
)
ANIMALS = tuple(_ANIMALS.split())

#: Protocol v1 room names: 1-64 ASCII letters, digits, '-', '_', '.'.
ROOM_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def random_room_name(rng: random.Random | None = None) -> str:
    """An easy-to-say room name: adjective-animal-number (about 150,000 choices)."""
    pick = rng or secrets.SystemRandom()
    return f"{pick.choice(ADJECTIVES)}-{pick.choice(ANIMALS)}-{pick.randint(10, 99)}"


def room_problem(name: str) -> str | None:
    """Why ``name`` cannot be a room name, in plain words; None when it can."""
    if not name:
        return "Enter a room name."
    if len(name) > 64:
        return "A room name can be at most 64 characters long."
    if not ROOM_RE.match(name):
        return "A room name may use only letters, digits, '-', '_' and '.' (no spaces)."
    return None
