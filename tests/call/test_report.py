"""The one --stats-json builder: keys, averages, peers and chat."""

from __future__ import annotations

from callapp.call.report import LegRecord, leg_report, session_report
from callapp.call.state import ChatMessage, EndReason, Role
from callapp.call.stats import CallStats


def stats(**changes: object) -> CallStats:
    base: dict[str, object] = {
        "codec": "VP8",
        "frames_sent": 150,
        "frames_received": 151,
        "sent_size": (640, 480),
        "received_size": (640, 480),
        "fps_sent": 30,
        "fps_received": 30,
        "bytes_sent": 500_000,
        "bytes_received": 250_000,
        "bitrate_sent": 0,
        "bitrate_received": 0,
        "rtt_ms": 1.234,
        "packet_loss": 0.0,
        "remote_packet_loss": None,
        "packets_received": 1,
        "packets_lost": 0,
        "window": 1,
    }
    base.update(changes)
    return CallStats(**base)  # type: ignore[arg-type]


def record(peer_id: str = "them", **changes: object) -> LegRecord:
    leg = LegRecord(peer_id=peer_id, role=Role.CALLEE, created_at=10.1, name="Ana")
    leg.connected_at = 10.2
    leg.first_frame_at = 10.3
    leg.last_frame_at = 15.3
    leg.frames_received = 151
    leg.audio_frames_received = 250
    leg.ended_at = 15.4
    leg.end_reason = EndReason.PEER_HUNG_UP
    leg.stats_at = 15.2
    leg.stats = stats()
    leg.peer_muted = True
    for key, value in changes.items():
        setattr(leg, key, value)
    return leg


def test_a_one_to_one_report_keeps_every_key_at_the_top() -> None:
    data = session_report("me", [record()], started_at=10.0)
    assert data["connection_id"] == "me"
    assert data["first_frame_ms"] == 300.0  # from when the user asked for the call
    assert data["fps_received"] == 30.0  # 150 intervals over 5 s
    assert data["bitrate_sent"] == 800_000.0  # 500 kB over 5 s of media
    assert data["bitrate_received"] == 400_000.0
    assert (data["role"], data["codec"], data["rtt_ms"]) == ("callee", "VP8", 1.23)
    assert data["end_reason"] == "peer_hung_up"
    assert data["duration_s"] == 5.2
    assert data["received_size"] == [640, 480]
    (peer,) = data["peers"]
    assert peer["id"] == "them"
    assert peer["name"] == "Ana"
    assert peer["first_frame_ms"] == 200.0  # from the leg's own start
    assert (peer["peer_muted"], peer["peer_camera_off"]) == (True, False)
    assert peer["audio_frames_received"] == 250


def test_a_group_report_has_a_peer_per_leg_and_the_latest_on_top() -> None:
    first = record("b", frames_received=10)
    second = record("c", frames_received=20, end_reason=None, ended_at=None)
    data = session_report("a", [first, second])
    assert [p["id"] for p in data["peers"]] == ["b", "c"]
    assert data["frames_received"] == 20
    assert data["end_reason"] is None
    assert data["duration_s"] is None


def test_received_chat_only() -> None:
    lines = [
        ChatMessage(sender="b", sender_name="Bo", text="hi", at=1.0, via="datachannel"),
        ChatMessage(sender="a", sender_name="Me", text="hello", at=2.0, mine=True),
    ]
    data = session_report("a", [], chat=lines)
    assert data["chat_received"] == [{"from_name": "Bo", "text": "hi"}]


def test_a_report_without_any_call() -> None:
    data = session_report(None, [])
    assert data["first_frame_ms"] is None
    assert data["fps_received"] == 0.0
    assert data["frames_sent"] == 0
    assert data["role"] is None
    assert data["peers"] == []


def test_a_leg_without_frames_or_stats() -> None:
    leg = LegRecord(peer_id="x", role=Role.CALLER, created_at=0.0)
    data = leg_report(leg)
    assert (data["first_frame_ms"], data["fps_received"], data["bitrate_sent"]) == (None, 0.0, 0.0)
    assert data["name"] == "Guest"
