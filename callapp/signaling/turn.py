"""Short-lived TURN credentials: the TURN REST API scheme (sans-I/O).

A TURN relay must not be open to anyone, yet typing a long-lived password
into every client hands it to everyone for good. The TURN REST API scheme
(draft-uberti-behave-turn-rest, what coturn's ``use-auth-secret`` /
``static-auth-secret`` implement) avoids both: the signaling server and the
TURN server share one secret, and the signaling server gives each client a
credential that expires::

    username   = "<expiry as Unix time>:<user id>"
    credential = base64(HMAC-SHA1(secret, username))

The TURN server recomputes the credential from the username and its copy of
the secret, and refuses it once the expiry has passed. Nothing is stored
anywhere, so every ``welcome`` can carry a fresh one.

This module does no I/O and reads no clock: the caller passes ``now`` (Unix
time, ``time.time()``), so tests pin it. The signaling server calls
:func:`welcome_servers` once per connection.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Default lifetime of a credential, in seconds (coturn's docs suggest a day;
#: a call's credential only has to outlive the allocation's setup and its
#: refreshes, so an hour keeps a leaked one useful for less time).
DEFAULT_TTL = 3600
#: Separator between expiry and user id (coturn's ``rest-api-separator`` default).
SEPARATOR = ":"


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """Where the relay is and what it shares with us.

    ``urls`` are ``turn:``/``turns:`` URLs (``turn:host:3478?transport=udp``),
    ``secret`` coturn's ``static-auth-secret``, ``ttl`` the credentials'
    lifetime in seconds.
    """

    urls: tuple[str, ...]
    secret: str
    ttl: int = DEFAULT_TTL

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("a TURN configuration needs at least one turn: URL")
        for url in self.urls:
            if not url.startswith(("turn:", "turns:")):
                raise ValueError(f"not a turn: or turns: URL: {url!r}")
        if not self.secret:
            raise ValueError("the TURN secret is empty")
        if self.ttl < 1:
            raise ValueError(f"the TURN credential lifetime must be at least 1 s, not {self.ttl}")


def make_username(expires: int, user: str) -> str:
    """``"<expires>:<user>"``; ``user`` may be empty (the timestamp alone is allowed)."""
    if SEPARATOR in user:
        raise ValueError(f"a TURN user id cannot contain {SEPARATOR!r}: {user!r}")
    return f"{expires}{SEPARATOR}{user}" if user else str(expires)


def make_credential(secret: str, username: str) -> str:
    """base64(HMAC-SHA1(secret, username)), as coturn computes it."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def expiry_of(username: str) -> int | None:
    """The expiry a username carries, or ``None`` if it carries none."""
    head = username.split(SEPARATOR, 1)[0]
    return int(head) if head.isdigit() else None


def is_valid(secret: str, username: str, credential: str, now: float) -> bool:
    """What a TURN server checks: the credential matches and has not expired.

    For tests and for tools; the relay does this itself.
    """
    expires = expiry_of(username)
    if expires is None or expires < now:
        return False
    return hmac.compare_digest(make_credential(secret, username), credential)


def ice_server(config: TurnConfig, user: str, now: float) -> dict[str, Any]:
    """One ``RTCIceServer`` with a credential for ``user`` valid from ``now`` for ``ttl`` s."""
    expires = math.floor(now) + config.ttl
    username = make_username(expires, user)
    return {
        "urls": list(config.urls),
        "username": username,
        "credential": make_credential(config.secret, username),
    }


def welcome_servers(config: TurnConfig | None, user: str, now: float) -> tuple[dict[str, Any], ...]:
    """What to add to a ``welcome``'s ``iceServers`` for connection ``user`` (none without TURN)."""
    if config is None:
        return ()
    return (ice_server(config, user, now),)


def read_secret(path: str) -> str:
    """The secret in file ``path`` (first line, trimmed): keeps it out of ``ps``.

    This one does I/O, for the command line; raises ``ValueError`` in words.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            secret = handle.readline().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the TURN secret from {path}: {exc.strerror}") from None
    if not secret:
        raise ValueError(f"the TURN secret file {path} is empty")
    return secret


def turn_config(
    urls: Sequence[str], secret: str | None, ttl: int = DEFAULT_TTL
) -> TurnConfig | None:
    """A :class:`TurnConfig` from flags, ``None`` when no URL is given; ``ValueError`` in words."""
    if not urls:
        if secret:
            raise ValueError("--turn-secret needs --turn-url")
        return None
    if not secret:
        raise ValueError("--turn-url needs --turn-secret (or --turn-secret-file)")
    return TurnConfig(urls=tuple(urls), secret=secret, ttl=ttl)


__all__ = [
    "DEFAULT_TTL",
    "TurnConfig",
    "expiry_of",
    "ice_server",
    "is_valid",
    "make_credential",
    "make_username",
    "read_secret",
    "turn_config",
    "welcome_servers",
]
