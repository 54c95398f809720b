"""The pool's decisions with no socket: when a connection left on a barge-in may serve again, and
how many of a connection's in-flight slots an inference may take."""

from __future__ import annotations

import pytest

from pipecat_responses_ws.emulator import builders
from pipecat_responses_ws.protocol import wire
from pipecat_responses_ws.protocol.connection import ConnectionStatus, ConnectionStatusError
from pipecat_responses_ws.protocol.session import TURN_RESERVED_SLOTS

from .test_session import USER, Driver, laneless_writer, stream_text


def _left_on_a_barge_in() -> tuple[Driver, builders.ResponseEventWriter]:
    d = Driver(named_lanes=False)
    turn, _ = d.start()
    w = laneless_writer()
    stream_text(d, w, ["Once "])
    d.session.abandon(turn, 0.0)
    assert not d.conn.usable and d.conn.status is ConnectionStatus.LEFT_ON_BARGE_IN
    return d, w


def test_a_connection_left_on_a_barge_in_is_taken_back_only_once_its_abandoned_answer_ended() -> None:
    d, w = _left_on_a_barge_in()
    assert not d.session.take_back(d.conn)  # the next request would queue behind the answer
    d.feed(w.completed(builders.usage(1, 9)))  # the server ignored the cancel and finished it
    assert d.session.take_back(d.conn)
    assert d.conn.status is ConnectionStatus.OPEN and d.session.stats.connections_taken_back == 1
    # The abandoned answer replaced the server's one cached response: the next turn goes in full.
    nxt = d.session.open_response(d.conn, [*USER, {"role": "user", "content": "again"}])
    assert nxt is not None and nxt.plan.previous_response_id is None
    assert not d.session.take_back(d.conn)  # once taken back there is nothing more to decide


def test_a_closed_spent_or_stuck_connection_is_never_taken_back() -> None:
    d, _ = _left_on_a_barge_in()
    d.session.closed(d.conn, 1011, "dropped", 1.0)
    assert d.conn.is_quiet() and not d.session.take_back(d.conn) and not d.conn.usable

    d, _ = _left_on_a_barge_in()
    d.feed(builders.error_event(wire.CONNECTION_LIMIT_REACHED, "60 minutes"))
    d.conn.router.release(next(d.conn.router.responses()))
    assert not d.session.take_back(d.conn)

    d, _ = _left_on_a_barge_in()
    d.session.retire_stuck(d.conn, 1000.0)  # quiet to the client, but the server may still run it
    assert d.conn.is_quiet() and not d.session.take_back(d.conn)


def test_a_connection_given_up_for_another_reason_is_not_taken_back() -> None:
    d = Driver(named_lanes=None)
    abandoned, _ = d.start()
    wa = d.writer(abandoned, "resp_a")
    stream_text(d, wa, ["Cancelled "])
    d.session.abandon(abandoned, 0.0)
    turn, _ = d.start()
    # Lanes worked, then a proxy in front dropped them: the turn's own lane stays silent.
    stream_text(d, laneless_writer("resp_x"), ["Whose "])
    d.session.timed_out(turn, "first_event", 2.0, 2.0)
    assert not d.conn.usable
    d.feed(wa.completed(builders.usage(1, 1)))
    assert not d.session.take_back(d.conn) and not d.conn.usable  # two answers could mix: never again


def test_inferences_leave_the_last_in_flight_slot_to_the_next_turn() -> None:
    for named in (True, False):
        d = Driver(named_lanes=named)
        limit = d.conn.router.max_in_flight - TURN_RESERVED_SLOTS
        inferences = [d.session.open_response(d.conn, USER, out_of_band=True) for _ in range(limit)]
        assert all(r is not None for r in inferences)
        assert d.session.open_response(d.conn, USER, out_of_band=True) is None  # it waits for a slot
        turn = d.session.open_response(d.conn, USER)
        assert turn is not None  # the turn is not moved to a cold connection
        assert d.session.open_response(d.conn, USER) is None  # the server's cap itself: a turn rotates


def test_a_connection_status_moves_only_along_its_table() -> None:
    d, w = _left_on_a_barge_in()
    d.session.closed(d.conn, 1011, "dropped", 1.0)
    assert d.conn.status is ConnectionStatus.CLOSED and d.conn.closed
    # A closed connection never serves again, whatever asks: the session's mistake is said as one.
    with pytest.raises(ConnectionStatusError, match="closed cannot become open"):
        d.conn.become(ConnectionStatus.OPEN)
    assert d.session.closed(d.conn, 1011, "again", 2.0) == [] and d.conn.closed


def test_a_spent_connection_given_up_on_a_barge_in_is_never_taken_back() -> None:
    d, w = _left_on_a_barge_in()
    d.feed(builders.error_event(wire.CONNECTION_LIMIT_REACHED, "spent"))
    d.feed(w.completed(builders.usage(1, 9)))
    assert d.conn.status is ConnectionStatus.EXPIRED and not d.session.take_back(d.conn)
