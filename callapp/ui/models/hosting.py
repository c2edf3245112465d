"""Hosting: the embedded signaling server, the room's secret and the invite link.

Start makes a room with a random secret (:func:`callapp.call.security.new_room_secret`)
and, for a TLS host, the pin of its certificate, and writes the one invite
link people send (:func:`callapp.signaling.invite.format_invite`).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from callapp.call.security import new_room_secret
from callapp.signaling.invite import certificate_pin, format_invite
from callapp.ui.address import (
    DEFAULT_PORT,
    LOOPBACK,
    choose_lan_address,
    invite_url,
    local_address_candidates,
    server_url,
)
from callapp.ui.ports import ServerFactory, ServerLike, TlsFiles

log = logging.getLogger(__name__)

#: The most people a hosted call holds (the server's default limit).
HOST_CAPACITY = 4


@dataclass(frozen=True, slots=True)
class Hosting:
    """What this app hosts, and what to tell the others."""

    share_url: str
    local_url: str
    room: str
    port: int
    #: The browser client's page for the room, without the secret (safe to show or log).
    invite_url: str = ""
    tls: bool = False
    #: The whole invite link: page, room, secret and pin. Send this.
    invite: str = field(default="", repr=False)
    secret: str | None = field(default=None, repr=False)
    #: The certificate's pin (TLS only).
    pin: str | None = None
    #: The certificate file our own session trusts for its connection to us.
    tls_cert: str | None = None

    def report(self) -> dict[str, object]:
        """For ``--stats-json``: everything but the secret (the invite link carries it)."""
        return {
            "share_url": self.share_url,
            "local_url": self.local_url,
            "room": self.room,
            "port": self.port,
            "invite_url": self.invite_url,
            "tls": self.tls,
            "pin": self.pin,
            "secret": self.secret is not None,
        }


def pem_pin(cert_file: str) -> str:
    """The invite pin of the first certificate in a PEM file."""
    text = Path(cert_file).read_text(encoding="ascii", errors="replace")
    begin = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", begin) + len("-----END CERTIFICATE-----")
    return certificate_pin(ssl.PEM_cert_to_DER_cert(text[begin:end]))


class HostingModel(QObject):
    """Starts and stops the embedded server; says what to share."""

    hostingChanged = Signal(object)  # Hosting | None

    def __init__(
        self,
        server_factory: ServerFactory,
        *,
        host_port: int = DEFAULT_PORT,
        bind_host: str = "0.0.0.0",
        lan_address: Callable[[], str] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._factory = server_factory
        self.host_port = host_port
        self._bind_host = bind_host
        self._lan_address = lan_address or (lambda: choose_lan_address(local_address_candidates()))
        self._server: ServerLike | None = None
        self._hosting: Hosting | None = None

    @property
    def hosting(self) -> Hosting | None:
        return self._hosting

    async def start(self, room: str, tls: TlsFiles | None) -> Hosting:
        """Start the server (any free port if the usual one is taken) for ``room``.

        A certificate or key that cannot be used raises (a ValueError in
        words) before anything listens.
        """
        await self.stop()
        server = await self._listen(tls)
        try:
            lan = self._lan_address()
            secure = tls is not None
            pin = pem_pin(tls[0]) if tls is not None else None
            secret = new_room_secret()
            share = server_url(lan, server.port, tls=secure)
            hosting = Hosting(
                share_url=share,
                local_url=server_url(LOOPBACK, server.port, tls=secure),
                room=room,
                port=server.port,
                invite_url=invite_url(lan, server.port, room, tls=secure),
                tls=secure,
                invite=format_invite(share, room, secret=secret, pin=pin),
                secret=secret,
                pin=pin,
                tls_cert=tls[0] if tls is not None else None,
            )
        except BaseException:
            await server.stop()
            raise
        self._server = server
        self._hosting = hosting
        self.hostingChanged.emit(hosting)
        return hosting

    async def stop(self) -> None:
        """Stop the server (everyone still connected to it is let go)."""
        server, self._server = self._server, None
        if self._hosting is not None:
            self._hosting = None
            self.hostingChanged.emit(None)
        if server is not None:
            await server.stop()

    async def _listen(self, tls: TlsFiles | None) -> ServerLike:
        ports = [self.host_port, 0] if self.host_port else [0]
        last: OSError | None = None
        for port in ports:
            server = self._factory(self._bind_host, port, tls)
            try:
                await server.start()
            except OSError as exc:
                log.info("cannot listen on port %s: %s", port, exc)
                last = exc
                continue
            return server
        assert last is not None
        raise last
