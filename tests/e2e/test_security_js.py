"""security.js in a real headless Chromium gives exactly what callapp.call.security gives.

The page is the module itself, served by a real SignalingServer from
``/static/security.js`` on http://127.0.0.1 (a secure context, so WebCrypto is
there) and imported with ``import()``. Fixed inputs (the known answers of
tests/call/test_security.py) and random ones drawn here go through both
implementations; the two Verifiers then run the exchange with each other.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from callapp.call import security
from callapp.signaling.server import SignalingServer
from tests.call import test_security as known
from tests.e2e.chromium import Chromium, ChromiumError, Page, find_chromium

# One server, browser and page for the whole module (on one event loop): the
# module is pure functions, so tests cannot disturb each other.
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def page() -> AsyncIterator[Page]:
    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium not found: run scripts/setup.sh or set $CHROMIUM")
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(SignalingServer("127.0.0.1", 0))
        try:
            browser = await stack.enter_async_context(
                Chromium.launch(executable, grant_media=False)
            )
        except ChromiumError as exc:
            pytest.skip(f"Chromium could not start: {exc}")
        tab = await browser.new_page()
        await tab.navigate(f"{server.http_url}static/security.js")
        assert await tab.evaluate("window.isSecureContext")
        await tab.evaluate(
            "import('/static/security.js').then(m => { window.sec = m; return true; })"
        )
        yield tab


async def js(page: Page, body: str, args: object = None) -> Any:
    """Run ``body`` as an async function of ``s`` (the module), ``args`` and helpers."""
    return await page.evaluate(
        f"""(async (s, args) => {{
  const b64 = s.b64urlEncode;
  const hex = h => Uint8Array.from(h.match(/../g) || [], x => parseInt(x, 16));
  const toHex = b => Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
  const attempt = async f => {{
    try {{ return {{value: await f()}}; }}
    catch (e) {{ return {{error: e.message, name: e.name}}; }}
  }};
  {body}
}})(window.sec, {json.dumps(args)})"""
    )


def attempt(f: Any, *args: Any) -> dict[str, Any]:
    """Python's side of the JS ``attempt``: the value, or the SecurityError's message."""
    try:
        return {"value": f(*args)}
    except security.SecurityError as exc:
        return {"error": str(exc), "name": "SecurityError"}


async def test_hkdf_rfc5869_vectors_in_the_browser(page: Page) -> None:
    got = await js(
        page,
        "return Promise.all(args.map(async ([ikm, salt, info, length]) =>"
        " toHex(await s.hkdf(hex(ikm), hex(salt), hex(info), length))));",
        [[ikm, salt, info, length] for ikm, salt, info, length, _, _ in known.RFC5869],
    )
    assert got == [okm for *_, okm in known.RFC5869]


async def test_known_answers_in_the_browser(page: Page) -> None:
    got = await js(
        page,
        """
