"""Which buttons make sense now, and which call endings deserve a banner.

Pure functions of the snapshot and the view-model's own state.
"""

from __future__ import annotations

from dataclasses import dataclass

from callapp.call.state import CallPhase, CallSnapshot, EndReason

IN_CALL = frozenset({CallPhase.RINGING, CallPhase.CALLING, CallPhase.CONNECTED})


@dataclass(frozen=True, slots=True)
class Controls:
    """Enabled state of each action in the window."""

    host: bool
    join: bool
    call: bool
    hang_up: bool
    camera: bool
    edit_server: bool
    edit_room: bool


def controls_for(snap: CallSnapshot | None, *, busy: bool, hosting: bool) -> Controls:
    """What a person can sensibly press, given the session and whether an action runs."""
    phase = snap.phase if snap is not None else CallPhase.IDLE
    in_call = phase in IN_CALL
    settled = not busy and phase in (CallPhase.IDLE, CallPhase.WAITING, CallPhase.CLOSED)
    return Controls(
        host=settled and not hosting,
        join=settled,  # while hosting: (re)join a room on our own server
        call=settled and phase is not CallPhase.RECONNECTING,
        hang_up=in_call or phase is CallPhase.RECONNECTING,
        camera=True,
        # Waiting in one place, a person may type another and Join there.
        edit_server=settled and not hosting,
        edit_room=settled,
    )


#: Endings that are news to the person (they did not cause them).
_BANNER_REASONS = {
    EndReason.PEER_LEFT,
    EndReason.PEER_UNREACHABLE,
    EndReason.DECLINED,
    EndReason.NO_ANSWER,
    EndReason.FAILED,
    EndReason.SERVER_LOST,
}


def ending_message(previous: CallSnapshot | None, current: CallSnapshot) -> str | None:
    """A banner sentence when a call just ended for a reason worth telling."""
    if previous is None or previous.phase not in IN_CALL or current.phase in IN_CALL:
        return None
    reason = current.end_reason
    if reason is None or reason not in _BANNER_REASONS:
        return None
    return f"The call ended: {reason.value}."
