"""Several signaling processes over one Redis: shared rooms, ids and relays.

A :class:`Backplane` stands where one process's
:class:`~callapp.signaling.rooms.RoomRouter` stood: the server calls
:meth:`Backplane.connect`, :meth:`Backplane.handle` and
:meth:`Backplane.disconnect` and dispatches the deliveries they return (those
for connections on this process); deliveries for connections on other
processes are written to those processes' inboxes in Redis, and what other
processes write for connections here arrives through the ``deliver``
callback. The room rules stay in :class:`RoomRouter`: for every room event
the backplane loads the rooms involved from Redis, rebuilds a transient
router holding just them (:meth:`RoomRouter.restore_room`), applies the event
there and stores what the router left (:meth:`RoomRouter.room_state`).

What lives in Redis (``NS`` is the namespace, ``callapp`` by default)::

    NS:epoch            random, set by the first node; gone = Redis lost its data
    NS:nodes            set of live node ids
    NS:hb:NODE          a node's heartbeat, expiring after node_timeout
    NS:conns            hash connection id -> node holding it
    NS:roomof           hash connection id -> its room
    NS:node:NODE        set of the connection ids NODE holds
    NS:room:NAME        JSON {"m": [[id, node, ticket], ...], "c": capacity,
                        "k": key or null, "n": next ticket}, members in join order
    NS:rooms            set of room names (max_rooms counts it)
    NS:inbox:NODE       stream of deliveries for NODE's connections; an entry
                        holds up to 16: fields to, m, a, s for the first,
                        to.1, m.1, a.1, s.1 for the second, and so on; or
                        a barrier: field b, written by NODE itself (below)
    NS:claims           hash dead node -> the node cleaning up after it
    NS:claim:NODE       the dead NODE's connections still to be disconnected
    NS:settle           present for a few seconds after Redis lost its data

Guarantees:

* **Atomic room events.** A join, leave or disconnect runs under WATCH/MULTI/
  EXEC on the keys of the rooms it touches (and on ``NS:rooms`` when it
  would create a room under ``max_rooms``), retried on conflict. The
  deliveries for other nodes are written in the same MULTI as the new state,
  so a committed event is never left untold and an aborted one never told:
  capacity is never exceeded, one join gets ``created``, ``peer-left`` goes
  out once.
* **Order.** A node awaits each request before the next from the same
  connection (the server's read loop does), and every write for one target
  node goes to that node's one stream, which it reads in order: messages from
  one sender reach one receiver in the order sent. ``from`` is stamped by the
  router on the sender's node only; other nodes forward what they read.
  A connection's own room events are told in the order Redis applied them:
  its join's ``created`` comes before the ``peer-joined`` of one who joined
  after it through another node. The join's MULTI also writes a barrier to
  the joiner's own inbox; inbox deliveries for the joiner are held from the
  WATCH until the node reads that barrier, those before it handed over
  before the join's own deliveries and those after it just after them.
* **Inboxes are streams, not pub/sub.** A node that loses its Redis
  connection reads on from the last entry it saw, so nothing written for it
  meanwhile is lost (pub/sub would drop it: at-most-once, and redis-py's
  asyncio PubSub does not even resubscribe by itself).
* **Dead nodes.** Every node refreshes ``NS:hb:NODE`` each
  ``heartbeat_interval``; it expires after ``node_timeout``. Each node looks
  for members of ``NS:nodes`` without a heartbeat; the first to claim one
  (a WATCHed MULTI: one winner) disconnects its connections through the room
  rules, each in its own transaction that also removes it from the claim, so
  a claimer dying halfway leaves the rest to the next claimer and nothing is
  told twice.
* **Redis unreachable.** :attr:`Backplane.ready` turns False (for
  ``/healthz``). Relayed messages, leaves and disconnects are queued in
  order (at most ``max_pending`` messages; past that a message is answered
  ``busy``) and applied once Redis is back (a sender answered after its
  relay, on ``/apigw``, waits for it: ``handle(hold=...)``); joins are
  answered ``busy`` at once (the client retries). The node reconnects with backoff; if Redis kept
  its data it carries on; if Redis lost it (a restart without persistence)
  every node writes its own connections and their rooms back (members in
  their old join order, from the tickets each node kept), and all nodes
  answer joins ``busy`` and hold relays for ``settle`` seconds meanwhile, so
  that no join lands in a half-restored room. If the outage outlasted
  ``node_timeout`` while Redis kept its data, the other nodes have already
  disconnected this node's connections: the node calls ``lost`` for each
  (the server closes them, clients reconnect and rejoin) and registers
  afresh under a new node id.

  A room event whose EXEC went out but whose reply was lost is answered as
  failed (``busy`` for a join); once Redis is back the node brings the rooms
  it touched back to what the connection was told, through the rules.

* **Nothing lost, nothing twice.** Every inbox entry carries its actor (the
  connection whose event caused it, and its node) and the actor's own count
  of entries; a receiver drops an entry whose count it has already seen. A
  node keeps what it wrote for ``retain`` seconds (5, at most 20,000
  entries) and what a failure cut off; on recovery it writes the cut-off
  ones again, and if Redis lost its data, everything it kept (the receivers
  may not have read it). So a relay accepted by a node arrives once, in
  order, whatever Redis does, unless the receiving node itself had not
  read it for longer than ``retain`` when Redis lost its data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, WatchError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from callapp.signaling.messages import (
    Error,
    ErrorCode,
    Join,
    Leave,
    Request,
    Send,
    ServerMessage,
    UnknownServerMessage,
    encode,
    parse_server_message,
)
from callapp.signaling.rooms import (
    DEFAULT_MAX_ROOM_CAPACITY,
    DEFAULT_ROOM_CAPACITY,
    Deliver,
    RoomRouter,
    RoomState,
)

__all__ = ["Backplane", "BackplaneUnavailable"]

logger = logging.getLogger(__name__)

#: Tries of one room event against concurrent writers before it is answered ``busy``.
MAX_ATTEMPTS: Final = 64

#: Deliveries read from the inbox in one go.
_READ_COUNT: Final = 512

#: How long one inbox read blocks in Redis, in milliseconds.
_READ_BLOCK_MS: Final = 1000

#: Entries an inbox keeps at most (approximately) if its node stops reading.
_INBOX_MAXLEN: Final = 100_000

#: Deliveries for one node written as one inbox entry at most: redis-py's
#: cost is mostly per command and per argument, so one XADD for several
#: halves what writing a batch of relays costs.
_PER_ENTRY: Final = 16

#: Relays sent in one round trip: live ones waiting for a batch, or those
#: queued during an outage.
_FLUSH_BATCH: Final = 256

#: Inbox entries read between two trims of what was read.
_TRIM_EVERY: Final = 1000

Deliverer: TypeAlias = Callable[[str, ServerMessage], None]

#: An inbox entry: the node it is for, and its fields.
_Entry: TypeAlias = tuple[str, dict[str, str]]

#: Entries kept for writing again after Redis lost its data.
_RETAIN_MAX: Final = 20_000

#: Senders whose last entry count a node remembers.
_MAX_SEEN: Final = 100_000

#: How long a room event waits for its barrier to be read (see :class:`_Hold`)
#: before its deliveries go out anyway, in seconds.
_BARRIER_WAIT: Final = 1.0


@dataclass(slots=True)
class _Hold:
    """Inbox deliveries held for a local connection while its room event is applied.

    ``before`` is how many of ``held`` were read before the event's barrier
    (None until the barrier is read; ``read`` is then set).
    """

    token: str
    held: list[ServerMessage]
    read: asyncio.Future[None]
    before: int | None = None


class BackplaneUnavailable(ConnectionError):
    """Redis could not be reached when the backplane started."""


def _without_password(url: str) -> str:
    """``url`` with the password of its user part, if any, shown as ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user_part, _, host_part = parts.netloc.rpartition("@")
    user = user_part.partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host_part}"))


