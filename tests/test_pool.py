"""The pool's decisions with no socket: which connection a turn takes, when a warm spare takes
over after a barge-in without lanes, when the connection left on one is taken back, when one is
rotated before the age limit, and how long a failed connect backs off. Time is passed in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipecat_responses_ws.emulator import builders
from pipecat_responses_ws.protocol import events as ev
from pipecat_responses_ws.protocol.actions import Log, Retire
from pipecat_responses_ws.protocol.connection import ConnectionState, ConnectionStatus
from pipecat_responses_ws.protocol.pool import (
    CLOSE_OLD_CONNECTION_AFTER_SECS,
    SPARE_GRACE_SECS,
    Changed,
    Close,
    CloseWhenQuiet,
    Connect,
    OpenSpare,
    Pool,
    PoolAction,
    PoolOptions,
    Reconnect,
    Rotate,
    SleepUntil,
    TakeBackWhenQuiet,
    Use,
    WaitForChange,
)
from pipecat_responses_ws.protocol.response import Response
from pipecat_responses_ws.protocol.session import STUCK_LANE_SECS, ClientSession
from pipecat_responses_ws.protocol.session_core import SessionOptions

from .test_session import USER, laneless_writer

AGE = 3600.0
MARGIN = 300.0


@dataclass
class Socket:
    """What the pool sees of a connection: the session's state of it, and when it opened."""

    state: ConnectionState
    opened_at: float


class Scene:
    """A session without lanes, a pool, and connections opened at a given time."""

    def __init__(self) -> None:
        self.session = ClientSession(SessionOptions(named_lanes=False))
        self.pool: Pool[Socket] = Pool(self.session, PoolOptions(AGE, MARGIN, (0.25, 8.0)), "bot")
        self.opened = 0

    def socket(self, now: float = 1.0) -> Socket:
        self.opened += 1
        return Socket(self.session.connection(f"bot#{self.opened}"), now)

    def current(self, now: float = 1.0) -> Socket:
        """A current connection that has shown it has no lanes, and the spare it asks for."""
        conn = self.socket(now)
        conn.state.lanes = False
        serving, actions = self.pool.connected(conn, now, reason="start", if_needed=True)
        assert serving is conn and actions == [Changed(), OpenSpare()]
        return conn

    def turn(self, conn: Socket) -> Response:
        response = self.session.open_response(conn.state, USER)
        assert response is not None
        self.session.create_event(response, {})
        self.play(conn, laneless_writer().created())
        return response

    def play(self, conn: Socket, event: dict[str, Any]) -> None:
        self.session.receive(conn.state, ev.parse_event(json.dumps(event)), 0.0)

    def answer_ends(self, conn: Socket) -> None:
        """The server finished the abandoned answer (it ignored the cancel, or was slow to stop)."""
        self.play(conn, laneless_writer().completed(builders.usage(1, 9)))

    def barge_in(self, conn: Socket, response: Response, now: float) -> list[PoolAction[Socket]]:
        """The user barges in: the session gives the connection up, and the pool hears of it."""
        retire = [a for a in self.session.abandon(response, now) if isinstance(a, Retire)]
        assert len(retire) == 1 and retire[0].soon
        return self.pool.retired(conn, retire[0].reason, retire[0].soon, now)


def kinds(actions: list[PoolAction[Socket]]) -> list[type]:
    return [type(a) for a in actions if not isinstance(a, Log)]


def test_a_barge_in_hands_the_next_turn_to_the_warm_spare_at_once() -> None:
    s = Scene()
    old = s.current()
    spare = s.socket(2.0)
    assert s.pool.spare_ready(spare, 2.0) == [] and s.pool.spare is spare
    actions = s.barge_in(old, s.turn(old), 5.0)
    assert s.pool.current is spare and s.pool.spare is None and s.pool.stats.spare_takeovers == 1
    assert spare.state.status is ConnectionStatus.TAKEN_OVER  # its first request resends the context
    # The old one lives a short grace while it is unknown whether the endpoint honours the cancel;
    # then the next spare is asked for.
    assert kinds(actions) == [CloseWhenQuiet, Changed, OpenSpare]
    assert CloseWhenQuiet(old, SPARE_GRACE_SECS) in actions
    assert s.pool.acquire(5.0) == Use(spare)


def test_once_the_endpoint_is_known_the_connection_left_is_closed_without_grace() -> None:
    s = Scene()
    s.session.cancel_honoured = False
    old = s.current()
    spare = s.socket(2.0)
    s.pool.spare_ready(spare, 2.0)
    assert CloseWhenQuiet(old, 0.0) in s.barge_in(old, s.turn(old), 5.0)


