"""The client session with no socket: events in, decisions out.

Every misbehaviour of a server the service must survive is played here as plain events, and the
decision is read off the actions: what is delivered to the turn, what is sent, what is retired.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipecat_responses_ws.emulator import builders
from pipecat_responses_ws.protocol import events as ev
from pipecat_responses_ws.protocol import wire
from pipecat_responses_ws.protocol.actions import (
    Action,
    Deliver,
    Log,
    ReleaseToolResults,
    ReportError,
    Retire,
    SendEvent,
    Touch,
)
from pipecat_responses_ws.protocol.connection import ConnectionState, ConnectionStatus
from pipecat_responses_ws.protocol.errors import ConnectionLost
from pipecat_responses_ws.protocol.redaction import redact, register_secret
from pipecat_responses_ws.protocol.response import (
    REORDER_WINDOW,
    Failed,
    Finished,
    Outcome,
    Phase,
    Response,
    ResponseStateError,
    Retried,
    Retry,
    ToolCallReady,
)
from pipecat_responses_ws.protocol.session import ClientSession
from pipecat_responses_ws.protocol.session_core import SessionOptions

USER = [{"role": "user", "content": "hi"}]


class Driver:
    """A session, one connection, and helpers to play server events at it.

    An event goes to ``dispatch``, as the WebSocket reader plays them (a text delta for its
    owner is handed over without a list of actions), or to ``receive``, as the HTTP driver does:
    every test here runs both ways (``text_path``), so the short path decides what the full one does.
    """

    dispatch = True

    def __init__(self, **options: Any) -> None:
        self.session = ClientSession(SessionOptions(**{"named_lanes": True, **options}))
        self.conn = self.session.connection("conn#1")
        self.now = 0.0

    def start(self, full_input: list[dict[str, Any]] = USER, **kw: Any) -> tuple[Response, dict[str, Any]]:
        response = self.session.open_response(self.conn, full_input, **kw)
        assert response is not None
        return response, self.session.create_event(response, {"model": "m"})

    def writer(self, response: Response, response_id: str = "resp_1") -> builders.ResponseEventWriter:
        return builders.ResponseEventWriter(response_id, "m", stream_id=response.lane)

    def feed(self, event: dict[str, Any] | str, conn: ConnectionState | None = None) -> list[Action]:
        raw = event if isinstance(event, str) else json.dumps(event)
        conn = conn or self.conn
        parsed = ev.parse_event(raw)
        if not self.dispatch:
            return self.session.receive(conn, parsed, self.now)
        taken = self.session.dispatch(conn, parsed)
        return self.session.receive(conn, parsed, self.now) if taken is None else [Deliver(taken, parsed)]


@pytest.fixture(autouse=True, params=["dispatch", "receive only"])
def text_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Driver, "dispatch", request.param == "dispatch")


def delivered(actions: list[Action]) -> list[Any]:
    return [a.happening for a in actions if isinstance(a, Deliver)]


def texts(actions: list[Action]) -> list[str]:
    return [h.delta for h in delivered(actions) if isinstance(h, ev.TextDelta)]


def sends(actions: list[Action]) -> list[dict[str, Any]]:
    return [a.payload for a in actions if isinstance(a, SendEvent)]


def stream_text(d: Driver, w: builders.ResponseEventWriter, words: list[str]) -> list[Action]:
    actions = d.feed(w.created()) + d.feed(w.in_progress())
    actions += d.feed(w.output_item_added(0, builders.message_item("msg_1", "", "in_progress")))
    for word in words:
        actions += d.feed(w.output_text_delta("msg_1", 0, word))
    return actions


# -- typed events -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"delta": "x"}', "no event type"),
        ('{"type": "error", "error": "a string", "status": "bad"}', "error is not an object"),
        ('{"type": "response.output_text.delta", "delta": 5}', "delta is not a string"),
        ('{"type": "response.created", "response": "x"}', "response is not an object"),
        ('{"type": "response.completed", "response": {"output": "x"}}', "output is not a list"),
        ('{"type": "response.output_item.done", "item": null}', "item is not an object"),
        ('{"type": "response.output_text.delta", "delta": "x", "sequence_number": "1"}', "sequence_number"),
        ('{"type": "response.output_text.delta", "delta": "x", "sequence_number": -1}', "from 0 up"),
        ('{"type": "response.output_text.delta", "delta": "x", "stream_id": 3}', "stream_id"),
    ],
)
def test_malformed_frames_become_typed_values_with_a_reason(raw: str, reason: str) -> None:
    event = ev.parse_event(raw)
    assert isinstance(event, ev.MalformedEvent) and reason in event.reason


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(
    "raw",
    [
        _nested(100_000),  # past what the JSON parser can follow
        f'{{"type": "response.output_text.delta", "delta": {_nested(1_000)}}}',
        f'{{"type": "response.output_item.done", "item": {{"id": "x", "content": {_nested(200)}}}}}',
        f'{{"type": "response.completed", "response": {{"output": [{{"content": {_nested(200)}}}]}}}}',
    ],
    ids=["100000 levels", "a delta 1000 levels deep", "an item 200 levels deep", "an output 200 levels deep"],
)
def test_json_nested_however_deep_is_a_malformed_event(raw: str) -> None:
    event = ev.parse_event(raw)
    assert isinstance(event, ev.MalformedEvent) and "nested" in event.reason


@pytest.mark.parametrize(
    "raw",
    [
        f'{{"type": "response.content_part.added", "item_id": "x", "part": {_nested(200)}}}',
        f'{{"type": "response.in_progress", "response": {{"id": "r", "output": {_nested(200)}}}}}',
    ],
    ids=["a part", "a response in progress"],
)
def test_what_an_event_does_not_keep_may_nest_deep(raw: str) -> None:
    # The decoder skips what the event leaves out; only what it keeps is ever walked again.
    event = ev.parse_event(raw)
    assert not isinstance(event, ev.MalformedEvent) and not event.nests


def test_a_frame_nested_too_deep_mid_answer_is_skipped_and_the_answer_goes_on() -> None:
    d = Driver()
    turn, _ = d.start()
    w = d.writer(turn)
    actions = stream_text(d, w, ["Still "])
    skipped = d.feed('{"type": "response.output_text.delta", "delta": ' + _nested(5_000) + "}")
    assert [a for a in skipped if isinstance(a, Log) and a.level == "WARNING" and "nested" in a.message]
    actions += d.feed(w.output_text_delta("msg_1", 0, "here."))
    assert texts(actions) == ["Still ", "here."] and d.session.stats.events_skipped == 1


def test_call_arguments_nested_too_deep_never_run_the_call() -> None:
    d = Driver()
    turn, _ = d.start()
    w = d.writer(turn)
    d.feed(w.created())
    call = builders.function_call_item("fc_1", "call_1", "get_weather", '{"city": ' + _nested(100_000) + "}")
    d.feed(w.output_item_added(0, {**call, "arguments": ""}))
    happenings = delivered(d.feed(w.output_item_done(0, call)))
    assert happenings and not [h for h in happenings if isinstance(h, ToolCallReady)]
    assert "JSON" in happenings[-1].reason


def test_events_parse_into_their_types() -> None:
    w = builders.ResponseEventWriter("resp_1", "m", stream_id="lane-0")
    delta = ev.parse_event(json.dumps(w.output_text_delta("msg_1", 0, "Hi ")))
    assert delta == ev.TextDelta(stream_id="lane-0", sequence_number=0, item_id="msg_1", delta="Hi ")
    assert isinstance(ev.parse_event(json.dumps(w.content_part_added("msg_1", 0))), ev.ItemEvent)
    failed = ev.parse_event(json.dumps(w.failed("server_error", "boom")))
    assert isinstance(failed, ev.ResponseEnded) and (failed.status, failed.error_code) == ("failed", "server_error")
    incomplete = ev.parse_event(json.dumps(w.incomplete("max_output_tokens")))
    assert isinstance(incomplete, ev.ResponseEnded) and incomplete.error_code == "max_output_tokens"
    assert isinstance(ev.parse_event('{"type": "response.mystery"}'), ev.UnknownEvent)
    flat = ev.parse_event('{"type": "error", "code": "unknown_event_type", "message": "no"}')
    assert isinstance(flat, ev.ServerError) and flat.code == "unknown_event_type"


# -- lanes ------------------------------------------------------------------------------------


def test_events_route_by_lane_and_abandoned_lanes_drop_until_their_terminal() -> None:
    d = Driver()
    first, _ = d.start()
    second, _ = d.start()
    assert first.lane != second.lane
    w1 = d.writer(first)
    d.feed(w1.created())
    assert sends(d.session.abandon(first, d.now)) == [{"type": "response.cancel", "response_id": "resp_1"}]
    assert delivered(d.feed(w1.output_text_delta("msg", 0, "stale "))) == []
    assert texts(stream_text(d, d.writer(second, "resp_2"), ["fresh "])) == ["fresh "]
    assert delivered(d.feed(w1.completed(builders.usage(1, 7)))) == []
    assert d.conn.stats.abandoned_output_tokens == 7
    third, _ = d.start()
    assert third.lane == first.lane  # freed by its terminal, reused


def test_pool_grows_only_while_every_lane_is_busy_and_stops_at_the_lane_limit() -> None:
    d = Driver()
    d.conn.router.max_named_lanes = 3
    responses = [d.start()[0] for _ in range(3)]
    assert d.session.open_response(d.conn, USER) is None  # the caller must rotate
    d.session.abandon(responses[0], d.now)
    d.feed(d.writer(responses[0]).error("server_error", "x"))  # the lane's request ends without a response


def test_a_response_never_written_is_withdrawn_at_once() -> None:
    d = Driver()
    response = d.session.open_response(d.conn, USER)
    assert response is not None and d.session.abandon(response, 0.0) == []
    assert response.off_lane and d.conn.is_quiet()


def test_a_response_moves_along_its_lifecycle_and_a_move_off_the_table_names_it() -> None:
    d = Driver()
    response = d.session.open_response(d.conn, USER)
    assert response is not None
    assert (response.phase, response.outcome) == (Phase.PLANNED, Outcome.PENDING)
    d.session.create_event(response, {"model": "m"})
    assert (response.phase, response.outcome) == (Phase.SENT, Outcome.PENDING)
    d.feed(d.writer(response).created())
    d.session.abandon(response, 1.0)
    # The owner hears the end first, then the response is let go of; a second barge-in changes nothing.
    assert (response.phase, response.outcome, response.abandoned_at) == (Phase.SENT, Outcome.ABANDONED, 1.0)
    assert response.outcome is Outcome.ABANDONED and d.session.abandon(response, 2.0) == []
    d.feed(d.writer(response).completed(builders.usage(1, 1)))
    assert (response.phase, response.outcome) == (Phase.OFF_LANE, Outcome.ABANDONED) and response.off_lane
    with pytest.raises(ResponseStateError, match=r"^conn#1/1: a response off its lane cannot become sent$"):
        response.become(Phase.SENT)
    with pytest.raises(ResponseStateError, match=r"^conn#1/1: a response abandoned cannot become ended$"):
        response.become(Outcome.ENDED)


def test_a_server_error_on_a_created_response_ends_it_for_its_owner_then_lets_it_go() -> None:
    d = Driver()
    response, _ = d.start()
    w = d.writer(response)
    d.feed(w.created())
    actions = d.feed(w.error("server_error", "broken off"))
    (failed,) = delivered(actions)
    assert isinstance(failed, Failed) and response.outcome is Outcome.ABANDONED and response.phase is Phase.SENT
    # Its end reaches the owner before the cancel goes out.
    assert [type(a) for a in actions if isinstance(a, Deliver | SendEvent)] == [Deliver, SendEvent]


def test_only_a_response_moves_its_own_lifecycle() -> None:
    """The session moves a response's states through ``become`` and ``let_go``: nothing else in the
    package assigns them (a class's own attributes of the same name, ``self.phase``, are its own)."""
    import ast
    from pathlib import Path

    import pipecat_responses_ws

    lifecycle = {"phase", "outcome", "abandoned_at"}
    writers = []
    for path in sorted(Path(pipecat_responses_ws.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and node.attr in lifecycle:
                    who = node.value.id if isinstance(node.value, ast.Name) else ast.unparse(node.value)
                    if who != "self" or path.name == "response.py":
                        writers.append(f"{path.name} {function.name}: {who}.{node.attr}")
    assert sorted(set(writers)) == [
        "response.py become: self.outcome",
        "response.py become: self.phase",
        "response.py let_go: self.abandoned_at",
    ]


def test_stuck_abandoned_lanes_are_retired_never_reused() -> None:
    d = Driver()
    response, _ = d.start()
    d.session.abandon(response, 0.0)
    assert [type(a) for a in d.session.retire_stuck(d.conn, 100.0)] == [Log]
    assert d.start()[0].lane != response.lane


def test_default_lane_request_scoped_errors_find_their_response_and_others_are_connection_level() -> None:
    d = Driver(named_lanes=False)
    old, _ = d.start()
    new, payload = d.start()
    assert "stream_id" not in payload
    d.feed(builders.ResponseEventWriter("resp_old", "m").created())
    d.session.abandon(old, 0.0)
    assert delivered(d.feed(builders.ResponseEventWriter("resp_old", "m").output_text_delta("m", 0, "x"))) == []
    not_found = delivered(d.feed(builders.error_event(wire.PREVIOUS_RESPONSE_NOT_FOUND, "gone")))
    assert len(not_found) == 1 and isinstance(not_found[0], Failed) and new.off_lane
    assert [type(a) for a in d.feed(builders.error_event("server_error", "hmm"))] == [Log, ReportError]


# -- a response's own events --------------------------------------------------------------------


def test_a_call_is_ready_once_at_its_item_done_and_broken_arguments_never_are() -> None:
    d = Driver()
    response, _ = d.start()
    w = d.writer(response)
    d.feed(w.created())
    d.feed(w.output_item_added(0, builders.function_call_item("fc_1", "call_1", "f", "", "in_progress")))
    assert delivered(d.feed(w.function_call_arguments_delta("fc_1", 0, '{"a"'))) == []
    ready = delivered(d.feed(w.output_item_done(0, builders.function_call_item("fc_1", "call_1", "f", '{"a": 1}'))))
    assert ready == [ToolCallReady("call_1", "f", {"a": 1})] and not response.replay_safe
    broken = delivered(d.feed(w.output_item_done(1, builders.function_call_item("fc_2", "call_2", "f", '{"a": '))))
    assert type(broken[0]).__name__ == "ToolCallRejected"
    finished = delivered(d.feed(w.completed(builders.usage(1, 2))))
    assert isinstance(finished[0], Finished) and len(finished[0].output) == 2


def test_events_that_change_nothing_still_show_the_response_is_alive() -> None:
    d = Driver()
    response, _ = d.start()
    assert [type(a) for a in d.feed(d.writer(response).created())] == [Touch]


# -- the defects a misbehaving server used to cause ----------------------------------------------


def test_a_delta_sent_twice_with_the_same_sequence_number_is_spoken_once() -> None:
    d = Driver()
    response, _ = d.start()
    w = d.writer(response)
    stream_text(d, w, ["One "])
    twice = w.output_text_delta("msg_1", 0, "two ")
    assert texts(d.feed(twice)) == ["two "]
    again = d.feed(twice)
    assert texts(again) == [] and any(isinstance(a, Log) and "sequence_number" in a.message for a in again)
    assert texts(d.feed(w.output_text_delta("msg_1", 0, "three."))) == ["three."]
    assert d.session.stats.events_skipped == 1


def test_a_response_numbered_from_where_the_servers_count_stands_is_spoken_in_order() -> None:
    # Some servers number a connection's events, not a response's: its first number is where its
    # count starts, and from there on the order holds as for one counted from 0.
    d = Driver()
    response, _ = d.start()
    w = d.writer(response)
    w._sequence = 57
    created = w.created()
    assert texts(stream_text(d, w, ["One "])) == ["One "] and created["sequence_number"] == 57
    assert texts(d.feed(created)) == [] and d.session.stats.events_skipped == 1
    lost, early = w.output_text_delta("msg_1", 0, "two "), w.output_text_delta("msg_1", 0, "three.")
    assert texts(d.feed(early)) == []  # held behind the one on its way
    assert texts(d.feed(lost)) == ["two ", "three."]


def test_a_delta_numbered_below_zero_while_a_gap_holds_text_back_is_never_spoken() -> None:
    # While events wait for a gap before them, no number is due (the response keeps -1 for it):
    # a frame claiming -1 must not pass as the one due.
    d = Driver()
    response, _ = d.start()
    w = d.writer(response)
    stream_text(d, w, ["One "])
    lost, early = w.output_text_delta("msg_1", 0, "two "), w.output_text_delta("msg_1", 0, "three ")
    assert texts(d.feed(early)) == []  # held behind the one on its way
    assert texts(d.feed({**early, "delta": "ghost ", "sequence_number": -1})) == []
    assert texts(d.feed(lost)) == ["two ", "three "]


def test_a_function_calls_item_done_sent_twice_runs_the_tool_once_and_the_group_still_closes() -> None:
    d = Driver()
    response, _ = d.start()
    w = d.writer(response)
    d.feed(w.created())
    d.feed(w.output_item_added(0, builders.function_call_item("fc_1", "call_1", "f", "", "in_progress")))
    done = w.output_item_done(0, builders.function_call_item("fc_1", "call_1", "f", "{}"))
    assert delivered(d.feed(done)) == [ToolCallReady("call_1", "f", {})]
    # A proxy repeating the frame byte for byte, and a server repeating the item with a new number.
    assert delivered(d.feed(done)) == []
    renumbered = w.output_item_done(0, builders.function_call_item("fc_1", "call_1", "f", "{}"))
    assert delivered(d.feed(renumbered)) == []
    assert d.session.tools.on_result({"tool_call_id": "call_1", "result": 1}) == []  # held for the group
    released = [a for a in d.feed(w.completed(builders.usage(1, 1))) if isinstance(a, ReleaseToolResults)]
    assert released and released[0].results[0]["tool_call_id"] == "call_1" and "run_llm" not in released[0].results[0]


def test_a_stray_delta_before_created_for_an_unannounced_item_is_not_spoken() -> None:
    d = Driver()
    response, _ = d.start()
    stray = {
        "type": wire.OUTPUT_TEXT_DELTA,
        "sequence_number": 0,
        "stream_id": response.lane,
        "item_id": "msg_stray",
        "output_index": 0,
        "content_index": 0,
        "delta": "stale ",
        "logprobs": [],
    }
    skipped = d.feed(stray)
    assert texts(skipped) == [] and any(isinstance(a, Log) and "never announced" in a.message for a in skipped)
    # The response's own stream, numbered from 0 again, is spoken whole.
    assert texts(stream_text(d, d.writer(response), ["Fresh ", "words."])) == ["Fresh ", "words."]


def test_a_server_that_never_sends_created_still_works() -> None:
    d = Driver()
    response, _ = d.start()
    w = d.writer(response)
    d.feed(w.output_item_added(0, builders.message_item("msg_1", "", "in_progress")))
    assert texts(d.feed(w.output_text_delta("msg_1", 0, "Hello."))) == ["Hello."]
    assert isinstance(delivered(d.feed(w.completed(builders.usage(1, 1))))[0], Finished)


def test_the_connection_limit_without_a_lane_resends_a_waiting_turn_on_a_fresh_connection_at_once() -> None:
    d = Driver()
    waiting, _ = d.start()
    streaming, _ = d.start()
    stream_text(d, d.writer(streaming, "resp_2"), ["Still "])
    actions = d.feed(builders.error_event(wire.CONNECTION_LIMIT_REACHED, "limit"))
    assert [a for a in actions if isinstance(a, Retire)] and not d.conn.usable
    retry = delivered(actions)
    assert len(retry) == 1 and isinstance(retry[0], Retry) and retry[0].fresh_connection
    assert waiting.ended and not streaming.ended  # an answer already streaming is left to finish
    assert d.session.open_response(d.conn, USER) is None  # nothing new starts on a spent connection
    fresh = d.session.connection("conn#2")
    again = d.session.open_response(fresh, USER, retry=retry[0])
    assert again is not None and again.retried.transport and not again.plan.incremental


def test_the_connection_limit_on_a_lane_retires_the_connection_too() -> None:
    d = Driver()
    response, _ = d.start()
    event = builders.error_event(wire.CONNECTION_LIMIT_REACHED, "limit", stream_id=response.lane)
    actions = d.feed(event)
    assert d.conn.status is ConnectionStatus.EXPIRED and [a for a in actions if isinstance(a, Retire)]
    assert isinstance(delivered(actions)[0], Retry)


def test_a_send_that_timed_out_closes_the_connection_and_names_the_send_phase() -> None:
    d = Driver()
    response, _ = d.start()
    actions = d.session.send_failed(response, "send blocked for 5s; connection dropped", 0.0)
    assert d.conn.closed and not d.conn.usable and [a for a in actions if isinstance(a, Retire)]
    retry = delivered(actions)[0]
    assert isinstance(retry, Retry) and retry.fresh_connection
    # The resend fails the same way: now it is the turn's error, and it names the phase.
    fresh = d.session.connection("conn#2")
    again = d.session.open_response(fresh, USER, retry=retry)
    assert again is not None
    d.session.create_event(again, {})
    failed = delivered(d.session.send_failed(again, "send blocked", 0.0))[0]
    assert isinstance(failed, Failed) and failed.error.phase == "send"


def test_an_error_quoting_the_key_is_reported_without_it() -> None:
    register_secret("sk-test-very-secret-1234")
    d = Driver()
    d.start()
    actions = d.feed(builders.error_event("invalid_api_key", "Incorrect API key provided: sk-test-very-secret-1234."))
    reported = [a.error for a in actions if isinstance(a, ReportError)]
    assert reported and "sk-test-very-secret-1234" not in str(reported[0]) and "<redacted>" in str(reported[0])
    assert redact("Authorization: Bearer abcdefghijklmnop") == "Authorization: Bearer <redacted>"
    assert redact("key sk-proj-ABCDEFGH12345678 leaked") == "key <redacted> leaked"
    assert redact("api-key: 0123456789abcdef") == "api-key: <redacted>"


def test_a_malformed_connection_level_event_is_logged_and_the_connection_goes_on() -> None:
    d = Driver()
    response, _ = d.start()
    actions = d.feed('{"type": "error", "error": "upstream reset", "status": "bad"}')
    assert [type(a) for a in actions] == [Log] and "malformed" in actions[0].message  # type: ignore[union-attr]
    assert d.conn.usable and texts(stream_text(d, d.writer(response), ["Fine."])) == ["Fine."]


def test_a_dropped_connection_names_its_close_code_and_reason() -> None:
    d = Driver()
    response, _ = d.start()
    stream_text(d, d.writer(response), ["Half "])
    actions = d.session.closed(d.conn, 1011, "keepalive ping timeout", 0.0)
    failed = delivered(actions)[0]
    assert isinstance(failed, Failed) and isinstance(failed.error, ConnectionLost)
    assert failed.error.close_code == 1011 and "close code 1011: keepalive ping timeout" in str(failed.error)
    assert d.session.closed(d.conn, 1011, "again", 0.0) == []  # told once


def test_a_drop_before_anything_was_spoken_is_replayed_once_and_only_once() -> None:
    d = Driver()
    response, _ = d.start()
    retry = delivered(d.session.closed(d.conn, 1006, "", 0.0))[0]
    assert isinstance(retry, Retry)
    fresh = d.session.connection("conn#2")
    again = d.session.open_response(fresh, USER, retry=retry)
    assert again is not None
    d.session.create_event(again, {})
    assert isinstance(delivered(d.session.closed(fresh, 1006, "", 0.0))[0], Failed)
    assert d.session.stats.transparent_retries == 1


def test_with_send_cancel_off_no_cancel_is_ever_sent() -> None:
    d = Driver(send_cancel=False)
    before_created, _ = d.start()
    after_created, _ = d.start()
    w_after = d.writer(after_created, "resp_2")
    d.feed(w_after.created())
    actions = d.session.abandon(before_created, 0.0) + d.session.abandon(after_created, 0.0)
    actions += d.feed(d.writer(before_created).created())  # its id shows up after the barge-in
    assert sends(actions) == [] and d.conn.stats.cancels_sent == 0


def test_a_cancel_owed_before_created_goes_out_when_the_id_shows_up() -> None:
    d = Driver()
    response, _ = d.start()
    assert d.session.abandon(response, 0.0) == []
    assert sends(d.feed(d.writer(response).created())) == [{"type": "response.cancel", "response_id": "resp_1"}]


def test_a_rejected_cancel_is_not_sent_again_on_that_connection() -> None:
    d = Driver()
    first, _ = d.start()
    d.feed(d.writer(first).created())
    d.session.abandon(first, 0.0)
    rejection = d.feed(builders.error_event(wire.UNKNOWN_EVENT, "Unknown event type 'response.cancel'"))
    assert [type(a) for a in rejection] == [Log] and not d.conn.cancel_supported
    second, _ = d.start()
    d.feed(d.writer(second, "resp_2").created())
    assert sends(d.session.abandon(second, 0.5)) == []


def test_a_missing_parent_falls_back_to_the_full_context_once() -> None:
    d = Driver()
    first, _ = d.start()
    w = d.writer(first)
    stream_text(d, w, ["Hello."])
    d.feed(w.output_item_done(0, builders.message_item("msg_1", "Hello.")))
    d.feed(w.completed(builders.usage(1, 1)))
    context = [*USER, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "more"}]
    second, payload = d.start(context)
    assert payload["previous_response_id"] == "resp_1" and len(payload["input"]) == 1
    miss = builders.error_event(wire.PREVIOUS_RESPONSE_NOT_FOUND, "gone", stream_id=second.lane)
    retry = delivered(d.feed(miss))[0]
    assert isinstance(retry, Retry) and retry.full_context and not retry.fresh_connection
    third = d.session.open_response(d.conn, context, retry=retry)
    assert third is not None and d.session.create_event(third, {})["input"] == context


def test_an_out_of_band_inference_goes_in_full_never_becomes_a_parent_and_runs_no_call() -> None:
    d = Driver()
    turn, _ = d.start()
    w = d.writer(turn)
    stream_text(d, w, ["Hello."])
    d.feed(w.output_item_done(0, builders.message_item("msg_1", "Hello.")))
    d.feed(w.completed(builders.usage(1, 1)))
    context = [*USER, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "more"}]
    inference, payload = d.start(context, out_of_band=True)
    assert "previous_response_id" not in payload and payload["input"] == context
    assert inference.lane != turn.lane  # the turn's lane keeps its cached answer
    wi = d.writer(inference, "resp_2")
    d.feed(wi.created())
    d.feed(wi.output_item_added(0, builders.function_call_item("fc_1", "call_1", "f", "", "in_progress")))
    done = d.feed(wi.output_item_done(0, builders.function_call_item("fc_1", "call_1", "f", "{}")))
    assert not [h for h in delivered(done) if isinstance(h, ToolCallReady)] and inference.calls_started == 0
    assert isinstance(delivered(d.feed(wi.completed(builders.usage(1, 1))))[0], Finished)
    _next, payload = d.start(context)
    assert payload["previous_response_id"] == "resp_1"  # the chain goes on from the turn
    assert d.session.stats.out_of_band_inferences == 1


@pytest.mark.parametrize("retry_on_timeout", [False, True])
def test_a_late_first_event_ends_the_turn_or_sends_it_again_once(retry_on_timeout: bool) -> None:
    d = Driver(retry_on_first_event_timeout=retry_on_timeout)
    first, _ = d.start()
    verdict = delivered(d.session.timed_out(first, "first_event", 1.0, d.now))[0]
    if not retry_on_timeout:
        assert isinstance(verdict, Failed)
        return
    assert isinstance(verdict, Retry) and verdict.after_timeout
    second = d.session.open_response(d.conn, USER, retry=verdict)
    assert second is not None
    d.session.create_event(second, {})
    assert isinstance(delivered(d.session.timed_out(second, "first_event", 1.0, d.now))[0], Failed)
    stalled, _ = d.start()
    d.feed(d.writer(stalled, "resp_9").created())
    assert isinstance(delivered(d.session.timed_out(stalled, "stall", 1.0, d.now))[0], Failed)


def test_a_retry_carries_every_kind_of_retry_the_turn_had() -> None:
    d = Driver(retry_on_first_event_timeout=True)
    first, _ = d.start()
    after_timeout = delivered(d.session.timed_out(first, "first_event", 1.0, d.now))[0]
    assert isinstance(after_timeout, Retry)
    second = d.session.open_response(d.conn, USER, retry=after_timeout)
    assert second is not None and second.retried == Retried(timeout=True)
    d.session.create_event(second, {})
    after_drop = delivered(d.session.closed(d.conn, 1006, "", d.now))[0]
    assert isinstance(after_drop, Retry) and after_drop.fresh_connection
    # The decision alone is what the next attempt needs: nothing of the earlier ones is lost.
    third = d.session.open_response(d.session.connection("conn#2"), USER, retry=after_drop)
    assert third is not None and third.retried == Retried(full_context=True, transport=True, timeout=True)


# -- endpoints without lanes --------------------------------------------------------------------


def laneless_writer(response_id: str = "resp_1") -> builders.ResponseEventWriter:
    return builders.ResponseEventWriter(response_id, "m")  # what a server that ignores stream_id sends


def test_auto_finds_lanes_where_the_server_echoes_them() -> None:
    d = Driver(named_lanes=None)
    probe, payload = d.start([], generate=False)
    assert payload["stream_id"] == probe.lane and d.conn.lanes is None
    actions = d.feed(d.writer(probe).created())
    assert d.conn.lanes is True and any(isinstance(a, Log) and "lanes supported" in a.message for a in actions)
    assert d.session.open_response(d.conn, USER) is not None and d.conn.router.named


def test_auto_goes_lane_free_where_the_server_ignores_stream_id_and_keeps_the_answer() -> None:
    d = Driver(named_lanes=None)
    probe, _ = d.start([], generate=False)
    w = laneless_writer()
    actions = d.feed(w.created())
    assert d.conn.lanes is False and not d.conn.router.named
    assert any(isinstance(a, Log) and "no lanes" in a.message for a in actions)
    assert isinstance(delivered(d.feed(w.completed(builders.usage(1, 0))))[0], Finished)
    turn, payload = d.start()
    assert "stream_id" not in payload and payload["previous_response_id"] == "resp_1"
    assert texts(stream_text(d, laneless_writer("resp_2"), ["Hi."])) == ["Hi."]
    # Said once: a second connection finding the same is not news.
    other = d.session.connection("conn#2")
    second = d.session.open_response(other, [], generate=False)
    assert second is not None
    d.session.create_event(second, {})
    assert not [a for a in d.feed(laneless_writer("resp_3").created(), other) if isinstance(a, Log)]


def test_auto_goes_lane_free_where_the_server_refuses_stream_id_and_resends_without_it() -> None:
    d = Driver(named_lanes=None)
    turn, payload = d.start()
    assert "stream_id" in payload
    refusal = builders.error_event("unknown_parameter", "Unknown parameter: 'stream_id'.", param="stream_id")
    retry = delivered(d.feed(refusal))
    assert d.conn.lanes is False and len(retry) == 1 and isinstance(retry[0], Retry)
    assert not retry[0].fresh_connection and not retry[0].full_context and d.conn.usable
    again = d.session.open_response(d.conn, USER, retry=retry[0])
    assert again is not None and "stream_id" not in d.session.create_event(again, {})


def test_a_lane_gone_silent_while_events_come_without_one_ends_the_turn_saying_so() -> None:
    d = Driver(named_lanes=None)
    first, _ = d.start()
    w = d.writer(first)
    d.feed(w.created())
    d.feed(w.completed(builders.usage(1, 1)))
    assert d.conn.lanes is True
    turn, _ = d.start()
    # A proxy in front starts dropping the lane: nothing without it is spoken, the lanes stay.
    assert texts(stream_text(d, laneless_writer("resp_2"), ["Whose ", "words?"])) == []
    assert d.conn.lanes is True and d.conn.router.named and d.session.stats.stray_events == 5
    actions = d.session.timed_out(turn, "first_event", 2.0, 2.0)
    failed = [h for h in delivered(actions) if isinstance(h, Failed)]
    assert failed and "5 events without stream_id were dropped" in str(failed[0].error)
    assert [a for a in actions if isinstance(a, Retire)] and not d.conn.usable  # the next turn takes a fresh one


def test_forced_lanes_on_a_server_without_them_say_why_once() -> None:
    d = Driver(named_lanes=True)
    d.start()
    first = d.feed(laneless_writer().created())
    assert [a for a in first if isinstance(a, Log) and a.level == "WARNING" and "lanes='auto'" in a.message]
    assert not [a for a in d.feed(laneless_writer().in_progress()) if isinstance(a, Log) and a.level == "WARNING"]


def test_a_barge_in_without_lanes_moves_to_a_spare_unless_cancel_is_known_to_stop_the_answer() -> None:
    d = Driver(named_lanes=False)
    turn, _ = d.start()
    w = laneless_writer()
    stream_text(d, w, ["Once "])
    actions = d.session.abandon(turn, 0.0)
    retire = [a for a in actions if isinstance(a, Retire)]
    assert retire and retire[0].soon and not d.conn.usable and sends(actions)  # cancel sent as well
    assert d.session.stats.barge_ins_to_spare == 1
    # The cancelled answer ended at once: this endpoint honours cancel, so the next barge-in stays.
    d.now = 0.05
    d.feed(w.cancelled(builders.usage(1, 1)))
    assert d.session.cancel_honoured is True
    spare = d.session.connection("conn#2")
    d.session.taken_over(spare)
    nxt = d.session.open_response(spare, [*USER, {"role": "user", "content": "stop"}])
    assert nxt is not None
    d.session.create_event(nxt, {})
    assert d.session.stats.input_items_resent == 2
    d.session.receive(spare, ev.parse_event(json.dumps(laneless_writer("resp_2").created())), 0.1)
    stays = d.session.abandon(nxt, 0.2)
    assert not [a for a in stays if isinstance(a, Retire)] and sends(stays) and spare.usable
    assert d.session.stats.barge_ins_on_same_connection == 1


def test_an_ignored_cancel_keeps_barge_ins_on_spares() -> None:
    d = Driver(named_lanes=False)
    turn, _ = d.start()
    stream_text(d, laneless_writer(), ["Once "])
    d.session.abandon(turn, 0.0)
    d.session.closed(d.conn, 1000, "closed by the client", 1.0)  # the grace ran out, no terminal
    assert d.session.cancel_honoured is False


def test_one_event_without_its_lane_after_lanes_worked_never_mixes_two_answers() -> None:
    d = Driver(named_lanes=None)
    abandoned, _ = d.start()
    wa = d.writer(abandoned, "resp_a")
    stream_text(d, wa, ["Cancelled "])
    assert d.conn.lanes is True
    d.session.abandon(abandoned, 0.0)
    turn, _ = d.start()
    wb = d.writer(turn, "resp_b")
    d.feed(wb.created())
    actions = d.feed(laneless_writer("resp_x").in_progress())  # a proxy dropped the field once
    assert d.conn.router.named and d.conn.usable and not [a for a in actions if isinstance(a, Retire)]
    assert d.session.stats.stray_events == 1
    assert texts(d.feed(wa.output_text_delta("msg_1", 0, "answer "))) == []
    d.feed(wb.output_item_added(0, builders.message_item("msg_b", "", "in_progress")))
    assert texts(d.feed(wb.output_text_delta("msg_b", 0, "Fresh."))) == ["Fresh."]


def test_after_the_switch_the_probe_is_the_connections_one_cached_response() -> None:
    d = Driver(named_lanes=None)
    probe, _ = d.start([], generate=False)
    w = laneless_writer("resp_warm")
    d.feed(w.created())
    d.feed(w.completed(builders.usage(1, 0)))
    assert probe.lane is None and d.conn.chains.staleness(None) > 0 and len(d.conn.chains) == 1
    d.start()  # the turn continues from it and takes its place
    assert len(d.conn.chains) == 0


def test_a_stuck_abandoned_answer_without_lanes_retires_the_connection() -> None:
    d = Driver(named_lanes=False)
    d.session.cancel_honoured = True  # barge-ins stay on the connection
    turn, _ = d.start()
    stream_text(d, laneless_writer(), ["Once "])
    assert not [a for a in d.session.abandon(turn, 0.0) if isinstance(a, Retire)]
    actions = d.session.retire_stuck(d.conn, 100.0)
    assert [a for a in actions if isinstance(a, Retire) and a.soon] and not d.conn.usable


def stray_writer() -> builders.ResponseEventWriter:
    return builders.ResponseEventWriter("resp_stray", "m")  # another stream's events, their lane lost


@pytest.mark.parametrize("warm_up", [True, False], ids=["lanes found by a warm-up", "lanes found by the turn"])
def test_stray_events_on_a_connection_whose_lanes_work_are_dropped_never_spoken_never_an_end(warm_up: bool) -> None:
    d = Driver(named_lanes=None)
    if warm_up:
        probe, _ = d.start([], generate=False)
        d.feed(d.writer(probe, "resp_warm").created())
        d.feed(d.writer(probe, "resp_warm").completed(builders.usage(1, 0)))
    turn, _ = d.start()
    w = d.writer(turn)
    words = ["one ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight."]
    actions = stream_text(d, w, words[:3])
    assert d.conn.lanes is True
    stray = d.feed(stray_writer().output_text_delta("msg_stray", 0, "STRAY "))
    stray += d.feed(stray_writer().completed(builders.usage(1, 1)))
    assert not delivered(stray) and d.conn.lanes is True and d.conn.router.named and d.conn.usable
    warnings = [a for a in stray if isinstance(a, Log) and a.level == "WARNING"]
    assert len(warnings) == 1 and "stray" in warnings[0].message  # said once, then counted
    assert d.session.stats.stray_events == 2 and d.conn.stray_events == 2
    for word in words[3:]:
        actions += d.feed(w.output_text_delta("msg_1", 0, word))
    actions += d.feed(w.completed(builders.usage(1, 8)))
    assert texts(actions) == words and isinstance(delivered(actions)[-1], Finished)


def test_a_terminal_naming_another_response_does_not_end_this_one() -> None:
    d = Driver(named_lanes=False)
    turn, _ = d.start()
    w = laneless_writer()
    actions = stream_text(d, w, ["one "])
    other = stray_writer()
    other._sequence = 4  # numbered as this response's next event would be: only its id tells
    stray = d.feed(other.completed(builders.usage(1, 1)))
    assert not delivered(stray) and not turn.ended and d.session.stats.events_skipped == 1
    actions += d.feed(w.output_text_delta("msg_1", 0, "two."))
    assert texts(actions) == ["one ", "two."]


def test_forced_lanes_on_a_server_that_ignores_stream_id_end_the_turn_at_once_saying_what_to_set() -> None:
    d = Driver(named_lanes=True)
    d.start()
    actions = d.feed(laneless_writer().created())
    failed = [h for h in delivered(actions) if isinstance(h, Failed)]
    assert len(failed) == 1
    message = str(failed[0].error)
    assert "ignores stream_id" in message and "lanes='auto'" in message and "lanes=False" in message
    assert "no event for" not in message


def test_forced_lanes_refused_by_the_server_end_the_turn_at_once() -> None:
    d = Driver(named_lanes=True)
    d.start()
    refusal = builders.error_event("unknown_parameter", "Unknown parameter: 'stream_id'.", param="stream_id")
    failed = delivered(d.feed(refusal))
    assert len(failed) == 1 and isinstance(failed[0], Failed) and "stream_id" in str(failed[0].error)


# -- order ----------------------------------------------------------------------------------------


def numbered(w: builders.ResponseEventWriter, words: list[str]) -> list[dict[str, Any]]:
    """A text answer's events in the order the server numbers them."""
    events = [w.created(), w.in_progress(), w.output_item_added(0, builders.message_item("msg_1", "", "in_progress"))]
    events += [w.output_text_delta("msg_1", 0, word) for word in words]
    return [*events, w.completed(builders.usage(1, len(words)))]


WORDS = ["one ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight."]


def test_deltas_swapped_on_the_way_are_spoken_in_order_every_word_once() -> None:
    d = Driver()
    turn, _ = d.start()
    events = numbered(d.writer(turn), WORDS)
    deltas = events[3:-1]
    swapped = [deltas[i + 1 - 2 * (i % 2)] for i in range(len(deltas))]  # every two swap places
    actions: list[Action] = []
    for event in [*events[:3], *swapped, events[-1]]:
        actions += d.feed(event)
    assert texts(actions) == WORDS and isinstance(delivered(actions)[-1], Finished)
    assert d.session.stats.events_reordered == 4 and not [
        a for a in actions if isinstance(a, Log) and a.level == "WARNING"
    ]


def test_a_gap_mid_answer_is_reported_naming_the_response_and_what_was_lost_and_the_answer_goes_on() -> None:
    d = Driver()
    turn, _ = d.start()
    events = numbered(d.writer(turn, "resp_gap"), WORDS)
    lost = events.pop(6)  # "four ", sequence_number 6
    actions: list[Action] = []
    for event in events:
        actions += d.feed(event)
    assert texts(actions) == [w for w in WORDS if w != "four "]
    warnings = [a.message for a in actions if isinstance(a, Log) and a.level == "WARNING"]
    assert (
        len(warnings) == 1 and "resp_gap" in warnings[0] and f"sequence_number {lost['sequence_number']}" in warnings[0]
    )
    assert isinstance(delivered(actions)[-1], Finished) and d.session.stats.sequence_gaps == 1
    # Arriving after it was given up on, it is not spoken out of its place.
    assert texts(d.feed(lost)) == []


def test_a_gap_before_anything_was_spoken_sends_the_turn_again_once() -> None:
    d = Driver()
    turn, _ = d.start()
    events = numbered(d.writer(turn, "resp_gap"), WORDS)
    del events[3]  # the first word
    actions: list[Action] = []
    for event in events[: 3 + REORDER_WINDOW + 1]:
        actions += d.feed(event)
    retry = [h for h in delivered(actions) if isinstance(h, Retry)]
    assert texts(actions) == [] and len(retry) == 1 and retry[0].after_gap and turn.outcome is Outcome.ABANDONED
    assert sends(actions) == [{"type": wire.RESPONSE_CANCEL, "response_id": "resp_gap"}]
    rest = []
    for event in events[3 + REORDER_WINDOW + 1 :]:
        rest += d.feed(event)
    assert not delivered(rest) and turn.off_lane  # its end, once it came, freed the lane
    again = d.session.open_response(d.conn, USER, retry=retry[0])
    assert again is not None and again.retried.gap
    d.session.create_event(again, {})
    second = numbered(d.writer(again, "resp_again"), WORDS)
    del second[3]
    actions = []
    for event in second:
        actions += d.feed(event)
    assert texts(actions) == WORDS[1:] and isinstance(delivered(actions)[-1], Finished)  # once, not again


def test_a_gap_the_terminal_gives_up_on_before_anything_was_spoken_frees_the_lane_too() -> None:
    d = Driver()
    turn, _ = d.start()
    events = numbered(d.writer(turn), ["Short ", "answer."])
    del events[3]
    actions: list[Action] = []
    for event in events:
        actions += d.feed(event)
    assert texts(actions) == [] and [h for h in delivered(actions) if isinstance(h, Retry)]
    assert turn.off_lane and d.conn.is_quiet()


def test_unknown_and_malformed_events_of_a_response_hold_their_place_in_its_order() -> None:
    d = Driver()
    turn, _ = d.start()
    w = d.writer(turn)
    actions = stream_text(d, w, ["one "])
    d.feed({"type": "response.output_text.annotation.added", "sequence_number": 4, "stream_id": turn.lane})
    d.feed({"type": "response.output_item.added", "sequence_number": 5, "stream_id": turn.lane, "item": "x"})
    w._sequence += 2  # the two events above took their numbers
    for word in WORDS[1:]:
        actions += d.feed(w.output_text_delta("msg_1", 0, word))
    assert texts(actions) == WORDS and d.session.stats.sequence_gaps == 0


def test_the_protocol_core_does_no_io() -> None:
    import ast
    from pathlib import Path

    import pipecat_responses_ws.protocol as protocol

    forbidden = ("asyncio", "websockets", "pipecat", "loguru", "socket", "time")
    for path in Path(protocol.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            assert not [n for n in names if n.split(".")[0] in forbidden], f"{path.name} imports {names}"


# -- one HTTP request per response ---------------------------------------------------------------


def test_an_http_barge_in_closes_the_stream_and_sends_nothing() -> None:
    d = Driver()
    request = d.session.http_request("http#1")
    response = d.session.open_response(request, USER)
    assert response is not None and response.lane is None
    payload = d.session.create_event(response, {"model": "m"})
    assert "stream_id" not in payload and "generate" not in payload
    d.feed(builders.ResponseEventWriter("resp_1", "m").created(), request)
    actions = d.session.abandon(response, 1.0)
    assert not [a for a in actions if isinstance(a, SendEvent)]  # no response.cancel: closing the stream stops it
    assert [(a.connection, a.soon) for a in actions if isinstance(a, Retire)] == [(request, True)]
    assert d.session.stats.barge_ins_to_spare == 0 and d.session.stats.barge_ins_on_same_connection == 0


def test_http_requests_sharing_chains_continue_the_last_stored_response() -> None:
    d = Driver()
    chains = d.session.connection("unused").chains
    first = d.session.http_request("http#1", chains)
    response = d.session.open_response(first, USER)
    assert response is not None
    d.session.create_event(response, {"model": "m"})
    w = builders.ResponseEventWriter("resp_1", "m")
    d.feed(w.created(), first)
    d.feed(w.completed(builders.usage(1, 1)), first)
    follow_up = [*USER, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]
    nxt = d.session.open_response(d.session.http_request("http#2", chains), follow_up)
    alone = d.session.open_response(d.session.http_request("http#3"), follow_up)
    assert nxt is not None and nxt.plan.previous_response_id == "resp_1"
    assert alone is not None and alone.plan.previous_response_id is None and len(alone.plan.input) == 3


def test_an_error_status_ends_the_request_a_missing_parent_once_with_the_full_context() -> None:
    d = Driver()
    request = d.session.http_request("http#1")
    refused_key = d.session.open_response(request, USER)
    assert refused_key is not None
    d.session.create_event(refused_key, {"model": "m"})
    (failed,) = delivered(
        d.session.refused(refused_key, ev.ServerError(code="invalid_api_key", message="no", status=401), 0)
    )
    assert isinstance(failed, Failed) and "API key" in str(failed.error) and refused_key.off_lane

    chains = d.session.connection("unused").chains
    chains.record("resp_0", None, chains.plan(USER), [])
    request = d.session.http_request("http#2", chains)
    child = d.session.open_response(request, [*USER, {"role": "user", "content": "more"}])
    assert child is not None and child.plan.previous_response_id == "resp_0"
    d.session.create_event(child, {"model": "m"})
    missing = ev.ServerError(
        code=wire.PREVIOUS_RESPONSE_NOT_FOUND, message="not found", status=400, param="previous_response_id"
    )
    (retry,) = delivered(d.session.refused(child, missing, 0))
    assert isinstance(retry, Retry) and retry.full_context and len(chains) == 0
