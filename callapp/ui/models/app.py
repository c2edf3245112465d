"""The view-models together, as the window and the launcher use them.

:class:`AppModel` only composes: hosting, the call, devices, chat and
sounds each live in their own module (the ring follows the call's
``ringingChanged``). It keeps the few names the launcher, the end-to-end
tests and the benchmarks reach for (``host``, ``join``, ``snapshot``,
``hosting``, ``errors``).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject

from callapp.call.state import CallSnapshot
from callapp.ui.address import DEFAULT_PORT
from callapp.ui.logic.join_target import JoinTarget
from callapp.ui.models.call import CallModel, CallOptions, async_slot
from callapp.ui.models.chat import ChatModel
from callapp.ui.models.devices import DeviceScanner, DevicesModel
from callapp.ui.models.hosting import Hosting, HostingModel
from callapp.ui.models.sounds import PlaybackOpener, SoundsModel, open_speaker
from callapp.ui.ports import ServerFactory, SessionFactory, SessionLike
from callapp.ui.services import UiServices


class AppModel(QObject):
    """Hosting, the call, the devices, the chat and the sounds of one window."""

    def __init__(
        self,
        session_factory: SessionFactory,
        server_factory: ServerFactory,
        services: UiServices,
        options: CallOptions | None = None,
        *,
        host_port: int = DEFAULT_PORT,
        bind_host: str = "0.0.0.0",
        lan_address: Callable[[], str] | None = None,
        device_scanner: DeviceScanner | None = None,
        sound_opener: PlaybackOpener = open_speaker,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.hosting_model = HostingModel(
            server_factory,
            host_port=host_port,
            bind_host=bind_host,
            lan_address=lan_address,
            parent=self,
        )
        self.call = CallModel(session_factory, self.hosting_model, services, options, parent=self)
        self.chat = ChatModel(self.call, parent=self)
        self.devices = DevicesModel(
            device_scanner,
            in_call=lambda: self.call.snapshot.in_call,
            idle=lambda: self.call.session is None,
            parent=self,
        )
        self.sounds = SoundsModel(sound_opener, parent=self)
        self.call.ringingChanged.connect(self._ring)

    def _ring(self, caller: str) -> None:
        if caller:
            self.sounds.ring(self.call.options.speaker)
        else:
            self.sounds.stop()

    # -- the names callers use -------------------------------------------------------

    @property
    def options(self) -> CallOptions:
        return self.call.options

    @options.setter
    def options(self, options: CallOptions) -> None:
        self.call.options = options

    @property
    def snapshot(self) -> CallSnapshot:
        return self.call.snapshot

    @property
    def session(self) -> SessionLike | None:
        return self.call.session

    @property
    def hosting(self) -> Hosting | None:
        return self.hosting_model.hosting

    @property
    def error(self) -> str:
        return self.call.message

    @property
    def errors(self) -> list[str]:
        return self.call.messages

    @property
    def busy(self) -> bool:
        return self.call.busy

    @async_slot()
    async def host(self, room: str = "") -> None:
        await self.call.host(room)

    @async_slot(str, str)
    async def join(self, server_text: str, room: str = "") -> None:
        """Join ``room`` at ``server_text`` (or whatever ``server_text`` says, if no room)."""
        text = f"{server_text.strip()} {room.strip()}".strip()
        await self.call.join_text(text)

    @async_slot(object)
    async def join_target(self, target: JoinTarget) -> None:
        await self.call.join(target)

    @async_slot()
    async def shutdown(self) -> None:
        await self.devices.preview.aclose()
        await self.sounds.aclose()
        await self.call.shutdown()


__all__ = ["AppModel", "CallOptions", "Hosting"]
