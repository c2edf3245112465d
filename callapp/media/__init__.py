"""Media sources (camera, test pattern, file, microphone, tone) as aiortc tracks, and sinks.

Every video source is a ``VideoStreamTrack`` with one ``recv()`` giving
``yuv420p`` frames with 90 kHz pts from a monotonic clock; every audio source
gives 20 ms ``s16`` mono frames at 48 kHz. Blocking work (camera reads, file
decoding, recording) runs on threads of its own, sound devices on PortAudio's;
the event loop only moves finished frames through bounded hand-offs.
"""

from callapp.media.audio_sources import (
    AudioFileTrack,
    MicrophoneTrack,
    MutableAudioTrack,
    open_audio_source,
)
from callapp.media.camera import (
    CameraInfo,
    CameraState,
    CameraStatus,
    CameraTrack,
    list_cameras,
)
from callapp.media.devices import (
    AudioDevice,
    AudioDeviceError,
    AudioState,
    AudioStatus,
    find_device,
    list_audio_devices,
)
from callapp.media.file import FileTrack
from callapp.media.frames import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, luma_view, plane_views
from callapp.media.jitter import JitterBuffer, JitterStats
from callapp.media.playback import AudioPlayback, PlaybackCapture, WavWriter
from callapp.media.recorder import Recorder, RecordingError
from callapp.media.sinks import LatestFrameSink
from callapp.media.sources import open_video_source
from callapp.media.switcher import SwitchableVideoTrack
from callapp.media.testpattern import TestPatternTrack
from callapp.media.tone import SilenceTrack, ToneTrack

__all__ = [
    "VIDEO_CLOCK_RATE",
    "VIDEO_TIME_BASE",
    "AudioDevice",
    "AudioDeviceError",
    "AudioFileTrack",
    "AudioPlayback",
    "AudioState",
    "AudioStatus",
    "CameraInfo",
    "CameraState",
    "CameraStatus",
    "CameraTrack",
    "FileTrack",
    "JitterBuffer",
    "JitterStats",
    "LatestFrameSink",
    "MicrophoneTrack",
    "MutableAudioTrack",
    "PlaybackCapture",
    "Recorder",
    "RecordingError",
    "SilenceTrack",
    "SwitchableVideoTrack",
    "TestPatternTrack",
    "ToneTrack",
    "WavWriter",
    "find_device",
    "list_audio_devices",
    "list_cameras",
    "luma_view",
    "open_audio_source",
    "open_video_source",
    "plane_views",
]
