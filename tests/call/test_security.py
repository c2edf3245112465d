"""Security v1 core: HKDF, room keys, fingerprint MACs, commit-then-reveal and the code.

Known-answer values pin the derivations of docs/security.md (the browser's
security.js is checked against this module in tests/e2e/test_security_js.py);
``cryptography``'s HKDF and HMAC serve as an independent reference.

Collision allowance: the code shows 39 bits, so two different inputs give
the same code with probability 2**-39 (about 1.8e-12). The properties below
draw a few thousand input pairs in all, so a spurious failure has odds
below 1e-8; an actual failure means an input is not bound into the code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from callapp.call import security
from callapp.call.security import SecurityError, Verifier

# -- fixed inputs, shared with tests/e2e/test_security_js.py ------------------------

SECRET = "AAECAwQFBgcICQoLDA0ODw"  # bytes 0..15
ROOM = "amber-otter-42"
OFFERER_ID, ANSWERER_ID = "q3Jx0v1Lr9aZ-k2T", "Zx9-Tk2mPq7LrS0a"
FP_O = "sha-256 " + ":".join(f"{i:02X}" for i in range(32))
FP_A = "sha-256 " + ":".join(f"{255 - i:02X}" for i in range(32))
NONCE_O = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"  # bytes 0..31
NONCE_A = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"  # bytes 32..63

ROOM_KEY = "W4gta6FcBiCAub098IQS0Ia2RwbDOJva7RtloSUbTT0"
AUTH_KEY = "tfXWtymZurE4MieWHRbgeZ9QGGHiBjDifnz663ARExU"
MAC_O_TO_A = "5jaRFcJ4R-5WiiyABN2-enizFTX1O-RSB_S0Gwmng0c"
COMMITMENT = "otNNxFTW2woOTP8lCL6m7Jkbm8oV4StLB8b-h1ODqXQ"
CODE = "6275 2251 2543"

CODE_RE = re.compile(r"^[1-9][0-9]{3} [1-9][0-9]{3} [1-9][0-9]{3}$")

#: RFC 5869 appendix A.1-A.3: (IKM, salt, info, L, PRK, OKM), hex.
RFC5869 = [
    (
        "0b" * 22,
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        42,
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        "".join(f"{i:02x}" for i in range(0x00, 0x50)),
        "".join(f"{i:02x}" for i in range(0x60, 0xB0)),
        "".join(f"{i:02x}" for i in range(0xB0, 0x100)),
        82,
        "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        "0b" * 22,
        "",
        "",
        42,
        "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]

# -- strategies ---------------------------------------------------------------------

fingerprints = st.binary(min_size=32, max_size=32).map(
    lambda b: "sha-256 " + ":".join(f"{x:02X}" for x in b)
)
nonces = st.binary(min_size=32, max_size=32).map(security.b64url_encode)
secrets_ = st.binary(min_size=16, max_size=16).map(security.b64url_encode)
ids = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1
)
texts = st.text(max_size=40)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- HKDF -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ikm", "salt", "info", "length", "prk", "okm"), RFC5869, ids=["A.1", "A.2", "A.3"]
)
def test_hkdf_rfc5869_vectors(
    ikm: str, salt: str, info: str, length: int, prk: str, okm: str
) -> None:
    got_prk = security.hkdf_extract(bytes.fromhex(salt), bytes.fromhex(ikm))
    assert got_prk.hex() == prk
    assert security.hkdf_expand(got_prk, bytes.fromhex(info), length).hex() == okm
    assert (
        security.hkdf(bytes.fromhex(ikm), bytes.fromhex(salt), bytes.fromhex(info), length).hex()
        == okm
    )


@settings(max_examples=200)
@given(
    ikm=st.binary(max_size=80),
    salt=st.binary(max_size=80),
    info=st.binary(max_size=80),
    length=st.integers(1, 255 * 32),
)
def test_hkdf_equals_an_independent_implementation(
    ikm: bytes, salt: bytes, info: bytes, length: int
) -> None:
    expected = HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)
    assert security.hkdf(ikm, salt, info, length) == expected


@pytest.mark.parametrize("length", [0, -1, 255 * 32 + 1])
def test_hkdf_refuses_impossible_lengths(length: int) -> None:
    with pytest.raises(ValueError, match="HKDF-SHA256 gives"):
        security.hkdf_expand(bytes(32), b"", length)


# -- secrets and room keys ---------------------------------------------------------------


def test_known_answers() -> None:
    assert security.room_key(SECRET, ROOM) == ROOM_KEY
    auth_key = security.fingerprint_auth_key(SECRET, ROOM)
    assert b64(auth_key) == AUTH_KEY
    assert security.fingerprint_mac(auth_key, OFFERER_ID, ANSWERER_ID, FP_O) == MAC_O_TO_A
    assert security.sas_commitment(NONCE_O) == COMMITMENT
    assert security.sas_code(NONCE_O, NONCE_A, OFFERER_ID, ANSWERER_ID, FP_O, FP_A) == CODE


def test_derivations_as_written_in_docs() -> None:
    """Each value from its definition, with cryptography's HKDF and hashlib."""

    def ref(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
        return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)

    secret = bytes(range(16))
    assert b64(ref(secret, b"callapp/v1/room-key", ROOM.encode(), 32)) == ROOM_KEY
    auth = ref(secret, b"callapp/v1/fingerprint-mac", ROOM.encode(), 32)
    assert b64(auth) == AUTH_KEY
    text = f"callapp/v1/fp|{OFFERER_ID}|{ANSWERER_ID}|{FP_O}".encode()
    assert b64(hmac.new(auth, text, hashlib.sha256).digest()) == MAC_O_TO_A
    assert b64(hashlib.sha256(f"callapp/v1/sas-commit|{NONCE_O}".encode()).digest()) == COMMITMENT
    info = f"{OFFERER_ID}|{ANSWERER_ID}|{FP_O}|{FP_A}".encode()
    code_bytes = ref(bytes(range(64)), b"callapp/v1/sas", info, 5)
    bits = int.from_bytes(code_bytes, "big")
    numbers = [(bits >> shift & 0x1FFF) + 1000 for shift in (27, 14, 1)]
    assert " ".join(map(str, numbers)) == CODE


