"""Error wording: any failure, said in words a person can act on.

Tracebacks go to the log, never to the window.
"""

from __future__ import annotations

import asyncio
import errno
import logging

from callapp.ui.address import AddressError

log = logging.getLogger(__name__)


def explain(exc: BaseException, *, server_url: str | None = None) -> str:
    """A plain sentence for the error banner.

    ``AddressError`` and the engine's ``CallError`` already carry a human
    sentence (their ``str()``); OS-level failures get a sentence here;
    anything unexpected is logged with its traceback and shown briefly.
    """
    where = f" at {server_url}" if server_url else ""
    if isinstance(exc, AddressError):
        return str(exc)
    if _is_tls_error(exc):
        return f"Cannot host with TLS: {exc} Check the certificate and key in Host settings."
    if _is_call_error(exc):
        text = str(exc).strip()
        return text or f"The call failed ({type(exc).__name__})."
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"The server{where} did not answer in time. Check the address and your network."
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"Could not reach the server{where}: nothing is listening there. "
            "Check the address, and that the server is running."
        )
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"Could not reach the server{where}: the network is unreachable."
        if exc.errno in (errno.EADDRINUSE,):
            return "Could not start the server: the port is already in use."
        return f"Could not reach the server{where} ({exc.strerror or exc})."
    log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    detail = str(exc).strip()
    return f"Something went wrong: {detail}" if detail else "Something went wrong."


def _is_call_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the engine's ``CallError`` (imported lazily, may be absent)."""
    try:
        from callapp.call.errors import CallError
    except ImportError:  # the engine is optional for the wording
        return False
    return isinstance(exc, CallError)


def _is_tls_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a certificate or key Host cannot use (``callapp.signaling.tls``)."""
    try:
        from callapp.signaling.tls import TlsError
    except ImportError:  # pragma: no cover - the server is part of the package
        return False
    return isinstance(exc, TlsError)