const [secret, room, io, ia, fo, fa, no, na] = args;
const authKey = await s.fingerprintAuthKey(secret, room);
return {
  roomKey: await s.roomKey(secret, room),
  authKey: b64(authKey),
  mac: await s.fingerprintMac(authKey, io, ia, fo),
  commitment: await s.sasCommitment(no),
  code: await s.sasCode(no, na, io, ia, fo, fa),
  secretBytes: toHex(s.decodeSecret(secret)),
};""",
        [
            known.SECRET,
            known.ROOM,
            known.OFFERER_ID,
            known.ANSWERER_ID,
            known.FP_O,
            known.FP_A,
            known.NONCE_O,
            known.NONCE_A,
        ],
    )
    assert got == {
        "roomKey": known.ROOM_KEY,
        "authKey": known.AUTH_KEY,
        "mac": known.MAC_O_TO_A,
        "commitment": known.COMMITMENT,
        "code": known.CODE,
        "secretBytes": bytes(range(16)).hex(),
    }


def random_case(rng: random.Random) -> dict[str, str]:
    def fingerprint() -> str:
        text = ":".join(f"{b:02X}" for b in rng.randbytes(32))
        return rng.choice(["sha-256 ", "SHA-256 ", "Sha-256\t"]) + rng.choice([text, text.lower()])

    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return {
        "secret": security.b64url_encode(rng.randbytes(16)),
        "room": rng.choice(["standup", "amber-otter-42", "café-☕", "a", "x" * 64, ""]),
        "offerer": "".join(rng.choices(alphabet, k=16)),
        "answerer": "".join(rng.choices(alphabet, k=rng.choice([16, 22]))),
        "fo": fingerprint(),
        "fa": fingerprint(),
        "no": security.b64url_encode(rng.randbytes(32)),
        "na": security.b64url_encode(rng.randbytes(32)),
    }


def python_outputs(case: dict[str, str]) -> dict[str, Any]:
    key = security.fingerprint_auth_key(case["secret"], case["room"])
    mac = security.fingerprint_mac(key, case["offerer"], case["answerer"], case["fo"])
    return {
        "roomKey": security.room_key(case["secret"], case["room"]),
        "authKey": security.b64url_encode(key),
        "mac": mac,
        "macOk": security.check_fingerprint_mac(
            key, case["offerer"], case["answerer"], case["fo"], mac
        ),
        "macSwapped": security.check_fingerprint_mac(
            key, case["answerer"], case["offerer"], case["fo"], mac
        ),
        "macOtherFp": security.check_fingerprint_mac(
            key, case["offerer"], case["answerer"], case["fa"], mac
        ),
        "commitment": security.sas_commitment(case["no"]),
        "commitOk": security.check_commitment(security.sas_commitment(case["no"]), case["no"]),
        "commitOther": security.check_commitment(security.sas_commitment(case["no"]), case["na"]),
        "code": security.sas_code(
            case["no"], case["na"], case["offerer"], case["answerer"], case["fo"], case["fa"]
        ),
        "fo": security.normalize_fingerprint(case["fo"]),
    }


JS_OUTPUTS = """
return Promise.all(args.map(async c => {
  const key = await s.fingerprintAuthKey(c.secret, c.room);
  const mac = await s.fingerprintMac(key, c.offerer, c.answerer, c.fo);
  const commitment = await s.sasCommitment(c.no);
  return {
    roomKey: await s.roomKey(c.secret, c.room),
    authKey: b64(key),
    mac,
    macOk: await s.checkFingerprintMac(key, c.offerer, c.answerer, c.fo, mac),
    macSwapped: await s.checkFingerprintMac(key, c.answerer, c.offerer, c.fo, mac),
    macOtherFp: await s.checkFingerprintMac(key, c.offerer, c.answerer, c.fa, mac),
    commitment,
    commitOk: await s.checkCommitment(commitment, c.no),
    commitOther: await s.checkCommitment(commitment, c.na),
    code: await s.sasCode(c.no, c.na, c.offerer, c.answerer, c.fo, c.fa),
    fo: s.normalizeFingerprint(c.fo),
  };
}));"""


async def test_random_inputs_give_python_outputs(page: Page) -> None:
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    cases = [random_case(rng) for _ in range(40)]
    got = await js(page, JS_OUTPUTS, cases)
    expected = [python_outputs(case) for case in cases]
    for case, mine, theirs in zip(cases, expected, got, strict=True):
        assert theirs == mine, f"seed {seed}: {case}"
    assert all(e["macOk"] and e["commitOk"] for e in expected)
    assert not any(e["macSwapped"] or e["macOtherFp"] or e["commitOther"] for e in expected)


async def test_fresh_secrets_and_nonces_from_the_browser(page: Page) -> None:
    made = await js(
        page,
        "return {secrets: Array.from({length: 50}, s.newRoomSecret),"
        " nonces: Array.from({length: 50}, s.newNonce)};",
    )
    assert len(set(made["secrets"])) == len(set(made["nonces"])) == 50
    for secret in made["secrets"]:
        assert len(security.decode_secret(secret)) == 16
    for nonce in made["nonces"]:
        assert len(security.b64url_decode(nonce, 32, "A nonce")) == 32


BAD_SECRETS = [
    "",
    "AAECAwQFBgcICQoLDA0OD",
    "AAECAwQFBgcICQoLDA0ODwA",
    "AAECAwQFBgcICQoLDA0ODw==",
    "AAECAwQFBgcICQoLDA0OD+",
    "AAECAwQFBgcICQoLDA0O w",
    "AAECAwQFBgcICQoLDA0ODx",
    "AAECAwQFBgcICQoLDA0OD\u00e9",
]
HEX = known.HEX
BAD_FINGERPRINTS = [
    "",
    "x",
    HEX,
    "sha-1 " + HEX[:59],
    "SHA-512 " + HEX,
    "sha-256",
    "sha-256 " + HEX[:-3],
    "sha-256 " + HEX + ":AB",
    "sha-256 " + HEX.replace(":", ""),
    "sha-256 " + HEX[:-1] + "\uff11",
    "sha-256\u00a0" + HEX,
    "sha-256 " + HEX + "\n",
    "a=fingerprint:sha-256 " + HEX,
]


async def test_malformed_values_get_the_same_plain_words(page: Page) -> None:
    got = await js(
        page,
        """return {
  secrets: await Promise.all(args.secrets.map(x => attempt(() => s.decodeSecret(x)))),
  roomKeys: await Promise.all(args.secrets.map(x => attempt(() => s.roomKey(x, "room")))),
  fingerprints: await Promise.all(args.fps.map(x => attempt(() => s.normalizeFingerprint(x)))),
};""",
        {"secrets": BAD_SECRETS, "fps": BAD_FINGERPRINTS},
    )
    assert got == {
        "secrets": [attempt(security.decode_secret, x) for x in BAD_SECRETS],
        "roomKeys": [attempt(security.room_key, x, "room") for x in BAD_SECRETS],
        "fingerprints": [attempt(security.normalize_fingerprint, x) for x in BAD_FINGERPRINTS],
    }
    assert all("error" in result for result in got["secrets"] + got["fingerprints"])


def sdps() -> list[str]:
    sdp, fp_line = known.sdp, known.fp_line
    attacker = "sha-512 " + ":".join(["EE"] * 64)
    return [
        sdp([], session=[fp_line(known.LOWER)]),
        sdp(["a=mid:0", fp_line(known.FP_O), fp_line(attacker), "a=setup:active"]),
        sdp([fp_line("sha-384 " + "AA:" * 47 + "AA"), fp_line(known.FP_O)]).replace("\r\n", "\n"),
        sdp([fp_line(known.FP_O) + "\u2028" + fp_line(attacker) + "\u2028a=x"]),
        sdp([fp_line(known.FP_O)], [fp_line(known.FP_A)]),
        sdp([fp_line(known.FP_O) + "\x0b" + fp_line(known.FP_A)]),
        sdp(["a=setup:actpass"]),
        sdp([fp_line("sha-256 " + HEX[:-3])]),
        "v=0\r\n" + fp_line(known.FP_O),
    ]


async def test_sdp_helpers_agree(page: Page) -> None:
    cases = sdps()
    got = await js(
        page,
        "return Promise.all(args.map(async x => ["
        "await attempt(() => s.remoteFingerprint(x)), await attempt(() => s.pinRemoteSdp(x))]));",
        cases,
    )
    assert got == [
        [attempt(security.remote_fingerprint, x), attempt(security.pin_remote_sdp, x)]
        for x in cases
    ]


async def test_real_sdps_of_chromium_and_aiortc(page: Page) -> None:
    chromium = await js(
        page,
        """
