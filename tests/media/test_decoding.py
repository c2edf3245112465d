"""The looping file decoder both file tracks share, with a stand-in for a PyAV container."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any, cast

from av.container import InputContainer

from callapp.media.decoding import LoopingDecoder


class FakeContainer:
    """Counts seeks and closes; ``with`` closes it like PyAV's does."""

    def __init__(self) -> None:
        self.seeks = 0
        self.closed = 0

    def __enter__(self) -> FakeContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def seek(self, offset: int) -> None:
        self.seeks += 1

    def close(self) -> None:
        self.closed += 1


def decoder(container: FakeContainer, decode_pass: Any, **kwargs: Any) -> LoopingDecoder[int]:
    return LoopingDecoder(
        cast(InputContainer, container), decode_pass, path="clip", what="number", **kwargs
    )


async def test_each_pass_is_played_again_from_the_start_while_looping() -> None:
    container = FakeContainer()

    def three(_: InputContainer) -> Generator[int, None, None]:
        yield from (1, 2, 3)

    dec = decoder(container, three, buffer=2)
    got = [await dec.next() for _ in range(7)]
    dec.stop()
    assert got == [1, 2, 3, 1, 2, 3, 1]
    assert dec.loops >= 2
    assert container.seeks == dec.loops
    assert container.closed == 1


async def test_without_looping_the_end_of_the_file_is_the_end() -> None:
    container = FakeContainer()

    def two(_: InputContainer) -> Generator[int, None, None]:
        yield from (1, 2)

    dec = decoder(container, two, loop=False)
    assert [await dec.next() for _ in range(3)] == [1, 2, None]
    assert dec.error is None
    assert container.seeks == 0
    dec.stop()


async def test_a_pass_that_yields_nothing_is_an_error_kept_for_the_track() -> None:
    def nothing(_: InputContainer) -> Generator[int, None, None]:
        yield from ()

    dec = decoder(FakeContainer(), nothing)
    assert await dec.next() is None
    assert isinstance(dec.error, ValueError)
    assert "clip: no number could be decoded" in str(dec.error)
    dec.stop()


async def test_stop_wakes_a_waiting_reader_and_closes_an_unstarted_file() -> None:
    container = FakeContainer()
    dec = decoder(container, lambda _: iter(()))
    dec.stop()
    assert container.closed == 1

    blocked = FakeContainer()

    def forever(_: InputContainer) -> Generator[int, None, None]:
        while True:
            yield 0

    dec = decoder(blocked, forever, buffer=1)
    assert await dec.next() == 0
    thread = dec.thread
    await asyncio.sleep(0.01)
    dec.stop()
    assert thread is not None
    assert not thread.is_alive()
    assert blocked.closed == 1
