"""Invite links and server addresses (callapp/signaling/invite.py): round trips, every bad part."""

from __future__ import annotations

import base64
import hashlib
import string
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callapp.signaling.invite import (
    PIN_LENGTH,
    SECRET_LENGTH,
    AddressError,
    Invite,
    InviteError,
    certificate_pin,
    format_invite,
    is_valid_pin,
    is_valid_secret,
    normalize_server_url,
    parse_invite,
    pin_digest,
)

SECRET = "9ysMfMT9xVNbmulSVnJK_A"
PIN = certificate_pin(b"not really a certificate")
LINK = f"https://192.168.1.20:8765/?room=blue-fox-42#secret={SECRET}&pin={PIN}"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- the format -----------------------------------------------------------------------


def test_a_whole_link() -> None:
    invite = parse_invite(LINK)
    assert invite == Invite("wss://192.168.1.20:8765/ws", "blue-fox-42", SECRET, PIN)
    assert invite.tls
    assert invite.page_url == "https://192.168.1.20:8765/?room=blue-fox-42"
    assert invite.link == LINK
    assert format_invite("wss://192.168.1.20:8765/ws", "blue-fox-42", secret=SECRET, pin=PIN) == (
        LINK
    )
    # The secret rides in the fragment, which browsers never send to the server.
    parts = urlsplit(LINK)
    assert SECRET not in parts.path + parts.query
    assert SECRET in parts.fragment


def test_a_plain_link_is_todays_browser_link() -> None:
    link = format_invite("ws://10.0.0.7:9000/ws", "r")
    assert link == "http://10.0.0.7:9000/?room=r"
    assert parse_invite(link) == Invite("ws://10.0.0.7:9000/ws", "r")
    assert parse_invite(link).page_url == link
    assert not parse_invite(link).tls


def test_the_secret_is_not_in_repr_and_the_page_url_has_no_fragment() -> None:
    invite = parse_invite(LINK)
    assert SECRET not in repr(invite)
    assert "#" not in invite.page_url
    assert SECRET not in invite.page_url


def test_fragment_keys_in_any_order_and_unknown_keys_are_ignored() -> None:
    link = f"https://h:1/?utm=x&room=r&v=2#v=3&pin={PIN}&secret={SECRET}&later=1"
    assert parse_invite(link) == Invite("wss://h:1/ws", "r", SECRET, PIN)


def test_lenient_where_the_meaning_is_clear() -> None:
    # Spaces around, an upper-case scheme and host, no port, a percent-escaped room, an
    # empty fragment, a hex pin as openssl prints it.
    digest = hashlib.sha256(b"x").digest()
    colons = ":".join(f"{b:02X}" for b in digest)
    invite = parse_invite(f"  HTTPS://Calls.Example.ORG?room=blue%2Dfox#pin={colons}  ")
    assert invite == Invite("wss://calls.example.org/ws", "blue-fox", None, b64url(digest))
    assert parse_invite("http://h:1/?room=r#") == Invite("ws://h:1/ws", "r")
    assert parse_invite(f"https://h/?room=r#pin={digest.hex()}").pin == b64url(digest)
    assert parse_invite("http://[fe80::1]:8765/?room=r").server_url == "ws://[fe80::1]:8765/ws"


def test_pins() -> None:
    der = b"\x30\x82 some DER"
    pin = certificate_pin(der)
    assert len(pin) == PIN_LENGTH == 43
    assert is_valid_pin(pin)
    assert pin_digest(pin) == hashlib.sha256(der).digest()
    assert pin_digest(hashlib.sha256(der).hexdigest().upper()) == hashlib.sha256(der).digest()
    assert not is_valid_pin(pin[:-1])
    assert not is_valid_pin(hashlib.sha256(der).hexdigest())  # only the canonical spelling
    with pytest.raises(InviteError, match="malformed"):
        pin_digest("nope")


def test_secrets() -> None:
    assert SECRET_LENGTH == 22
    assert is_valid_secret(SECRET)
    assert is_valid_secret(b64url(bytes(16)))
    assert not is_valid_secret(b64url(bytes(32)))
    assert not is_valid_secret(SECRET[:-1] + "B")  # non-canonical last character
    assert not is_valid_secret(None)


# -- round trip ------------------------------------------------------------------------

labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
hosts = hostnames | ipv4 | ipv6
room_names = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
secrets = st.none() | st.binary(min_size=16, max_size=16).map(b64url)
pins = st.binary(min_size=32, max_size=32).map(b64url)