def test_new_room_secret_is_128_random_bits() -> None:
    made = {security.new_room_secret() for _ in range(200)}
    assert len(made) == 200
    for secret in made:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", secret)
        assert len(security.decode_secret(secret)) == 16


@given(secret=st.binary(min_size=16, max_size=16))
def test_decode_secret_round_trips(secret: bytes) -> None:
    assert security.decode_secret(security.b64url_encode(secret)) == secret


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "22 characters long; this one has 0"),
        ("AAECAwQFBgcICQoLDA0OD", "22 characters long; this one has 21"),
        ("AAECAwQFBgcICQoLDA0ODwA", "22 characters long; this one has 23"),
        ("AAECAwQFBgcICQoLDA0ODw==", "letters, digits, '-' and '_'"),
        ("AAECAwQFBgcICQoLDA0OD+", "letters, digits, '-' and '_'"),
        ("AAECAwQFBgcICQoLDA0OD/", "letters, digits, '-' and '_'"),
        ("AAECAwQFBgcICQoLDA0O w", "letters, digits, '-' and '_'"),
        (" AAECAwQFBgcICQoLDA0ODw", "letters, digits, '-' and '_'"),
        ("AAECAwQFBgcICQoLDA0OD\u00e9", "letters, digits, '-' and '_'"),
        ("AAECAwQFBgcICQoLDA0ODx", "last character is wrong"),  # spare bits set
    ],
)
def test_malformed_secrets_are_refused_in_plain_words(text: str, words: str) -> None:
    with pytest.raises(SecurityError, match=re.escape(words)) as caught:
        security.decode_secret(text)
    assert str(caught.value).startswith("A room secret ")
    assert isinstance(caught.value, ValueError)
    with pytest.raises(SecurityError):
        security.room_key(text, ROOM)
    with pytest.raises(SecurityError):
        security.fingerprint_auth_key(text, ROOM)


def test_a_secret_that_is_not_text_is_refused() -> None:
    with pytest.raises(SecurityError, match="must be text, not bytes"):
        security.decode_secret(b"AAECAwQFBgcICQoLDA0ODw")  # type: ignore[arg-type]


@settings(max_examples=200)
@given(secret=secrets_, room=texts, other=texts)
def test_room_key_depends_on_secret_and_room_and_never_reveals_the_mac_key(
    secret: str, room: str, other: str
) -> None:
    key = security.room_key(secret, room)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key)
    assert key == security.room_key(secret, room)
    assert key != b64(security.fingerprint_auth_key(secret, room))
    assert secret not in key
    if other != room:
        assert key != security.room_key(secret, other)


@given(a=secrets_, b=secrets_)
def test_room_key_differs_per_secret(a: str, b: str) -> None:
    assume(a != b)
    assert security.room_key(a, ROOM) != security.room_key(b, ROOM)


