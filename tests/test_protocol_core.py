"""The pure protocol core: lane routing, accumulation, incremental input and the tool-result gate."""

from __future__ import annotations

from pipecat_responses_ws.protocol import accumulator as acc
from pipecat_responses_ws.protocol import wire
from pipecat_responses_ws.protocol.chain import ServerChains
from pipecat_responses_ws.protocol.lanes import LaneRouter, RouteKind
from pipecat_responses_ws.tool_results import ToolResultGate


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def _call(call_id: str, name: str = "get_weather", args: str = '{"city": "Oslo"}') -> dict:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": args}


def _out(call_id: str, output: str = '"sunny"') -> dict:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def _server_message(text: str) -> dict:
    return wire.message_item("msg_x", text)


def _server_call(call_id: str) -> dict:
    # The server's own serialisation differs from the aggregator's json.dumps.
    return wire.function_call_item(f"fc_{call_id}", call_id, "get_weather", '{"city":"Oslo"}')


# -- lanes -------------------------------------------------------------------------------------


def test_events_route_by_lane_and_abandoned_lanes_drop_until_their_terminal() -> None:
    router = LaneRouter()
    first, second = router.open(), router.open()
    assert first is not None and second is not None and first.lane != second.lane
    writer = wire.ResponseEventWriter("resp_1", "m", stream_id=first.lane)
    assert router.route(writer.created()).request is first
    assert router.abandon(first, now=0.0) is True  # the id is known: a cancel can go now
    delta = router.route(writer.output_text_delta("msg", 0, "stale "))
    assert delta.kind is RouteKind.DROP
    other = wire.ResponseEventWriter("resp_2", "m", stream_id=second.lane)
    assert router.route(other.created()).kind is RouteKind.DELIVER
    end = router.route(writer.completed(wire.usage(1, 1)))
    assert end.kind is RouteKind.DROP and end.finished
    assert router.open().lane == first.lane  # freed by its terminal, reused


def test_abandoned_before_created_owes_a_cancel_when_the_id_shows_up() -> None:
    router = LaneRouter()
    request = router.open()
    assert router.abandon(request, now=0.0) is False
    route = router.route(wire.ResponseEventWriter("resp_9", "m", stream_id=request.lane).created())
    assert route.cancel_owed and route.kind is RouteKind.DROP


def test_pool_grows_only_while_every_lane_is_busy_and_stops_at_the_limits() -> None:
    router = LaneRouter(max_named_lanes=3)
    requests = [router.open() for _ in range(3)]
    assert all(requests) and router.open() is None  # lane budget spent: caller must rotate
    router.withdraw(requests[0])
    assert router.open().lane == requests[0].lane
    assert LaneRouter(max_in_flight=1).open() is not None


def test_connection_level_errors_are_not_routed_to_a_lane() -> None:
    router = LaneRouter()
    router.open()
    assert router.route(wire.error_event(wire.UNKNOWN_EVENT, "nope")).kind is RouteKind.CONNECTION


def test_default_lane_queues_and_request_scoped_errors_find_their_request() -> None:
    router = LaneRouter(named=False)
    old, new = router.open(), router.open()
    router.route(wire.ResponseEventWriter("resp_old", "m").created())
    router.abandon(old, now=0.0)
    assert router.route(wire.ResponseEventWriter("resp_old", "m").output_text_delta("m", 0, "x")).kind is RouteKind.DROP
    not_found = router.route(wire.error_event(wire.PREVIOUS_RESPONSE_NOT_FOUND, "gone"))
    assert not_found.request is new and not_found.finished
    assert router.route(wire.error_event("server_error", "hmm")).kind is RouteKind.CONNECTION


def test_stuck_abandoned_lanes_are_retired_never_reused() -> None:
    router = LaneRouter()
    request = router.open()
    router.abandon(request, now=0.0)
    assert router.retire_stuck(now=100.0, older_than=30.0) == [request]
    assert router.open().lane != request.lane


# -- accumulator -------------------------------------------------------------------------------


def test_a_call_is_ready_at_its_item_done_and_broken_arguments_never_are() -> None:
    a = acc.ResponseAccumulator()
    w = wire.ResponseEventWriter("resp_1", "m")
    assert isinstance(a.feed(w.created()), acc.Started)
    added = a.feed(w.output_item_added(0, wire.function_call_item("fc_1", "call_1", "f", "", "in_progress")))
    assert added == acc.ToolCallAnnounced("call_1", "f")
    assert a.feed(w.function_call_arguments_delta("fc_1", 0, '{"a"')) is None
    ready = a.feed(w.output_item_done(0, wire.function_call_item("fc_1", "call_1", "f", '{"a": 1}')))
    assert ready == acc.ToolCallReady("call_1", "f", {"a": 1})
    broken = a.feed(w.output_item_done(1, wire.function_call_item("fc_2", "call_2", "f", '{"a": ')))
    assert isinstance(broken, acc.ToolCallRejected)
    finished = a.feed(w.completed(wire.usage(1, 2)))
    assert isinstance(finished, acc.Finished) and finished.status == "completed" and len(finished.output) == 2


