"""Media sources (camera, test pattern, file) as aiortc tracks, and sinks.

Every source is a ``VideoStreamTrack`` with one ``recv()`` giving ``yuv420p``
frames with 90 kHz pts from a monotonic clock. Blocking work (camera reads,
file decoding, recording) runs on threads of its own; the event loop only
moves finished frames, newest first, through bounded hand-offs.
"""

from callapp.media.camera import (
    CameraInfo,
    CameraState,
    CameraStatus,
    CameraTrack,
    list_cameras,
)
from callapp.media.file import FileTrack
from callapp.media.frames import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, luma_view, plane_views
from callapp.media.recorder import Recorder, RecordingError
from callapp.media.sinks import LatestFrameSink
from callapp.media.sources import open_video_source
from callapp.media.switcher import SwitchableVideoTrack
from callapp.media.testpattern import TestPatternTrack

__all__ = [
    "VIDEO_CLOCK_RATE",
    "VIDEO_TIME_BASE",
    "CameraInfo",
    "CameraState",
    "CameraStatus",
    "CameraTrack",
    "FileTrack",
    "LatestFrameSink",
    "Recorder",
    "RecordingError",
    "SwitchableVideoTrack",
    "TestPatternTrack",
    "list_cameras",
    "luma_view",
    "open_video_source",
    "plane_views",
]
