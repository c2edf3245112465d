"""Per-connection limits, sans-I/O: a token bucket and an abuse counter.

Both take an injectable ``clock`` (a function returning seconds, monotonic by
default) and never sleep, so the server can own the time source and tests can
drive them with a fake clock.

* :class:`TokenBucket` answers "may this connection send one more message
  now?" -- protocol v1 allows 50 messages/s with a burst of 200 by default.
* :class:`AbuseCounter` answers "has this connection misbehaved often enough
  that it should be closed with 1008?" -- each abusive error adds a strike,
  strikes drain at a steady pace, and passing the threshold means close.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final, TypeAlias

from callapp.signaling.messages import ErrorCode

#: A source of time in seconds; only differences between readings matter.
Clock: TypeAlias = Callable[[], float]

#: Error codes that count as abuse by default. ``unknown-peer``,
#: ``not-in-room``, ``bad-room`` and ``busy`` are left out on purpose: honest
#: clients hit them through races (a peer that just left) or user typos.
ABUSIVE_CODES: Final[frozenset[ErrorCode]] = frozenset(
    {
        ErrorCode.BAD_JSON,
        ErrorCode.BAD_MESSAGE,
        ErrorCode.TOO_LARGE,
        ErrorCode.RATE_LIMITED,
    }
)


class TokenBucket:
    """Allow ``rate`` events per second on average, up to ``burst`` at once.

    The bucket starts full (``burst`` tokens) and refills continuously at
    ``rate`` tokens per second, never beyond ``burst``. :meth:`allow` takes
    one token (or ``cost``) when enough are available.

    Raises :exc:`ValueError` if ``rate`` is negative or ``burst`` is below 1.
    """

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0, not {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, not {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        # A clock that goes backwards (it should not) must not drain the bucket.
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    def allow(self, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens and return True, or return False and take none."""
        self._refill()
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False


class AbuseCounter:
    """Decide when repeated errors should close a connection (code 1008).

    Each error whose code is in ``codes`` adds one strike; strikes drain at
    ``decay`` per second. :meth:`record` returns True once the strikes exceed
    ``threshold``, and keeps returning True while they stay above it.

    With the defaults (64 strikes, draining 1/s) a client that sends a few
    bad frames by mistake is never closed, while one that keeps flooding
    past its rate limit is closed within seconds.

    Raises :exc:`ValueError` if ``threshold`` or ``decay`` is negative.
    """

    def __init__(
        self,
        threshold: float = 64.0,
        decay: float = 1.0,
        clock: Clock = time.monotonic,
        codes: Iterable[ErrorCode] = ABUSIVE_CODES,
    ) -> None:
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, not {threshold!r}")
        if decay < 0:
            raise ValueError(f"decay must be >= 0, not {decay!r}")
        self.threshold = float(threshold)
        self.decay = float(decay)
        self.codes = frozenset(codes)
        self._clock = clock
        self._strikes = 0.0
        self._stamp = clock()

    def _drain(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._strikes = max(0.0, self._strikes - elapsed * self.decay)

    @property
    def strikes(self) -> float:
        """Strikes counted now, after draining."""
        self._drain()
        return self._strikes

    def record(self, code: ErrorCode | str) -> bool:
        """Count an error answered to this connection; True means close it."""
        self._drain()
        if code in self.codes:
            self._strikes += 1.0
        return self._strikes > self.threshold
