"""ICE for calls that connect fast: explicit servers, bounded gathering, loopback.

Three things stock aiortc/aioice do that a desktop call cannot live with:

1. **A silent fallback to Google's STUN server.** ``RTCPeerConnection()``
   without ``iceServers`` uses ``stun:stun.l.google.com:19302``.
   :func:`configuration` always passes an explicit list, empty when neither
   the signaling server nor the user names one.

2. **A 5 s wait per gather.** ``aioice.Connection.get_component_candidates``
   waits ``timeout=5`` seconds for STUN/TURN answers, and aiortc gathers once
   for the offer and once more for the answer: a STUN server that drops
   packets held the first frame back by 10 s.

3. **No loopback candidates.** ``aioice.ice.get_host_addresses`` skips
   127.0.0.1, so two apps on a host whose only interface is loopback never
   connect.

:func:`tune_gathering` fixes 2 and 3 for *one* peer connection: it shadows
``get_component_candidates`` on each of that connection's
``aioice.Connection`` instances with a wrapper that passes a shorter
``timeout`` and, when asked, adds ``127.0.0.1`` to the host addresses that
``gather_candidates`` computed. Nothing global is patched, so other peer
connections in the process (tests, a second call) keep aioice's behaviour.
This is the one place that knows aioice's internals; :func:`check_aioice`
states what it relies on and ``tests/call/test_ice.py`` fails if aioice
changes under it.

4. **A relay that says no, silently.** With a relay-only policy
   (:func:`configuration` with ``relay_only``, aiortc's
   ``iceTransportPolicy="relay"``), a TURN server that refuses our
   credentials leaves the peer with no candidate at all, and aioice drops
   the refusal. :func:`tune_gathering` notices a gathering that got no relayed
   candidate and asks the relay once more itself (:func:`probe_turn`), so the
   call can end saying why in words (wrong or expired credentials, no
   answer) instead of a bare "could not be connected".
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)
from aiortc.rtcicetransport import parse_stun_turn_uri
from aiortc.sdp import candidate_from_sdp

from callapp.call import wire

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def ice_servers(
    server_list: Iterable[Mapping[str, Any]], user_urls: Iterable[str] = ()
) -> list[RTCIceServer]:
    """The STUN/TURN servers to use: the user's own URLs, then the server's.

    ``server_list`` is the welcome's ``iceServers`` (``RTCIceServer``-shaped
    dicts). The user's own come first because aioice uses only the first
    STUN and the first TURN server it is given. URLs aiortc cannot parse are
    dropped with a warning rather than failing the call.
    """
    result: list[RTCIceServer] = []
    for url in user_urls:
        if _usable(url):
            result.append(RTCIceServer(urls=url))
    for entry in server_list:
        raw = entry.get("urls")
        urls = [raw] if isinstance(raw, str) else list(raw or ())
        usable = [u for u in urls if isinstance(u, str) and _usable(u)]
        if not usable:
            continue
        username = entry.get("username")
        credential = entry.get("credential")
        result.append(
            RTCIceServer(
                urls=usable,
                username=username if isinstance(username, str) else None,
                credential=credential if isinstance(credential, str) else None,
            )
        )
    return result


def _usable(url: str) -> bool:
    try:
        parse_stun_turn_uri(url)
    except ValueError:
        logger.warning("ignoring ICE server URL %r: not a stun:/turn: URL aiortc supports", url)
        return False
    return True


def configuration(servers: Sequence[RTCIceServer], *, relay_only: bool = False) -> RTCConfiguration:
    """An ``RTCConfiguration`` that never falls back to a public STUN server.

    ``relay_only`` is the browser's ``iceTransportPolicy: "relay"`` (aiortc
    has it since 1.x): only TURN-relayed candidates are offered and paired,
    so the peer never learns our addresses.
    """
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=list(servers), iceTransportPolicy=policy)


#: What :func:`probe_turn` says, by TURN/STUN error code (RFC 8656, RFC 8489).
_TURN_ERRORS = {
    401: "the TURN relay refused the credentials the server gave (wrong or expired)",
    403: "the TURN relay does not allow this address",
    437: "the TURN relay refused the credentials the server gave (wrong or expired)",
    441: "the TURN relay refused the credentials the server gave (wrong or expired)",
    486: "the TURN relay has no room for more calls from this user",
    508: "the TURN relay has no capacity left",
}


async def probe_turn(
    server: tuple[str, int], username: str | None, password: str | None, within: float = 2.0
) -> str | None:
    """Ask a TURN server for one allocation; ``None`` if it gives one, else why not (words)."""
    from aioice import stun, turn

    try:
        async with asyncio.timeout(within):
            transport, _ = await turn.create_turn_endpoint(
                asyncio.DatagramProtocol, server_addr=server, username=username, password=password
            )
    except stun.TransactionFailed as exc:
        code = exc.response.attributes.get("ERROR-CODE", (0, ""))[0]
        return _TURN_ERRORS.get(code, f"the TURN relay refused the allocation (error {code})")
    except (stun.TransactionTimeout, TimeoutError):
        return "the TURN relay did not answer"
    except OSError as exc:
        return f"the TURN relay cannot be reached ({exc.strerror or exc})"
    transport.close()
    return None


def _connections(pc: RTCPeerConnection) -> list[Any]:
    """The ``aioice.Connection`` behind each of ``pc``'s ICE gatherers."""
    dtls = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:  # the data channel's transport, unless bundled with media
        dtls.append(pc.sctp.transport)
    found: list[Any] = []
    for transport in dtls:
        connection = transport.transport.iceGatherer._connection
        if all(connection is not c for c in found):
            found.append(connection)
    return found


