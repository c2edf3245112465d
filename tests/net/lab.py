"""A network lab for calls over impaired links: namespaces, veth pairs, a bridge that loses.

This machine's kernel has no ``sch_netem``, so loss and delay come from a
userspace bridge of our own (``tests/net/bridge.py``) in a middle namespace;
rate limits come from ``tc tbf``. Everything lives in namespaces private to one
:class:`Lab` (unique names, so parallel tests and helpers never collide) and is
deleted on :meth:`Lab.close`, also after a failure. Nothing is routed anywhere
else: the namespaces have no default route.

Topology (addresses are the same in every lab: the namespaces are private)::

        ns A                      ns M (bridge.py)                 ns B
    a0 10.77.0.1/24 ──veth── a1 ═══ loss/delay ═══ b1 ──veth── b0 10.77.0.2/24
                                  (tbf on a1: B→A, on b1: A→B)
    sa 10.77.1.2/24 ─┐                                     ┌─ sb 10.77.2.2/24
                     └── veth ── ns S (signaling) ── veth ─┘
                          10.77.1.1/24        10.77.2.1/24

* The **media path** is A ↔ M ↔ B. :meth:`Lab.set_loss`, :meth:`Lab.set_delay`
  (per direction or both), :meth:`Lab.set_rate` (tbf), :meth:`Lab.link_down`
  act on it only.
* With ``signaling=True`` (the default) a fourth namespace S carries a clean
  path to each side, for the signaling server: kill the media path and
  signaling stays alive (ICE restart tests), or stop the server and the media
  goes on. S does not forward between its two legs, so ICE can only use the
  media path (candidate pairs over the S legs fail at once: no route). The
  server runs in S (:meth:`Lab.popen` with ``"s"``) listening on 0.0.0.0; A
  reaches it at :attr:`Lab.signaling_host_a` (10.77.1.1), B at
  :attr:`Lab.signaling_host_b` (10.77.2.1). Use :meth:`Lab.server_url`.
* IPv6 is disabled in every namespace (no link-local candidates to wait for);
  tx checksumming and segmentation offloads are off on every veth end, so the
  bridge's packet sockets see complete frames (veth would hand them TCP/UDP
  with unfilled checksums otherwise).

API (all synchronous; the lab is a context manager)::

    with Lab() as lab:                       # or lab = Lab(); lab.start(); ... lab.close()
        lab.set_loss(0.05)                   # both directions; or direction="ab"/"ba"
        lab.set_delay(0.050)                 # seconds, each way
        lab.set_rate(500)                    # kbit/s via tbf (buffer: queue_ms), or None
        lab.link_down(3.0)                   # media path dead for 3 s, then back (returns at once)
        lab.link_down(); lab.link_up()       # or by hand
        lab.link_down(3.0, how="ifdown")     # really set the middle veth ends down
        lab.change_address("b", 3)           # B's media address becomes 10.77.0.3
        lab.bridge_stats()                   # {"ab": {"forwarded":…, "dropped":…}, "ba": {…}}
        proc = lab.popen("a", [sys.executable, "-m", "callapp", "call", …])
        lab.argv("b", [...])                 # ["ip", "netns", "exec", NS_B, ...]
        lab.run("m", ["tc", "-s", "qdisc"])  # a command in a namespace, checked

Sides are ``"a"``, ``"b"``, ``"m"`` (middle) and ``"s"`` (signaling).
Processes started with :meth:`Lab.popen` are killed on close; so is anything
still running inside the lab's namespaces (they are the lab's own).
:func:`lab_or_skip` (and the ``lab`` fixture in ``tests/net/conftest.py``)
skips a test, with the reason, where namespaces cannot be made (no root).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal

Side = Literal["a", "b", "m", "s"]
Direction = Literal["ab", "ba", "both"]

BRIDGE = Path(__file__).resolve().parent / "bridge.py"
NET = "10.77.0"
#: The lab's namespaces are named ``callapp-lab-<pid>-<n>-<side>``.
PREFIX = "callapp-lab-"
_counter = itertools.count(1)


class LabError(RuntimeError):
    """A lab command failed (the message has the command and its output)."""


def _ip(*args: str) -> None:
    _checked(["ip", *args])


def _checked(argv: Sequence[str], *, timeout: float = 20.0) -> str:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def namespaces_problem() -> str | None:
    """Why this process cannot make network namespaces, or None if it can."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "making network namespaces needs root (CAP_SYS_ADMIN)"
    name = f"{PREFIX}probe-{os.getpid()}"
    try:
        _ip("netns", "add", name)
    except LabError as exc:
        return f"cannot create a network namespace: {exc}"
    with contextlib.suppress(LabError):
        _ip("netns", "del", name)
    for tool in ("ethtool", "tc"):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
            return f"{tool} is not installed (scripts/setup.sh installs it)"
    return None


