"""A man in the middle on the signaling path: a WebSocket proxy that swaps the peers' DTLS.

:class:`MitmRelay` listens like a signaling server and passes every frame of
every client on to a real :class:`~callapp.signaling.server.SignalingServer`
(one upstream connection per client, so the real server assigns the ids,
checks room keys and stamps ``from``). It is what an operator, or anyone on a
plain ``ws://`` path, can do:

* When one client (X) offers to another (Y), the offer never reaches Y. The
  relay answers X itself from an ``RTCPeerConnection`` of its own (``pc``
  facing X, with its own DTLS certificate), and offers Y from a second one
  (facing Y, another certificate). Its messages go through the real server
  on the impersonated client's upstream connection, so they arrive with the
  right ``from``. Y's answer and any ICE go to the relay's peers.
* Media received from X is sent on to Y and the other way round
  (:class:`ForwardTrack`), and the ``chat`` data channels are bridged, so an
  unsuspecting pair gets a working call.
* ``VERIFY`` messages, per ``verify``:

  - ``"forward"``: passed on unchanged (the relay has no secret, so it
    cannot make a MAC for its own certificates; the real ones name the real
    certificates);
  - ``"strip-mac"``: the code steps are passed on, the MACs dropped (the
    clients' DTLS connects and media flows while they wait for a MAC);
  - ``"terminate"``: the relay runs a :class:`~callapp.call.security.Verifier`
    of its own on each leg (answerer towards the offerer, offerer towards the
    answerer), so each side gets a complete exchange and a code; MACs are
    passed on unchanged.

* ``intercept=False`` passes everything through untouched (the control).

:class:`RelayThread` runs a real server and a relay on a loop of their own,
for tests that drive ``callapp call`` processes from synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Literal

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from callapp.call import ice, security, wire
from callapp.signaling.server import SignalingServer

logger = logging.getLogger(__name__)

VerifyMode = Literal["forward", "strip-mac", "terminate"]
#: Bounded STUN wait for the relay's own gathering (it uses no STUN anyway).
GATHER_TIMEOUT = 0.3


class ForwardTrack(MediaStreamTrack):
    """Sends whatever track is attached later: the other side's media, once it arrives."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.frames = 0
        self._source: MediaStreamTrack | None = None
        self._ready = asyncio.Event()

    def attach(self, source: MediaStreamTrack) -> None:
        if self._source is None:
            self._source = source
            self._ready.set()

    async def recv(self) -> Any:
        await self._ready.wait()
        assert self._source is not None
        frame = await self._source.recv()
        self.frames += 1
        return frame


@dataclass
class RelayLeg:
    """The relay's peer connection facing one client, posing as ``poses_as``."""

    client: str
    poses_as: str
    role: security.Role  # the relay's role on this leg
    pc: RTCPeerConnection
    out: dict[str, ForwardTrack] = field(default_factory=dict)
    chat: RTCDataChannel | None = None
    verifier: security.Verifier | None = None
    early_verify: list[dict[str, Any]] = field(default_factory=list)
    remote_sdp: str | None = None
    #: Tracks received from this client, by kind (aiortc emits them while the
    #: remote description is applied, before the other leg's senders exist).
    received: dict[str, MediaStreamTrack] = field(default_factory=dict)

    @property
    def local_fingerprint(self) -> str:
        return security.local_fingerprint(str(self.pc.localDescription.sdp))

    @property
    def frames_forwarded(self) -> dict[str, int]:
        """Frames the relay sent *to* this client, by kind."""
        return {kind: track.frames for kind, track in self.out.items()}


@dataclass
class _Client:
    down: ServerConnection
    up: ClientConnection
    id: str | None = None


