from __future__ import annotations

from pathlib import Path

import pytest

from callapp.media.camera import CameraTrack
from callapp.media.file import FileTrack
from callapp.media.sources import open_video_source
from callapp.media.testpattern import TestPatternTrack

from .clips import write_clip

SIZE = {"width": 64, "height": 48, "fps": 15.0}


def test_test_spec_gives_the_pattern() -> None:
    track = open_video_source("test", **SIZE)
    assert isinstance(track, TestPatternTrack)
    assert (track.renderer.width, track.renderer.height, track.fps) == (64, 48, 15.0)


@pytest.mark.parametrize(("spec", "device"), [("camera", 0), ("camera:3", 3), (" camera:12 ", 12)])
def test_camera_specs(spec: str, device: int) -> None:
    track = open_video_source(spec, **SIZE)
    assert isinstance(track, CameraTrack)
    assert (track.device, track.width, track.height, track.fps) == (device, 64, 48, 15.0)
    track.stop()  # never started: no thread to join


def test_a_file_path_gives_a_file_track(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=2, width=32, height=32)
    track = open_video_source(str(clip), **SIZE)
    assert isinstance(track, FileTrack)
    track.stop()


@pytest.mark.parametrize("spec", ["", "  ", "camera:", "camera:x", "camera:-1"])
def test_bad_specs_are_value_errors_that_say_what_is_expected(spec: str) -> None:
    with pytest.raises(ValueError, match="'camera:N'"):
        open_video_source(spec, **SIZE)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a file that exists"):
        open_video_source(str(tmp_path / "holiday.mp4"), **SIZE)


def test_a_folder_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="folder"):
        open_video_source(str(tmp_path), **SIZE)


def test_bad_size_or_rate() -> None:
    with pytest.raises(ValueError, match="even"):
        open_video_source("test", width=63, height=48, fps=30)
    with pytest.raises(ValueError, match="fps"):
        open_video_source("test", width=64, height=48, fps=0)
