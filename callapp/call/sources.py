"""Open the local video and audio sources a :class:`CallConfig` names.

The tracks and the spec syntax (``camera``, ``camera:N``, ``test``, a file
path; ``mic``, ``tone:HZ``, ``none``, a file path) belong to
:mod:`callapp.media`; this module only adapts them to the call engine: errors
become :exc:`~callapp.call.errors.MediaError`, and a device's status becomes
a notice (``None`` while the device is live).
"""

from __future__ import annotations

from collections.abc import Callable

import av
from aiortc import MediaStreamTrack

from callapp.call.config import CallConfig
from callapp.call.errors import MediaError
from callapp.media.audio_sources import open_audio_source
from callapp.media.camera import CameraState, CameraStatus
from callapp.media.devices import AudioState, AudioStatus
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


def audio_notice(status: AudioStatus) -> str | None:
    """What a microphone's or speaker's status adds to the snapshot's notice."""
    return status.message if status.state is AudioState.FALLBACK else None


def open_audio(
    config: CallConfig, on_notice: Callable[[str | None], None] = lambda notice: None
) -> MediaStreamTrack:
    """A live audio track for ``config.audio``; raises :exc:`MediaError`.

    A microphone that is missing or fails is not an error: the track sends
    silence and its status becomes the notice.
    """
    try:
        return open_audio_source(
            config.audio, on_status=lambda status: on_notice(audio_notice(status))
        )
    except (OSError, ValueError, av.FFmpegError) as exc:
        raise MediaError(str(exc)) from exc
