"""What the call details panel graphs: a bounded time series per peer, from stats snapshots.

No Qt here. The call model feeds :meth:`StatsHistory.record` from its one
stats poll (once a second) with every live leg's
:class:`~callapp.call.stats.CallStats`; a peer that is no longer in the call
is dropped, and samples older than :data:`WINDOW_SECONDS` are trimmed (and
there are never more than :data:`MAX_SAMPLES` per peer, however fast it is
fed). :meth:`StatsHistory.charts` says what each graph shows: the lines,
their points scaled to ``0..1`` on both axes (``x`` 0 is a minute ago, 1 is
now), the axis labels and the latest numbers in words (for screen readers).
"""

from __future__ import annotations

import collections
import enum
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from callapp.call.stats import CallStats
from callapp.ui.logic.wording import format_bitrate

#: How far back the graphs look (seconds).
WINDOW_SECONDS = 60.0
#: The most samples kept per peer (a poll faster than 4 a second is thinned by this bound).
MAX_SAMPLES = 240
#: What the time axis says, from left to right.
TIME_LABELS = ("1 min ago", "30 s ago", "now")


class Metric(enum.StrEnum):
    BITRATE = "bitrate"
    FPS = "fps"
    RTT = "rtt"
    LOSS = "loss"


@dataclass(frozen=True, slots=True)
class Sample:
    """One poll's numbers for one peer (non-finite numbers become unknown or 0)."""

    at: float
    bitrate_in: float
    bitrate_out: float
    fps_in: float
    fps_out: float
    rtt_ms: float | None
    #: Fractions (0-1): the peer's packets lost on the way to us, ours on the way there.
    loss_in: float | None
    loss_out: float | None

    @classmethod
    def of(cls, at: float, stats: CallStats) -> Sample:
        return cls(
            at=at,
            bitrate_in=_rate(stats.bitrate_received),
            bitrate_out=_rate(stats.bitrate_sent),
            fps_in=_rate(stats.fps_received),
            fps_out=_rate(stats.fps_sent),
            rtt_ms=_known(stats.rtt_ms),
            loss_in=_fraction(stats.packet_loss),
            loss_out=_fraction(stats.remote_packet_loss),
        )


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a graph: ``label`` ("Received"), points ``(x, y)`` both in ``0..1``."""

    label: str
    points: tuple[tuple[float, float], ...]
    #: The latest value in words ("1.2 Mbit/s"), "" if unknown.
    latest: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything one graph draws and says."""

    metric: Metric
    title: str
    #: The value axis, bottom to top (three labels: 0, half, top).
    value_labels: tuple[str, str, str]
    time_labels: tuple[str, ...]
    lines: tuple[Line, ...]

    @property
    def text(self) -> str:
        """The latest numbers as a sentence ("Bitrate: received 1.2 Mbit/s, sent 850 kbit/s")."""
        said = [f"{line.label.lower()} {line.latest}" for line in self.lines if line.latest]
        if not said:
            return f"{self.title}: not known yet"
        if len(self.lines) == 1:
            return f"{self.title}: {self.lines[0].latest}"
        return f"{self.title}: {', '.join(said)}"


class PeerHistory:
    """One peer's samples, oldest first, within the window."""

    def __init__(self, window: float = WINDOW_SECONDS, max_samples: int = MAX_SAMPLES) -> None:
        self.window = window
        self._samples: collections.deque[Sample] = collections.deque(maxlen=max_samples)

    @property
    def samples(self) -> tuple[Sample, ...]:
        return tuple(self._samples)

    @property
    def latest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    def add(self, sample: Sample) -> None:
        if self._samples and sample.at < self._samples[-1].at:
            return  # time never runs backwards on a graph
        self._samples.append(sample)
        self.trim(sample.at)

    def trim(self, now: float) -> None:
        """Forget samples older than the window, seen from ``now``."""
        while self._samples and self._samples[0].at < now - self.window:
            self._samples.popleft()

    def __len__(self) -> int:
        return len(self._samples)


class StatsHistory:
    """Every peer's :class:`PeerHistory`, in the order the peers were first seen."""

    def __init__(self, window: float = WINDOW_SECONDS, max_samples: int = MAX_SAMPLES) -> None:
        self.window = window
        self.max_samples = max_samples
        self._peers: dict[str, PeerHistory] = {}
        #: The time of the latest :meth:`record` (the graphs' "now").
        self.now: float | None = None

    def record(
        self,
        now: float,
        found: Mapping[str, CallStats],
        present: Iterable[str] | None = None,
    ) -> None:
        """Add a sample per peer in ``found``; forget peers not ``present`` (default: found).

        A peer still in the call but without numbers this time (``present``
        but not in ``found``) keeps its history, which ages out of the window.
        """
        keep = set(found) if present is None else set(present) | set(found)
        for peer_id in [p for p in self._peers if p not in keep]:
            del self._peers[peer_id]
        for peer_id, stats in found.items():
            history = self._peers.get(peer_id)
            if history is None:
                history = self._peers[peer_id] = PeerHistory(self.window, self.max_samples)
            history.add(Sample.of(now, stats))
        for history in self._peers.values():
            history.trim(now)
        self.now = now

    def forget(self, peer_id: str) -> None:
        self._peers.pop(peer_id, None)

    def clear(self) -> None:
        self._peers.clear()
        self.now = None

    def peers(self) -> list[str]:
        return list(self._peers)

    def get(self, peer_id: str) -> PeerHistory | None:
        return self._peers.get(peer_id)

    def charts(self, peer_id: str, now: float | None = None) -> list[Chart]:
        """The four graphs of ``peer_id`` (empty lines if nothing is known)."""
        history = self._peers.get(peer_id)
        samples = history.samples if history is not None else ()
        at = now if now is not None else (self.now if self.now is not None else 0.0)
        return charts_of(samples, at, self.window)

    def summary(self, peer_id: str) -> str:
        """The latest numbers of ``peer_id`` in one sentence ("" if none)."""
        history = self._peers.get(peer_id)
        latest = history.latest if history is not None else None
        return summary_text(latest) if latest is not None else ""


