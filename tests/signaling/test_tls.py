"""callapp.signaling.tls: cert/key files in, an SSLContext (or one plain sentence) out."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from callapp.signaling import cli
from callapp.signaling.client import SignalingClient
from callapp.signaling.server import SignalingServer
from callapp.signaling.tls import TlsError, pinned_client_context, server_context


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


def write_self_signed(
    directory: Path, *, ips: tuple[str, ...] = ("127.0.0.1",), name: str = "server"
) -> CertFiles:
    """A fresh self-signed certificate for ``ips`` and its key, as PEM files in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callapp test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    files = CertFiles(directory / f"{name}.crt", directory / f"{name}.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.fixture
def pair(tmp_path: Path) -> CertFiles:
    return write_self_signed(tmp_path)


def test_a_good_pair_gives_a_server_context(pair: CertFiles) -> None:
    context = server_context(pair.cert, pair.key)
    assert isinstance(context, ssl.SSLContext)
    assert not context.check_hostname  # a server context
    # The key may also live in the certificate file.
    both = pair.cert.parent / "both.pem"
    both.write_bytes(pair.cert.read_bytes() + pair.key.read_bytes())
    assert isinstance(server_context(str(both)), ssl.SSLContext)


def test_a_missing_file_is_named(pair: CertFiles, tmp_path: Path) -> None:
    with pytest.raises(TlsError, match=r"certificate file '.*nope\.crt' does not exist"):
        server_context(tmp_path / "nope.crt", pair.key)
    with pytest.raises(TlsError, match=r"private key file '.*nope\.key' does not exist"):
        server_context(pair.cert, tmp_path / "nope.key")
    with pytest.raises(TlsError, match="No TLS certificate file was given"):
        server_context("", pair.key)
    with pytest.raises(TlsError, match="is not a file"):
        server_context(tmp_path, pair.key)


def test_swapped_or_foreign_files_are_said_plainly(pair: CertFiles, tmp_path: Path) -> None:
    with pytest.raises(TlsError, match="is not a PEM certificate"):
        server_context(pair.key, pair.cert)
    other = write_self_signed(tmp_path, name="other")
    with pytest.raises(TlsError, match=r"private key '.*other\.key' does not belong to"):
        server_context(pair.cert, other.key)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(TlsError, match=r"'.*notes\.txt' is not a PEM private key"):
        server_context(pair.cert, text)


def test_damaged_and_encrypted_files(pair: CertFiles, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.crt"
    damaged.write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    with pytest.raises(TlsError, match=r"certificate '.*damaged\.crt' is damaged"):
        server_context(damaged, pair.key)
    key = serialization.load_pem_private_key(pair.key.read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TlsError, match="protected by a passphrase"):
        server_context(pair.cert, locked)


def test_tls_error_is_a_value_error_not_an_os_error() -> None:
    # Host retries another port on OSError; a bad certificate must not look like one.
    assert issubclass(TlsError, ValueError)
    assert not issubclass(TlsError, OSError)


async def test_served_page_and_socket_with_the_context(pair: CertFiles, tmp_path: Path) -> None:
    server = SignalingServer("127.0.0.1", 0, ssl_context=server_context(pair.cert, pair.key))
    async with server:
        assert server.http_url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=str(pair.cert))

        def fetch(context: ssl.SSLContext) -> str:
            with urllib.request.urlopen(server.http_url, context=context, timeout=5) as reply:
                return str(reply.read().decode())

        page = await asyncio.to_thread(fetch, trusting)
        assert "<html" in page.lower()
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            await asyncio.to_thread(fetch, ssl.create_default_context())

        # The desktop app's own client: trusts exactly this certificate.
        client = SignalingClient(server.url, ssl_context=pinned_client_context(pair.cert))
        try:
            await asyncio.wait_for(client.connect(), 5)
            assert client.connection_id
        finally:
            await client.close()


async def test_a_pinned_client_refuses_another_certificate(pair: CertFiles, tmp_path: Path) -> None:
    other = write_self_signed(tmp_path, name="other")
    server = SignalingServer("127.0.0.1", 0, ssl_context=server_context(other.cert, other.key))
    async with server:
        client = SignalingClient(
            server.url, ssl_context=pinned_client_context(pair.cert), reconnect=False
        )
        try:
            with pytest.raises(Exception, match="certificate"):
                await asyncio.wait_for(client.connect(), 5)
        finally:
            await client.close()


def test_pinned_client_context_refuses_a_non_certificate(pair: CertFiles) -> None:
    with pytest.raises(TlsError, match="is not a PEM certificate"):
        pinned_client_context(pair.key)


def test_cli_reports_a_bad_pair_and_exits_1(
    pair: CertFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_self_signed(tmp_path, name="other")
    code = cli.main(["--port", "0", "--cert", str(pair.cert), "--key", str(other.key)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("callapp-signaling: error: ")
    assert "does not belong to the certificate" in err
    assert err.count("\n") == 1


def test_the_call_engine_says_an_unusable_pin_plainly(pair: CertFiles) -> None:
    from callapp.call.errors import ServerUnavailable
    from callapp.call.session import _client_for

    with pytest.raises(ServerUnavailable, match="is not a PEM certificate"):
        _client_for("wss://127.0.0.1:1/ws", str(pair.key))
    pinned = _client_for("wss://127.0.0.1:1/ws", str(pair.cert))
    assert isinstance(pinned, SignalingClient)
    assert pinned.ssl_context is not None
    assert pinned.ssl_context.verify_mode is ssl.CERT_REQUIRED
    plain = _client_for("wss://127.0.0.1:1/ws")
    assert isinstance(plain, SignalingClient)
    assert plain.ssl_context is None  # the system's trust store, as before
