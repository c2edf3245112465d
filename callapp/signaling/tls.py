"""TLS for the signaling server: one place that turns cert/key files into an SSLContext.

Used by ``callapp-signaling --cert/--key`` and by the desktop app's Host, so
both say the same thing about a bad file.
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path

__all__ = ["TlsError", "pinned_client_context", "server_context"]

StrPath = str | os.PathLike[str]

#: PEM files are small; a bigger file was given by mistake.
_MAX_PEM_BYTES = 1 << 20


class TlsError(ValueError):
    """A certificate or key that cannot be used; ``str()`` says why, in plain words."""


def server_context(cert: StrPath, key: StrPath | None = None) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` that serves ``wss://`` and ``https://`` with ``cert`` and ``key``.

    ``cert`` is a PEM certificate chain (leaf first); ``key`` its PEM private
    key (``None``: the key is in the ``cert`` file). Raises :exc:`TlsError`
    naming the file and the problem: missing, unreadable, not a PEM
    certificate or key, protected by a passphrase, or a key that does not
    belong to the certificate.
    """
    cert_path = Path(cert)
    key_path = Path(key) if key is not None else cert_path
    cert_text = _read("certificate", cert_path)
    key_text = cert_text if key_path == cert_path else _read("private key", key_path)
    if b"-----BEGIN CERTIFICATE-----" not in cert_text:
        raise TlsError(
            f"{str(cert_path)!r} is not a PEM certificate"
            " (it has no '-----BEGIN CERTIFICATE-----' line)."
        )
    if not re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", key_text):
        raise TlsError(
            f"{str(key_path)!r} is not a PEM private key"
            " (it has no '-----BEGIN ... PRIVATE KEY-----' line)."
        )
    if b"ENCRYPTED" in key_text:
        raise TlsError(
            f"The private key {str(key_path)!r} is protected by a passphrase;"
            " use a key without one (openssl req ... -nodes, or openssl pkey -in KEY -out NEW)."
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_path, key_path, password=_no_password)
    except ssl.SSLError as exc:
        raise TlsError(_explain(cert_path, key_path, exc)) from exc
    except OSError as exc:  # the file went away or changed permissions meanwhile
        raise TlsError(
            f"The TLS files {str(cert_path)!r} and {str(key_path)!r} cannot be read"
            f" ({exc.strerror or exc})."
        ) from exc
    return context


def pinned_client_context(cert: StrPath) -> ssl.SSLContext:
    """A client context that trusts the certificates in ``cert`` and nothing else.

    For a client of a server whose certificate it already holds (the desktop
    app connecting to the server it hosts, often with a self-signed
    certificate made for its LAN address): the certificate itself is the
    trust anchor, even when it is not a CA, and since no other certificate
    is trusted the host name it names is not checked (the app reaches its own
    server at 127.0.0.1). Raises :exc:`TlsError` if ``cert`` is unusable.
    """
    path = Path(cert)
    text = _read("certificate", path)
    if b"-----BEGIN CERTIFICATE-----" not in text:
        raise TlsError(
            f"{str(path)!r} is not a PEM certificate"
            " (it has no '-----BEGIN CERTIFICATE-----' line)."
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        context.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(
            f"The certificate {str(path)!r} is damaged: it could not be read as PEM."
        ) from exc
    return context


def _read(what: str, path: Path) -> bytes:
    if not str(path).strip() or str(path) == ".":
        raise TlsError(f"No TLS {what} file was given.")
    if not path.exists():
        raise TlsError(f"The TLS {what} file {str(path)!r} does not exist.")
    if not path.is_file():
        raise TlsError(f"The TLS {what} path {str(path)!r} is not a file.")
    try:
        with path.open("rb") as f:
            return f.read(_MAX_PEM_BYTES)
    except OSError as exc:
        raise TlsError(
            f"The TLS {what} file {str(path)!r} cannot be read ({exc.strerror or exc})."
        ) from exc


def _no_password() -> bytes:
    # Never let OpenSSL prompt on a terminal the user may not be looking at.
    return b""


def _explain(cert: Path, key: Path, exc: ssl.SSLError) -> str:
    if "MISMATCH" in (exc.reason or "").upper():
        return f"The private key {str(key)!r} does not belong to the certificate {str(cert)!r}."
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=cert)
    except (ssl.SSLError, OSError):
        return f"The certificate {str(cert)!r} is damaged: it could not be read as PEM."
    return f"The private key {str(key)!r} is damaged or of an unsupported kind ({exc})."
