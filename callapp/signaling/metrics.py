"""Prometheus metrics of one signaling server, on a registry of its own.

Each :class:`SignalingMetrics` owns a fresh
:class:`prometheus_client.CollectorRegistry`, so several servers in one
process (tests, the desktop app's Host button next to a standalone server)
never share or collide on counters. :meth:`SignalingMetrics.render` gives
the Prometheus text format 0.0.4 that ``GET /metrics`` serves.

Metric names, all prefixed ``callapp_signaling_``:

* ``connections`` (gauge): live WebSocket connections, both endpoints.
* ``rooms`` (gauge): rooms with at least one member.
* ``connections_opened_total`` (counter): connections accepted, by endpoint.
* ``connections_refused_total`` (counter): connections refused, by reason
  (:class:`callapp.signaling.guard.Refusal`: ``per-address``,
  ``per-network``, ``churn``, ``server-full``, ``origin`` at the handshake;
  ``handshakes``, ``sockets`` closed before any request was read).
* ``connections_closed_total`` (counter): connections the server closed
  because of a limit, by reason (``slow-reader`` 1013 for a full outbox,
  ``queue-budget`` 1013 for the largest outbox when all of them together
  hold too much, ``abuse`` 1008).
* ``handshakes`` (gauge): TCP connections still in their opening handshake.
* ``sockets`` (gauge): TCP connections held, of every kind.
* ``queued_bytes`` (gauge): bytes waiting in every outbox together.
* ``internal_errors_total`` (counter): messages whose handling failed in our
  own code (a bug; the connection is answered nothing and stays open).
* ``limit`` (gauge): each configured limit, by ``name``.
* ``messages_received_total`` (counter): messages received, by endpoint.
* ``messages_relayed_total`` (counter): relayed messages written to queues
  (a room broadcast to two members counts two).
* ``errors_total`` (counter): ``error`` answers sent, by protocol code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX: Final = "callapp_signaling"

#: ``Content-Type`` of :meth:`SignalingMetrics.render`'s output.
CONTENT_TYPE: Final[str] = CONTENT_TYPE_PLAIN_0_0_4


class HotCounts:
    """The per-message counters, as plain integers the server adds to.

    A :class:`prometheus_client.Counter` takes a lock and a label look-up per
    ``inc()``, about 1.5 us: a tenth of what relaying a message costs. These
    are read only when ``/metrics`` is scraped (:class:`_HotCollector`).
    """

    __slots__ = ("received_apigw", "received_ws", "relayed")

    def __init__(self) -> None:
        self.received_ws = 0
        self.received_apigw = 0
        self.relayed = 0


class _HotCollector(Collector):
    """``messages_received_total`` and ``messages_relayed_total`` from :class:`HotCounts`."""

    def __init__(self, counts: HotCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily(
            f"{PREFIX}_messages_received", "Messages received from clients", labels=["endpoint"]
        )
        received.add_metric(["ws"], self.counts.received_ws)
        received.add_metric(["apigw"], self.counts.received_apigw)
        yield received
        yield CounterMetricFamily(
            f"{PREFIX}_messages_relayed",
            "Relayed messages queued for a recipient",
            value=self.counts.relayed,
        )


class SignalingMetrics:
    """The counters and gauges of one server.

    ``connections`` and ``rooms`` are read from the callables when scraped,
    so they can never drift from the room router's own counts.
    """

    def __init__(
        self,
        connections: Callable[[], float],
        rooms: Callable[[], float],
        handshakes: Callable[[], float] = lambda: 0.0,
        sockets: Callable[[], float] = lambda: 0.0,
        queued_bytes: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge(f"{PREFIX}_connections", "Live WebSocket connections", registry=r)
        self.connections.set_function(connections)
        self.rooms = Gauge(f"{PREFIX}_rooms", "Rooms with at least one member", registry=r)
        self.rooms.set_function(rooms)
        self.connections_opened = Counter(
            f"{PREFIX}_connections_opened",
            "WebSocket connections accepted",
            ["endpoint"],
            registry=r,
        )
        self.connections_refused = Counter(
            f"{PREFIX}_connections_refused",
            "WebSocket handshakes refused",
            ["reason"],
            registry=r,
        )
        #: ``messages_received_total`` (by endpoint) and ``messages_relayed_total``.
        self.hot = HotCounts()
        r.register(_HotCollector(self.hot))
        self.errors = Counter(
            f"{PREFIX}_errors", "Error answers sent, by protocol code", ["code"], registry=r
        )
        self.connections_closed = Counter(
            f"{PREFIX}_connections_closed",
            "Connections the server closed because of a limit, by reason",
            ["reason"],
            registry=r,
        )
        self.handshakes = Gauge(
            f"{PREFIX}_handshakes", "TCP connections still in their opening handshake", registry=r
        )
        self.handshakes.set_function(handshakes)
        self.sockets = Gauge(f"{PREFIX}_sockets", "TCP connections held, of every kind", registry=r)
        self.sockets.set_function(sockets)
        self.queued_bytes = Gauge(
            f"{PREFIX}_queued_bytes", "Bytes waiting in every outbox together", registry=r
        )
        self.queued_bytes.set_function(queued_bytes)
        self.internal_errors = Counter(
            f"{PREFIX}_internal_errors",
            "Messages whose handling failed in the server's own code",
            registry=r,
        )
        self.forwarded_for_malformed = Counter(
            f"{PREFIX}_forwarded_for_malformed",
            "Upgrades from a trusted proxy whose X-Forwarded-For named no address; "
            "counted as the proxy",
            registry=r,
        )
        self.limit = Gauge(f"{PREFIX}_limit", "Configured limits, by name", ["name"], registry=r)

    def set_limits(self, limits: dict[str, float | None]) -> None:
        """Publish each configured limit (:obj:`None`, no limit, is left out)."""
        for name, value in limits.items():
            if value is not None:
                self.limit.labels(name=name).set(value)

    def render(self) -> bytes:
        """The registry in Prometheus text format 0.0.4 (see :data:`CONTENT_TYPE`)."""
        return bytes(generate_latest(self.registry))
