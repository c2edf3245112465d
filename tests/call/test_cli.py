"""The call CLI's pieces that need no processes: flags, lines, the stats record."""

from __future__ import annotations

import pytest

from callapp.call import cli
from callapp.call.state import CallPhase, CallSnapshot, Role
from callapp.call.stats import CallStats


def test_flags() -> None:
    args = cli.build_parser().parse_args(
        [
            *("--server", "ws://127.0.0.1:1/ws", "--room", "r", "--size", "1280x720"),
            *("--ice-server", "stun:a", "--ice-server", "turn:b", "--codec", "h264"),
            *("--allow-loopback", "--seconds", "2.5"),
        ]
    )
    assert args.size == (1280, 720)
    assert args.ice_server == ["stun:a", "turn:b"]
    assert (args.codec, args.allow_loopback, args.seconds) == ("h264", True, 2.5)
    assert cli.build_parser().parse_args(["--host"]).host == "127.0.0.1"


@pytest.mark.parametrize(
    "argv",
    [
        [],  # neither --server nor --host
        ["--server", "ws://x", "--host"],
        ["--server", "ws://x", "--room", "r", "--to", "id"],
        ["--server", "ws://x", "--size", "640by480"],
        ["--server", "ws://x", "--codec", "av1"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2


def test_unreachable_server_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--server", "ws://127.0.0.1:9/ws", "--timeout", "3"])
    out, err = capsys.readouterr()
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ")
    assert "phase: idle" in out


def test_phase_lines() -> None:
    snap = CallSnapshot(phase=CallPhase.CONNECTED, role=Role.CALLER, peer_id="abc")
    assert cli.describe(snap) == "phase: connected role=caller peer=abc"
    assert cli.describe(CallSnapshot(phase=CallPhase.WAITING)) == "phase: waiting"


def test_stats_record_keys_and_averages() -> None:
    record = cli.CallRecord(started_at=10.0, role="callee")
    record.connected_at = 10.2
    record.first_frame_at = 10.3
    record.last_frame_at = 15.3
    record.frames_received = 151
    record.ended_at = 15.4
    record.end_reason = "peer_hung_up"
    record.stats_at = 15.2
    record.stats = CallStats(
        codec="VP8",
        frames_sent=150,
        frames_received=151,
        sent_size=(640, 480),
        received_size=(640, 480),
        fps_sent=30,
        fps_received=30,
        bytes_sent=500_000,
        bytes_received=250_000,
        bitrate_sent=0,
        bitrate_received=0,
        rtt_ms=1.234,
        packet_loss=0.0,
        remote_packet_loss=None,
        packets_received=1,
        packets_lost=0,
        window=1,
    )
    data = record.as_json("me")
    assert {
        "connection_id",
        "role",
        "first_frame_ms",
        "frames_sent",
        "frames_received",
        "fps_received",
        "bitrate_sent",
        "bitrate_received",
        "rtt_ms",
        "packet_loss",
        "codec",
        "end_reason",
    } <= data.keys()
    assert data["first_frame_ms"] == 300.0
    assert data["fps_received"] == 30.0
    assert data["bitrate_sent"] == 800_000.0  # 500 kB over 5 s of media
    assert data["bitrate_received"] == 400_000.0
    assert (data["role"], data["codec"], data["rtt_ms"]) == ("callee", "VP8", 1.23)


def test_a_call_that_never_had_frames() -> None:
    data = cli.CallRecord(started_at=0.0).as_json(None)
    assert data["first_frame_ms"] is None
    assert data["fps_received"] == 0.0
    assert data["frames_sent"] == 0
