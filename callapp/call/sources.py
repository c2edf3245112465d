"""Open the local video source a :class:`CallConfig` names.

The tracks and the spec syntax (``camera``, ``camera:N``, ``test``, a file
path) belong to :mod:`callapp.media.sources`; this module only adapts them to
the call engine: errors become :exc:`~callapp.call.errors.MediaError`, and a
camera's status becomes the snapshot's ``notice`` (``None`` while it is live).
"""

from __future__ import annotations

from collections.abc import Callable

import av
from aiortc import MediaStreamTrack

from callapp.call.config import CallConfig
from callapp.call.errors import MediaError
from callapp.media.camera import CameraState, CameraStatus
from callapp.media.sources import open_video_source


def open_source(
    config: CallConfig, on_notice: Callable[[str | None], None] = lambda notice: None
) -> MediaStreamTrack:
    """A live video track for ``config.video``; raises :exc:`MediaError`."""

    def camera_status(status: CameraStatus) -> None:
        if status.state is CameraState.FALLBACK:
            on_notice(status.message)
        elif status.state is CameraState.LIVE:
            on_notice(None)

    try:
        return open_video_source(
            config.video,
            width=config.width,
            height=config.height,
            fps=config.fps,
            on_camera_status=camera_status,
        )
    except (OSError, ValueError, av.FFmpegError) as exc:
        raise MediaError(str(exc)) from exc