def test_failed_and_incomplete_carry_their_codes() -> None:
    w = wire.ResponseEventWriter("resp_1", "m")
    failed = acc.ResponseAccumulator().feed(w.failed("server_error", "boom"))
    assert (failed.status, failed.error_code, failed.error_message) == ("failed", "server_error", "boom")
    incomplete = acc.ResponseAccumulator().feed(w.incomplete("max_output_tokens"))
    assert (incomplete.status, incomplete.error_code) == ("incomplete", "max_output_tokens")


# -- incremental input -------------------------------------------------------------------------


def test_a_plain_follow_up_sends_only_the_new_user_message() -> None:
    chains = ServerChains()
    first = chains.plan([_user("hi")])
    assert not first.incremental
    chains.record("resp_1", "lane-0", first, first.input, [_server_message("Hello there!")])
    plan = chains.plan([_user("hi"), _assistant("Hello  there!"), _user("bye")])
    assert plan.previous_response_id == "resp_1" and plan.input == [_user("bye")]


def test_parallel_calls_with_interleaved_outputs_send_just_the_outputs() -> None:
    chains = ServerChains()
    first = chains.plan([_user("weather in Oslo and Rome")])
    chains.record("resp_1", "lane-0", first, first.input, [_server_call("c1"), _server_call("c2")])
    context = [_user("weather in Oslo and Rome"), _call("c1"), _out("c1"), _call("c2"), _out("c2")]
    plan = chains.plan(context)
    assert plan.previous_response_id == "resp_1"
    assert plan.input == [_out("c1"), _out("c2")]
    # And the next turn still continues from the follow-up, with outputs sent out of place.
    chains.record("resp_2", "lane-1", plan, plan.input, [_server_message("Sunny in both.")])
    nxt = chains.plan([*context, _assistant("Sunny in both."), _user("thanks")])
    assert nxt.previous_response_id == "resp_2" and nxt.input == [_user("thanks")]


def test_barge_in_continues_from_the_last_response_the_context_still_agrees_with() -> None:
    chains = ServerChains()
    first = chains.plan([_user("hi")])
    chains.record("resp_1", "lane-0", first, first.input, [_server_message("Hello!")])
    second = chains.plan([_user("hi"), _assistant("Hello!"), _user("tell me a story")])
    chains.claim_lane("lane-1")
    chains.record("resp_2", "lane-1", second, second.input, [_server_message("Once upon a time there was")])
    # The user heard only the first words; the context keeps what was spoken.
    context = [_user("hi"), _assistant("Hello!"), _user("tell me a story"), _assistant("Once upon"), _user("stop")]
    plan = chains.plan(context)
    assert plan.previous_response_id == "resp_1"
    assert plan.input == context[2:]


def test_a_lane_about_to_be_reused_is_never_a_parent_and_misses_are_forgotten() -> None:
    chains = ServerChains()
    plan = chains.plan([_user("hi")])
    chains.record("resp_1", "lane-0", plan, plan.input, [_server_message("Hello!")])
    context = [_user("hi"), _assistant("Hello!"), _user("more")]
    assert chains.plan(context).incremental
    chains.forget("resp_1")
    assert not chains.plan(context).incremental
    chains.record("resp_1", "lane-0", plan, plan.input, [_server_message("Hello!")])
    chains.claim_lane("lane-0")
    assert not chains.plan(context).incremental


def test_an_edited_history_falls_back_to_the_full_context() -> None:
    chains = ServerChains()
    plan = chains.plan([_user("hi")])
    chains.record("resp_1", None, plan, plan.input, [_server_message("Hello!")])
    edited = [_user("hello"), _assistant("Hello!"), _user("more")]
    assert chains.plan(edited).input == edited


# -- tool results ------------------------------------------------------------------------------


def test_results_wait_for_the_group_and_only_the_last_one_asks_for_a_follow_up() -> None:
    gate = ToolResultGate()
    gate.add_call("r1", "c1")
    assert gate.on_result({"tool_call_id": "c1", "result": 1}) == []  # the response may announce more
    gate.add_call("r1", "c2")
    released = gate.close("r1")
    assert [r["tool_call_id"] for r in released] == ["c1"] and released[0]["run_llm"] is False
    last = gate.on_result({"tool_call_id": "c2", "result": 2})
    assert last == [{"tool_call_id": "c2", "result": 2}]  # run_llm left to Pipecat: triggers


def test_an_abandoned_group_records_results_without_a_follow_up() -> None:
    gate = ToolResultGate()
    gate.add_call("r1", "c1")
    gate.add_call("r1", "c2")
    gate.on_result({"tool_call_id": "c1", "result": 1})
    assert gate.close("r1", run_llm=False)[0]["run_llm"] is False
    assert gate.on_result({"tool_call_id": "c2", "result": 2})[0]["run_llm"] is False
    assert gate.on_result({"tool_call_id": "unknown", "result": 3}) == [{"tool_call_id": "unknown", "result": 3}]
