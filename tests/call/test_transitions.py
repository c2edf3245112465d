"""The phase table: the paths a session may take, and nothing else."""

from __future__ import annotations

import pytest

from callapp.call.state import CallPhase
from callapp.call.transitions import TRANSITIONS, InvalidTransition, Trigger, can, next_phase

P = CallPhase


def walk(*triggers: Trigger) -> CallPhase:
    phase = P.IDLE
    for trigger in triggers:
        phase = next_phase(phase, trigger)
    return phase


def test_a_room_call_from_start_to_end() -> None:
    assert walk(Trigger.CONNECT, Trigger.WELCOMED) is P.WAITING
    assert walk(Trigger.CONNECT, Trigger.WELCOMED, Trigger.DIAL, Trigger.MEDIA_UP) is P.CONNECTED
    assert (
        walk(Trigger.CONNECT, Trigger.WELCOMED, Trigger.DIAL, Trigger.MEDIA_UP, Trigger.CALL_ENDED)
        is P.WAITING
    )


def test_an_incoming_call_rings_then_is_accepted() -> None:
    ringing = walk(Trigger.CONNECT, Trigger.WELCOMED, Trigger.OFFER_RINGS)
    assert ringing is P.RINGING
    assert next_phase(ringing, Trigger.ACCEPT) is P.CALLING
    assert next_phase(ringing, Trigger.CALL_ENDED) is P.WAITING


def test_failed_connect_returns_to_idle() -> None:
    assert walk(Trigger.CONNECT, Trigger.CONNECT_FAILED) is P.IDLE


@pytest.mark.parametrize("phase", list(P))
def test_close_is_allowed_from_every_phase(phase: CallPhase) -> None:
    assert next_phase(phase, Trigger.CLOSE) is P.CLOSED


@pytest.mark.parametrize(
    ("phase", "trigger"),
    [
        (P.IDLE, Trigger.DIAL),
        (P.WAITING, Trigger.ACCEPT),
        (P.RINGING, Trigger.MEDIA_UP),
        (P.CONNECTED, Trigger.DIAL),
        (P.CLOSED, Trigger.CONNECT),
        (P.CONNECTING, Trigger.CALL_ENDED),
    ],
)
def test_what_the_table_does_not_allow_raises(phase: CallPhase, trigger: Trigger) -> None:
    assert not can(phase, trigger)
    with pytest.raises(InvalidTransition) as info:
        next_phase(phase, trigger)
    assert info.value.phase is phase
    assert info.value.trigger is trigger


def test_signaling_loss_keeps_a_live_call_and_comes_back_to_waiting() -> None:
    connected = walk(Trigger.CONNECT, Trigger.WELCOMED, Trigger.DIAL, Trigger.MEDIA_UP)
    lost = next_phase(connected, Trigger.SIGNALING_LOST)
    assert lost is P.RECONNECTING
    assert next_phase(lost, Trigger.CALL_ENDED) is P.RECONNECTING
    assert next_phase(lost, Trigger.SIGNALING_BACK) is P.WAITING
    assert next_phase(lost, Trigger.SIGNALING_GONE) is P.IDLE


def test_closed_is_final() -> None:
    assert {t for (phase, t) in TRANSITIONS if phase is P.CLOSED} == {Trigger.CLOSE}
