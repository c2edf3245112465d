"""What picture size a receiver may see, given what the sender's bitrate controller did."""

from __future__ import annotations

from collections.abc import Sequence

from callapp.media.resilience import half_size, may_send_half_size


def assert_received_as_sent(
    received: Sequence[int], sent: tuple[int, int], sender_target: int | None, where: object
) -> None:
    """Assert ``received`` is ``sent``, or its half size with the sender's target to show for it.

    On the shared 2-core machine, loopback round trips grow with the time
    each app waits for a core; the delay-based estimate then drops the
    sender under 200 kbit/s and VP8 sends half the size (as libwebrtc steps
    down for CPU overuse). Over a lossy link a burst of loss over 10 % in
    one receiver report (or an early REMB) cuts the rate the same way; at
    a steady 5 % loss it climbs back only as far as REMB lets it. That is
    the controller working, so half the size passes, but only if the
    sender's final ``video_target_bitrate`` is in the range where half size
    is sent; any other size fails.
    """
    if list(received) == list(sent):
        return
    assert list(received) == list(half_size(*sent)), where
    assert may_send_half_size(*sent, sender_target), where