def test_room_names_that_are_not_unicode_are_refused() -> None:
    with pytest.raises(SecurityError, match="not valid Unicode"):
        security.room_key(SECRET, "\ud800")


# -- fingerprints ---------------------------------------------------------------------

LOWER = FP_O.lower()


@pytest.mark.parametrize(
    "spelling",
    [
        FP_O,
        LOWER,
        "SHA-256 " + FP_O.removeprefix("sha-256 ").lower(),
        "Sha-256\t" + FP_O.removeprefix("sha-256 "),
        "  sha-256   " + FP_O.removeprefix("sha-256 ") + " \t",
    ],
)
def test_fingerprint_spellings_normalize_to_one(spelling: str) -> None:
    assert security.normalize_fingerprint(spelling) == FP_O


HEX = FP_O.removeprefix("sha-256 ")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "32 bytes in hex separated by colons"),
        (HEX, "32 bytes in hex separated by colons"),
        ("sha-1 " + HEX[: 20 * 3 - 1], "Only sha-256 fingerprints are supported, not 'sha-1'"),
        ("sha-512 " + HEX + ":" + HEX, "not 'sha-512'"),
        ("sha-256", "32 bytes in hex"),
        ("sha-256 " + HEX[:-3], "32 bytes in hex"),  # 31 bytes
        ("sha-256 " + HEX + ":AB", "32 bytes in hex"),  # 33 bytes
        ("sha-256 " + HEX.replace(":", ""), "32 bytes in hex"),
        ("sha-256 " + HEX.replace(":", "-"), "32 bytes in hex"),
        ("sha-256 " + HEX[:-1] + "G", "32 bytes in hex"),
        ("sha-256 " + HEX[:-1] + "\uff11", "32 bytes in hex"),  # a fullwidth digit
        ("sha-256 " + HEX + "\n", "32 bytes in hex"),
        ("sha-256\u00a0" + HEX, "32 bytes in hex"),
        ("sha256 " + HEX, "not 'sha256'"),
        ("a=fingerprint:sha-256 " + HEX, "32 bytes in hex"),
        ("x", "32 bytes in hex"),
        ("md5 is not a fingerprint", "32 bytes in hex"),
    ],
)
def test_anything_but_a_sha256_fingerprint_is_refused(text: str, words: str) -> None:
    with pytest.raises(SecurityError, match=re.escape(words)):
        security.normalize_fingerprint(text)


def test_a_fingerprint_that_is_not_text_is_refused() -> None:
    with pytest.raises(SecurityError, match="must be text"):
        security.normalize_fingerprint(None)  # type: ignore[arg-type]


def sdp(*media: Sequence[str], session: Sequence[str] = ()) -> str:
    lines = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", *session]
    for section in media:
        lines += ["m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", *section]
    return "\r\n".join(lines) + "\r\n"


def fp_line(fingerprint: str) -> str:
    return "a=fingerprint:" + fingerprint


def test_sdp_fingerprint_at_session_or_media_level() -> None:
    assert security.sdp_fingerprint(sdp([], session=[fp_line(LOWER)])) == FP_O
    assert security.sdp_fingerprint(sdp(["a=setup:actpass", fp_line(LOWER)])) == FP_O
    bundle = sdp([fp_line(FP_O)], [fp_line(LOWER)], session=[fp_line(FP_O)])
    assert security.sdp_fingerprint(bundle) == FP_O
    assert security.local_fingerprint(bundle) == security.remote_fingerprint(bundle) == FP_O


def test_sdp_fingerprint_skips_other_algorithms_and_reads_lf_only_sdp() -> None:
    aiortc_style = sdp(
        [fp_line("sha-384 " + "AA:" * 47 + "AA"), fp_line(FP_O), fp_line("sha-512 " + HEX)]
    )
    assert security.sdp_fingerprint(aiortc_style) == FP_O
    assert security.sdp_fingerprint(aiortc_style.replace("\r\n", "\n")) == FP_O


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (sdp(["a=setup:actpass"]), "has no sha-256 fingerprint"),
        (sdp([fp_line("sha-1 " + HEX[:59])]), "has no sha-256 fingerprint"),
        (sdp([fp_line(FP_O)], [fp_line(FP_A)]), "two different certificates"),
        (sdp([fp_line(FP_O)], session=[fp_line(FP_A)]), "two different certificates"),
        (sdp([fp_line(FP_O), fp_line(FP_A)]), "two different certificates"),
        (sdp([fp_line("sha-256 " + HEX[:-3])]), "32 bytes in hex"),
        # A line hidden behind a separator some parser splits on is still a line.
        (sdp([fp_line(FP_O) + "\u2028" + fp_line(FP_A)]), "two different certificates"),
        (sdp([fp_line(FP_O) + "\x0b" + fp_line(FP_A)]), "two different certificates"),
        (sdp([fp_line(FP_O) + "\r" + fp_line(FP_A)]), "two different certificates"),
    ],
)
def test_unusable_sdps_are_refused(text: str, words: str) -> None:
    with pytest.raises(SecurityError, match=words):
        security.sdp_fingerprint(text)
    with pytest.raises(SecurityError, match=words):
        security.pin_remote_sdp(text)


