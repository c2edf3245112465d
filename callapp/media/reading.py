"""The one loop that reads a track until it ends: sinks, playback inputs, the fan-out, the switcher.

A track ends normally by raising ``MediaStreamError`` from ``recv()`` (stopped
here or by the far side); anything else it raises is a failure. Every reader
in this package wants that told apart the same way, so it is decided once
here rather than in each ``while True: await track.recv()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

logger = logging.getLogger(__name__)


async def read_track(
    track: MediaStreamTrack, on_frame: Callable[[object], None], *, what: str
) -> BaseException | None:
    """Call ``on_frame(frame)`` for each frame of ``track`` until it ends; return why it ended.

    Returns None for the normal end (``recv()`` raised ``MediaStreamError``),
    else the exception that ``recv()`` or ``on_frame`` raised, already logged
    as ``"<what> failed"``. ``on_frame`` runs in this task, right after each
    ``recv()``; it gets whatever the track returned (check the type there).
    Cancelling the task that awaits this cancels the pending ``recv()`` and
    propagates (CancelledError is no Exception). The track is never stopped here.
    """
    try:
        while True:
            on_frame(await track.recv())
    except MediaStreamError:
        return None
    except Exception as exc:
        logger.exception("%s failed", what)
        return exc
