"""The jitter buffer against synthetic arrival patterns: steady, jittery, lost, late, bursty.

A simulated sound device pulls 10 ms every 10 ms; frames of a 440 Hz tone
(20 ms each, pts counting samples) arrive at the times each test sets. Time
is only ever counted in samples, so every run is exact and repeatable.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callapp.media.jitter import JitterBuffer
from callapp.media.pcm import FRAME_SAMPLES, SAMPLE_RATE, Pcm

BLOCK = 480
AMPLITUDE = 8000.0
HZ = 440.0
#: The largest step between two samples of the tone itself.
TONE_STEP = AMPLITUDE * 2 * math.pi * HZ / SAMPLE_RATE


def tone(pts: int, samples: int = FRAME_SAMPLES) -> Pcm:
    t = (pts + np.arange(samples)) / SAMPLE_RATE
    wave = np.rint(AMPLITUDE * np.sin(2 * np.pi * HZ * t)).astype(np.int16)
    return np.stack([wave, wave], axis=1)


@dataclass
class Run:
    out: Pcm
    delays: list[float] = field(default_factory=list)

    @property
    def max_step(self) -> int:
        return int(np.abs(np.diff(self.out[:, 0].astype(np.int32))).max())


def simulate(
    buffer: JitterBuffer, arrivals: list[tuple[float, int]], seconds: float, block: int = BLOCK
) -> Run:
    """Push frame ``pts`` at each ``(time, pts)`` and pull ``block`` per block of time."""
    pending = sorted(arrivals, key=lambda a: a[0])
    blocks = []
    delays = []
    now_samples = 0
    i = 0
    while now_samples < seconds * SAMPLE_RATE:
        now = now_samples / SAMPLE_RATE
        while i < len(pending) and pending[i][0] <= now:
            buffer.push(tone(pending[i][1]), pending[i][1])
            i += 1
        blocks.append(buffer.pull(block))
        delays.append(buffer.delay)
        now_samples += block
    return Run(np.concatenate(blocks), delays)


def steady(
    seconds: float, *, start: float = 0.0, network: float = 0.005
) -> list[tuple[float, int]]:
    count = int(seconds / 0.02)
    return [(start + k * 0.02 + network, k * FRAME_SAMPLES) for k in range(count)]


def test_steady_arrivals_play_the_stream_unchanged_with_little_delay() -> None:
    buffer = JitterBuffer(2)
    run = simulate(buffer, steady(5.0), 5.0)
    assert buffer.stats.underruns == 0
    assert buffer.stats.frames_late == 0
    assert buffer.stats.lost == 0
    # After the start the output is the tone itself: no step larger than the tone's own.
    assert run.max_step <= TONE_STEP + 2
    settled = run.delays[100:]
    assert max(settled) <= 0.040, "more than 40 ms queued with a perfect network"
    assert np.mean(settled) <= 0.025


def test_start_waits_for_one_frame_and_the_margin_then_fades_in() -> None:
    buffer = JitterBuffer(2)
    buffer.push(tone(0), 0)
    assert not np.any(buffer.pull(BLOCK)), "one frame is not enough to start"
    buffer.push(tone(FRAME_SAMPLES), FRAME_SAMPLES)
    first = buffer.pull(BLOCK)
    assert buffer.playing
    # The fade-in keeps the first samples below the tone's own values.
    assert abs(int(first[10, 0])) < abs(int(tone(0)[10, 0])) or tone(0)[10, 0] == 0
    assert np.array_equal(first[200:], tone(0)[200:BLOCK])


def test_jittery_network_adapts_without_exceeding_the_delay_budget() -> None:
    # aiortc's own RTP buffer puts packets back in order, so frames come out of the
    # decoder in order; the network only moves them in time (here up to 30 ms late).
    rng = random.Random(7)
    arrivals = []
    last = 0.0
    for t, pts in steady(20.0):
        last = max(last, t + rng.uniform(0.0, 0.030))
        arrivals.append((last, pts))
    buffer = JitterBuffer(2)
    run = simulate(buffer, arrivals, 20.0)
    # Arrivals up to 30 ms late: a few underruns while the margin grows, then none.
    assert buffer.stats.underruns <= 6
    assert buffer.stats.frames_late == 0
    assert buffer.stats.lost == 0
    late_half = run.delays[len(run.delays) // 2 :]
    assert max(late_half) <= 0.060 + FRAME_SAMPLES / SAMPLE_RATE
    assert np.mean(late_half) <= 0.045
    assert buffer.margin > buffer.min_margin, "the margin grew to absorb the jitter"
    assert run.max_step <= 3 * TONE_STEP, "a click: concealment or splicing jumped"


def test_lost_frames_are_filled_in_and_what_follows_stays_on_time() -> None:
    arrivals = [a for k, a in enumerate(steady(4.0, network=0.015)) if k % 10 != 5]
    buffer = JitterBuffer(2)
    run = simulate(buffer, arrivals, 4.0)
    lost = sum(1 for k in range(200) if k % 10 == 5)
    assert buffer.stats.lost == lost * FRAME_SAMPLES
    assert buffer.stats.underruns == 0, "a hole is filled in, not played as an underrun"
    assert run.max_step <= 3 * TONE_STEP
    # Holes are filled with as much time as they lasted, so the delay stays where it was.
    assert max(run.delays[50:]) <= 0.060
    # What arrived is played unaltered: the middle of every frame two after a hole is there.
    data = run.out[:, 0].tobytes()
    for k in range(8, 190, 10):
        assert tone(k * FRAME_SAMPLES)[240:720, 0].tobytes() in data, f"frame {k} was altered"


def test_a_late_frame_is_dropped_and_a_duplicate_too() -> None:
    buffer = JitterBuffer(2, initial_margin=0.040)
    for k in range(3):
        buffer.push(tone(k * FRAME_SAMPLES), k * FRAME_SAMPLES)
    buffer.push(tone(FRAME_SAMPLES), FRAME_SAMPLES)  # duplicate
    buffer.push(tone(5 * FRAME_SAMPLES), 5 * FRAME_SAMPLES)  # 3 and 4 lost...
    buffer.push(tone(3 * FRAME_SAMPLES), 3 * FRAME_SAMPLES)  # ...then 3 arrives, too late
    assert buffer.stats.frames_late == 2
    assert buffer.stats.lost == 2 * FRAME_SAMPLES
    assert buffer.fill == 6 * FRAME_SAMPLES


def test_a_partly_late_frame_keeps_its_new_part() -> None:
    buffer = JitterBuffer(2)
    buffer.push(tone(0), 0)
    buffer.push(tone(480), 480)  # overlaps the first by half
    assert buffer.stats.frames_late == 0
    assert buffer.fill == FRAME_SAMPLES + 480


def test_a_burst_after_a_stall_is_played_down_to_the_budget_quickly_and_smoothly() -> None:
    arrivals = steady(1.0)
    # 300 ms without anything, then all of it at once, then steady again.
    stalled = [(1.3, pts) for _, pts in steady(0.3, start=1.0)]
    after = [(t, pts + 65 * FRAME_SAMPLES) for t, pts in steady(3.0, start=1.3)]
    buffer = JitterBuffer(2)
    run = simulate(buffer, arrivals + stalled + after, 4.3)
    assert buffer.stats.underruns >= 1
    assert buffer.stats.dropped > 0
    per_second = SAMPLE_RATE // BLOCK
    assert max(run.delays[int(2.5 * per_second) :]) <= 0.060, "delay still above budget 1 s later"
    assert run.max_step <= 3 * TONE_STEP


def test_an_underrun_fades_out_then_resumes_with_a_fade_in() -> None:
    buffer = JitterBuffer(2)
    run = simulate(buffer, steady(1.0), 1.5)
    out = run.out[:, 0].astype(np.int32)
    assert buffer.stats.underruns == 1
    last_real = int(np.nonzero(out)[0][-1])
    assert abs(out[last_real]) < 0.1 * AMPLITUDE, "the tail was cut, not faded"
    assert run.max_step <= 3 * TONE_STEP
    # The stream comes back: new frames play again, faded in.
    buffer.push(tone(10_000 * FRAME_SAMPLES), 10_000 * FRAME_SAMPLES)
    buffer.push(tone(10_001 * FRAME_SAMPLES), 10_001 * FRAME_SAMPLES)
    back = buffer.pull(BLOCK)[:, 0].astype(np.int32)
    assert np.any(back)
    assert abs(back[0]) <= abs(int(tone(10_000 * FRAME_SAMPLES)[0, 0])) // 50 + 1


def test_a_restarted_sender_is_followed_not_dropped() -> None:
    buffer = JitterBuffer(2)
    for k in range(100, 103):
        buffer.push(tone(k * FRAME_SAMPLES), k * FRAME_SAMPLES)
    buffer.push(tone(0), 0)  # pts went back by far more than the concealment limit
    assert buffer.stats.frames_late == 0
    assert buffer.stats.lost == 0
    assert buffer.fill == 4 * FRAME_SAMPLES


@pytest.mark.parametrize("block", [128, 480, 1024])
def test_any_device_block_size_gets_exactly_what_it_asks_for(block: int) -> None:
    buffer = JitterBuffer(1)
    run = simulate(buffer, steady(2.0), 2.0, block=block)
    assert run.out.shape[1] == 1
    assert run.out.shape[0] == len(run.delays) * block
    assert buffer.stats.played + buffer.stats.concealed == run.out.shape[0]


def test_mono_frames_are_played_on_both_channels() -> None:
    buffer = JitterBuffer(2, initial_margin=0.005)
    mono = tone(0)[:, :1]
    buffer.push(mono, 0)
    buffer.push(tone(FRAME_SAMPLES)[:, :1], FRAME_SAMPLES)
    out = buffer.pull(FRAME_SAMPLES)
    assert np.array_equal(out[:, 0], out[:, 1])
    assert np.any(out)


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.one_of(
            st.tuples(st.just("push"), st.integers(-3, 8)),  # frames ahead of the last pts
            st.tuples(st.just("pull"), st.integers(1, 2000)),
        ),
        max_size=200,
    )
)
def test_any_sequence_of_pushes_and_pulls_keeps_the_books(
    events: list[tuple[str, int]],
) -> None:
    buffer = JitterBuffer(2)
    pts = 0
    pulled = 0
    for kind, value in events:
        if kind == "push":
            pts = max(0, pts + value * FRAME_SAMPLES)
            buffer.push(tone(pts), pts)
            pts += FRAME_SAMPLES
        else:
            out = buffer.pull(value)
            assert out.shape == (value, 2)
            assert out.dtype == np.int16
            pulled += value
        assert buffer.fill >= 0
    stats = buffer.stats
    # Every sample pulled was either audio that arrived or concealment.
    assert stats.played + stats.concealed == pulled
    # What arrived went somewhere: played, dropped, still queued, or refused as late.
    arrived_max = (stats.frames_pushed - stats.frames_late) * FRAME_SAMPLES + stats.lost
    assert stats.played + stats.dropped + buffer.fill <= arrived_max