def test_pin_remote_sdp_keeps_only_the_verified_certificate() -> None:
    attacker = "sha-512 " + ":".join(["EE"] * 64)
    text = sdp(["a=mid:0", fp_line(FP_O), fp_line(attacker), "a=setup:active"])
    pinned = security.pin_remote_sdp(text)
    assert attacker not in pinned
    assert pinned == sdp(["a=mid:0", fp_line(FP_O), "a=setup:active"])
    assert security.sdp_fingerprint(pinned) == security.sdp_fingerprint(text) == FP_O
    assert security.pin_remote_sdp(pinned) == pinned
    # A line hidden behind U+2028 becomes a line of its own, or goes.
    hidden = sdp([fp_line(FP_O) + "\u2028" + fp_line(attacker) + "\u2028a=x"])
    assert security.pin_remote_sdp(hidden) == sdp([fp_line(FP_O), "a=x"])
    assert security.pin_remote_sdp("v=0\r\n" + fp_line(FP_O)) == "v=0\r\n" + fp_line(FP_O)


async def test_a_real_aiortc_offer() -> None:
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio")
        pc.createDataChannel("chat")
        await pc.setLocalDescription(await pc.createOffer())
        text = pc.localDescription.sdp
        (certificate,) = pc._RTCPeerConnection__certificates  # aiortc keeps one per connection
        sha256 = next(f for f in certificate.getFingerprints() if f.algorithm == "sha-256")
        assert security.local_fingerprint(text) == f"sha-256 {sha256.value}"
        pinned = security.pin_remote_sdp(text)
        assert [line for line in pinned.splitlines() if line.startswith("a=fingerprint:")] == [
            f"a=fingerprint:sha-256 {sha256.value}"
        ] * text.count("a=fingerprint:sha-256")
    finally:
        await pc.close()


# -- fingerprint MACs -------------------------------------------------------------------


@settings(max_examples=150)
@given(
    secret=secrets_, room=texts, sender=ids, receiver=ids, fp=fingerprints, other_fp=fingerprints
)
def test_mac_verifies_only_with_the_right_key_ids_and_fingerprint(
    secret: str, room: str, sender: str, receiver: str, fp: str, other_fp: str
) -> None:
    key = security.fingerprint_auth_key(secret, room)
    mac = security.fingerprint_mac(key, sender, receiver, fp)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", mac)
    assert security.check_fingerprint_mac(key, sender, receiver, fp, mac)
    assert security.check_fingerprint_mac(key, sender, receiver, fp.lower(), mac)
    assert not security.check_fingerprint_mac(
        security.fingerprint_auth_key(secret, room + "x"), sender, receiver, fp, mac
    )
    assert not security.check_fingerprint_mac(bytes(32), sender, receiver, fp, mac)
    assert not security.check_fingerprint_mac(key, sender + "x", receiver, fp, mac)
    assert not security.check_fingerprint_mac(key, sender, receiver + "x", fp, mac)
    if sender != receiver:
        assert not security.check_fingerprint_mac(key, receiver, sender, fp, mac)
    if other_fp != fp:
        assert not security.check_fingerprint_mac(key, sender, receiver, other_fp, mac)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        42,
        b"bytes",
        "",
        MAC_O_TO_A[:-1],
        MAC_O_TO_A + "A",
        MAC_O_TO_A[:-1] + ("A" if MAC_O_TO_A[-1] != "A" else "B"),
        MAC_O_TO_A.lower(),
        MAC_O_TO_A[:-1] + "\u00e9",
        MAC_O_TO_A[:-1] + "\ud800",
    ],
)
def test_tampered_or_malformed_macs_do_not_verify(bad: Any) -> None:
    key = security.fingerprint_auth_key(SECRET, ROOM)
    assert security.check_fingerprint_mac(key, OFFERER_ID, ANSWERER_ID, FP_O, MAC_O_TO_A)
    assert not security.check_fingerprint_mac(key, OFFERER_ID, ANSWERER_ID, FP_O, bad)


