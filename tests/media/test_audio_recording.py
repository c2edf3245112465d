"""Recording audio that someone else also reads: the frames they see keep their pts.

The call engine hands each decoded remote frame to the speaker (whose jitter
buffer orders and conceals by pts) and to the recorder. The recorder stamps
audio by samples written, on its writer thread; it must stamp a copy, or the
speaker sees pts jump back and forth and drops good audio as late.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from callapp.media.pcm import FRAME_SAMPLES, SAMPLE_RATE, frame_to_pcm
from callapp.media.recorder import Recorder
from callapp.media.tone import ToneTrack

RTP_START = 1_234_567  # remote pts start wherever the sender's RTP clock was


class RemoteLike(MediaStreamTrack):
    """A tone whose pts start far from zero, as decoded remote audio's do."""

    kind = "audio"

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.tone = ToneTrack(440)
        self.remaining = frames

    async def recv(self) -> AudioFrame:
        if self.remaining <= 0:
            self.stop()
            raise MediaStreamError
        self.remaining -= 1
        frame = await self.tone.recv()
        frame.pts = RTP_START + (frame.pts or 0)
        return frame


async def test_frames_shared_with_the_recorder_keep_their_pts(tmp_path: Path) -> None:
    source = RemoteLike(frames=25)
    relay = MediaRelay()
    recorder = Recorder(tmp_path / "heard.mkv")
    recorder.add_track(relay.subscribe(source))
    reader = relay.subscribe(source)
    await recorder.start()
    seen: list[AudioFrame] = []
    try:
        while True:
            seen.append(await reader.recv())
    except MediaStreamError:
        pass
    await recorder.stop()  # every frame has been encoded by now

    assert len(seen) == 25
    # The very objects the reader got still carry the sender's timeline.
    assert [f.pts for f in seen] == [RTP_START + i * FRAME_SAMPLES for i in range(25)]
    # stop() cancels the pulling task: a last frame still in the relay may miss the file.
    assert recorder.frames_written["audio"] >= 23
    with av.open(str(tmp_path / "heard.mkv")) as container:
        stream = container.streams.audio[0]
        assert stream.sample_rate == SAMPLE_RATE
        decoded = np.concatenate([frame_to_pcm(f)[:, 0] for f in container.decode(stream)])
    assert len(decoded) >= 20 * FRAME_SAMPLES
    assert np.abs(decoded.astype(np.int32)).max() > 4000, "the tone is in the file"