@given(
    host=hosts,
    port=st.none() | st.integers(min_value=1, max_value=65535),
    tls=st.booleans(),
    room=room_names,
    secret=secrets,
    pin=st.none() | pins,
)
def test_round_trip(
    host: str, port: int | None, tls: bool, room: str, secret: str | None, pin: str | None
) -> None:
    if not tls:
        pin = None
    if host.replace(".", "").isdigit() and not _is_ipv4(host):
        return  # "1.2" looks like an address and is not one: refused, rightly
    authority = host if port is None else f"{host}:{port}"
    server_url = f"{'wss' if tls else 'ws'}://{authority}/ws"
    link = format_invite(server_url, room, secret=secret, pin=pin)
    invite = parse_invite(link)
    assert invite == Invite(normalize_server_url(server_url), room, secret, pin)
    assert invite.link == link
    assert parse_invite(invite.page_url) == Invite(invite.server_url, room)
    # The page URL is a browser link: the server field reads it as the server.
    assert normalize_server_url(link) == invite.server_url
    assert parse_qs(urlsplit(link).query) == {"room": [room]}


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


# -- every malformed part ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "words"),
    [
        ("", "Paste the invite link"),
        ("   ", "Paste the invite link"),
        ("blue-fox-42", "not an invite link"),
        ("192.168.1.20:8765/?room=x", "not an invite link"),
        ("https://h/?room=a b", "contains spaces"),
        ("ftp://h/?room=x", "starts with http:// or https://, not ftp://"),
        ("ws://h:1/ws?room=x", "starts with http:// or https://, not ws://"),
        ("https:///?room=x", "has no host name"),
        ("https://exa_mple.org/?room=x", "not a valid host name"),
        ("https://300.1.1.1/?room=x", "not a valid host name"),
        ("https://[::1/?room=x", "broken IPv6 address"),
        ("https://h:99999/?room=x", "not a number from 1 to 65535"),
        ("https://h:port/?room=x", "not a number from 1 to 65535"),
        ("https://h:0/?room=x", "not a number from 1 to 65535"),
        ("https://me@h/?room=x", "user name"),
        ("https://h/app?room=x", "path should be '/'"),
        ("https://h/", "names no room"),
        ("https://h/?rooms=x", "names no room"),
        ("https://h/?room", "has no value"),
        ("https://h/?room=", "not a valid room name"),
        ("https://h/?room=a%20b", "not a valid room name"),
        ("https://h/?room=" + "x" * 65, "not a valid room name"),
        ("https://h/?room=x&room=y", "gives 'room' twice"),
        ("https://h/?room=x#secret=", "secret is empty"),
        ("https://h/?room=x#secret", "has no value"),
        (f"https://h/?room=x#secret={SECRET[:-1]}", "22 characters long, not 21"),
        (f"https://h/?room=x#secret={SECRET}A", "22 characters long, not 23"),
        (f"https://h/?room=x#secret={b64url(bytes(32))}", "22 characters long, not 43"),
        (f"https://h/?room=x#secret={SECRET[:-2]}+/", "characters a secret cannot have"),
        (f"https://h/?room=x#secret={SECRET[:-1]}=", "characters a secret cannot have"),
        (f"https://h/?room=x#secret={SECRET[:-1]}B", "secret is damaged"),
        ("https://h/?room=x#secret=%FF", "bad %-escapes"),
        (f"https://h/?room=x#secret={SECRET}&secret={SECRET}", "gives 'secret' twice"),
        (f"https://h/?room=x&secret={SECRET}", "where it reaches the server"),
        (f"https://h/?room=x&pin={PIN}", "where it reaches the server"),
        ("https://h/?room=x#pin=", "pin in the invite link is malformed"),
        (f"https://h/?room=x#pin={PIN[:-1]}", "pin in the invite link is malformed"),
        (f"https://h/?room=x#pin={PIN}x", "pin in the invite link is malformed"),
        ("https://h/?room=x#pin=" + "ab" * 31, "pin in the invite link is malformed"),
        ("https://h/?room=x#pin=" + "g" * 64, "pin in the invite link is malformed"),
        (f"https://h/?room=x#pin={PIN}&pin={PIN}", "gives 'pin' twice"),
        (f"http://h/?room=x#pin={PIN}", "a pin only goes with https://"),
    ],
)
def test_every_malformed_part_is_named_in_plain_words(link: str, words: str) -> None:
    with pytest.raises(InviteError, match=words) as refused:
        parse_invite(link)
    assert isinstance(refused.value, ValueError)
    # Nothing after '#' is ever quoted back: a message may be shown or logged.
    fragment = link.partition("#")[2]
    if len(fragment) > len("secret="):
        assert fragment not in str(refused.value)


