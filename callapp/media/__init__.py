"""Media sources (camera, test pattern, file, microphone, tone) as aiortc tracks, and sinks.

Every video source is a ``VideoStreamTrack`` with one ``recv()`` giving
``yuv420p`` frames with 90 kHz pts from a monotonic clock; every audio source
gives 20 ms ``s16`` mono frames at 48 kHz. Blocking work (camera reads, file
decoding, recording) runs on threads of its own, sound devices on PortAudio's;
the event loop only moves finished frames through bounded hand-offs.

A group call captures once: one :class:`SwitchableVideoTrack` and one
:class:`MutableAudioTrack` per session, each read by a :class:`TrackFanout`
whose :class:`FanoutTrack` consumers are the legs' senders; one
:class:`AudioPlayback` mixes every leg's audio into one speaker stream, and a
:class:`LatestFrameSink` reads each leg's remote video. Frames handed to
several consumers are shared, never copied, and never changed
(:func:`frame_view` gives a header of one's own).
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
from callapp.media.fanout import FanoutTrack, TrackFanout
from callapp.media.file import FileTrack
from callapp.media.frames import (
    VIDEO_CLOCK_RATE,
    VIDEO_TIME_BASE,
    black_frame,
    frame_view,
    luma_view,
    plane_views,
)
from callapp.media.jitter import JitterBuffer, JitterStats
from callapp.media.playback import DEFAULT_INPUT, AudioPlayback, PlaybackCapture, WavWriter
from callapp.media.reading import read_track
from callapp.media.recorder import Recorder, RecordingError
from callapp.media.screen import Screen, ScreenTrack, ScreenUnavailable, list_screens
from callapp.media.sinks import LatestFrameSink
from callapp.media.sources import open_video_source
from callapp.media.switcher import SwitchableVideoTrack
from callapp.media.testpattern import TestPatternTrack
from callapp.media.tone import SilenceTrack, ToneTrack

__all__ = [
    "DEFAULT_INPUT",
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
    "FanoutTrack",
    "FileTrack",
    "JitterBuffer",
    "JitterStats",
    "LatestFrameSink",
    "MicrophoneTrack",
    "MutableAudioTrack",
    "PlaybackCapture",
    "Recorder",
    "RecordingError",
    "Screen",
    "ScreenTrack",
    "ScreenUnavailable",
    "SilenceTrack",
    "SwitchableVideoTrack",
    "TestPatternTrack",
    "ToneTrack",
    "TrackFanout",
    "WavWriter",
    "black_frame",
    "find_device",
    "frame_view",
    "list_audio_devices",
    "list_cameras",
    "list_screens",
    "luma_view",
    "open_audio_source",
    "open_video_source",
    "plane_views",
    "read_track",
]