# -- what the graphs say ------------------------------------------------------------


def charts_of(
    samples: tuple[Sample, ...], now: float, window: float = WINDOW_SECONDS
) -> list[Chart]:
    """Bitrate (in/out), frame rate (in/out), round trip and loss (in/out) over ``window``."""
    recent = tuple(s for s in samples if now - window <= s.at <= now)

    def values(pick: str) -> list[tuple[float, float | None]]:
        return [(s.at, getattr(s, pick)) for s in recent]

    bitrate = (values("bitrate_in"), values("bitrate_out"))
    top = nice_ceiling(_peak(*bitrate), 100_000)
    charts = [
        _chart(
            Metric.BITRATE,
            "Bitrate",
            top,
            format_bitrate,
            (("Received", bitrate[0]), ("Sent", bitrate[1])),
            now,
            window,
        )
    ]
    fps = (values("fps_in"), values("fps_out"))
    top = nice_ceiling(_peak(*fps), 30)
    charts.append(
        _chart(
            Metric.FPS,
            "Frame rate",
            top,
            lambda v: f"{v:.0f} fps",
            (("Received", fps[0]), ("Sent", fps[1])),
            now,
            window,
        )
    )
    rtt = values("rtt_ms")
    top = nice_ceiling(_peak(rtt), 100)
    charts.append(_chart(Metric.RTT, "Round trip", top, _ms, (("Round trip", rtt),), now, window))
    loss_in = [(t, None if v is None else v * 100) for t, v in values("loss_in")]
    loss_out = [(t, None if v is None else v * 100) for t, v in values("loss_out")]
    top = nice_ceiling(_peak(loss_in, loss_out), 5)
    charts.append(
        _chart(
            Metric.LOSS,
            "Packet loss",
            top,
            _percent,
            (("Received", loss_in), ("Sent", loss_out)),
            now,
            window,
        )
    )
    return charts


def summary_text(sample: Sample) -> str:
    """ "Receiving 1.2 Mbit/s at 30 fps, sending 850 kbit/s at 30 fps, round trip 3 ms, …"."""
    parts = [
        f"receiving {format_bitrate(sample.bitrate_in)} at {sample.fps_in:.0f} fps",
        f"sending {format_bitrate(sample.bitrate_out)} at {sample.fps_out:.0f} fps",
        f"round trip {_ms(sample.rtt_ms)}" if sample.rtt_ms is not None else "round trip unknown",
    ]
    if sample.loss_in is not None or sample.loss_out is not None:
        lost_in = _percent(sample.loss_in * 100) if sample.loss_in is not None else "unknown"
        lost_out = _percent(sample.loss_out * 100) if sample.loss_out is not None else "unknown"
        parts.append(f"loss {lost_in} received, {lost_out} sent")
    text = ", ".join(parts)
    return text[0].upper() + text[1:] + "."


def nice_ceiling(value: float, floor: float) -> float:
    """The smallest 1, 2, 3 or 5 times a power of ten at or above ``max(value, floor)``."""
    target = max(value, floor)
    if not math.isfinite(target) or target <= 0:
        return floor if floor > 0 else 1.0
    power = 10 ** math.floor(math.log10(target))
    for step in (1, 2, 3, 5, 10):
        if step * power >= target * (1 - 1e-9):
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _chart(
    metric: Metric,
    title: str,
    top: float,
    say: Callable[[float], str],
    lines: tuple[tuple[str, list[tuple[float, float | None]]], ...],
    now: float,
    window: float,
) -> Chart:
    made = []
    for label, points in lines:
        scaled = tuple(
            (_clamp(1 - (now - at) / window), _clamp(value / top))
            for at, value in points
            if value is not None
        )
        last = points[-1][1] if points else None
        made.append(Line(label, scaled, say(last) if last is not None else ""))
    return Chart(
        metric=metric,
        title=title,
        value_labels=(say(0), say(top / 2), say(top)),
        time_labels=TIME_LABELS,
        lines=tuple(made),
    )


def _peak(*series: list[tuple[float, float | None]]) -> float:
    return max((v for s in series for _, v in s if v is not None), default=0.0)


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f} ms"


def _percent(value: float) -> str:
    if value >= 10 or abs(value - round(value)) < 0.05:
        return f"{value:.0f}%"
    return f"{value:.1f}%"


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def _rate(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0


def _known(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def _fraction(value: float | None) -> float | None:
    known = _known(value)
    return None if known is None else min(1.0, known)


__all__ = [
    "MAX_SAMPLES",
    "TIME_LABELS",
    "WINDOW_SECONDS",
    "Chart",
    "Line",
    "Metric",
    "PeerHistory",
    "Sample",
    "StatsHistory",
    "charts_of",
    "nice_ceiling",
    "summary_text",
]
