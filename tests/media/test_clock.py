"""wait_event: the bounded wait every recv() uses, cancellable at any moment."""

from __future__ import annotations

import asyncio

import pytest

from callapp.media.clock import wait_event


async def test_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 10.0) is True


async def test_a_cancellation_that_meets_the_event_is_not_swallowed() -> None:
    # asyncio.wait_for on Python 3.11 returns normally here instead.
    event = asyncio.Event()
    waiter = asyncio.ensure_future(wait_event(event, 10.0))
    await asyncio.sleep(0)  # let it start waiting
    event.set()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
