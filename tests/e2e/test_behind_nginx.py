"""Two ``callapp-signaling --redis`` processes behind Debian's nginx, as ``docs/deploy.md`` says.

One real ``redis-server``, two server processes and one nginx, all on
127.0.0.1, started once for the module. nginx runs the shipped
``packaging/nginx/callapp-signaling.conf`` (its listen port, certificate and
upstream ports replaced, a ``proxy_bind`` added, each edit checked to apply) with TLS from a
fresh self-signed certificate, in a temporary prefix with ``daemon off``.
It connects to the processes from 127.0.0.2 (``proxy_bind``), the one
address they trust (``--trusted-proxy 127.0.0.2/32``), so that clients on
127.0.0.1, .3 and .4 are told apart from the proxy.

What is shown, in order (the last two stop a process, then start it again):

- ``/healthz``, the page and a plain ``/ws`` through nginx;
- two clients meeting in a room over wss, each on another process
  (``least_conn``), relaying both ways;
- the per-address cap counting the address nginx forwards, not nginx's, and
  a forged ``X-Forwarded-For`` from a client changing nothing;
- a ``callapp call`` through nginx whose caller's process is killed
  (SIGKILL): the caller reconnects through nginx to the other process and
  the call goes on (``peer relinked``);
- two reconnecting clients whose process is stopped (SIGTERM): both come
  back through nginx on the other process, rejoin their room, and relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import signal
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from callapp.call.security import new_room_secret
from callapp.signaling.client import (
    ClientEvent,
    Joined,
    PeerJoined,
    PeerLeft,
    Ready,
    Reconnected,
    Relayed,
    SignalingClient,
)
from callapp.signaling.invite import certificate_pin, format_invite
from tests.signaling.conftest import open_ws, recv_json, send_json
from tests.signaling.redis_fixture import REDIS_SERVER, RedisServer, free_port
from tests.signaling.test_tls import CertFiles, write_self_signed

from .conftest import ROOT, Proc, Procs
from .test_call_cli import LOOPBACK, finished
from .test_cluster_call import signaling, stats

pytestmark = pytest.mark.e2e

NGINX = Path("/usr/sbin/nginx")
TEMPLATE = ROOT / "packaging" / "nginx" / "callapp-signaling.conf"
#: nginx's source address toward the processes, and the only one they trust.
PROXY = "127.0.0.2"
#: Connections one address may hold on one process (two processes: twice that in all).
PER_ADDRESS = 3

SMALL = ("--size", "320x240", "--audio", "none", "--speaker", "none", LOOPBACK)

#: The main configuration around the shipped file: everything in the test's folder.
MAIN_CONF = """\
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {site};
}}
"""


def nginx_site(template: str, *, port: int, upstreams: list[int], cert: CertFiles) -> str:
    """The shipped file with this test's port, certificate and processes.

    Each replacement must match exactly as often as expected, so that a change
    to the template that the test would silently miss fails here instead.
    """

    def replace(pattern: str, new: str, count: int = 1) -> None:
        nonlocal template
        template, made = re.subn(pattern, new, template, flags=re.MULTILINE)
        assert made == count, f"{pattern!r} matched {made} times in {TEMPLATE}, not {count}"

    servers = re.findall(r"^    server 127\.0\.0\.1:\d+ (.*);$", template, re.MULTILINE)
    assert len(servers) == 2, servers
    assert servers[0] == "max_fails=0", servers  # why: the template's comment, and the last test
    lines = "".join(f"    server 127.0.0.1:{p} {servers[0]};\n" for p in upstreams)
    replace(r"^    server 127\.0\.0\.1:\d+ .*;\n", "", count=2)
    replace(r"^(    least_conn;\n)", r"\g<1>" + lines)
    replace(r"^    listen 443 ssl;$", f"    listen 127.0.0.1:{port} ssl;")
    replace(r"^    listen \[::\]:443 ssl;\n", "")
    replace(r"^    ssl_certificate .*;$", f"    ssl_certificate {cert.cert};")
    replace(r"^    ssl_certificate_key .*;$", f"    ssl_certificate_key {cert.key};")
    replace(
        r"^(        proxy_pass http://callapp_signaling;)$", rf"\1\n        proxy_bind {PROXY};"
    )
    return template


def get(port: int, path: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    """One GET to 127.0.0.1 (https with ``context``): status and body; no proxy ever."""
    connection = (
        http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        if context is not None
        else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


class Cluster:
    """Redis, the server processes and nginx; processes can be stopped and started again."""

    def __init__(self, folder: Path, procs: Procs, redis: RedisServer) -> None:
        self.folder = folder
        self.procs = procs
        self.redis = redis
        self.cert = write_self_signed(folder, name="nginx")
        der = x509.load_pem_x509_certificate(self.cert.cert.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        self.pin = certificate_pin(der)
        self.tls = ssl.create_default_context(cafile=str(self.cert.cert))
        self.nodes: list[Proc] = []
        self.ports: list[int] = []
        self.port = free_port()
        self.nginx: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The native endpoint through nginx."""
        return f"wss://127.0.0.1:{self.port}/ws"

    def start_node(self, index: int | None = None) -> None:
        """Start a process (again, on its old port, for ``index``)."""
        flags = [
            *("--trusted-proxy", f"{PROXY}/32"),
            *("--max-connections-per-address", str(PER_ADDRESS), "--connect-burst", "100"),
        ]
        if index is not None:
            flags += ["--port", str(self.ports[index])]
        name = f"server-{len(self.nodes) if index is None else index}"
        proc, url = signaling(self.procs, name, self.redis, *flags)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        if index is None:
            self.nodes.append(proc)
            self.ports.append(port)
        else:
            assert port == self.ports[index]
            self.nodes[index] = proc

    def start_nginx(self) -> None:
        site = self.folder / "callapp-signaling.conf"
        site.write_text(
            nginx_site(TEMPLATE.read_text(), port=self.port, upstreams=self.ports, cert=self.cert)
        )
        conf = self.folder / "nginx.conf"
        conf.write_text(MAIN_CONF.format(folder=self.folder, site=site))
        with (self.folder / "nginx.out").open("wb") as out:
            self.nginx = subprocess.Popen(
                [
                    *(NGINX, "-p", f"{self.folder}/", "-e", str(self.folder / "error.log")),
                    *("-c", str(conf), "-g", "daemon off;"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                if get(self.port, "/healthz", self.tls) == (200, "ok"):
                    return
            if self.nginx.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nginx did not start:\n{self.nginx_log()}")
            time.sleep(0.05)

    def nginx_log(self) -> str:
        parts = [self.folder / "nginx.out", self.folder / "error.log"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())[-4000:]

    def stop_nginx(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait(10)

    def connections(self) -> list[int | None]:
        """WebSocket connections each process holds (from its own /metrics), None if down."""
        counts: list[int | None] = []
        for proc, port in zip(self.nodes, self.ports, strict=True):
            if proc.popen.poll() is not None:
                counts.append(None)
                continue
            _, body = get(port, "/metrics")
            match = re.search(r"^callapp_signaling_connections (\S+)$", body, re.MULTILINE)
            assert match is not None, body[:2000]
            counts.append(int(float(match.group(1))))
        return counts

    async def wait_connections(self, want: list[int | None], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while (seen := self.connections()) != want:
            assert time.monotonic() < deadline, f"connections {seen}, want {want}"
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not NGINX.exists():
        pytest.skip(f"{NGINX} is not installed (scripts/setup.sh installs nginx-light)")
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (scripts/setup.sh installs it)")
    folder = tmp_path_factory.mktemp("behind-nginx")
    procs = Procs()
    redis = RedisServer(folder)
    redis.start()
    cluster = Cluster(folder, procs, redis)
    try:
        cluster.start_node()
        cluster.start_node()
        cluster.start_nginx()
        yield cluster
    finally:
        cluster.stop_nginx()
        procs.close()
        redis.stop()


def test_healthz_the_page_and_plain_requests_through_nginx(cluster: Cluster) -> None:
    for _ in range(4):  # least_conn with nothing held: both processes answer in turn
        assert get(cluster.port, "/healthz", cluster.tls) == (200, "ok")
    status, page = get(cluster.port, "/", cluster.tls)
    assert status == 200
    assert "<html" in page.lower()
    status, body = get(cluster.port, "/ws", cluster.tls)
    assert status == 426, body
    assert cluster.connections() == [0, 0]


async def test_two_clients_meet_on_two_processes_through_nginx_and_relay(
    cluster: Cluster,
) -> None:
    a = await open_ws(cluster.url, ssl=cluster.tls)
    a_id = (await recv_json(a))["connectionId"]
    # least_conn: the second goes to the process holding none.
    b = await open_ws(cluster.url, ssl=cluster.tls)
    b_id = (await recv_json(b))["connectionId"]
    await cluster.wait_connections([1, 1])
    try:
        await send_json(a, {"type": "join", "room": "nginx-den"})
        assert (await recv_json(a))["type"] == "created"
        await send_json(b, {"type": "join", "room": "nginx-den"})
        joined = await recv_json(b)
        assert joined["type"] == "joined"
        assert joined["peers"] == [a_id, b_id]
        assert (await recv_json(a)) == {
            "type": "peer-joined",
            "room": "nginx-den",
            "connectionId": b_id,
        }
        assert (await recv_json(a))["type"] == "ready"
        assert (await recv_json(b))["type"] == "ready"
        # Across processes (through Redis), each way, in order.
        for n in range(3):
            await send_json(a, {"type": "message", "data": {"n": n}})
        await send_json(b, {"type": "message", "to": a_id, "data": "hello"})
        for n in range(3):
            assert await recv_json(b) == {"type": "message", "from": a_id, "data": {"n": n}}
        assert await recv_json(a) == {"type": "message", "from": b_id, "data": "hello"}
    finally:
        await a.close()
        await b.close()
    await cluster.wait_connections([0, 0])


async def _status(
    cluster: Cluster, held: list[ClientConnection], source: str, forged: str | None = None
) -> int | None:
    """Connect through nginx from ``source``: None if let in (kept in ``held``), else the status."""
    headers = {} if forged is None else {"X-Forwarded-For": forged}
    try:
        ws = await open_ws(
            cluster.url, ssl=cluster.tls, local_addr=(source, 0), additional_headers=headers
        )
    except InvalidStatus as exc:
        return exc.response.status_code
    held.append(ws)
    assert (await recv_json(ws))["type"] == "welcome"
    return None


async def test_the_per_address_cap_counts_the_client_nginx_forwards(cluster: Cluster) -> None:
    held: list[ClientConnection] = []
    try:
        # 127.0.0.3 gets its share on each process, then 429 (passed through, not retried).
        answers = [await _status(cluster, held, "127.0.0.3") for _ in range(2 * PER_ADDRESS + 1)]
        assert answers == [None] * (2 * PER_ADDRESS) + [429], answers
        await cluster.wait_connections([PER_ADDRESS, PER_ADDRESS])
        # Another client behind the same nginx is counted apart: in at once.
        assert await _status(cluster, held, "127.0.0.4") is None
        # Attack: 127.0.0.3 claims to forward for someone else; nginx appends the
        # real address, and the right-most untrusted one is what counts.
        for forged in ("203.0.113.50", "198.51.100.1, 127.0.0.2", "garbage"):
            assert await _status(cluster, held, "127.0.0.3", forged) == 429, forged
    finally:
        for ws in held:
            await ws.close()
    await cluster.wait_connections([0, 0])


def test_a_call_through_nginx_goes_on_when_the_callers_process_is_killed(
    cluster: Cluster, procs: Procs, tmp_path: Path
) -> None:
    invite = format_invite(cluster.url, "nginx-call", secret=new_room_secret(), pin=cluster.pin)
    a_json, b_json = tmp_path / "a.json", tmp_path / "b.json"
    a = procs.call("a", "--invite", invite, *SMALL, "--seconds", "12", "--stats-json", str(a_json))
    a.wait_line(r"joined room: nginx-call", within=30)
    counts = cluster.connections()
    assert sorted(counts, key=str) == [0, 1], counts
    killed = counts.index(1)
    b = procs.call("b", "--invite", invite, *SMALL, "--seconds", "7", "--stats-json", str(b_json))
    connected, _ = b.wait_line(r"phase: connected", within=30)
    b.wait_line(r"first frame", within=30)
    assert cluster.connections()[1 - killed] == 1  # the callee is on the other process
    killed_at = time.monotonic()
    cluster.nodes[killed].kill()
    # The caller's link drops with its process; it comes back through nginx
    # (the dead process refuses, so nginx tries the other) with a new id, and
    # tells the callee over the call's own data channel.
    relinked, _ = b.wait_line(r"peer relinked: \S+ is now \S+", after=connected, within=20)
    finished(b)
    finished(a)
    callee, caller = stats(b_json), stats(a_json)
    assert caller["signaling_reconnects"] >= 1, caller
    assert callee["signaling_reconnects"] == 0, callee
    assert callee["frames_received"] >= 60, callee
    assert caller["frames_received"] >= 60, caller
    print(
        f"\nprocess killed -> the callee heard the caller's new id in {relinked - killed_at:.3f} s"
    )
    cluster.start_node(killed)


T = TypeVar("T")


async def _next(events: AsyncIterator[ClientEvent], kind: type[T], within: float = 15.0) -> T:
    """The next event of type ``kind`` (others skipped)."""
    async with asyncio.timeout(within):
        async for event in events:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"the client closed before a {kind.__name__}")


def _client(cluster: Cluster) -> SignalingClient:
    return SignalingClient(
        cluster.url, ssl_context=cluster.tls, backoff_initial=0.1, backoff_max=0.5
    )


async def _connect_on(cluster: Cluster, client: SignalingClient, want: list[int]) -> int:
    """Connect ``client``; the process it landed on (counts were ``want`` before)."""
    await client.connect()
    deadline = time.monotonic() + 10
    while True:
        counts = cluster.connections()
        changed = [i for i, (n, m) in enumerate(zip(counts, want, strict=True)) if n != m]
        if changed:
            assert len(changed) == 1, (counts, want)
            return changed[0]
        assert time.monotonic() < deadline, counts
        await asyncio.sleep(0.05)


async def test_clients_of_a_stopped_process_come_back_through_nginx_and_rejoin(
    cluster: Cluster,
) -> None:
    await cluster.wait_connections([0, 0], within=15)  # what the previous test left
    a = _client(cluster)
    b = _client(cluster)
    try:
        on = await _connect_on(cluster, a, [0, 0])
        # least_conn, and no process out of rotation though the last test killed one.
        assert await _connect_on(cluster, b, [int(i == on) for i in range(2)]) == 1 - on
        a_events, b_events = a.events(), b.events()
        await a.join("comeback")
        assert isinstance(await b.join("comeback"), Joined)
        await _next(a_events, Ready)
        old_a = a.connection_id
        stopped_at = time.monotonic()
        # SIGTERM: every connection closed with 1001. In a thread, so that this
        # loop's clients answer the closing handshakes meanwhile.
        assert await asyncio.to_thread(cluster.nodes[on].stop) == 0
        # a comes back through nginx (the stopped process refuses: on to the other),
        # with a new id, in its room again.
        back = await _next(a_events, Reconnected)
        took = time.monotonic() - stopped_at
        # 0.1 s here. With nginx's usual max_fails=1, the process killed in the last
        # test would be held half-failed by whichever WebSocket was its probe (b's,
        # if b is there), and a would get 502s for up to fail_timeout (10 s by
        # default; a was back after 3.9 s with 3 s).
        assert took < 3.0, took
        assert isinstance(back.rejoined, Joined), back
        assert back.connection_id != old_a
        assert back.rejoined.peers == (b.connection_id, back.connection_id)
        # b, which stayed, hears a leave and come back.
        assert (await _next(b_events, PeerLeft)).connection_id == old_a
        assert (await _next(b_events, PeerJoined)).connection_id == back.connection_id
        await a.send({"after": "failover"})
        assert await _next(b_events, Relayed) == Relayed(back.connection_id, {"after": "failover"})
        await b.send("and back", to=back.connection_id)
        assert (await _next(a_events, Relayed)).data == "and back"
        want: list[int | None] = [2, 2]
        want[on] = None
        await cluster.wait_connections(want)
        # /healthz through nginx answers, from the process left, every time.
        for _ in range(4):
            assert get(cluster.port, "/healthz", cluster.tls) == (200, "ok")
        print(f"\nprocess stopped -> client back in its room through nginx in {took:.3f} s")
    finally:
        await a.close()
        await b.close()
    cluster.start_node(on)
