"""callapp.media.memory: glibc's mmap threshold pinned for frame-sized buffers."""

from __future__ import annotations

import platform

import pytest

from callapp.media import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_large_buffers_are_mapped_on_glibc_and_asking_twice_is_fine() -> None:
    assert memory.map_large_buffers() is True
    assert memory.map_large_buffers() is True
    assert 460_800 < memory.LARGE_BUFFER < 1_382_400  # a 640x480 frame < it < a 1280x720 one