def _why_unreachable(exc: RedisError) -> str:
    """What stopped the first contact with Redis, in words for an operator."""
    if isinstance(exc, AuthenticationError):
        return "it refused the user name or password in the URL"
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return "nothing answers there; is redis-server running, and is the URL right?"
    # Redis's own answer (NOAUTH, WRONGPASS, READONLY ...) is its words, not ours.
    return f"it answered: {exc}"


@dataclass(slots=True)
class _Local:
    """What this node knows of one of its connections: enough to write it back to Redis."""

    room: str | None = None
    ticket: int = 0
    capacity: int = DEFAULT_ROOM_CAPACITY
    key: str | None = None
    closed: bool = False


@dataclass(slots=True)
class _Stored:
    """One room as stored in Redis: members ``(id, node, ticket)`` in join order."""

    members: list[tuple[str, str, int]]
    capacity: int
    key: str | None
    next: int

    @classmethod
    def load(cls, raw: str | None) -> _Stored | None:
        if raw is None:
            return None
        obj = json.loads(raw)
        members = [(str(m[0]), str(m[1]), int(m[2])) for m in obj["m"]]
        return cls(members, int(obj["c"]), obj.get("k"), int(obj["n"]))

    def dump(self) -> str:
        return json.dumps(
            {
                "m": [list(m) for m in self.members],
                "c": self.capacity,
                "k": self.key,
                "n": self.next,
            }
        )

    def state(self) -> RoomState:
        return RoomState(tuple(m[0] for m in self.members), self.capacity, self.key)

    def node_of(self) -> dict[str, str]:
        return {m[0]: m[1] for m in self.members}