def test_mac_refuses_a_key_of_the_wrong_size_and_a_bad_fingerprint() -> None:
    with pytest.raises(SecurityError, match="32 bytes"):
        security.fingerprint_mac(b"short", "a", "b", FP_O)
    with pytest.raises(SecurityError, match="32 bytes in hex"):
        security.fingerprint_mac(bytes(32), "a", "b", "sha-256 AB")


# -- commitment ----------------------------------------------------------------------------


@given(nonce=nonces, other=nonces)
def test_commitment_binds_the_nonce(nonce: str, other: str) -> None:
    commitment = security.sas_commitment(nonce)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", commitment)
    assert nonce not in commitment
    assert security.check_commitment(commitment, nonce)
    if other != nonce:
        assert not security.check_commitment(commitment, other)
        assert not security.check_commitment(security.sas_commitment(other), nonce)


@pytest.mark.parametrize(
    ("commitment", "nonce"),
    [
        (COMMITMENT, NONCE_O[:-1]),
        (COMMITMENT, NONCE_O + "A"),
        (COMMITMENT, NONCE_O[:-1] + "9"),  # spare bits set: another spelling of other bytes
        (COMMITMENT, None),
        (None, NONCE_O),
        (COMMITMENT[:-1], NONCE_O),
        (COMMITMENT + "=", NONCE_O),
        (COMMITMENT[:-1] + "\u00e9", NONCE_O),
    ],
)
def test_commitment_checks_fail_closed(commitment: Any, nonce: Any) -> None:
    assert security.check_commitment(COMMITMENT, NONCE_O)
    assert not security.check_commitment(commitment, nonce)


def test_new_nonce_is_32_fresh_bytes() -> None:
    made = {security.new_nonce() for _ in range(100)}
    assert len(made) == 100
    assert all(len(security.b64url_decode(n, 32, "A nonce")) == 32 for n in made)


def test_commitment_refuses_a_malformed_nonce() -> None:
    with pytest.raises(SecurityError, match="The offerer's nonce is 43 characters"):
        security.sas_commitment("abc")


# -- the code ------------------------------------------------------------------------------


def test_code_extremes() -> None:
    assert security.code_text(bytes(5)) == "1000 1000 1000"
    assert security.code_text(b"\xff" * 5) == "9191 9191 9191"
    assert security.code_text(b"\x00\x00\x00\x00\x01") == "1000 1000 1000"  # bit 39 is unused
    assert security.code_text(b"\x80\x00\x00\x00\x00") == "5096 1000 1000"
    with pytest.raises(ValueError, match="5 bytes"):
        security.code_text(bytes(4))


@settings(max_examples=500)
@given(code_bytes=st.binary(min_size=5, max_size=5))
def test_code_alphabet_length_and_bits(code_bytes: bytes) -> None:
    code = security.code_text(code_bytes)
    assert CODE_RE.match(code)
    assert security.CODE_PATTERN.fullmatch(code)
    assert len(code) == 14
    numbers = [int(part) for part in code.split()]
    assert all(1000 <= n <= 9191 for n in numbers)
    bits = int.from_bytes(code_bytes, "big")
    assert numbers == [(bits >> (27 - 13 * i) & 0x1FFF) + 1000 for i in range(3)]


@st.composite
def code_inputs(draw: st.DrawFn) -> tuple[str, str, str, str, str, str]:
    return (
        draw(nonces),
        draw(nonces),
        draw(ids),
        draw(ids),
        draw(fingerprints),
        draw(fingerprints),
    )


@settings(max_examples=200)
@given(inputs=code_inputs())
def test_same_inputs_same_code(inputs: tuple[str, str, str, str, str, str]) -> None:
    code = security.sas_code(*inputs)
    assert CODE_RE.match(code)
    assert code == security.sas_code(*inputs)
    lowered = (*inputs[:4], inputs[4].lower(), inputs[5].lower().replace("sha", "SHA"))
    assert security.sas_code(*lowered) == code


@settings(max_examples=300)
@given(inputs=code_inputs(), position=st.integers(0, 5), data=st.data())
def test_any_changed_input_changes_the_code(
    inputs: tuple[str, str, str, str, str, str], position: int, data: st.DataObject
) -> None:
    strategy = (nonces, nonces, ids, ids, fingerprints, fingerprints)[position]
    replacement = data.draw(strategy.filter(lambda value: value != inputs[position]))
    changed = list(inputs)
    changed[position] = replacement
    assert security.sas_code(*inputs) != security.sas_code(*changed)


