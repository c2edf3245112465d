"""Opening a video source from a short text spec (command line, settings).

======================  ====================================================
spec                    source
======================  ====================================================
``camera``              camera 0 (:class:`~callapp.media.camera.CameraTrack`)
``camera:N``            camera N, e.g. ``camera:1``
``test``                the test pattern (:class:`~callapp.media.testpattern.TestPatternTrack`)
``screen``              screen 1, the first screen (:class:`~callapp.media.screen.ScreenTrack`)
``screen:N``            screen N, e.g. ``screen:2``, numbered from 1 like ``list_screens()``
anything else           a video file path, played in a loop (:class:`~callapp.media.file.FileTrack`)
======================  ====================================================
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import VideoStreamTrack

from callapp.media.camera import CameraStatus, CameraTrack
from callapp.media.decoding import source_file_path
from callapp.media.file import FileTrack
from callapp.media.frames import check_size
from callapp.media.screen import DEFAULT_FPS as SCREEN_FPS
from callapp.media.screen import ScreenTrack
from callapp.media.testpattern import TestPatternTrack

SPEC_HELP = (
    "'camera', 'camera:N' (N = 0, 1, ...), 'test', 'screen', 'screen:N' (N = 1, 2, ...), "
    "or the path of a video file"
)


def open_video_source(
    spec: str,
    *,
    width: int,
    height: int,
    fps: float,
    on_camera_status: Callable[[CameraStatus], None] | None = None,
) -> VideoStreamTrack:
    """A new video track for ``spec`` (see the module docstring).

    ``width``, ``height`` and ``fps`` are requested from a camera and used by
    the test pattern; a file plays at its own size and rate. A screen is sent
    at its own size scaled down to fit 1920x1080 (``width`` and ``height`` are
    a camera's size, too small for text), at ``fps`` but at most 15 fps
    (:data:`~callapp.media.screen.DEFAULT_FPS`: a call's rate is set for the
    camera, and 30 fps of a screen costs twice as much for little gain). A
    camera that is missing is not an error here: its track sends a labelled
    test pattern and says so through ``on_camera_status``.

    Raises ValueError for a malformed spec or bad size/rate,
    FileNotFoundError for a path that does not exist, ValueError for a file
    that is not a playable video, and
    :class:`~callapp.media.screen.ScreenUnavailable` (an OSError) when there
    is no display or no such screen.
    """
    check_size(width, height)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    text = spec.strip()
    if not text:
        raise ValueError(f"empty video source; expected {SPEC_HELP}")
    if text == "test":
        return TestPatternTrack(width, height, fps)
    if text == "camera" or text.startswith("camera:"):
        device = 0
        if text != "camera":
            index = text.removeprefix("camera:")
            if not index.isdigit():
                raise ValueError(f"bad camera index in {spec!r}; expected {SPEC_HELP}")
            device = int(index)
        return CameraTrack(device, width=width, height=height, fps=fps, on_status=on_camera_status)
    if text == "screen" or text.startswith("screen:"):
        monitor = 1
        if text != "screen":
            number = text.removeprefix("screen:")
            if not (number.isascii() and number.isdigit()):
                raise ValueError(f"bad screen number in {spec!r}; expected {SPEC_HELP}")
            monitor = int(number)
        return ScreenTrack(monitor, fps=min(fps, SCREEN_FPS))
    return FileTrack(source_file_path(spec, "video", SPEC_HELP))
