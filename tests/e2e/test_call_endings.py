"""Calls always end well (issue 13), with real ``callapp call`` processes.

- The host's app goes (``callapp call --host``, whose signaling server lives
  in its own process): stopped (SIGTERM), it tells the guest before its
  server stops; killed (SIGKILL), the guest sees its media stop while the
  server is gone. Either way the guest's call ends "the host ended the call"
  and it does not retry the host's server.
- A separate server that stays down is given up after ``--reconnect-for``
  seconds once nobody is in a call; a live call goes on peer to peer.
- A room member in a dialled call still connects to whoever joins its room;
  someone dialling it is told it is busy, in plain words.

Reaction times come from the moments output lines arrived (``conftest.Proc``);
the machine is shared and loaded, so the bounds asserted are loose and the
measured times are printed.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Proc, Procs

pytestmark = pytest.mark.e2e

LOOPBACK = "--allow-loopback"
QUIET = ("--audio", "none", "--speaker", "none", "--size", "320x240", "--fps", "15", LOOPBACK)


def stats(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def hosting(procs: Procs, name: str = "host") -> tuple[Proc, str]:
    """``callapp call --host --room``, staying up; returns it and its invite."""
    host = procs.call(name, "--host", "--room", "endings", *QUIET, "--calls", "0", "--timeout", "0")
    _, match = host.wait_line(r"invite: (\S+)", within=30)
    return host, match.group(1)


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_the_host_going_away_ends_the_guests_call_with_the_host_left(
    procs: Procs, tmp_path: Path, how: str
) -> None:
    host, invite = hosting(procs)
    guest_json = tmp_path / "guest.json"
    guest = procs.call(
        "guest", "--invite", invite, *QUIET, "--timeout", "30", "--stats-json", str(guest_json)
    )
    guest.wait_line(r"first frame", within=30)
    host.wait_line(r"peer connected")
    time.sleep(0.5)
    gone_at = time.monotonic()
    if how == "stopped":
        host.popen.send_signal(signal.SIGTERM)  # closing the app: it says so first
    else:
        host.kill()  # kill -9: nothing is said; media and server vanish together
    ended_at, _ = guest.wait_line(r"call ended: the host ended the call", within=15)
    took = ended_at - gone_at
    print(f"\nhost {how} -> guest 'the host ended the call' in {took:.3f} s")
    assert guest.wait_exit(15) == 0, guest.output  # the call happened, and ended
    report = stats(guest_json)
    assert report["end_reason"] == "host_left", report
    assert [p["end_reason"] for p in report["peers"]] == ["host_left"]
    assert "reconnecting: giving up" not in guest.output  # not retried: it was the host's
    # The goal is 2 s; stopped is a BYE away (~0.1 s), killed waits for the media's
    # silence (1.5 s). Loose bounds on a loaded machine.
    assert took < (2.0 if how == "stopped" else 3.5), guest.output


def test_a_server_that_stays_down_is_given_up_but_a_live_call_outlasts_it(
    procs: Procs, server_url: str
) -> None:
    server = procs.started[0]
    assert server.name == "server"
    # One waits alone in a room; two others are in a call (all start at once).
    alone = procs.call(
        "alone",
        *("--server", server_url, "--room", "gives-up", *QUIET),
        *("--timeout", "0", "--reconnect-for", "2"),
    )
    room = ("--server", server_url, "--room", "outlasts", *QUIET)
    stays = procs.call("stays", *room, "--calls", "2", "--timeout", "0", "--reconnect-for", "1")
    stays.wait_line(r"joined room", within=30)
    leaves = procs.call("leaves", *room, "--seconds", "5")
    alone.wait_line(r"joined room", within=30)
    connected_at, _ = stays.wait_line(r"phase: connected", within=30)
    time.sleep(0.5)
    killed_at = time.monotonic()
    server.kill()

    # Alone: retried for --reconnect-for seconds, then given up in plain words.
    alone.wait_line(r"reconnecting: giving up in 2 s", after=killed_at)
    gave_up_at, _ = alone.wait_line(r"signaling: gone: could not reach the server; gave up")
    assert alone.wait_exit(15) != 0
    errors = [line for _, line in alone.lines if line.startswith("error:")]
    assert errors == [
        "error: could not reach the signaling server; gave up after 2 s of retrying"
    ], alone.output
    took = gave_up_at - killed_at
    print(f"\nserver down -> gave up after {took:.3f} s (--reconnect-for 2)")
    assert 1.8 <= took < 6.0, took

    # In a call: it goes on peer to peer, though the server was given only 1 s;
    # the countdown starts when the call ends.
    stays.wait_line(r"phase: reconnecting", after=connected_at)
    ended_at, _ = stays.wait_line(r"call ended: the other person hung up", within=20)
    assert leaves.wait_exit(20) == 0, leaves.output
    assert ended_at - killed_at > 3.0, stays.output
    stays.wait_line(r"reconnecting: giving up in 1 s", after=ended_at)
    stays.wait_line(r"signaling: gone: could not reach the server; gave up", after=ended_at)
    assert stays.wait_exit(15) != 0  # one call of the two it waited for
    assert "the host ended the call" not in stays.output
    print(f"call outlasted the server by {ended_at - killed_at:.3f} s")


def test_a_busy_host_still_connects_the_room_and_turns_a_dialler_away_plainly(
    procs: Procs, tmp_path: Path
) -> None:
    host = procs.call(
        "host",
        *("--host", "--room", "busy", *QUIET, "--auto-answer"),
        *("--calls", "0", "--timeout", "0"),
    )
    _, match = host.wait_line(r"server: (\S+)", within=30)
    server = match.group(1)
    _, match = host.wait_line(r"invite: (\S+)")
    invite = match.group(1)
    _, match = host.wait_line(r"connection id: (\S+)")
    host_id = match.group(1)

    # Someone dials the host's id (not the room) and is answered ...
    dialler = procs.call("dialler", "--server", server, "--to", host_id, *QUIET, "--timeout", "30")
    dialler.wait_line(r"first frame", within=30)
    # ... then someone joins its room with the invite: connected too, nobody waits.
    joiner = procs.call("joiner", "--invite", invite, *QUIET, "--seconds", "2")
    joiner.wait_line(r"first frame", within=30)
    assert joiner.wait_exit(30) == 0, joiner.output
    # A third dials the busy host: told so in words, and the report says why.
    third_json = tmp_path / "third.json"
    third = procs.call(
        "third", "--server", server, "--to", host_id, *QUIET, "--stats-json", str(third_json)
    )
    assert third.wait_exit(30) != 0, (
        f"{third.output}\n--- host:\n{host.output}\n--- dialler:\n{dialler.output}"
    )
    errors = [line for _, line in third.lines if line.startswith("error:")]
    assert errors == [
        "error: The person you called is in another call. Try again when they have hung up."
    ], third.output
    assert "call ended: the other person is in another call" in third.output
    assert stats(third_json)["end_reason"] == "busy"
    assert "call ended" not in dialler.output  # the first call went on throughout