@settings(max_examples=200)
@given(inputs=code_inputs())
def test_role_order_changes_the_code(inputs: tuple[str, str, str, str, str, str]) -> None:
    no, na, io, ia, fo, fa = inputs
    code = security.sas_code(*inputs)
    swaps = [
        (na, no, io, ia, fo, fa),  # nonces swapped
        (no, na, ia, io, fo, fa),  # ids swapped
        (no, na, io, ia, fa, fo),  # fingerprints swapped
        (na, no, ia, io, fa, fo),  # offerer and answerer swapped
    ]
    for swapped in swaps:
        if swapped != inputs:
            assert security.sas_code(*swapped) != code


def test_sas_code_refuses_malformed_values() -> None:
    with pytest.raises(SecurityError, match="The answerer's nonce"):
        security.sas_code(NONCE_O, "short", OFFERER_ID, ANSWERER_ID, FP_O, FP_A)
    with pytest.raises(SecurityError, match="32 bytes in hex"):
        security.sas_code(NONCE_O, NONCE_A, OFFERER_ID, ANSWERER_ID, FP_O, "sha-256 00")


# -- the Verifier ------------------------------------------------------------------------------

Route = Callable[[dict[str, Any]], dict[str, Any]]


def pair(
    auth_key: bytes | None = None,
    offerer_key: bytes | None = None,
    fps: tuple[str, str, str, str] = (FP_O, FP_A, FP_A, FP_O),
) -> tuple[Verifier, Verifier]:
    """An offerer and an answerer; ``fps``: (O local, O remote, A local, A remote)."""
    offerer = Verifier(
        "offerer",
        local_id=OFFERER_ID,
        remote_id=ANSWERER_ID,
        local_fingerprint=fps[0],
        remote_fingerprint=fps[1],
        auth_key=offerer_key if offerer_key is not None else auth_key,
    )
    answerer = Verifier(
        "answerer",
        local_id=ANSWERER_ID,
        remote_id=OFFERER_ID,
        local_fingerprint=fps[2],
        remote_fingerprint=fps[3],
        auth_key=auth_key,
    )
    return offerer, answerer


def run(
    offerer: Verifier,
    answerer: Verifier,
    to_answerer: Route = lambda m: m,
    to_offerer: Route = lambda m: m,
) -> list[dict[str, Any]]:
    """Deliver every message (each through JSON, as signaling does); the transcript."""
    transcript: list[dict[str, Any]] = []
    outbox_a, outbox_o = offerer.start(), answerer.start()
    while outbox_a or outbox_o:
        replies_o: list[dict[str, Any]] = []
        replies_a: list[dict[str, Any]] = []
        for message in outbox_a:
            transcript.append(message)
            replies_a += answerer.receive(to_answerer(json.loads(json.dumps(message))))
        for message in outbox_o:
            transcript.append(message)
            replies_o += offerer.receive(to_offerer(json.loads(json.dumps(message))))
        outbox_a, outbox_o = replies_o, replies_a
    return transcript


def steps(transcript: list[dict[str, Any]]) -> list[str]:
    return [m["payload"]["step"] for m in transcript]


def test_honest_exchange_without_a_secret() -> None:
    offerer, answerer = pair()
    transcript = run(offerer, answerer)
    assert steps(transcript) == ["commit", "nonce", "reveal"]
    assert all(m["type"] == "VERIFY" for m in transcript)
    assert offerer.state == answerer.state == "done"
    assert offerer.code == answerer.code
    assert offerer.code is not None
    assert CODE_RE.match(offerer.code)
    assert not offerer.peer_verified
    assert not answerer.peer_verified
    assert not offerer.authenticated
    # The code is sas_code over what was exchanged.
    nonce_a = transcript[1]["payload"]["nonce"]
    nonce_o = transcript[2]["payload"]["nonce"]
    assert transcript[0]["payload"]["commitment"] == security.sas_commitment(nonce_o)
    assert offerer.code == security.sas_code(nonce_o, nonce_a, OFFERER_ID, ANSWERER_ID, FP_O, FP_A)


def test_honest_exchange_with_a_secret() -> None:
    key = security.fingerprint_auth_key(SECRET, ROOM)
    offerer, answerer = pair(key)
    transcript = run(offerer, answerer)
    assert sorted(steps(transcript)) == ["commit", "mac", "mac", "nonce", "reveal"]
    assert offerer.state == answerer.state == "done"
    assert offerer.code == answerer.code is not None
    assert offerer.peer_verified
    assert answerer.peer_verified
    assert offerer.authenticated
    assert answerer.authenticated
    macs = [m["payload"]["mac"] for m in transcript if m["payload"]["step"] == "mac"]
    assert MAC_O_TO_A in macs


