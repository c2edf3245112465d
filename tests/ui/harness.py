"""A window (or just the models) over fake sessions, a fake server and fake services."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from pytestqt.qtbot import QtBot

from callapp.call.config import CallConfig
from callapp.ui.models.app import AppModel
from callapp.ui.models.call import CallOptions
from callapp.ui.settings import SettingsStore
from callapp.ui.views.main_window import MainWindow
from tests.ui.fakes import (
    FakeCallSession,
    FakeDeviceScanner,
    FakeServer,
    FakeServices,
    FakeSpeaker,
)

T = TypeVar("T")


class Harness:
    def __init__(self, *, busy_ports: set[int] | None = None, **session_kw: Any) -> None:
        self.sessions: list[FakeCallSession] = []
        self.servers: list[FakeServer] = []
        self.services = FakeServices()
        self.session_kw = session_kw
        self.busy_ports = busy_ports or set()
        self.scanner = FakeDeviceScanner()
        self.speaker = FakeSpeaker()

        def make_session(config: CallConfig) -> FakeCallSession:
            session = FakeCallSession(config, **self.session_kw)
            self.sessions.append(session)
            return session

        def make_server(host: str, port: int, tls: tuple[str, str] | None = None) -> FakeServer:
            server = FakeServer(host, port, self.busy_ports, tls)
            self.servers.append(server)
            return server

        self.app = AppModel(
            make_session,
            make_server,
            self.services,
            CallOptions(video="test", audio="none"),
            host_port=8765,
            lan_address=lambda: "192.168.7.9",
            device_scanner=self.scanner,
            sound_opener=self.speaker,
        )

    @property
    def session(self) -> FakeCallSession:
        return self.sessions[-1]


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T] | asyncio.Future[T]) -> T:
    return loop.run_until_complete(coro)


def make_window(qtbot: QtBot, h: Harness, store: SettingsStore | None = None) -> MainWindow:
    window = MainWindow(h.app, store)
    qtbot.addWidget(window)
    window.resize(window.sizeHint())
    window.show()
    return window
