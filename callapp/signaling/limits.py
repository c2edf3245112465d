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

import math
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

    # Two per connection: slots keep an idle one at 88 bytes instead of ~400.
    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

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
        # _refill inlined: the server asks twice per message.
        now = self._clock()
        elapsed = now - self._stamp
        self._stamp = now
        tokens = self._tokens
        if elapsed > 0:
            tokens += elapsed * self.rate
            if tokens > self.burst:
                tokens = self.burst
        if tokens >= cost:
            self._tokens = tokens - cost
            return True
        self._tokens = tokens
        return False

    def reserve(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens, going into debt if need be; seconds until the debt is paid.

        0.0 when the tokens were there. Otherwise the caller should wait the
        returned time before acting: a later :meth:`reserve` queues behind
        this one, so concurrent callers are served in turn at ``rate``, with
        no thundering herd (the generic cell rate algorithm). A bucket with
        ``rate`` 0 never pays a debt back: :data:`math.inf`.
        """
        self._refill()
        self._tokens -= cost
        if self._tokens >= 0:
            return 0.0
        if self.rate == 0:
            return math.inf
        return -self._tokens / self.rate


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

    __slots__ = ("_clock", "_stamp", "_strikes", "codes", "decay", "threshold")

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


class CallAttemptLimiter:
    """Unanswered call attempts per caller and per callee, in a sliding window.

    A call attempt is an offer relayed by id to someone outside the caller's
    room (a dialled call; rooms have their own rules). It stays unanswered
    until the callee relays an answer back to the caller. :meth:`attempt`
    refuses a new one once the caller, or the callee, has ``limit``
    unanswered attempts in the last ``window`` seconds: a stranger cannot
    ring everyone, and nobody can be rung again and again. ``limit`` 0
    turns the limit off. Memory is bounded by the attempts still in the
    window (at most ``limit`` per caller is kept; older ones are dropped).
    """

    def __init__(self, limit: int = 10, window: float = 60.0, clock: Clock = time.monotonic):
        if limit < 0 or window <= 0:
            raise ValueError("limit must be >= 0 and window > 0")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._by_caller: dict[str, dict[str, float]] = {}
        self._by_callee: dict[str, dict[str, float]] = {}

    def _fresh(self, table: dict[str, dict[str, float]], key: str, now: float) -> dict[str, float]:
        entries = table.get(key)
        if entries is None:
            return {}
        for other, at in list(entries.items()):
            if now - at >= self.window:
                del entries[other]
        if not entries:
            del table[key]
            return {}
        return entries

    def attempt(self, caller: str, callee: str) -> bool:
        """Record an offer from ``caller`` to ``callee``; False if it is one too many.

        Offers to someone the caller is already ringing (a restarted offer,
        glare) do not count again.
        """
        if not self.limit:
            return True
        now = self._clock()
        mine = self._fresh(self._by_caller, caller, now)
        theirs = self._fresh(self._by_callee, callee, now)
        if callee in mine:
            return True
        if len(mine) >= self.limit or len(theirs) >= self.limit:
            return False
        self._by_caller.setdefault(caller, {})[callee] = now
        self._by_callee.setdefault(callee, {})[caller] = now
        return True

    def answered(self, caller: str, callee: str) -> None:
        """``callee`` answered ``caller``: that attempt no longer counts."""
        for table, key, other in (
            (self._by_caller, caller, callee),
            (self._by_callee, callee, caller),
        ):
            entries = table.get(key)
            if entries is not None:
                entries.pop(other, None)
                if not entries:
                    del table[key]

    def forget(self, connection_id: str) -> None:
        """A connection closed: drop what rang it and its own list of calls.

        What it rang still counts against those it rang until the window
        passes, so that reconnecting does not let a caller ring them afresh.
        """
        for caller in self._by_callee.pop(connection_id, {}):
            entries = self._by_caller.get(caller)
            if entries is not None:
                entries.pop(connection_id, None)
                if not entries:
                    del self._by_caller[caller]
        self._by_caller.pop(connection_id, None)

    @property
    def tracked(self) -> int:
        """Attempts held in memory (for tests and metrics)."""
        return sum(len(entries) for entries in self._by_caller.values())