def test_the_offerer_reveals_only_after_the_answerers_nonce() -> None:
    offerer, answerer = pair()
    first = offerer.start()
    assert steps(first) == ["commit"]
    assert "nonce" not in first[0]["payload"]
    answerer.start()
    (nonce,) = answerer.receive(first[0])
    assert steps([nonce]) == ["nonce"]
    assert offerer.code is None
    assert offerer.state == "running"
    (reveal,) = offerer.receive(nonce)
    assert steps([reveal]) == ["reveal"]
    assert answerer.receive(reveal) == []
    assert offerer.code == answerer.code is not None


@settings(max_examples=100)
@given(with_secret=st.booleans(), order=st.lists(st.booleans(), min_size=12, max_size=12))
def test_any_delivery_interleaving_gives_equal_codes(with_secret: bool, order: list[bool]) -> None:
    """Each direction is in order (as signaling is); the two directions interleave freely."""
    key = security.fingerprint_auth_key(SECRET, ROOM) if with_secret else None
    offerer, answerer = pair(key)
    to_answerer, to_offerer = list(offerer.start()), list(answerer.start())
    choices = iter(order)
    while to_answerer or to_offerer:
        deliver_to_answerer = (
            next(choices, True) if to_answerer and to_offerer else bool(to_answerer)
        )
        if deliver_to_answerer:
            to_offerer += answerer.receive(to_answerer.pop(0))
        else:
            to_answerer += offerer.receive(to_offerer.pop(0))
    assert offerer.state == answerer.state == "done"
    assert offerer.code == answerer.code is not None
    assert offerer.peer_verified is answerer.peer_verified is with_secret


MITM_O, MITM_A = (
    "sha-256 " + ":".join(["E1"] * 32),
    "sha-256 " + ":".join(["E2"] * 32),
)


def test_a_relay_with_its_own_certificates_gets_different_codes() -> None:
    """Without a secret: each side sees the relay's certificate; nonces are passed through."""
    offerer, answerer = pair(fps=(FP_O, MITM_A, FP_A, MITM_O))
    run(offerer, answerer)
    assert offerer.state == answerer.state == "done"
    assert offerer.code != answerer.code  # equal only with probability 2**-39


def test_a_relay_with_its_own_certificates_fails_the_mac_with_a_secret() -> None:
    key = security.fingerprint_auth_key(SECRET, ROOM)
    offerer, answerer = pair(key, fps=(FP_O, MITM_A, FP_A, MITM_O))
    run(offerer, answerer)
    for side in (offerer, answerer):
        assert side.state == "failed"
        assert side.reason == "mac"
        assert side.code is None
        assert side.message is not None
        assert "intercepted" in side.message


def test_a_relay_without_the_secret_cannot_forge_macs() -> None:
    guessed = security.fingerprint_auth_key(security.new_room_secret(), ROOM)

    def forge(message: dict[str, Any]) -> dict[str, Any]:
        if message["payload"]["step"] == "mac":
            return security.verify_message(
                "mac", mac=security.fingerprint_mac(guessed, OFFERER_ID, ANSWERER_ID, FP_O)
            )
        return message

    offerer, answerer = pair(security.fingerprint_auth_key(SECRET, ROOM))
    run(offerer, answerer, to_answerer=forge)
    assert answerer.state == "failed"
    assert answerer.reason == "mac"
    assert offerer.state == "done"
    assert offerer.peer_verified


def test_a_changed_reveal_fails_the_commitment() -> None:
    def swap_reveal(message: dict[str, Any]) -> dict[str, Any]:
        if message["payload"]["step"] == "reveal":
            return security.verify_message("reveal", nonce=security.new_nonce())
        return message

    offerer, answerer = pair()
    run(offerer, answerer, to_answerer=swap_reveal)
    assert answerer.state == "failed"
    assert answerer.reason == "commitment"
    assert answerer.code is None
    assert answerer.message is not None
    assert "committed" in answerer.message


def test_mismatched_keys_fail_as_intercepted() -> None:
    offerer, answerer = pair(
        security.fingerprint_auth_key(SECRET, ROOM),
        offerer_key=security.fingerprint_auth_key(SECRET, ROOM + "-other"),
    )
    run(offerer, answerer)
    assert offerer.reason == answerer.reason == "mac"