def test_a_spare_busy_with_an_inference_is_not_taken() -> None:
    s = Scene()
    old = s.current()
    spare = s.socket(2.0)
    s.pool.spare_ready(spare, 2.0)
    assert s.session.open_response(spare.state, USER, out_of_band=True) is not None
    actions = s.barge_in(old, s.turn(old), 5.0)
    assert s.pool.current is old and s.pool.spare is spare
    assert kinds(actions) == [Changed, TakeBackWhenQuiet, Reconnect]


def test_without_a_spare_the_connection_left_is_taken_back_once_its_answer_ended() -> None:
    s = Scene()
    old = s.current()
    s.pool.spare_failed("handshake timed out")
    actions = s.barge_in(old, s.turn(old), 5.0)
    # A fresh connection is tried meanwhile, and the turn waits for whichever comes first.
    assert TakeBackWhenQuiet(old, STUCK_LANE_SECS) in actions and Reconnect() in actions
    assert s.pool.acquire(5.0) == WaitForChange()
    s.answer_ends(old)
    back = s.pool.waited(old)
    assert Changed() in back and OpenSpare() in back  # and a spare is tried again
    assert s.pool.acquire(6.0) == Use(old) and s.session.stats.connections_taken_back == 1


def test_a_fresh_connection_that_comes_first_takes_the_turn_and_the_old_one_goes() -> None:
    s = Scene()
    old = s.current()
    s.pool.spare_failed("refused")
    s.barge_in(old, s.turn(old), 5.0)
    fresh = s.socket(6.0)
    serving, actions = s.pool.connected(fresh, 6.0, reason="no usable connection", if_needed=True)
    assert serving is fresh and s.pool.current is fresh and CloseWhenQuiet(old, SPARE_GRACE_SECS) in actions
    s.answer_ends(old)
    assert s.pool.waited(old) == [] and old.state.status is ConnectionStatus.LEFT_ON_BARGE_IN


def test_the_old_connection_back_first_keeps_the_fresh_one_as_the_spare() -> None:
    s = Scene()
    old = s.current()
    s.pool.spare_failed("refused")
    s.barge_in(old, s.turn(old), 5.0)
    s.answer_ends(old)
    s.pool.waited(old)
    fresh = s.socket(6.0)
    serving, actions = s.pool.connected(fresh, 6.0, reason="no usable connection", if_needed=True)
    assert serving is old and s.pool.spare is fresh and actions == []


def test_an_abandoned_answer_that_never_ends_closes_its_connection() -> None:
    s = Scene()
    old = s.current()
    s.pool.spare_failed("refused")
    s.barge_in(old, s.turn(old), 5.0)
    assert kinds(s.pool.waited(old)) == [Close]  # a turn waiting for it makes its own attempt


def test_a_spare_that_opens_after_the_barge_in_takes_over_then() -> None:
    s = Scene()
    old = s.current()
    s.barge_in(old, s.turn(old), 5.0)
    spare = s.socket(6.0)
    actions = s.pool.spare_ready(spare, 6.0)
    assert s.pool.current is spare and CloseWhenQuiet(old, SPARE_GRACE_SECS) in actions


def test_a_spare_is_kept_only_without_lanes_and_while_cancel_is_not_known_to_be_honoured() -> None:
    s = Scene()
    conn = s.socket()
    conn.state.lanes = None  # not yet found out
    s.pool.connected(conn, 1.0, reason="start")
    assert s.pool.keep_spare() == []
    conn.state.lanes = False
    assert s.pool.keep_spare() == [OpenSpare()]
    assert s.pool.keep_spare() == []  # one on its way
    s.pool.spare_failed("refused")
    s.session.cancel_honoured = True
    assert s.pool.keep_spare() == []  # a barge-in stays on its connection


def test_a_connection_near_its_age_limit_serves_no_new_turn() -> None:
    s = Scene()
    conn = s.current(now=1.0)
    assert s.pool.acquire(AGE - 5.0) == Use(conn)
    assert s.pool.acquire(AGE - 4.0) == Connect()


def test_rollover_sleeps_until_due_waits_out_a_turn_and_retires_an_old_spare() -> None:
    s = Scene()
    s.current(now=1.0)
    spare = s.socket(1.0)
    s.pool.spare_ready(spare, 1.0)
    due = 1.0 + AGE - MARGIN
    assert s.pool.rollover(10.0, busy=False) == (SleepUntil(due), [])
    step, actions = s.pool.rollover(due, busy=True)
    assert step == SleepUntil(due + 0.02) and s.pool.spare is None
    assert CloseWhenQuiet(spare, CLOSE_OLD_CONNECTION_AFTER_SECS) in actions and OpenSpare() in actions
    step, _ = s.pool.rollover(due, busy=False)
    assert isinstance(step, Rotate)


def test_reconnect_backs_off_doubling_up_to_the_cap() -> None:
    pool: Pool[Socket] = Pool(ClientSession(), PoolOptions(AGE, MARGIN, (0.25, 8.0)))
    assert [pool.backoff(n, 1.0) for n in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert pool.backoff(2, 0.75) == 0.75
