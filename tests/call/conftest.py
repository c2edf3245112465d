"""Helpers for call-engine tests: sessions on an in-memory hub, waiting on snapshots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from callapp.call.config import CallConfig
from callapp.call.session import CallSession
from callapp.call.state import CallPhase, CallSnapshot
from tests.call.memory import MemoryHub


def make_config(**changes: object) -> CallConfig:
    base: dict[str, object] = {
        "server_url": "memory://hub",
        "allow_loopback": True,
        "audio": "none",  # no device probing in unit tests; e2e tests use real ones
        "width": 320,
        "height": 240,
        "fps": 15.0,
        "gather_timeout": 0.3,
    }
    base.update(changes)
    return CallConfig(**base)  # type: ignore[arg-type]


async def wait_for(
    session: CallSession, predicate: Callable[[CallSnapshot], bool], within: float = 10.0
) -> CallSnapshot:
    """The first snapshot (current included) that satisfies ``predicate``."""
    if predicate(session.snapshot):
        return session.snapshot
    done: asyncio.Future[CallSnapshot] = asyncio.get_running_loop().create_future()

    def listener(snapshot: CallSnapshot) -> None:
        if predicate(snapshot) and not done.done():
            done.set_result(snapshot)

    unsubscribe = session.subscribe(listener)
    try:
        return await asyncio.wait_for(done, within)
    finally:
        unsubscribe()


async def eventually(check: Callable[[], object], within: float = 5.0) -> None:
    """Poll ``check()`` until it is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def wait_phase(session: CallSession, phase: CallPhase, within: float = 10.0) -> CallSnapshot:
    return await wait_for(session, lambda s: s.phase is phase, within)


@pytest.fixture
def hub() -> MemoryHub:
    return MemoryHub()


class Sessions:
    """Makes sessions on one hub and closes them all at the end."""

    def __init__(self, hub: MemoryHub) -> None:
        self.hub = hub
        self.made: list[CallSession] = []

    async def __call__(self, **config: object) -> CallSession:
        session = CallSession(make_config(**config), channel=self.hub.channel())
        self.made.append(session)
        await session.connect()
        return session


@pytest.fixture
async def sessions(hub: MemoryHub) -> AsyncIterator[Sessions]:
    factory = Sessions(hub)
    yield factory
    for session in factory.made:
        await session.close()
