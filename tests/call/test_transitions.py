"""The leg table and the link table, tested like h11's: every pair, allowed or refused."""

from __future__ import annotations

import itertools

import pytest

from callapp.call.link import LINK_TRANSITIONS, InvalidLinkTransition, LinkEvent, next_link_state
from callapp.call.state import EndReason, LegState, LinkState
from callapp.call.transitions import (
    LEG_TRANSITIONS,
    LOCAL_EVENTS,
    LegEvent,
    LocalProtocolError,
    RemoteProtocolError,
    Step,
    step,
)

S = LegState
E = LegEvent
STATES: list[LegState | None] = [None, *LegState]
ALL_PAIRS = list(itertools.product(STATES, LegEvent))


def walk(*events: LegEvent) -> Step:
    state: LegState | None = None
    result = Step(S.OFFERING)
    for event in events:
        result = step(state, event)
        state = result.state
    return result


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=lambda v: getattr(v, "value", "none"))
def test_every_pair_is_either_a_step_or_refused_by_who_is_to_blame(
    state: LegState | None, event: LegEvent
) -> None:
    if (state, event) in LEG_TRANSITIONS:
        result = step(state, event)
        assert result == LEG_TRANSITIONS[(state, event)]
        # An ending says why; every other step does not.
        assert (result.state is S.ENDED) == (result.reason is not None)
    else:
        expected = LocalProtocolError if event in LOCAL_EVENTS else RemoteProtocolError
        with pytest.raises(expected) as info:
            step(state, event)
        assert (info.value.state, info.value.event) == (state, event)
        assert event.value in str(info.value)


def test_an_ended_leg_takes_no_event() -> None:
    assert not [pair for pair in LEG_TRANSITIONS if pair[0] is S.ENDED]


def test_a_leg_begins_only_from_nothing_and_only_by_a_beginning() -> None:
    beginnings = {event for (state, event) in LEG_TRANSITIONS if state is None}
    assert beginnings == {E.CALL, E.EXPECT_OFFER, E.OFFER_RINGS, E.OFFER_ANSWERED}
    for state in LegState:
        for event in beginnings:
            assert (state, event) not in LEG_TRANSITIONS


@pytest.mark.parametrize("state", [s for s in LegState if s is not S.ENDED])
@pytest.mark.parametrize(
    "event", [E.HANG_UP, E.CLOSE, E.PEER_LEFT, E.SERVER_LOST, E.BYE, E.BUSY, E.HOST_LEFT]
)
def test_every_live_state_can_end_by_hang_up_close_or_the_peer_going(
    state: LegState, event: LegEvent
) -> None:
    assert step(state, event).state is S.ENDED


def test_every_state_is_reachable() -> None:
    reached: set[LegState] = set()
    frontier: list[LegState | None] = [None]
    while frontier:
        here = frontier.pop()
        for (state, _event), result in LEG_TRANSITIONS.items():
            if state is here and result.state not in reached:
                reached.add(result.state)
                frontier.append(result.state)
    assert reached == set(LegState)


def test_the_usual_paths() -> None:
    assert walk(E.CALL, E.ANSWER, E.MEDIA_UP).state is S.CONNECTED
    assert walk(E.EXPECT_OFFER, E.OFFER, E.ANSWER_SENT, E.MEDIA_UP).state is S.CONNECTED
    assert walk(E.OFFER_RINGS, E.OFFER, E.ACCEPT, E.ANSWER_SENT).state is S.CONNECTING
    assert walk(E.OFFER_ANSWERED, E.ANSWER_SENT, E.MEDIA_UP, E.OFFER).state is S.CONNECTED
    assert walk(E.CALL, E.GLARE_WON, E.ANSWER).state is S.CONNECTING
    assert walk(E.CALL, E.GLARE_LOST, E.ANSWER_SENT).state is S.CONNECTING


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        ((E.CALL, E.BYE), EndReason.DECLINED),
        ((E.CALL, E.ANSWER, E.BYE), EndReason.PEER_HUNG_UP),
        ((E.CALL, E.TIMEOUT), EndReason.NO_ANSWER),
        ((E.CALL, E.UNKNOWN_PEER), EndReason.FAILED),
        ((E.OFFER_RINGS, E.DECLINE), EndReason.DECLINED),
        ((E.OFFER_RINGS, E.TIMEOUT), EndReason.NO_ANSWER),
        ((E.EXPECT_OFFER, E.TIMEOUT), EndReason.FAILED),
        ((E.CALL, E.ANSWER, E.TRANSPORT_FAILED), EndReason.FAILED),
        ((E.CALL, E.ANSWER, E.MEDIA_UP, E.TRANSPORT_FAILED), EndReason.PEER_UNREACHABLE),
        ((E.CALL, E.ANSWER, E.MEDIA_UP, E.TRANSPORT_CLOSED), EndReason.PEER_HUNG_UP),
        ((E.CALL, E.ANSWER, E.MEDIA_UP, E.PEER_SILENT), EndReason.PEER_UNREACHABLE),
        ((E.EXPECT_OFFER, E.PEER_LEFT), EndReason.PEER_LEFT),
        ((E.CALL, E.HANG_UP), EndReason.HUNG_UP),
        ((E.CALL, E.ANSWER, E.MEDIA_UP, E.CLOSE), EndReason.CLOSED),
        # A BYE saying "busy" turns a call away before it starts; later it is a hang-up.
        ((E.CALL, E.BUSY), EndReason.BUSY),
        ((E.EXPECT_OFFER, E.BUSY), EndReason.BUSY),
        ((E.CALL, E.ANSWER, E.BUSY), EndReason.PEER_HUNG_UP),
        ((E.OFFER_RINGS, E.BUSY), EndReason.PEER_HUNG_UP),
        # The host's app went away with its server, at any point of a call.
        ((E.CALL, E.ANSWER, E.MEDIA_UP, E.HOST_LEFT), EndReason.HOST_LEFT),
        ((E.EXPECT_OFFER, E.HOST_LEFT), EndReason.HOST_LEFT),
        ((E.OFFER_RINGS, E.HOST_LEFT), EndReason.HOST_LEFT),
    ],
)
def test_why_a_leg_ended(events: tuple[LegEvent, ...], reason: EndReason) -> None:
    result = walk(*events)
    assert (result.state, result.reason) == (S.ENDED, reason)