def tune_gathering(
    pc: RTCPeerConnection,
    *,
    gather_timeout: float,
    allow_loopback: bool = False,
    on_relay_problem: Callable[[str], None] | None = None,
) -> None:
    """Bound ``pc``'s STUN/TURN wait to ``gather_timeout`` s; maybe add loopback.

    Call after adding transceivers and before ``createOffer``/``createAnswer``
    and ``setLocalDescription`` (which is where aiortc gathers). Host
    candidates never wait; only server-reflexive and relayed ones are bounded.
    ``on_relay_problem`` hears, in words, why a TURN server that was given
    yielded no relayed candidate (see :func:`probe_turn`).
    """
    for connection in _connections(pc):
        if "get_component_candidates" in vars(connection):
            continue  # already tuned
        original = connection.get_component_candidates

        @functools.wraps(original)
        async def get_component_candidates(
            component: int,
            addresses: list[str],
            timeout: float = gather_timeout,  # noqa: ASYNC109 - aioice's own parameter
            _original: Any = original,
            _connection: Any = connection,
        ) -> list[Any]:
            if allow_loopback and LOOPBACK not in addresses:
                addresses = [*addresses, LOOPBACK]
            found: list[Any] = await _original(
                component=component, addresses=addresses, timeout=min(timeout, gather_timeout)
            )
            server = _connection.turn_server
            relayed = any(c.type == "relay" for c in found)
            if on_relay_problem is not None and server is not None and not relayed:
                why = await probe_turn(server, _connection.turn_username, _connection.turn_password)
                on_relay_problem(why or "the TURN relay gave no relayed address in time")
            return found

        connection.get_component_candidates = get_component_candidates


def check_aioice() -> None:
    """Raise ``RuntimeError`` if aioice no longer works the way this module assumes.

    We rely on ``Connection.gather_candidates`` calling
    ``self.get_component_candidates(component=..., addresses=...)`` and on that
    method taking a ``timeout`` for its STUN/TURN wait.
    """
    from aioice import Connection

    params = inspect.signature(Connection.get_component_candidates).parameters
    if not {"component", "addresses", "timeout"} <= params.keys():
        raise RuntimeError(f"aioice changed: get_component_candidates{tuple(params)}")
    source = inspect.getsource(Connection.gather_candidates)
    if "self.get_component_candidates(" not in source or "addresses=" not in source:
        raise RuntimeError("aioice changed: gather_candidates no longer calls the hook")


def remote_candidate(message: wire.Ice) -> RTCIceCandidate | None:
    """An aiortc candidate from a trickled one, or ``None`` if unparseable.

    Browsers send ``candidate:842163049 1 udp ...``; some clients keep the
    SDP line's ``a=`` prefix. Either is accepted. An end-of-candidates
    message (empty string) is not a candidate: check ``message.is_end`` first.
    """
    text = message.candidate.strip()
    if text.startswith("a="):
        text = text[2:]
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    try:
        candidate = candidate_from_sdp(text)
    except (AssertionError, ValueError, IndexError):
        logger.info("ignoring malformed remote candidate %r", message.candidate)
        return None
    candidate.sdpMid = message.sdp_mid
    candidate.sdpMLineIndex = message.sdp_mline_index
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        candidate.sdpMLineIndex = 0
    return candidate