const certificate = await RTCPeerConnection.generateCertificate(
  {name: "ECDSA", namedCurve: "P-256"});
const pc = new RTCPeerConnection({certificates: [certificate]});
pc.addTransceiver("audio");
pc.createDataChannel("chat");
await pc.setLocalDescription(await pc.createOffer());
const sdp = pc.localDescription.sdp;
pc.close();
return {sdp, fingerprints: certificate.getFingerprints(), parsed: s.localFingerprint(sdp)};""",
    )
    sha256 = [f["value"] for f in chromium["fingerprints"] if f["algorithm"] == "sha-256"]
    assert chromium["parsed"] == security.local_fingerprint(chromium["sdp"])
    assert chromium["parsed"] == security.normalize_fingerprint(f"sha-256 {sha256[0]}")
    assert security.pin_remote_sdp(chromium["sdp"]) == chromium["sdp"]  # Chrome lists sha-256 only

    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video")
        pc.createDataChannel("chat")
        await pc.setLocalDescription(await pc.createOffer())
        aiortc_sdp = pc.localDescription.sdp
    finally:
        await pc.close()
    got = await js(page, "return [s.remoteFingerprint(args), s.pinRemoteSdp(args)];", aiortc_sdp)
    assert got == [security.remote_fingerprint(aiortc_sdp), security.pin_remote_sdp(aiortc_sdp)]
    assert "sha-512" in aiortc_sdp
    assert "sha-512" not in got[1]
    # Chromium takes the pinned offer (and answers it with one certificate).
    answer = await js(
        page,
        """