def test_errors_never_quote_the_secret() -> None:
    for link in (
        f"https://h:99999/?room=x#secret={SECRET}",
        f"https://exa_mple/?room=x#secret={SECRET}",
        f"https://h/?room=a%20b#secret={SECRET}",
        f"http://h/?room=x#secret={SECRET}&pin={PIN}",
    ):
        with pytest.raises(InviteError) as refused:
            parse_invite(link)
        assert SECRET not in str(refused.value)
    with pytest.raises(AddressError) as bad:
        normalize_server_url(f"http://h:99999/?room=x#secret={SECRET}")
    assert SECRET not in str(bad.value)


@pytest.mark.parametrize(
    ("server_url", "room", "secret", "pin", "words"),
    [
        ("ws://h:1/ws", "a b", None, None, "not a valid room name"),
        ("ws://h:1/ws", "r", "short", None, "22 characters long"),
        ("ws://h:1/ws", "r", None, PIN, "a pin only goes with https://"),
        ("wss://h:1/ws", "r", None, "zz", "malformed"),
        ("wss://h:1/signal/ws", "r", None, None, "endpoint is /ws"),
        ("ftp://h", "r", None, None, "must start with ws://"),
    ],
)
def test_format_invite_refuses_what_it_cannot_write(
    server_url: str, room: str, secret: str | None, pin: str | None, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        format_invite(server_url, room, secret=secret, pin=pin)


def test_format_invite_writes_the_canonical_pin() -> None:
    digest = hashlib.sha256(b"c").digest()
    link = format_invite("wss://h:1/ws", "r", pin=digest.hex())
    assert link == f"https://h:1/?room=r#pin={b64url(digest)}"


# -- the one server address normalizer --------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        ("ws://192.168.1.20:8765/ws", "ws://192.168.1.20:8765/ws"),
        ("192.168.1.20:8765", "ws://192.168.1.20:8765/ws"),
        ("  localhost:9000  ", "ws://localhost:9000/ws"),
        ("ws://127.0.0.1:8765/", "ws://127.0.0.1:8765/ws"),
        ("wss://example.org", "wss://example.org/ws"),
        ("wss://example.org/signal/ws", "wss://example.org/signal/ws"),
        ("http://example.org:8765/", "ws://example.org:8765/ws"),
        ("https://calls.example.org/ws", "wss://calls.example.org/ws"),
        ("WS://Example.org:1/custom", "ws://example.org:1/custom"),
        ("ws://[::1]:8765/ws", "ws://[::1]:8765/ws"),
        ("ws:8765", "ws://ws:8765/ws"),  # a host called ws, with a port
        # A browser link (an invite) pasted into a server field gives its server.
        ("http://192.168.1.20:8765/?room=blue-fox-42", "ws://192.168.1.20:8765/ws"),
        (LINK, "wss://192.168.1.20:8765/ws"),
        ("https://h?room=x", "wss://h/ws"),
    ],
)
def test_server_addresses_are_normalized(typed: str, url: str) -> None:
    assert normalize_server_url(typed) == url


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("", "Enter the server address"),
        ("ws://host name:8765", "spaces"),
        ("ftp://example.org", "must start with ws://"),
        ("ws//host:8765", "looks mistyped"),
        ("ws//host", "looks mistyped"),
        ("wss//host/ws", "looks mistyped"),
        ("ws:/host", "looks mistyped"),
        ("http//host:8765/?room=x", "looks mistyped"),
        ("https:host", "looks mistyped"),
        ("ws://example.org:99999/ws", "not a number from 1 to 65535"),
        ("ws://example.org:abc/ws", "not a number from 1 to 65535"),
        ("ws://example.org:0/ws", "not a number from 1 to 65535"),
        ("ws://:8765/ws", "no host name"),
        ("ws://", "no host name"),
        ("ws://300.1.1.1:8765/ws", "not a valid host name"),
        ("ws://exa_mple.org/ws", "not a valid host name"),
        ("ws://[::1/ws", "broken IPv6"),
        ("ws://user:pw@example.org/ws", "user name"),
        ("ws://example.org/ws?x=1", "should not contain"),
        ("ws://example.org/?room=x", "should not contain"),
        ("https://example.org/ws#x", "should not contain"),
    ],
)
def test_bad_server_addresses_are_refused_in_words(typed: str, words: str) -> None:
    with pytest.raises(AddressError, match=words):
        normalize_server_url(typed)