@pytest.mark.parametrize(
    ("state", "event", "error"),
    [
        (S.CONNECTED, E.ANSWER, RemoteProtocolError),  # an answer nobody asked for
        (S.AWAITING_OFFER, E.ANSWER, RemoteProtocolError),
        (None, E.OFFER, RemoteProtocolError),
        (S.CONNECTING, E.ACCEPT, LocalProtocolError),  # accept() on a call not ringing
        (S.CONNECTED, E.DECLINE, LocalProtocolError),
        (S.CONNECTED, E.TIMEOUT, LocalProtocolError),  # a connected leg has no timer
        (S.CONNECTING, E.PEER_SILENT, RemoteProtocolError),
    ],
)
def test_refusals_name_who_is_to_blame(
    state: LegState | None, event: LegEvent, error: type[Exception]
) -> None:
    with pytest.raises(error):
        step(state, event)


# -- the link ------------------------------------------------------------------


@pytest.mark.parametrize(("state", "event"), list(itertools.product(LinkState, LinkEvent)))
def test_every_link_pair_is_listed_or_refused(state: LinkState, event: LinkEvent) -> None:
    if (state, event) in LINK_TRANSITIONS:
        assert next_link_state(state, event) is LINK_TRANSITIONS[(state, event)]
    else:
        with pytest.raises(InvalidLinkTransition):
            next_link_state(state, event)


def test_a_link_that_drops_and_comes_back() -> None:
    state = LinkState.OFFLINE
    for event in (LinkEvent.CONNECT, LinkEvent.WELCOMED, LinkEvent.LOST, LinkEvent.LOST):
        state = next_link_state(state, event)
    assert state is LinkState.RECONNECTING
    assert next_link_state(state, LinkEvent.RESTORED) is LinkState.CONNECTED
    assert next_link_state(state, LinkEvent.GONE) is LinkState.GONE
    assert next_link_state(LinkState.GONE, LinkEvent.CONNECT) is LinkState.CONNECTING


# -- a dead media path, renegotiated (issue 14) ------------------------------------------


def test_a_dead_path_is_renegotiated_and_the_call_goes_on() -> None:
    connected = (E.CALL, E.ANSWER, E.MEDIA_UP)
    assert walk(*connected, E.PATH_LOST) == Step(S.RECONNECTING)
    # Our restart offer's answer, retries, then media again: the same call.
    assert walk(*connected, E.PATH_LOST, E.ANSWER, E.ANSWER, E.MEDIA_UP) == Step(S.CONNECTED)
    # The peer's restart offer (it noticed first), answered.
    assert walk(*connected, E.RESTART_OFFER, E.ANSWER_SENT, E.MEDIA_UP) == Step(S.CONNECTED)
    assert walk(*connected, E.PATH_LOST, E.RESTART_OFFER) == Step(S.RECONNECTING)
    # And it can happen again.
    twice = (*connected, E.PATH_LOST, E.MEDIA_UP, E.PATH_LOST, E.MEDIA_UP)
    assert walk(*twice) == Step(S.CONNECTED)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (E.TIMEOUT, EndReason.PEER_UNREACHABLE),  # restart_for ran out
        (E.PEER_SILENT, EndReason.PEER_UNREACHABLE),
        (E.TRANSPORT_FAILED, EndReason.PEER_UNREACHABLE),
        (E.TRANSPORT_CLOSED, EndReason.PEER_HUNG_UP),
        (E.BYE, EndReason.PEER_HUNG_UP),
        (E.HANG_UP, EndReason.HUNG_UP),
        (E.PEER_LEFT, EndReason.PEER_LEFT),
        (E.SERVER_LOST, EndReason.SERVER_LOST),  # no signaling: nothing to renegotiate over
        (E.RELAY_FAILED, EndReason.RELAY_FAILED),
        (E.CLOSE, EndReason.CLOSED),
    ],
)
def test_how_a_reconnecting_leg_ends(event: LegEvent, reason: EndReason) -> None:
    assert step(S.RECONNECTING, event) == Step(S.ENDED, reason)


def test_only_a_live_call_renegotiates_its_path() -> None:
    lost = {state for (state, event) in LEG_TRANSITIONS if event is E.PATH_LOST}
    assert lost == {S.CONNECTED}
    restarted = {state for (state, event) in LEG_TRANSITIONS if event is E.RESTART_OFFER}
    assert restarted == {S.CONNECTED, S.RECONNECTING}
    with pytest.raises(LocalProtocolError):
        step(S.CONNECTING, E.PATH_LOST)  # before media: the connect timeout decides
    with pytest.raises(RemoteProtocolError):
        step(S.RINGING, E.RESTART_OFFER)


def test_a_relay_that_says_no_ends_a_call_before_media_in_words() -> None:
    assert walk(E.CALL, E.RELAY_FAILED) == Step(S.ENDED, EndReason.RELAY_FAILED)
    assert "TURN relay" in EndReason.RELAY_FAILED.value
    with pytest.raises(LocalProtocolError):
        step(S.CONNECTED, E.RELAY_FAILED)  # media flows: the relay worked