def clean_stale() -> None:
    """Delete namespaces left by lab processes that are gone (a killed test run)."""
    with contextlib.suppress(LabError):
        for line in _checked(["ip", "netns", "list"]).splitlines():
            name = line.split()[0] if line.split() else ""
            match = re.fullmatch(rf"{PREFIX}(\d+)-\d+-[abms]", name)
            if match and not Path(f"/proc/{match.group(1)}").exists():
                _kill_inside(name)
                with contextlib.suppress(LabError):
                    _ip("netns", "del", name)


def _kill_inside(namespace: str) -> None:
    with contextlib.suppress(LabError):
        for pid in _checked(["ip", "netns", "pids", namespace]).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


class Lab:
    """Namespaces A, M (bridge), B and optionally S (signaling); see the module docstring."""

    def __init__(self, *, signaling: bool = True, seed: int | None = None) -> None:
        self.tag = f"{os.getpid()}-{next(_counter)}"
        self.ns: dict[str, str] = {
            side: f"{PREFIX}{self.tag}-{side}" for side in ("a", "b", "m", *("s" * signaling))
        }
        self.signaling = signaling
        self.seed = seed
        #: Media addresses: A's and B's ends of the bridged link.
        self.host_a = f"{NET}.1"
        self.host_b = f"{NET}.2"
        #: Where each side reaches the signaling namespace (with ``signaling=True``).
        self.signaling_host_a = "10.77.1.1"
        self.signaling_host_b = "10.77.2.1"
        self._bridge: subprocess.Popen[str] | None = None
        self._bridge_lock = threading.Lock()
        self._procs: list[subprocess.Popen[Any]] = []
        self._timers: list[threading.Timer] = []
        self._rates: dict[str, int | None] = {"a1": None, "b1": None}
        self.started = False

    # -- life ------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Make the namespaces, links and bridge; on any failure, undo what was made."""
        clean_stale()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        self.started = True

    def _build(self) -> None:
        ns = self.ns
        for name in ns.values():
            _ip("netns", "add", name)
        for name in ns.values():
            self.run_in(name, ["ip", "link", "set", "lo", "up"])
            for knob in ("all", "default"):
                self.run_in(name, ["sysctl", "-q", "-w", f"net.ipv6.conf.{knob}.disable_ipv6=1"])
        links: list[tuple[str, str, str, str]] = [("a0", ns["a"], "a1", ns["m"])]
        links.append(("b0", ns["b"], "b1", ns["m"]))
        if self.signaling:
            links += [("sa", ns["a"], "s_a", ns["s"]), ("sb", ns["b"], "s_b", ns["s"])]
        for left, left_ns, right, right_ns in links:
            _ip(
                "link", "add", left, "netns", left_ns, "type", "veth",
                "peer", "name", right, "netns", right_ns,
            )  # fmt: skip
            for dev, where in ((left, left_ns), (right, right_ns)):
                # Complete frames for the packet sockets: no checksum or segmentation offload.
                self.run_in(where, ["ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off"])
                self.run_in(where, ["ethtool", "-K", dev, "gro", "off"], check=False)
        addresses = [(ns["a"], "a0", f"{self.host_a}/24"), (ns["b"], "b0", f"{self.host_b}/24")]
        if self.signaling:
            addresses += [
                (ns["a"], "sa", "10.77.1.2/24"),
                (ns["s"], "s_a", f"{self.signaling_host_a}/24"),
                (ns["b"], "sb", "10.77.2.2/24"),
                (ns["s"], "s_b", f"{self.signaling_host_b}/24"),
            ]
        for where, dev, address in addresses:
            self.run_in(where, ["ip", "addr", "add", address, "dev", dev])
        for where, dev in [(ns["m"], "a1"), (ns["m"], "b1")]:
            self.run_in(where, ["ip", "link", "set", dev, "promisc", "on"])
        for where, dev, _ in addresses:
            self.run_in(where, ["ip", "link", "set", dev, "up"])
        for dev in ("a1", "b1"):
            self.run_in(ns["m"], ["ip", "link", "set", dev, "up"])
        if self.signaling:
            self.run_in(ns["s"], ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
        self._start_bridge()

    def _start_bridge(self) -> None:
        argv = [sys.executable, str(BRIDGE), "a1", "b1"]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        self._bridge = subprocess.Popen(
            self.argv("m", argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        line = self._read_answer(timeout=15.0)
        if not line.get("ready"):
            raise LabError(f"bridge did not start: {line}")

    def close(self) -> None:
        """Stop everything the lab started and delete its namespaces; idempotent."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self._procs.clear()
        bridge, self._bridge = self._bridge, None
        if bridge is not None:
            if bridge.poll() is None:
                bridge.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                bridge.wait(5)
            for stream in (bridge.stdin, bridge.stdout, bridge.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        for name in self.ns.values():
            _kill_inside(name)
            with contextlib.suppress(LabError):
                _ip("netns", "del", name)
        self.started = False

    # -- running things inside -----------------------------------------------------

    def argv(self, side: Side, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``side``'s namespace."""
        return ["ip", "netns", "exec", self.ns[side], *argv]

    def run(self, side: Side, argv: Sequence[str], *, check: bool = True) -> str:
        """Run ``argv`` in ``side``'s namespace and return its stdout."""
        return self.run_in(self.ns[side], argv, check=check)

    @staticmethod
    def run_in(namespace: str, argv: Sequence[str], *, check: bool = True) -> str:
        full = ["ip", "netns", "exec", namespace, *argv]
        if check:
            return _checked(full)
        done = subprocess.run(full, capture_output=True, text=True, check=False, timeout=20)
        return done.stdout

    def popen(self, side: Side, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``side``'s namespace; killed by :meth:`close` if still running."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.argv(side, argv), **kwargs)
        self._procs.append(proc)
        return proc

    def server_url(self, side: Literal["a", "b"], port: int) -> str:
        """The signaling server's URL as ``side`` reaches it (server in S, or in A)."""
        if not self.signaling:
            return f"ws://{self.host_a}:{port}/ws"
        host = self.signaling_host_a if side == "a" else self.signaling_host_b
        return f"ws://{host}:{port}/ws"

    # -- the bridge ------------------------------------------------------------------

    def _read_answer(self, timeout: float) -> dict[str, Any]:
        bridge = self._bridge
        assert bridge is not None
        assert bridge.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(_readline(bridge.stdout)))
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            err = ""
            if bridge.poll() is not None and bridge.stderr is not None:
                err = bridge.stderr.read()
            raise LabError(f"the bridge did not answer within {timeout:g} s {err}".strip())
        answer: dict[str, Any] = json.loads(result[0])
        return answer

    def _command(self, **request: Any) -> dict[str, Any]:
        with self._bridge_lock:
            bridge = self._bridge
            if bridge is None or bridge.stdin is None or bridge.poll() is not None:
                raise LabError("the bridge is not running")
            bridge.stdin.write(json.dumps(request) + "\n")
            bridge.stdin.flush()
            answer = self._read_answer(timeout=10.0)
        if not answer.get("ok"):
            raise LabError(f"bridge refused {request}: {answer.get('error')}")
        return answer

    def set_loss(self, loss: float, direction: Direction = "both") -> None:
        """Drop each IPv4 frame with probability ``loss`` (0-1), independently."""
        self._command(cmd="set", dir=direction, loss=loss)

    def set_delay(self, seconds: float, direction: Direction = "both") -> None:
        """Delay each IPv4 frame by ``seconds`` (fixed; each way, so RTT grows by twice)."""
        self._command(cmd="set", dir=direction, delay=seconds)

    def impair(self, loss: float, delay: float, direction: Direction = "both") -> None:
        """Loss and delay in one command."""
        self._command(cmd="set", dir=direction, loss=loss, delay=delay)

    def link_down(
        self,
        seconds: float | None = None,
        *,
        direction: Direction = "both",
        how: Literal["drop", "ifdown"] = "drop",
    ) -> float:
        """Kill the media path; with ``seconds``, bring it back that much later.

        ``how="drop"``: the bridge drops every frame (the path dies silently,
        as when Wi-Fi walks out of range; addresses and routes stay).
        ``how="ifdown"``: the middle namespace's veth ends go down, so A and B
        see no carrier on their media interfaces (``direction`` is ignored).
        Returns ``time.monotonic()`` when the path went down; does not wait.
        """
        if how == "drop":
            self._command(cmd="down", dir=direction)
        else:
            for dev in ("a1", "b1"):
                self.run("m", ["ip", "link", "set", dev, "down"])
        down_at = time.monotonic()
        if seconds is not None:
            timer = threading.Timer(seconds, self._up_quietly, kwargs={"how": how})
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
        return down_at

    def _up_quietly(self, how: Literal["drop", "ifdown"]) -> None:
        with contextlib.suppress(LabError):
            self.link_up(how=how)

    def link_up(
        self, *, direction: Direction = "both", how: Literal["drop", "ifdown"] = "drop"
    ) -> float:
        """Bring the media path back; returns ``time.monotonic()`` when it was."""
        if how == "drop":
            self._command(cmd="up", dir=direction)
        else:
            for dev in ("a1", "b1"):
                self.run("m", ["ip", "link", "set", dev, "up"])
        return time.monotonic()

    def bridge_stats(self) -> dict[str, dict[str, Any]]:
        """Counters per direction: forwarded, dropped, send_errors, bytes_forwarded, ..."""
        answer = self._command(cmd="stats")
        return {"ab": answer["ab"], "ba": answer["ba"]}

    # -- rate limits -------------------------------------------------------------------

    def set_rate(
        self, kbit: int | None, direction: Direction = "both", *, queue_ms: int = 400
    ) -> None:
        """Limit the media path to ``kbit`` kbit/s with ``tc tbf`` (None: no limit).

        The tbf sits on the middle namespace's egress towards the receiver (b1
        for A→B, a1 for B→A), so the bridge's delay comes before it. Its
        queue holds ``queue_ms`` at the rate (a router's buffer: a sender that
        does not adapt sees its round trip grow by up to that much, then loss);
        the bucket is 10 ms of the rate, at least two full frames.
        """
        devices = {"ab": ["b1"], "ba": ["a1"], "both": ["b1", "a1"]}[direction]
        for dev in devices:
            if kbit is None:
                if self._rates[dev] is not None:
                    self.run("m", ["tc", "qdisc", "del", "dev", dev, "root"], check=False)
                self._rates[dev] = None
                continue
            burst = max(3028, kbit * 1000 // 8 // 100)
            self.run(
                "m",
                [
                    "tc", "qdisc", "replace", "dev", dev, "root", "tbf",
                    "rate", f"{kbit}kbit", "burst", str(burst), "latency", f"{queue_ms}ms",
                ],
            )  # fmt: skip
            self._rates[dev] = kbit

    def qdisc_stats(self, direction: Literal["ab", "ba"]) -> str:
        """``tc -s qdisc`` of the tbf for ``direction`` (sent, dropped, overlimits)."""
        dev = "b1" if direction == "ab" else "a1"
        return self.run("m", ["tc", "-s", "qdisc", "show", "dev", dev])

    # -- addresses -----------------------------------------------------------------

    def change_address(self, side: Literal["a", "b"], host: int) -> str:
        """Give ``side``'s media interface the address 10.77.0.HOST instead; returns it."""
        dev = "a0" if side == "a" else "b0"
        old = self.host_a if side == "a" else self.host_b
        new = f"{NET}.{host}"
        self.run(side, ["ip", "addr", "add", f"{new}/24", "dev", dev])
        self.run(side, ["ip", "addr", "del", f"{old}/24", "dev", dev])
        if side == "a":
            self.host_a = new
        else:
            self.host_b = new
        return new


def _readline(stream: IO[str] | None) -> str:
    return stream.readline() if stream is not None else ""


@contextlib.contextmanager
def lab_or_skip(**kwargs: Any) -> Iterator[Lab]:
    """A started :class:`Lab`, or ``pytest.skip`` with the reason namespaces cannot be made."""
    import pytest

    problem = namespaces_problem()
    if problem is not None:
        pytest.skip(problem)
    with Lab(**kwargs) as lab:
        yield lab


__all__ = [
    "BRIDGE",
    "Lab",
    "LabError",
    "clean_stale",
    "lab_or_skip",
    "namespaces_problem",
]