class MitmRelay:
    """A signaling proxy in front of ``upstream`` (a ``ws://.../ws`` URL); see the module."""

    def __init__(
        self, upstream: str, *, intercept: bool = True, verify: VerifyMode = "forward"
    ) -> None:
        self.upstream = upstream
        self.intercept = intercept
        self.verify = verify
        self._server: Server | None = None
        self._clients: dict[str, _Client] = {}
        #: The relay's legs by the client they face.
        self.legs: dict[str, RelayLeg] = {}
        #: Every call message a client sent, as (from, to, data), before interception.
        self.log: list[tuple[str, str, Any]] = []
        #: Offers the relay answered itself (one per intercepted call).
        self.offers_hijacked = 0
        self.errors: list[str] = []

    # -- running -------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._pass_page_through
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        """The browser client's page, fetched from the real server through the relay."""
        return f"http://127.0.0.1:{self.port}/"

    async def _pass_page_through(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Plain HTTP (the page and its scripts) is fetched upstream and passed on.

        An attacker on the path sees and may change all of it; what it cannot
        see is the URL fragment, where the invite keeps the room secret.
        """
        upgrade = request.headers.get("Upgrade", "")
        if "websocket" in upgrade.lower():
            return None
        upstream = self.upstream.replace("ws://", "http://", 1).rsplit("/ws", 1)[0]
        status, headers, body = await asyncio.to_thread(_http_get, upstream + request.path)
        headers["Content-Length"] = str(len(body))
        return Response(status, "", Headers(headers), body)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        for leg in list(self.legs.values()):
            await _close(leg.pc)
        self.legs.clear()

    async def __aenter__(self) -> MitmRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the proxy -----------------------------------------------------------------

    async def _handle(self, down: ServerConnection) -> None:
        try:
            up = await connect(self.upstream, open_timeout=5)
        except Exception as exc:  # the real server is gone
            self.errors.append(f"upstream: {exc}")
            return
        client = _Client(down, up)
        tasks = [
            asyncio.ensure_future(self._client_to_server(client)),
            asyncio.ensure_future(self._server_to_client(client)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await up.close()
            if client.id is not None:
                self._clients.pop(client.id, None)

    async def _server_to_client(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in client.up:
                if client.id is None:
                    with contextlib.suppress(ValueError, TypeError):
                        message = json.loads(frame)
                        if message.get("type") == "welcome":
                            client.id = str(message["connectionId"])
                            self._clients[client.id] = client
                await client.down.send(frame)

    async def _client_to_server(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in client.down:
                message = _json(frame)
                to = message.get("to") if isinstance(message, dict) else None
                data = message.get("data") if isinstance(message, dict) else None
                if (
                    client.id is not None
                    and message.get("type") == "message"
                    and isinstance(to, str)
                    and isinstance(data, dict)
                ):
                    self.log.append((client.id, to, data))
                    if self.intercept and data.get("type") in ("SDP", "ICE", "VERIFY"):
                        try:
                            await self._intercept(client.id, to, data, frame)
                        except Exception as exc:
                            logger.exception("relay: intercepting %s failed", data.get("type"))
                            self.errors.append(f"{data.get('type')}: {exc!r}")
                        continue
                await client.up.send(frame)

    async def _send_as(self, sender: str, to: str, data: dict[str, Any]) -> None:
        """Send ``data`` to ``to`` through the real server, on ``sender``'s connection."""
        client = self._clients.get(sender)
        if client is not None:
            await client.up.send(json.dumps({"type": "message", "to": to, "data": data}))

    # -- the attack ----------------------------------------------------------------

    async def _intercept(self, sender: str, to: str, data: dict[str, Any], frame: Any) -> None:
        kind = data["type"]
        payload = data.get("payload")
        if kind == "SDP" and isinstance(payload, dict):
            if payload.get("type") == "offer":
                await self._hijack_offer(sender, to, str(payload.get("sdp", "")))
            elif payload.get("type") == "answer":
                await self._take_answer(sender, str(payload.get("sdp", "")))
        elif kind == "ICE" and isinstance(payload, dict):
            leg = self.legs.get(sender)
            message = wire.parse_json(json.dumps(data))
            if leg is not None and isinstance(message, wire.Ice) and not message.is_end:
                candidate = ice.remote_candidate(message)
                if candidate is not None:
                    with contextlib.suppress(Exception):
                        await leg.pc.addIceCandidate(candidate)
        elif kind == "VERIFY" and isinstance(payload, dict):
            await self._on_verify(sender, to, payload, frame)

    async def _hijack_offer(self, offerer: str, answerer: str, sdp: str) -> None:
        for old in (self.legs.pop(offerer, None), self.legs.pop(answerer, None)):
            if old is not None:
                await _close(old.pc)
        self.offers_hijacked += 1
        # Facing the offerer: the relay answers, posing as the answerer.
        to_o = RelayLeg(offerer, answerer, "answerer", _new_pc())
        to_a = RelayLeg(answerer, offerer, "offerer", _new_pc())
        self.legs[offerer], self.legs[answerer] = to_o, to_a
        to_o.remote_sdp = sdp
        _forward_tracks(to_o, to_a)
        _forward_tracks(to_a, to_o)
        await to_o.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        kinds = [t.kind for t in to_o.pc.getTransceivers()]
        for kind in kinds:
            to_o.out[kind] = ForwardTrack(kind)
            to_o.pc.addTrack(to_o.out[kind])
            to_a.out[kind] = ForwardTrack(kind)
            to_a.pc.addTransceiver(to_a.out[kind], direction="sendrecv")
        if "m=application" in sdp:
            to_a.chat = to_a.pc.createDataChannel("chat", ordered=True)
            _bridge_chat_later(to_o, to_a)
        for kind, track in to_o.received.items():  # arrived with the offer
            to_a.out[kind].attach(track)
        for leg in (to_o, to_a):
            ice.tune_gathering(leg.pc, gather_timeout=GATHER_TIMEOUT, allow_loopback=True)

        await to_o.pc.setLocalDescription(await to_o.pc.createAnswer())
        answer = str(to_o.pc.localDescription.sdp)
        await self._send_as(answerer, offerer, _sdp("answer", answer))
        await to_a.pc.setLocalDescription(await to_a.pc.createOffer())
        await self._send_as(offerer, answerer, _sdp("offer", str(to_a.pc.localDescription.sdp)))
        if self.verify == "terminate":
            await self._start_verifier(to_o)

    async def _take_answer(self, answerer: str, sdp: str) -> None:
        leg = self.legs.get(answerer)
        if leg is None or leg.role != "offerer":
            return
        leg.remote_sdp = sdp
        await leg.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        if self.verify == "terminate":
            await self._start_verifier(leg)

    async def _start_verifier(self, leg: RelayLeg) -> None:
        assert leg.remote_sdp is not None
        leg.verifier = security.Verifier(
            leg.role,
            local_id=leg.poses_as,
            remote_id=leg.client,
            local_fingerprint=leg.local_fingerprint,
            remote_fingerprint=security.remote_fingerprint(leg.remote_sdp),
        )
        await self._verifier_says(leg, leg.verifier.start())
        early, leg.early_verify = leg.early_verify, []
        for payload in early:
            await self._verifier_says(leg, leg.verifier.receive(security.verify_message(**payload)))

    async def _verifier_says(self, leg: RelayLeg, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            await self._send_as(leg.poses_as, leg.client, dict(message))

    async def _on_verify(self, sender: str, to: str, payload: dict[str, Any], frame: Any) -> None:
        step = payload.get("step")
        if self.verify == "forward" or (self.verify == "terminate" and step == "mac"):
            await self._clients[sender].up.send(frame)
            return
        if self.verify == "strip-mac":
            if step != "mac":
                await self._clients[sender].up.send(frame)
            return
        leg = self.legs.get(sender)
        if leg is None:
            return
        if leg.verifier is None:
            leg.early_verify.append(dict(payload))
            return
        await self._verifier_says(leg, leg.verifier.receive(security.verify_message(**payload)))

    # -- what happened -------------------------------------------------------------

    def relay_codes(self) -> dict[str, str | None]:
        """With ``verify="terminate"``: the code of the relay's exchange with each client."""
        return {
            client: leg.verifier.code if leg.verifier is not None else None
            for client, leg in self.legs.items()
        }

    def fingerprints(self) -> dict[str, str]:
        """The certificate the relay showed each client."""
        return {client: leg.local_fingerprint for client, leg in self.legs.items()}

    def frames_forwarded(self) -> dict[str, dict[str, int]]:
        return {client: leg.frames_forwarded for client, leg in self.legs.items()}


def _new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no public STUN fallback


def _forward_tracks(source: RelayLeg, sink: RelayLeg) -> None:
    """Media the relay receives from ``source``'s client goes to ``sink``'s client."""

    def on_track(track: MediaStreamTrack) -> None:
        source.received.setdefault(track.kind, track)
        out = sink.out.get(track.kind)
        if out is not None:
            out.attach(track)

    source.pc.on("track", on_track)


def _bridge_chat_later(to_offerer: RelayLeg, to_answerer: RelayLeg) -> None:
    """Chat lines cross the relay both ways once both channels exist."""

    def adopt(channel: RTCDataChannel) -> None:
        if channel.label != "chat" or to_offerer.chat is not None:
            return
        to_offerer.chat = channel
        other = to_answerer.chat
        assert other is not None
        channel.on("message", lambda m: _pass_on(other, m))
        other.on("message", lambda m: _pass_on(channel, m))

    to_offerer.pc.on("datachannel", adopt)


def _pass_on(channel: RTCDataChannel, message: str | bytes) -> None:
    if channel.readyState == "open":
        channel.send(message)


def _sdp(kind: str, sdp: str) -> dict[str, Any]:
    return {"type": "SDP", "payload": {"type": kind, "sdp": sdp}}


def _json(frame: Any) -> Any:
    try:
        return json.loads(frame) if isinstance(frame, str) else {}
    except ValueError:
        return {}


def _http_get(url: str) -> tuple[int, dict[str, str], bytes]:
    keep = ("Content-Type", "Cache-Control", "Content-Security-Policy")
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            headers = {k: v for k, v in reply.headers.items() if k in keep}
            return reply.status, headers, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, {"Content-Type": "text/plain"}, error.read()


async def _close(pc: RTCPeerConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(pc.close(), 3)


class RelayThread:
    """A real signaling server and a :class:`MitmRelay` in front of it, on a thread's loop.

    ``url`` is the relay's (clients connect there), ``server_url`` the real
    server's; with ``relay=False`` only the server runs and ``url`` is it.
    """

    def __init__(
        self, *, relay: bool = True, intercept: bool = True, verify: VerifyMode = "forward"
    ) -> None:
        self._want_relay = relay
        self._intercept = intercept
        self._verify = verify
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.server: SignalingServer | None = None
        self.relay: MitmRelay | None = None
        self.url = ""
        self.server_url = ""
        #: The browser client's page, through the relay when there is one.
        self.http_url = ""

    def __enter__(self) -> RelayThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(15)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(15)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._drain(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def call(self, fn: Any) -> Any:
        """Run ``fn()`` on the relay's loop (to read its state safely)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    async def _start(self) -> None:
        self.server = SignalingServer("127.0.0.1", 0, max_connections_per_address=10_000)
        await self.server.start()
        self.server_url = self.url = self.server.url
        self.http_url = self.server.http_url
        if self._want_relay:
            self.relay = MitmRelay(self.server.url, intercept=self._intercept, verify=self._verify)
            await self.relay.start()
            self.url = self.relay.url
            self.http_url = self.relay.http_url

    async def _stop(self) -> None:
        if self.relay is not None:
            await self.relay.stop()
        if self.server is not None:
            await self.server.stop()

    async def _drain(self) -> None:
        """End every task the relay's peers left and join the loop's executor threads.

        A stopped loop that is never closed keeps aiortc's tasks and codec
        objects (and the executor threads that ran them) to be torn down by
        the garbage collector later, in whatever test then runs: this test's
        process is the whole suite's.
        """
        me = asyncio.current_task()
        left = [task for task in asyncio.all_tasks() if task is not me]
        for task in left:
            task.cancel()
        await asyncio.wait_for(asyncio.gather(*left, return_exceptions=True), 5)
        await self._loop.shutdown_default_executor()