class Backplane:
    """Rooms, connection ids and relays shared by every process on one Redis.

    Args:
        url: ``redis://HOST:PORT/DB`` (``rediss://`` for TLS, a password in
            the URL if needed).
        deliver: Called with ``(connection id, message)`` for each delivery
            another node wrote for a connection on this one, in the order
            written; the server's own delivery function. Never called for an
            id :meth:`disconnect` has forgotten.
        lost: Called with the id of each local connection the cluster has
            given up on (this node was taken for dead during an outage, or
            did not fit back into its room after Redis lost its data): the
            server should close it so the client reconnects and rejoins.
        capacity, max_rooms, max_room_capacity, require_keys: The room rules'
            settings, as for :class:`~callapp.signaling.rooms.RoomRouter`;
            ``max_rooms`` counts rooms across every node. Give every node
            the same ones.
        namespace: Prefix of every key, so that clusters can share a Redis.
        heartbeat_interval: Seconds between heartbeats (and looks for dead
            nodes).
        node_timeout: Seconds without a heartbeat after which a node is dead.
        settle: Seconds every node waits, after Redis lost its data, for the
            others to write their rooms back (default: ``node_timeout``).
        max_pending: Relayed messages held while Redis is unreachable; more
            are answered ``busy``.
        retain: Seconds this node keeps what it wrote to other nodes'
            inboxes, to write it again if Redis loses its data before they
            read it (at most 20,000 entries).
        node_id: This node's id (default: random). Unique per process.

    Raises:
        ValueError: If a room setting or a timing is out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        deliver: Deliverer,
        lost: Callable[[str], None] | None = None,
        capacity: int = DEFAULT_ROOM_CAPACITY,
        max_rooms: int | None = None,
        max_room_capacity: int = DEFAULT_MAX_ROOM_CAPACITY,
        require_keys: bool = False,
        namespace: str = "callapp",
        heartbeat_interval: float = 1.0,
        node_timeout: float = 3.0,
        settle: float | None = None,
        max_pending: int = 10_000,
        retain: float = 5.0,
        node_id: str | None = None,
    ) -> None:
        # Fails now, like the router would, if the room settings are unusable.
        RoomRouter(capacity, max_rooms, max_room_capacity, require_keys)
        if heartbeat_interval <= 0 or node_timeout <= heartbeat_interval:
            raise ValueError("need 0 < heartbeat_interval < node_timeout")
        if max_pending < 0:
            raise ValueError("max_pending must be at least 0")
        self.url = url
        #: ``url`` as it may be logged and shown: its password, if any, hidden.
        self.shown_url = _without_password(url)
        self.capacity = capacity
        self.max_rooms = max_rooms
        self.max_room_capacity = max_room_capacity
        self.require_keys = require_keys
        self.namespace = namespace
        self.heartbeat_interval = heartbeat_interval
        self.node_timeout = node_timeout
        self.settle = node_timeout if settle is None else settle
        self.max_pending = max_pending
        self.retain = retain
        self.node_id = node_id or secrets.token_hex(8)
        self._deliver = deliver
        self._lost = lost
        self._local: dict[str, _Local] = {}
        # Requests that arrived while Redis was unreachable, in order:
        # (connection, Send or Leave) or (connection, None) for a disconnect.
        self._pending: deque[tuple[str, Send | Leave | None]] = deque()
        self._pending_sends = 0
        # Queued relays whose sender waits for their outcome (handle(hold=...)),
        # by the identity of the queued Send.
        self._holds: dict[int, asyncio.Future[list[Deliver]]] = {}
        # Rooms an event may or may not have changed when Redis went away.
        self._suspect: set[str] = set()
        self._epoch: str | None = None
        self._ready = False
        self._running = False
        self._down = asyncio.Event()
        self._last_id = "0-0"
        self._claiming: set[str] = set()
        # Local connections given up on (see ``lost``): forgotten already, so
        # that the server's closing calls find nothing left to do.
        self._given_up: set[str] = set()
        # Live relays waiting for the batch after the one out now (see
        # _relay_soon), and the task sending the batches while there are any.
        self._relaying: list[tuple[str, Send, asyncio.Future[list[Deliver]]]] = []
        self._relayer: asyncio.Task[None] | None = None
        # Entries counted per actor (see _entries), and the last count read per sender.
        self._seq: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        # Local connections whose room event is being applied (see _Hold).
        self._inbox_holds: dict[str, _Hold] = {}
        self._barriers = itertools.count(1)
        # Entries Redis took in the last ``retain`` seconds, and those whose
        # write an outage cut off: both sent again on recovery (see _resend).
        self._sent: deque[tuple[float, _Entry]] = deque()
        self._unconfirmed: list[_Entry] = []
        self._cut = False
        self._tasks: set[asyncio.Task[None]] = set()
        # No retries inside redis-py: a retried XADD or EXEC could be applied
        # twice. Failures come back here, where the request is queued.
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_connect_timeout": 1.0,
            "socket_timeout": 2.0,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
        }
        # Typed Any: redis-py types every reply ``bytes | str`` whatever
        # decode_responses says; with it on, every reply here is str.
        self._redis: Any = aioredis.Redis.from_url(url, **options)
        # The inbox read blocks in Redis; it gets its own connection and a
        # socket timeout longer than the block.
        options["socket_timeout"] = _READ_BLOCK_MS / 1000 + 2.0
        self._reader: Any = aioredis.Redis.from_url(url, **options)

    # -- keys ----------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    def _room_key(self, room: str) -> str:
        return self._k("room", room)

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Register this node and start its heartbeat and inbox reader.

        Raises:
            BackplaneUnavailable: If Redis cannot be reached now.
        """
        if self._running:
            raise RuntimeError("the backplane is already started")
        try:
            await self._recover()
        except RedisError as exc:
            logger.debug("Redis at %s: %s", self.shown_url, exc)
            raise BackplaneUnavailable(
                f"cannot reach Redis at {self.shown_url}: {_why_unreachable(exc)}"
            ) from None
        self._running = True
        self._spawn(self._supervise(), "supervisor")
        self._spawn(self._read(), "reader")

    async def stop(self) -> None:
        """Stop; if Redis is reachable, disconnect every local connection through
        the room rules first (their rooms get ``peer-left``) and unregister."""
        self._running = False
        self._release_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._ready:
            with contextlib.suppress(RedisError):
                for cid in list(self._local):
                    deliveries = await self._disconnect_now(cid)
                    self._dispatch(deliveries)
                await self._redis.srem(self._k("nodes"), self.node_id)
                await self._redis.delete(
                    self._k("hb", self.node_id),
                    self._k("inbox", self.node_id),
                    self._k("node", self.node_id),
                )
        self._ready = False
        await self._redis.aclose()
        await self._reader.aclose()

    async def abandon(self) -> None:
        """Stop without a word to Redis, as a process killed with ``kill -9`` would.

        For tests: the other nodes notice once the heartbeat expires.
        """
        self._running = False
        self._release_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._ready = False
        await self._redis.aclose()
        await self._reader.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def ready(self) -> bool:
        """True while Redis is reachable and this node's state is written back."""
        return self._ready

    @property
    def connection_count(self) -> int:
        """Connections on this node."""
        return len(self._local)

    @property
    def room_count(self) -> int:
        """Rooms that connections on this node are in."""
        return len({lo.room for lo in self._local.values() if lo.room is not None})

    @property
    def pending(self) -> int:
        """Requests queued while Redis is unreachable."""
        return len(self._pending)

    def is_local(self, connection_id: str) -> bool:
        return connection_id in self._local

    def room_of(self, connection_id: str) -> str | None:
        """The room of a connection on this node (:obj:`None` for others)."""
        local = self._local.get(connection_id)
        return None if local is None else local.room

    async def locate(self, connection_id: str) -> tuple[bool, str | None]:
        """Whether any node holds ``connection_id``, and its room.

        Raises:
            redis.exceptions.RedisError: If Redis cannot be reached.
        """
        local = self._local.get(connection_id)
        if local is not None:
            return True, local.room
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._k("conns"), connection_id)
            pipe.hget(self._k("roomof"), connection_id)
            node, room = await pipe.execute()
        return node is not None, room

    # -- events ----------------------------------------------------------------

    async def connect(self, connection_id: str) -> None:
        """Register a new live connection on this node (not yet in any room).

        Raises:
            ValueError: If the id is already connected here.
        """
        if connection_id in self._local:
            raise ValueError(f"connection {connection_id!r} is already connected")
        self._local[connection_id] = _Local()
        if not self._ready:
            return  # written back with the others when Redis returns
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._k("conns"), connection_id, self.node_id)
                pipe.sadd(self._k("node", self.node_id), connection_id)
                await pipe.execute()
        except RedisError:
            self._fail()

    async def handle(
        self,
        connection_id: str,
        request: Request,
        *,
        hold: Callable[[], Awaitable[object]] | None = None,
    ) -> list[Deliver]:
        """Apply one request from a local connection; the local deliveries.

        Deliveries for connections on other nodes are written to their
        inboxes before this returns.

        Args:
            hold: For a sender that is answered once its relay is done
                (``/apigw``: one answer per message, ``unknown-peer`` or
                not). A relay queued while Redis is away is then awaited,
                and its deliveries to the sender returned once it is
                applied, instead of ``[]`` now and its errors later; unless
                ``hold()`` (the connection's closing) finishes first: the
                relay stays queued and ``[]`` is returned.

        Raises:
            ValueError: If ``connection_id`` is not connected here.
        """
        if connection_id in self._given_up:
            return []
        local = self._require(connection_id)
        if isinstance(request, Join):
            if not self._ready:
                return [_busy(connection_id, request)]
            try:
                return await self._join(connection_id, local, request)
            except RedisError:
                self._fail()
                return [_busy(connection_id, request)]
        if not isinstance(request, Send | Leave):
            raise TypeError(f"not a request: {request!r}")
        if not self._ready:
            return await self._held(connection_id, request, hold)
        try:
            if isinstance(request, Send):
                return await self._relay_soon(connection_id, request)
            return await self._apply(connection_id, request)
        except RedisError:
            # Failed before anything was written (a relay's writes, once
            # made, are kept and sent again instead): done again once Redis
            # is back.
            self._fail()
            return await self._held(connection_id, request, hold, first=False)

    async def _held(
        self,
        cid: str,
        request: Send | Leave,
        hold: Callable[[], Awaitable[object]] | None,
        *,
        first: bool = True,
    ) -> list[Deliver]:
        """Queue ``request``; with ``hold``, wait for its outcome (see :meth:`handle`)."""
        answer = self._queue(cid, request, first=first)
        if hold is None or answer or not isinstance(request, Send):
            return answer
        future: asyncio.Future[list[Deliver]] = asyncio.get_running_loop().create_future()
        self._holds[id(request)] = future
        closing = asyncio.ensure_future(hold())
        try:
            await asyncio.wait((future, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not future.done():
                # Closed first (or cancelled): the flush dispatches its outcome.
                self._holds.pop(id(request), None)
        return future.result() if future.done() and not future.cancelled() else []

    def _release(self, request: Send, deliveries: list[Deliver]) -> list[Deliver]:
        """A queued relay was applied: its waiting sender takes its deliveries
        (returns none), else they are returned for dispatching."""
        future = self._holds.pop(id(request), None)
        if future is None or future.done():
            return deliveries
        future.set_result(deliveries)
        return []

    def _release_all(self) -> None:
        """Wake every waiting sender with nothing (stopping, or its relays dropped)."""
        holds, self._holds = self._holds, {}
        for future in holds.values():
            if not future.done():
                future.set_result([])

    async def disconnect(self, connection_id: str) -> list[Deliver]:
        """Forget a closed connection; it leaves its room (``peer-left`` to the others).

        Raises:
            ValueError: If ``connection_id`` is not connected here.
        """
        if connection_id in self._given_up:
            self._given_up.discard(connection_id)
            return []
        local = self._require(connection_id)
        local.closed = True
        if not self._ready:
            self._pending.append((connection_id, None))
            return []
        try:
            return await self._disconnect_now(connection_id)
        except RedisError:
            self._fail()
            self._pending.append((connection_id, None))
            return []

    def _require(self, connection_id: str) -> _Local:
        local = self._local.get(connection_id)
        if local is None or local.closed:
            raise ValueError(f"unknown connection {connection_id!r}: connect() it first")
        return local

    def _queue(self, cid: str, request: Send | Leave, *, first: bool = True) -> list[Deliver]:
        if isinstance(request, Send):
            if first and self._pending_sends >= self.max_pending:
                error = Error(
                    ErrorCode.BUSY,
                    "the server cannot reach its peers for a moment; send again shortly",
                    request.id,
                )
                return [Deliver(cid, error)]
            self._pending_sends += 1
        self._pending.append((cid, request))
        return []

    # -- the room rules, over Redis ------------------------------------------

    def _router(self, loaded: int = 0, total: int | None = None) -> RoomRouter:
        """A transient router with this node's settings.

        ``total`` rooms exist in the cluster and ``loaded`` of them will be
        restored into it: ``max_rooms`` is lowered by the others, so that
        the router's own count decides as the cluster's would.
        """
        max_rooms = self.max_rooms
        if max_rooms is not None and total is not None:
            max_rooms -= total - loaded
        return RoomRouter(self.capacity, max_rooms, self.max_room_capacity, self.require_keys)

    async def _join(self, cid: str, local: _Local, join: Join) -> list[Deliver]:
        rooms = [join.room] if local.room in (None, join.room) else [local.room, join.room]
        return await self._transact(cid, self.node_id, rooms, join)

    async def _apply(self, cid: str, request: Leave) -> list[Deliver]:
        """A leave from a local connection, Redis reachable."""
        room = self._local[cid].room
        if room is None:
            return []
        return await self._transact(cid, self.node_id, [room], request)

    async def _relay_soon(self, cid: str, send: Send) -> list[Deliver]:
        """Relay ``send`` in the next batch; its local deliveries.

        Relays from different connections that arrive while a batch is out
        wait for the next one, which reads the rooms and ids they need in
        one round trip and writes their inbox entries in another. So a node
        relays as many messages per round trip as it has senders waiting,
        instead of one (measured: 4,900 msg/s for two nodes relaying one at a
        time, each connection's next frame waiting for its relay's two round
        trips). Per-sender order holds: a connection's next request is not
        read before this returns.

        Raises:
            RedisError: If the batch's read failed (nothing was written).
        """
        future: asyncio.Future[list[Deliver]] = asyncio.get_running_loop().create_future()
        self._relaying.append((cid, send, future))
        if self._relayer is None:
            self._relayer = asyncio.create_task(
                self._relay_batches(), name=f"backplane-relayer-{self.node_id}"
            )
            self._tasks.add(self._relayer)
            self._relayer.add_done_callback(self._tasks.discard)
        return await future

    async def _relay_batches(self) -> None:
        """Send the waiting relays, a batch at a time, until none wait."""
        batch: list[tuple[str, Send, asyncio.Future[list[Deliver]]]] = []
        try:
            while self._relaying:
                batch = self._relaying[:_FLUSH_BATCH]
                del self._relaying[:_FLUSH_BATCH]
                # A sender cancelled while waiting (its connection closing)
                # takes its relay with it, as it would have unbatched.
                for item in batch:
                    if item[0] not in self._local and not item[2].done():
                        item[2].set_result([])
                batch = [item for item in batch if not item[2].done()]
                if not self._ready:
                    raise RedisError("Redis went away before this batch")
                outcomes = await self._relay_batch([(cid, send) for cid, send, _ in batch])
                for (_, _, future), ours in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(ours)
                batch = []
        except asyncio.CancelledError:
            for _, _, future in (*batch, *self._relaying):
                if not future.done():
                    future.set_result([])  # stopping: the node's connections go with it
            self._relaying.clear()
            raise
        except Exception as error:
            # Every waiting sender takes it (a RedisError: each queues its relay
            # for after the outage, in its own order).
            for _, _, future in (*batch, *self._relaying):
                if not future.done():
                    future.set_exception(error)
            self._relaying.clear()
        finally:
            self._relayer = None

    def _plan(
        self, cid: str, send: Send, holder: str | None, stored: _Stored | None
    ) -> tuple[list[Deliver], list[tuple[str, Deliver]]]:
        """Route one relay by the rules, given the node that holds ``send.to``
        (if remote) or the sender's room as stored."""
        router = self._router()
        nodes: dict[str, str] = {}
        room = self._local[cid].room
        if send.to is None and room is not None and stored is not None and cid in stored.node_of():
            router.restore_room(room, stored.state())
            nodes = stored.node_of()
        else:
            router.connect(cid)
        to = send.to
        if to is not None and to != cid:
            target = self._local.get(to)
            if target is not None:
                if not target.closed:
                    router.connect(to)
            elif holder is not None:
                router.connect(to)
                nodes[to] = holder
        return self._split(router.handle(cid, send), nodes)

    async def _relay_batch(self, items: list[tuple[str, Send]]) -> list[list[Deliver]]:
        """Several relays in one read and one write round trip, in order; the
        local deliveries of each.

        Each relay sees the rooms and ids as they are when the batch starts,
        as it would alone: no room event of the same connection can fall
        inside the batch (a connection's requests run one at a time, and the
        outage queue's batches hold relays only).
        """
        # One MGET for the rooms and one HMGET for the remote ids, whatever
        # the batch's size: redis-py's cost is mostly per command.
        ids: dict[str, str | None] = {}
        rooms: dict[str, str | None] = {}
        for cid, send in items:
            room = self._local[cid].room
            if send.to is not None and send.to not in self._local:
                ids[send.to] = None
            elif send.to is None and room is not None:
                rooms[room] = None
        if ids or rooms:
            async with self._redis.pipeline(transaction=False) as pipe:
                if ids:
                    pipe.hmget(self._k("conns"), list(ids))
                if rooms:
                    pipe.mget([self._room_key(room) for room in rooms])
                replies = await pipe.execute()
            if ids:
                ids = dict(zip(ids, replies.pop(0), strict=True))
            if rooms:
                rooms = dict(zip(rooms, replies.pop(0), strict=True))
        mine: list[list[Deliver]] = []
        entries: list[_Entry] = []
        for cid, send in items:
            room = self._local[cid].room
            holder = ids.get(send.to) if send.to is not None else None
            raw = rooms.get(room) if send.to is None and room is not None else None
            ours, others = self._plan(cid, send, holder, _Stored.load(raw))
            mine.append(ours)
            entries += self._entries(cid, others)
        if entries:
            await self._send_entries(entries)
        return mine

    async def _disconnect_now(self, cid: str) -> list[Deliver]:
        local = self._local[cid]
        rooms = [] if local.room is None else [local.room]
        deliveries = await self._transact(cid, self.node_id, rooms, None, unregister=True)
        del self._local[cid]
        self._seq.pop(cid, None)  # ids are never reused
        return deliveries

    async def _transact(
        self,
        cid: str,
        node: str,
        rooms: list[str],
        request: Join | Leave | None,
        *,
        unregister: bool = False,
        claim: str | None = None,
        note: bool = True,
    ) -> list[Deliver]:
        """Apply one room event under WATCH/MULTI/EXEC; the deliveries for this node.

        ``request`` None is a disconnect. ``cid`` is held by ``node`` (this
        one, or a dead one whose claim is being worked off); ``rooms`` are
        its room first (if any) and a join's target.
        """
        hold = None
        if node == self.node_id and request is not None:
            hold = self._hold(cid)
        try:
            return await self._transact_held(
                cid, node, rooms, request, hold, unregister=unregister, claim=claim, note=note
            )
        finally:
            if hold is not None:
                self._end_hold(cid, hold)

    async def _transact_held(
        self,
        cid: str,
        node: str,
        rooms: list[str],
        request: Join | Leave | None,
        hold: _Hold | None,
        *,
        unregister: bool,
        claim: str | None,
        note: bool,
    ) -> list[Deliver]:
        """:meth:`_transact` with ``cid``'s inbox deliveries held in ``hold``, if any."""
        keys = [self._room_key(r) for r in rooms]
        for _ in range(MAX_ATTEMPTS):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    raws: list[str | None] = [None]
                    if keys:
                        await pipe.watch(*keys)
                        raws = await pipe.mget(*keys, self._k("settle"))
                    stored = {r: _Stored.load(raw) for r, raw in zip(rooms, raws, strict=False)}
                    if isinstance(request, Join) and raws[-1] is not None:
                        return [_busy(cid, request)]
                    total = None
                    if (
                        isinstance(request, Join)
                        and stored.get(request.room) is None
                        and self.max_rooms is not None
                    ):
                        await pipe.watch(self._k("rooms"))
                        total = int(await pipe.scard(self._k("rooms")))
                    existing = {r: s for r, s in stored.items() if s is not None}
                    router = self._router(len(existing), total)
                    nodes: dict[str, str] = {cid: node}
                    for room, state in existing.items():
                        router.restore_room(room, state.state())
                        nodes.update(state.node_of())
                    if not router.is_connected(cid):
                        router.connect(cid)
                    before = router.room_of(cid)
                    if request is None:
                        deliveries = router.disconnect(cid)
                    else:
                        deliveries = router.handle(cid, request)
                    after = router.room_of(cid) if request is not None else None
                    mine, theirs = self._split(deliveries, nodes, skip=claim)
                    entries = self._entries(cid, theirs)
                    pipe.multi()
                    written = {
                        room: self._store(pipe, room, stored.get(room), router, cid, node)
                        for room in rooms
                    }
                    if after is not None and after != before:
                        pipe.hset(self._k("roomof"), cid, after)
                    elif after is None and before is not None:
                        pipe.hdel(self._k("roomof"), cid)
                    if unregister or claim is not None:
                        pipe.hdel(self._k("conns"), cid)
                        pipe.hdel(self._k("roomof"), cid)
                        pipe.srem(self._k("node", node), cid)
                    if claim is not None:
                        pipe.srem(self._k("claim", claim), cid)
                    self._write(pipe, entries)
                    if hold is not None:
                        pipe.xadd(
                            self._k("inbox", self.node_id),
                            {"b": hold.token},
                            maxlen=_INBOX_MAXLEN,
                            approximate=True,
                        )
                    try:
                        await pipe.execute()
                    except RedisError:
                        # Sent, but whether it was applied is unknown.
                        self._suspect.update(rooms)
                        raise
                except WatchError:
                    continue
            if hold is not None:
                # Not for ever: a reader cut off by an outage tells in the old way.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_BARRIER_WAIT):
                        await asyncio.shield(hold.read)
            self._written(entries)
            local = self._local.get(cid) if node == self.node_id and note else None
            if local is not None:
                local.room = after
                self._note(local, written.get(after) if after is not None else None, cid)
            return mine
        # Only under a storm of writers to the same room; the client retries.
        if isinstance(request, Join):
            return [_busy(cid, request)]
        raise RedisError(f"room event for {cid} kept conflicting")

    def _store(
        self,
        pipe: Pipeline,
        room: str,
        old: _Stored | None,
        router: RoomRouter,
        cid: str,
        node: str,
    ) -> _Stored | None:
        """Queue the write of ``room`` as ``router`` left it (tickets kept); the new state."""
        state = router.room_state(room)
        if state is None:
            if old is not None:
                pipe.delete(self._room_key(room))
                pipe.srem(self._k("rooms"), room)
            return None
        previous = {} if old is None else {m[0]: (m[1], m[2]) for m in old.members}
        next_ticket = 0 if old is None else old.next
        members = []
        for member in state.members:
            if member in previous:
                members.append((member, *previous[member]))
            else:  # the joiner
                members.append((member, node, next_ticket))
                next_ticket += 1
        new = _Stored(members, state.capacity, state.key, next_ticket)
        if old is None or new != old:
            pipe.set(self._room_key(room), new.dump())
        if old is None:
            pipe.sadd(self._k("rooms"), room)
        return new

    @staticmethod
    def _note(local: _Local, stored: _Stored | None, cid: str) -> None:
        """Remember a local connection's room as stored, to write it back after a data loss."""
        if stored is None:
            local.room = None
            return
        for member, _, ticket in stored.members:
            if member == cid:
                local.ticket = ticket
        local.capacity = stored.capacity
        local.key = stored.key

    def _split(
        self, deliveries: Iterable[Deliver], nodes: dict[str, str], skip: str | None = None
    ) -> tuple[list[Deliver], list[tuple[str, Deliver]]]:
        """Deliveries for this node, and ``(node, delivery)`` for the others (none to ``skip``)."""
        mine: list[Deliver] = []
        theirs: list[tuple[str, Deliver]] = []
        for delivery in deliveries:
            node = nodes.get(delivery.to, self.node_id)
            if node == self.node_id:
                mine.append(delivery)
            elif node != skip:
                theirs.append((node, delivery))
        return mine, theirs

    def _entries(self, actor: str, theirs: Iterable[tuple[str, Deliver]]) -> list[_Entry]:
        """Inbox entries for deliveries caused by ``actor`` (a connection id).

        Each carries ``a`` (this node and the actor) and ``s``, the actor's
        own count of entries: one actor's events run one at a time, so its
        entries reach each inbox in that order, and a receiver drops any
        whose count it has seen (an entry sent again after an outage).
        """
        tag = f"{self.node_id}/{actor}"
        entries = []
        for node, delivery in theirs:
            seq = self._seq.get(actor, 0) + 1
            self._seq[actor] = seq
            fields = {"to": delivery.to, "m": encode(delivery.message), "a": tag, "s": str(seq)}
            entries.append((node, fields))
        return entries

    def _write(self, pipe: Any, entries: Iterable[_Entry]) -> None:
        """Queue ``entries`` on ``pipe``: each node's, in their order, in as
        few inbox entries as :data:`_PER_ENTRY` allows."""
        grouped: dict[str, list[dict[str, str]]] = {}
        for node, fields in entries:
            grouped.setdefault(node, []).append(fields)
        for node, all_fields in grouped.items():
            inbox = self._k("inbox", node)
            for start in range(0, len(all_fields), _PER_ENTRY):
                combined = dict(all_fields[start])
                for index, fields in enumerate(all_fields[start + 1 : start + _PER_ENTRY], 1):
                    combined.update((f"{name}.{index}", value) for name, value in fields.items())
                pipe.xadd(inbox, combined, maxlen=_INBOX_MAXLEN, approximate=True)

    def _written(self, entries: list[_Entry]) -> None:
        """Keep what Redis took for ``retain`` seconds: if Redis loses its data,
        entries not read yet are gone with it, and are sent again."""
        if not entries:
            return
        now = time.monotonic()
        sent = self._sent
        sent.extend((now, entry) for entry in entries)
        horizon = now - self.retain
        while sent and (sent[0][0] < horizon or len(sent) > _RETAIN_MAX):
            sent.popleft()

    async def _send_entries(self, entries: list[_Entry], read: Any = None) -> list[Any]:
        """Write ``entries`` (after the command ``read`` queues, if any) in one
        round trip; the replies.

        If Redis goes away meanwhile, the entries are kept and sent again
        once it is back (the receivers drop the copies), so the relay counts
        as done: nothing is lost, nothing arrives twice.
        """
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                if read is not None:
                    read(pipe)
                self._write(pipe, entries)
                replies: list[Any] = await pipe.execute()
        except RedisError:
            self._unconfirmed.extend(entries)
            self._cut = True
            self._fail()
            return []
        self._written(entries)
        return replies

    async def _resend(self, everything: bool) -> None:
        """Send again what Redis may not have kept: the writes an outage cut
        off, and, if Redis lost its data, every write of the last ``retain``
        seconds (their receivers may not have read them)."""
        entries = [entry for _, entry in self._sent] if everything else []
        entries += self._unconfirmed
        for start in range(0, len(entries), _FLUSH_BATCH):
            async with self._redis.pipeline(transaction=False) as pipe:
                self._write(pipe, entries[start : start + _FLUSH_BATCH])
                await pipe.execute()
        self._written(self._unconfirmed)
        self._unconfirmed = []

    def _dispatch(self, deliveries: Iterable[Deliver]) -> None:
        for delivery in deliveries:
            local = self._local.get(delivery.to)
            if local is not None and not local.closed:
                self._deliver(delivery.to, delivery.message)

    # -- the inbox -------------------------------------------------------------

    async def _read(self) -> None:
        """Read this node's inbox for ever, handing each delivery to ``deliver``."""
        trimmed = self._last_id
        unread = 0
        while self._running:
            inbox = self._k("inbox", self.node_id)
            try:
                answer = await self._reader.xread(
                    {inbox: self._last_id}, count=_READ_COUNT, block=_READ_BLOCK_MS
                )
            except RedisError:
                self._fail()
                await asyncio.sleep(0.1)
                continue
            for _stream, entries in answer or ():
                unread += len(entries)
                for entry_id, fields in entries:
                    self._last_id = entry_id
                    barrier = fields.get("b")
                    if barrier is not None:
                        self._at_barrier(barrier)
                        continue
                    self._receive(
                        fields.get("to"), fields.get("m"), fields.get("a"), fields.get("s")
                    )
                    for index in range(1, _PER_ENTRY):
                        to = fields.get(f"to.{index}")
                        if to is None:
                            break
                        self._receive(
                            to,
                            fields.get(f"m.{index}"),
                            fields.get(f"a.{index}"),
                            fields.get(f"s.{index}"),
                        )
            # Trimmed now and then (or when idle), not after every read: a
            # trim costs as much as the read.
            if self._last_id != trimmed and (unread >= _TRIM_EVERY or not answer):
                unread = 0
                # Entries before the last one read are done with.
                with contextlib.suppress(RedisError):
                    await self._reader.xtrim(inbox, minid=self._last_id)
                trimmed = self._last_id

    def _receive(
        self, to: str | None, text: str | None, tag: str | None, count: str | None
    ) -> None:
        """One delivery read from the inbox: ``to``, the message ``text``, its
        actor's ``tag`` and ``count`` (see :meth:`_entries`)."""
        tag, seq = tag or "", int(count or 0)
        if seq <= self._seen.get(tag, 0):
            return  # sent again after an outage: already delivered
        if len(self._seen) >= _MAX_SEEN:
            # Forget the oldest half: actors long gone, in practice.
            for old in list(itertools.islice(self._seen, _MAX_SEEN // 2)):
                del self._seen[old]
        self._seen[tag] = seq
        local = self._local.get(to) if to is not None else None
        if to is None or text is None or local is None or local.closed:
            return  # gone since it was written
        try:
            message = parse_server_message(text)
        except Exception:  # pragma: no cover - only our own encode() writes here
            logger.exception("unreadable inbox entry for %s", to)
            return
        if isinstance(message, UnknownServerMessage):  # pragma: no cover - as above
            return
        hold = self._inbox_holds.get(to)
        if hold is not None:
            hold.held.append(message)
            return
        self._hand_over(to, message)

    def _hand_over(self, to: str, message: ServerMessage) -> None:
        local = self._local.get(to)
        if local is None or local.closed:
            return
        try:
            self._deliver(to, message)
        except Exception:
            logger.exception("delivering to %s failed", to)

    # -- holding a connection's inbox during its own room event ----------------

    def _hold(self, cid: str) -> _Hold | None:
        """Start holding ``cid``'s inbox deliveries (None if it is not local and open,
        or already held: a recovery step for it may overlap its own request)."""
        local = self._local.get(cid)
        if local is None or local.closed or cid in self._inbox_holds:
            return None
        token = f"{cid}/{next(self._barriers)}"
        hold = _Hold(token, [], asyncio.get_running_loop().create_future())
        self._inbox_holds[cid] = hold
        return hold

    def _at_barrier(self, token: str) -> None:
        """The reader reached a barrier: what is held from now on came after the event."""
        cid = token.rpartition("/")[0]
        hold = self._inbox_holds.get(cid)
        if hold is not None and hold.token == token and hold.before is None:
            hold.before = len(hold.held)
            if not hold.read.done():
                hold.read.set_result(None)

    def _end_hold(self, cid: str, hold: _Hold) -> None:
        """The event is done: hand over what came before it now, the rest just after.

        Called as the event returns its own deliveries, which the caller
        dispatches before the loop runs anything else; what came after the
        event waits for the next loop iteration (held until then: it must
        not overtake them), and with it anything read meanwhile.
        """
        before = len(hold.held) if hold.before is None else hold.before
        earlier, hold.held = hold.held[:before], hold.held[before:]
        hold.before = 0
        for message in earlier:
            self._hand_over(cid, message)
        asyncio.get_running_loop().call_soon(self._unhold, cid, hold)

    def _unhold(self, cid: str, hold: _Hold) -> None:
        if self._inbox_holds.get(cid) is hold:
            del self._inbox_holds[cid]
        for message in hold.held:
            self._hand_over(cid, message)
        hold.held = []

    # -- liveness and recovery -------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"backplane-{name}-{self.node_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail(self) -> None:
        """Redis went away: queue from now on, and let the supervisor reconnect."""
        if self._ready:
            logger.warning(
                "Redis at %s unreachable: holding relays, refusing joins", self.shown_url
            )
        self._ready = False
        self._down.set()

    async def _supervise(self) -> None:
        backoff = 0.05
        while self._running:
            if not self._ready:
                try:
                    await self._recover()
                    backoff = 0.05
                    logger.info(
                        "Redis at %s reachable again; node %s ready", self.shown_url, self.node_id
                    )
                except RedisError as exc:
                    logger.debug("Redis still unreachable: %s", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(1.0, backoff * 2)
                continue
            self._down.clear()
            try:
                await self._heartbeat()
                await self._reap()
            except RedisError:
                self._fail()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat_interval):
                    await self._down.wait()

    async def _heartbeat(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._k("hb", self.node_id), "1", px=int(self.node_timeout * 1000))
            pipe.sismember(self._k("nodes"), self.node_id)
            pipe.get(self._k("epoch"))
            _, member, epoch = await pipe.execute()
        if not member or epoch != self._epoch:
            # Taken for dead (a stall longer than node_timeout) or Redis lost
            # its data under us: recover as after an outage.
            self._fail()

    async def _recover(self) -> None:
        """Reconnect: write this node's state back, then apply what was queued."""
        if self._epoch is not None:
            # Every pooled connection went with Redis: drop them all now
            # rather than have each fail once and start another recovery.
            await self._redis.connection_pool.disconnect()
        epoch = await self._redis.get(self._k("epoch"))
        lost_data = False
        if epoch is None:
            fresh = secrets.token_hex(8)
            await self._redis.set(self._k("epoch"), fresh, nx=True)
            epoch = await self._redis.get(self._k("epoch"))
            # An empty Redis under a node that holds rooms: it was restarted.
            lost_data = self._epoch is not None
        elif self._epoch is not None and epoch != self._epoch:
            lost_data = True
        elif self._epoch is not None and not await self._redis.sismember(
            self._k("nodes"), self.node_id
        ):
            await self._start_afresh()
        if lost_data:
            await self._redis.set(self._k("settle"), "1", px=int(self.settle * 1000), nx=True)
            self._suspect.clear()
        first = self._epoch is None
        self._epoch = epoch
        # A Redis that kept its data holds every room as the rules left it;
        # only rooms an event was cut off in need looking at (below).
        await self._register(restore_rooms=lost_data or first)
        await self._reconcile()
        if lost_data:
            # Every node writes its rooms back within this window; a join
            # meanwhile could land in a half-restored room.
            while (ttl := await self._redis.pttl(self._k("settle"))) > 0:
                await self._beat()
                await asyncio.sleep(min(ttl / 1000, self.heartbeat_interval))
        await self._resend(everything=lost_data)
        await self._flush()

    async def _start_afresh(self) -> None:
        """The others took this node for dead (and disconnected its connections)
        while it was cut off or stalled: give its connections up and start
        again under a new node id.

        Each connection is first disconnected through the rules here too:
        one the claimer already took out of its room is in none, so nothing
        is told twice; one that joined a room after the claim (a stall, not
        a cut) leaves it now instead of staying there for ever.
        """
        old = self.node_id
        lost = [cid for cid, local in self._local.items() if not local.closed]
        logger.warning("node %s was taken for dead; giving up its %d connections", old, len(lost))
        for cid, local in list(self._local.items()):
            rooms = [] if local.room is None else [local.room]
            await self._transact(cid, old, rooms, None, unregister=True)
        await self._redis.delete(self._k("node", old), self._k("inbox", old), self._k("hb", old))
        self._local.clear()
        self._pending.clear()
        self._pending_sends = 0
        self._release_all()
        self._suspect.clear()
        self.node_id = secrets.token_hex(8)
        self._last_id = "0-0"
        self._given_up.update(lost)
        if self._lost is not None:
            for cid in lost:
                self._lost(cid)

    async def _register(self, *, restore_rooms: bool) -> None:
        """Write this node, its connections and their rooms (back) into Redis."""
        me = self.node_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._k("hb", me), "1", px=int(self.node_timeout * 1000))
            pipe.sadd(self._k("nodes"), me)
            ids = list(self._local)
            if ids:
                pipe.hset(self._k("conns"), mapping=dict.fromkeys(ids, me))
                pipe.sadd(self._k("node", me), *ids)
                rooms = {cid: lo.room for cid, lo in self._local.items() if lo.room is not None}
                if rooms:
                    pipe.hset(self._k("roomof"), mapping=rooms)
            await pipe.execute()
        by_room: dict[str, list[str]] = {}
        for cid, local in self._local.items():
            if local.room is not None:
                by_room.setdefault(local.room, []).append(cid)
        for room, ids in by_room.items() if restore_rooms else ():
            await self._restore(room, ids)

    async def _restore(self, room: str, ids: list[str]) -> None:
        """Put this node's members of ``room`` back in it, in their join order, if missing."""
        key = self._room_key(room)
        for _ in range(MAX_ATTEMPTS):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    stored = _Stored.load(await pipe.get(key))
                    first = self._local[ids[0]]
                    if stored is None:
                        stored = _Stored([], first.capacity, first.key, 0)
                        new_room = True
                    else:
                        new_room = False
                    present = stored.node_of()
                    missing = [cid for cid in ids if cid not in present]
                    if not missing:
                        return
                    members = stored.members + [
                        (cid, self.node_id, self._local[cid].ticket) for cid in missing
                    ]
                    members.sort(key=lambda m: m[2])
                    dropped = [m[0] for m in members[stored.capacity :] if m[1] == self.node_id]
                    kept = [m for m in members if m[0] not in dropped]
                    nxt = max(stored.next, *(m[2] + 1 for m in kept)) if kept else stored.next
                    pipe.multi()
                    if kept:
                        pipe.set(key, _Stored(kept, stored.capacity, stored.key, nxt).dump())
                        if new_room:
                            pipe.sadd(self._k("rooms"), room)
                    for cid in dropped:
                        pipe.hdel(self._k("roomof"), cid)
                    await pipe.execute()
                except WatchError:
                    continue
            for cid in dropped:
                # It no longer fits: the others filled the room meanwhile.
                self._local[cid].room = None
                if self._lost is not None:
                    self._lost(cid)
            return

    async def _reconcile(self) -> None:
        """Bring rooms an event was cut off in (EXEC sent, no reply) back to
        what this node's connections were told, through the rules.

        The connection's view wins, since that is what its client was told
        (``busy`` for a join): a member the room holds that does not think
        itself in it leaves (the others hear ``peer-left``); one that thinks
        itself in a room that no longer holds it (the cut-off join had moved
        it) joins it again (the others hear ``peer-joined``), or, if it no
        longer fits, is given up (``lost``: its client reconnects and rejoins).
        """
        for room in sorted(self._suspect):
            stored = _Stored.load(await self._redis.get(self._room_key(room)))
            present = set()
            for cid, node, _ in [] if stored is None else stored.members:
                local = self._local.get(cid)
                if node != self.node_id:
                    continue
                present.add(cid)
                if local is None:  # closed and forgotten meanwhile
                    self._dispatch(await self._transact(cid, node, [room], None, unregister=True))
                elif local.room != room:
                    deliveries = await self._transact(cid, node, [room], Leave(), note=False)
                    self._dispatch(deliveries)
            for cid, local in list(self._local.items()):
                if local.room != room or cid in present or local.closed:
                    continue
                local.room = None  # as the room has it; the join below puts it back
                again = Join(room, capacity=local.capacity, key=local.key)
                deliveries = await self._transact(cid, self.node_id, [room], again)
                if self.room_of(cid) != room:
                    self._given_up.add(cid)
                    del self._local[cid]
                    await self._transact(cid, self.node_id, [], None, unregister=True)
                    if self._lost is not None:
                        self._lost(cid)
                    continue
                # Its client believes it never left: tell only the others.
                self._dispatch(d for d in deliveries if d.to != cid)
            self._suspect.discard(room)

    async def _flush(self) -> None:
        """Apply what was queued during the outage, in order, then turn ready."""
        beat = time.monotonic()
        while self._pending:
            cid, request = self._pending[0]
            if cid not in self._local:
                self._pending.popleft()
                if isinstance(request, Send):
                    self._pending_sends -= 1
                    self._release(request, [])
                continue
            if isinstance(request, Send):
                batch: list[tuple[str, Send]] = []
                for cid, request in itertools.islice(self._pending, _FLUSH_BATCH):
                    if not isinstance(request, Send) or cid not in self._local:
                        break
                    batch.append((cid, request))
                self._cut = False
                outcomes = await self._relay_batch(batch)
                for _ in batch:
                    self._pending.popleft()
                self._pending_sends -= len(batch)
                deliveries = [
                    delivery
                    for (_, send), ours in zip(batch, outcomes, strict=True)
                    for delivery in self._release(send, ours)
                ]
                if self._cut:
                    # Written or kept to be written again: done either way,
                    # but Redis is gone again.
                    self._dispatch(deliveries)
                    raise RedisError("Redis went away while flushing")
            else:
                if request is None:
                    deliveries = await self._disconnect_now(cid)
                else:
                    deliveries = await self._apply(cid, request)
                self._pending.popleft()
            self._dispatch(deliveries)
            if time.monotonic() - beat > self.heartbeat_interval:
                await self._beat()
                beat = time.monotonic()
        self._ready = True

    async def _beat(self) -> None:
        await self._redis.set(self._k("hb", self.node_id), "1", px=int(self.node_timeout * 1000))

    async def _reap(self) -> None:
        """Look for dead nodes (and dead claimers); claim and clean up after them."""
        nodes = await self._redis.smembers(self._k("nodes"))
        others = sorted(n for n in nodes if n != self.node_id)
        if others:
            async with self._redis.pipeline(transaction=False) as pipe:
                for node in others:
                    pipe.exists(self._k("hb", node))
                alive = await pipe.execute()
            for node, up in zip(others, alive, strict=True):
                if not up:
                    await self._claim(node)
        claims = await self._redis.hgetall(self._k("claims"))
        for dead, claimer in claims.items():
            if claimer == self.node_id:
                self._clean_up(dead)
            elif not await self._redis.exists(self._k("hb", claimer)):
                await self._take_over(dead, claimer)

    async def _claim(self, dead: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(self._k("nodes"), self._k("hb", dead))
                if await pipe.exists(self._k("hb", dead)) or not await pipe.sismember(
                    self._k("nodes"), dead
                ):
                    return
                pipe.multi()
                pipe.srem(self._k("nodes"), dead)
                pipe.hset(self._k("claims"), dead, self.node_id)
                pipe.sunionstore(self._k("claim", dead), [self._k("node", dead)])
                pipe.delete(self._k("node", dead))
                await pipe.execute()
            except WatchError:
                return  # another node claimed it, or it came back
        logger.warning("node %s stopped its heartbeat; disconnecting its connections", dead)
        self._clean_up(dead)

    async def _take_over(self, dead: str, claimer: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(self._k("claims"))
                if await pipe.hget(self._k("claims"), dead) != claimer:
                    return
                pipe.multi()
                pipe.hset(self._k("claims"), dead, self.node_id)
                await pipe.execute()
            except WatchError:
                return
        self._clean_up(dead)

    def _clean_up(self, dead: str) -> None:
        if dead not in self._claiming:
            self._claiming.add(dead)
            self._spawn(self._orphans(dead), f"orphans-{dead}")

    async def _orphans(self, dead: str) -> None:
        """Disconnect a dead node's connections through the rules, one transaction each."""
        try:
            orphans = await self._redis.smembers(self._k("claim", dead))
            for cid in sorted(orphans):
                room = await self._redis.hget(self._k("roomof"), cid)
                rooms = [] if room is None else [room]
                deliveries = await self._transact(cid, dead, rooms, None, claim=dead)
                self._seq.pop(cid, None)
                self._dispatch(deliveries)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self._k("claims"), dead)
                pipe.delete(self._k("claim", dead), self._k("inbox", dead), self._k("node", dead))
                await pipe.execute()
        except RedisError:
            self._fail()  # the claim stays ours; the next reap goes on with it
        finally:
            self._claiming.discard(dead)


def _busy(cid: str, request: Join) -> Deliver:
    error = Error(
        ErrorCode.BUSY,
        "the server cannot reach its room store for a moment; join again shortly",
        request.id,
    )
    return Deliver(cid, error)