def test_a_mac_without_a_key_is_ignored() -> None:
    offerer, _ = pair()
    key = security.fingerprint_auth_key(SECRET, ROOM)
    answerer_with_key = Verifier(
        "answerer",
        local_id=ANSWERER_ID,
        remote_id=OFFERER_ID,
        local_fingerprint=FP_A,
        remote_fingerprint=FP_O,
        auth_key=key,
    )
    run(offerer, answerer_with_key)
    assert offerer.state == "done"
    assert not offerer.peer_verified
    assert answerer_with_key.state == "running"  # still waiting for the offerer's MAC
    answerer_with_key.timed_out()
    assert answerer_with_key.state == "failed"
    assert answerer_with_key.reason == "timeout"
    assert (
        answerer_with_key.message
        == "The other side did not finish the verification exchange in time."
    )
    offerer.timed_out()
    assert offerer.state == "done"  # a finished exchange does not time out


def nonce_msg() -> dict[str, Any]:
    return security.verify_message("nonce", nonce=NONCE_A)


@pytest.mark.parametrize(
    ("role", "messages", "detail"),
    [
        (
            "offerer",
            [security.verify_message("commit", commitment=COMMITMENT)],
            "an unexpected step 'commit'",
        ),
        (
            "offerer",
            [security.verify_message("reveal", nonce=NONCE_O)],
            "an unexpected step 'reveal'",
        ),
        (
            "answerer",
            [security.verify_message("nonce", nonce=NONCE_A)],
            "an unexpected step 'nonce'",
        ),
        (
            "answerer",
            [security.verify_message("reveal", nonce=NONCE_O)],
            "a reveal before the commitment",
        ),
        ("offerer", [nonce_msg(), nonce_msg()], "'nonce' after the exchange ended"),
        ("offerer", [security.verify_message("nonce", nonce="short")], "a malformed nonce"),
        ("offerer", [security.verify_message("nonce")], "a malformed nonce"),
        ("answerer", [security.verify_message("commit", commitment=42)], "a malformed commitment"),
        (
            "answerer",
            [security.verify_message("commit", commitment=COMMITMENT)] * 2,
            "a second commitment",
        ),
        ("offerer", [security.verify_message("mac", mac="x")] * 2, "a second MAC"),
        ("offerer", [{"type": "SDP", "payload": {}}], "a message that is not VERIFY"),
        ("offerer", [{"type": "VERIFY"}], "a VERIFY message without a payload"),
        ("offerer", [{"type": "VERIFY", "payload": []}], "a VERIFY message without a payload"),
        (
            "offerer",
            [{"type": "VERIFY", "payload": {"step": "hello"}}],
            "an unexpected step 'hello'",
        ),
        ("offerer", [{"type": "VERIFY", "payload": {}}], "an unexpected step (none)"),
    ],
)
def test_protocol_violations_fail_the_exchange(
    role: security.Role, messages: list[dict[str, Any]], detail: str
) -> None:
    offerer, answerer = pair()
    side = offerer if role == "offerer" else answerer
    side.start()
    for message in messages:
        side.receive(message)
    assert side.state == "failed"
    assert side.reason == "protocol"
    assert side.message == f"The other side broke the verification exchange ({detail})."
    assert side.receive(nonce_msg()) == []  # a failed exchange ignores the rest
    assert side.state == "failed"
    assert side.reason == "protocol"


def test_a_second_reveal_fails() -> None:
    offerer, answerer = pair()
    answerer.start()
    (commit,) = offerer.start()
    (nonce,) = answerer.receive(commit)
    (reveal,) = offerer.receive(nonce)
    answerer.receive(reveal)
    assert answerer.state == "done"
    answerer.receive(reveal)
    assert answerer.state == "failed"
    assert answerer.reason == "protocol"


def test_verifier_misuse_is_a_programming_error() -> None:
    offerer, _ = pair()
    with pytest.raises(RuntimeError, match="start"):
        offerer.receive(nonce_msg())
    offerer.start()
    with pytest.raises(RuntimeError, match="already"):
        offerer.start()
    with pytest.raises(ValueError, match="role"):
        Verifier(
            "caller",  # type: ignore[arg-type]
            local_id="a",
            remote_id="b",
            local_fingerprint=FP_O,
            remote_fingerprint=FP_A,
        )
    with pytest.raises(SecurityError, match="32 bytes in hex"):
        Verifier(
            "offerer", local_id="a", remote_id="b", local_fingerprint="x", remote_fingerprint=FP_A
        )
    with pytest.raises(SecurityError, match="32 bytes"):
        Verifier(
            "offerer",
            local_id="a",
            remote_id="b",
            local_fingerprint=FP_O,
            remote_fingerprint=FP_A,
            auth_key=b"short",
        )
