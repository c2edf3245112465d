"""The scriptable launcher: flags, and a hosted run that quits on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from callapp.ui.launcher import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_flags_parse_and_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        ["--server", "ws://h:1/ws", "--to", "abc", "--video", "test", "--quit-after", "2.5"]
    )
    assert (args.server, args.to, args.video, args.quit_after) == (
        "ws://h:1/ws",
        "abc",
        "test",
        2.5,
    )
    assert not args.host
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--host", "--server", "ws://h:1/ws"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--room", "r", "--to", "x"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_hosted_run_quits_after_the_time_and_writes_stats(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "callapp",
            "--host",
            "--port",
            "0",
            "--room",
            "quiet-room",
            "--video",
            "test",
            "--allow-loopback",
            "--quit-after",
            "4",
            "--stats-json",
            str(stats),
            "--settings",
            str(tmp_path / "settings.ini"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # nobody joined: no frames painted, so a scripted run reports failure
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    data = json.loads(stats.read_text())
    assert data["room"] == "quiet-room"
    assert data["phase"] == "waiting"
    assert data["frames_painted"] == 0
    assert data["hosting"]["room"] == "quiet-room"
    assert data["hosting"]["share_url"].startswith("ws://")
    assert data["connection_id"]
    assert data["errors"] == []
    assert (tmp_path / "settings.ini").exists(), "settings are saved on close"


def test_a_tls_hosted_run_serves_wss_and_an_https_invite(tmp_path: Path) -> None:
    from tests.signaling.test_tls import write_self_signed

    certs = write_self_signed(tmp_path)
    stats = tmp_path / "stats.json"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "callapp",
            "--host",
            "--port",
            "0",
            "--room",
            "tls-room",
            "--video",
            "test",
            "--cert",
            str(certs.cert),
            "--key",
            str(certs.key),
            "--quit-after",
            "10",
            "--stats-json",
            str(stats),
            "--settings",
            str(tmp_path / "settings.ini"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    data = json.loads(stats.read_text())
    assert data["errors"] == []
    assert data["phase"] == "waiting", "the app connected to its own wss:// server"
    assert data["connection_id"]
    assert data["hosting"]["tls"] is True
    assert data["hosting"]["share_url"].startswith("wss://")
    assert data["hosting"]["invite_url"].startswith("https://")
    assert data["hosting"]["invite_url"].endswith("/?room=tls-room")
    assert data["hosting"]["pin"]
    invite = next(line for line in result.stdout.splitlines() if line.startswith("invite: "))
    assert "#secret=" in invite
    assert "&pin=" in invite


def test_key_without_cert_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "callapp", "--key", "k.pem"],
        cwd=ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--key goes with --cert" in result.stderr


def test_help_explains_host_join_and_invite_and_version_exists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for words in ("Start a call", "--invite", "port 8765", "settings live in", "examples:"):
        assert words in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--version"])
    assert capsys.readouterr().out.startswith("callapp ")
    args = build_parser().parse_args(["--invite", "http://h:1/?room=r", "--name", "Ana"])
    assert (args.invite, args.name) == ("http://h:1/?room=r", "Ana")
