"""TURN REST API credentials (callapp.signaling.turn): sans-I/O, clock and secret fed in."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from callapp.signaling import turn
from callapp.signaling.cli import build_parser
from callapp.signaling.cli import main as signaling_main
from callapp.signaling.server import SignalingServer

CONFIG = turn.TurnConfig(urls=("turn:relay.example:3478?transport=udp",), secret="north-wind")


def test_the_credential_is_base64_of_hmac_sha1_as_coturn_computes_it() -> None:
    # printf '%s' "1700003600:alice" | openssl dgst -sha1 -hmac north-wind -binary | base64
    assert turn.make_credential("north-wind", "1700003600:alice") == "iRtTIZ3N38dm9S+dP+UkHfnN9Qo="


def test_a_welcome_entry_expires_ttl_seconds_from_now() -> None:
    entry = turn.ice_server(CONFIG, "alice", now=1700000000.7)
    assert entry == {
        "urls": ["turn:relay.example:3478?transport=udp"],
        "username": "1700003600:alice",
        "credential": "iRtTIZ3N38dm9S+dP+UkHfnN9Qo=",
    }
    assert turn.expiry_of(entry["username"]) == 1700003600
    short = turn.TurnConfig(CONFIG.urls, CONFIG.secret, ttl=60)
    assert turn.ice_server(short, "bo", now=100.0)["username"] == "160:bo"


def test_validity_is_the_relays_check() -> None:
    entry = turn.ice_server(CONFIG, "alice", now=1000.0)
    user, credential = entry["username"], entry["credential"]
    assert turn.is_valid("north-wind", user, credential, now=1000.0)
    assert turn.is_valid("north-wind", user, credential, now=1000.0 + 3600)
    assert not turn.is_valid("north-wind", user, credential, now=1000.0 + 3601)  # expired
    assert not turn.is_valid("other-secret", user, credential, now=1000.0)
    assert not turn.is_valid("north-wind", "4600:mallory", credential, now=1000.0)
    assert not turn.is_valid("north-wind", "alice", credential, now=1000.0)  # no expiry


def test_no_turn_means_nothing_added() -> None:
    assert turn.welcome_servers(None, "alice", 0.0) == ()
    assert len(turn.welcome_servers(CONFIG, "alice", 0.0)) == 1


@pytest.mark.parametrize(
    ("urls", "secret", "ttl", "words"),
    [
        ((), "s", 60, "at least one turn: URL"),
        (("stun:x",), "s", 60, "not a turn: or turns: URL"),
        (("turn:x",), "", 60, "secret is empty"),
        (("turn:x",), "s", 0, "at least 1 s"),
    ],
)
def test_bad_configurations_are_refused_in_words(
    urls: tuple[str, ...], secret: str, ttl: int, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        turn.TurnConfig(urls, secret, ttl)


def test_user_ids_cannot_fake_an_expiry() -> None:
    with pytest.raises(ValueError, match="cannot contain"):
        turn.make_username(10, "a:b")
    assert turn.make_username(10, "") == "10"


def test_flags_build_the_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        ["--turn-url", "turn:a:3478", "--turn-secret", "s", "--turn-ttl", "90"]
    )
    assert turn.turn_config(args.turn_url, args.turn_secret, args.turn_ttl) == turn.TurnConfig(
        ("turn:a:3478",), "s", 90
    )
    assert turn.turn_config([], None) is None
    with pytest.raises(SystemExit):
        signaling_main(["--turn-url", "turn:a:3478"])  # no secret
    assert "--turn-url needs --turn-secret" in capsys.readouterr().err


async def test_every_welcome_carries_a_fresh_credential() -> None:
    server = SignalingServer(port=0, ice_servers=[{"urls": "stun:s:3478"}], turn=CONFIG)
    await server.start()
    try:
        welcomes = []
        for _ in range(2):
            async with websockets.connect(server.url) as ws:
                welcomes.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    finally:
        await server.stop()
    for welcome in welcomes:
        stun, relay = welcome["iceServers"]
        assert stun == {"urls": "stun:s:3478"}
        expires, _, user = relay["username"].partition(":")
        assert user == welcome["connectionId"]
        assert turn.make_credential("north-wind", relay["username"]) == relay["credential"]
        assert int(expires) > 0
    assert welcomes[0]["iceServers"][1] != welcomes[1]["iceServers"][1]