const pc = new RTCPeerConnection();
try {
  await pc.setRemoteDescription({type: "offer", sdp: args});
  await pc.setLocalDescription(await pc.createAnswer());
  return pc.localDescription.sdp;
} finally { pc.close(); }""",
        got[1],
    )
    assert security.remote_fingerprint(answer) == security.local_fingerprint(answer)


# -- the two Verifiers with each other --------------------------------------------------

FP_PY, FP_JS = known.FP_O, known.FP_A


async def exchange(
    page: Page, python_role: security.Role, key: bytes | None, js_sees: str = FP_PY
) -> tuple[security.Verifier, dict[str, Any]]:
    """A Python Verifier and one in the page; ``js_sees`` is the page's view of our fingerprint."""
    mine = security.Verifier(
        python_role,
        local_id="py-side",
        remote_id="js-side",
        local_fingerprint=FP_PY,
        remote_fingerprint=FP_JS,
        auth_key=key,
    )
    js_role = "answerer" if python_role == "offerer" else "offerer"
    to_js = mine.start()
    to_py = await js(
        page,
        """
const [role, fps, key] = args;
const authKey = key === null ? null : Uint8Array.from(atob(key), c => c.charCodeAt(0));
window.v = new s.Verifier(role, {localId: "js-side", remoteId: "py-side",
  localFingerprint: fps[0], remoteFingerprint: fps[1], authKey});
return window.v.start();""",
        [js_role, [FP_JS, js_sees], None if key is None else _std_b64(key)],
    )
    while to_js or to_py:
        replies: list[dict[str, Any]] = []
        for message in to_py:
            replies += mine.receive(message)
        to_py = await js(
            page,
            "const out = []; for (const m of args) out.push(...await window.v.receive(m));"
            " return out;",
            to_js,
        )
        to_js = replies
    theirs = await js(
        page,
        "return {state: v.state, code: v.code, peerVerified: v.peerVerified,"
        " reason: v.reason, message: v.message};",
    )
    return mine, theirs


def _std_b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("python_role", ["offerer", "answerer"])
@pytest.mark.parametrize("with_secret", [False, True], ids=["no-secret", "secret"])
async def test_python_and_browser_verifiers_agree(
    page: Page, python_role: security.Role, with_secret: bool
) -> None:
    key = security.fingerprint_auth_key(known.SECRET, known.ROOM) if with_secret else None
    mine, theirs = await exchange(page, python_role, key)
    assert mine.state == theirs["state"] == "done"
    assert mine.code == theirs["code"]
    assert mine.code is not None
    assert known.CODE_RE.match(mine.code)
    assert mine.peer_verified is theirs["peerVerified"] is with_secret


@pytest.mark.parametrize("python_role", ["offerer", "answerer"])
async def test_a_substituted_certificate_is_caught_by_both(
    page: Page, python_role: security.Role
) -> None:
    relay = "sha-256 " + ":".join(["E1"] * 32)
    mine, theirs = await exchange(page, python_role, None, js_sees=relay)
    assert mine.state == theirs["state"] == "done"
    assert mine.code != theirs["code"]  # equal with probability 2**-39

    key = security.fingerprint_auth_key(known.SECRET, known.ROOM)
    mine, theirs = await exchange(page, python_role, key, js_sees=relay)
    assert theirs["state"] == "failed"
    assert theirs["reason"] == "mac"
    assert "intercepted" in theirs["message"]
    assert theirs["code"] is None
    # Only the page's view of us was changed: its MAC checks out here, ours (of
    # our real certificate) does not match what it saw, so it refuses and, as
    # an offerer, never reveals its nonce.
    assert mine.peer_verified
    assert mine.state == ("done" if python_role == "offerer" else "running")
