"""The pure protocol core: incremental input and the tool-result gate (the session has its own tests)."""

from __future__ import annotations

import pytest

from pipecat_responses_ws.emulator import builders
from pipecat_responses_ws.protocol.chain import InputPlan, ServerChains
from pipecat_responses_ws.protocol.items import ConversationKeys, item_key
from pipecat_responses_ws.protocol.tool_results import ToolResultGate


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def _call(call_id: str, name: str = "get_weather", args: str = '{"city": "Oslo"}') -> dict:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": args}


def _out(call_id: str, output: str = '"sunny"') -> dict:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def _server_message(text: str) -> dict:
    return builders.message_item("msg_x", text)


def _server_call(call_id: str) -> dict:
    # The server's own serialisation differs from the aggregator's json.dumps.
    return builders.function_call_item(f"fc_{call_id}", call_id, "get_weather", '{"city":"Oslo"}')


# -- incremental input -------------------------------------------------------------------------


def test_a_plain_follow_up_sends_only_the_new_user_message() -> None:
    chains = ServerChains()
    first = chains.plan([_user("hi")])
    assert not first.incremental
    chains.record("resp_1", "lane-0", first, [_server_message("Hello there!")])
    plan = chains.plan([_user("hi"), _assistant("Hello  there!"), _user("bye")])
    assert plan.previous_response_id == "resp_1" and plan.input == [_user("bye")]


def test_parallel_calls_with_interleaved_outputs_send_just_the_outputs() -> None:
    chains = ServerChains()
    first = chains.plan([_user("weather in Oslo and Rome")])
    chains.record("resp_1", "lane-0", first, [_server_call("c1"), _server_call("c2")])
    context = [_user("weather in Oslo and Rome"), _call("c1"), _out("c1"), _call("c2"), _out("c2")]
    plan = chains.plan(context)
    assert plan.previous_response_id == "resp_1"
    assert plan.input == [_out("c1"), _out("c2")]
    # And the next turn still continues from the follow-up, with outputs sent out of place.
    chains.record("resp_2", "lane-1", plan, [_server_message("Sunny in both.")])
    nxt = chains.plan([*context, _assistant("Sunny in both."), _user("thanks")])
    assert nxt.previous_response_id == "resp_2" and nxt.input == [_user("thanks")]


def test_barge_in_continues_from_the_last_response_the_context_still_agrees_with() -> None:
    chains = ServerChains()
    first = chains.plan([_user("hi")])
    chains.record("resp_1", "lane-0", first, [_server_message("Hello!")])
    second = chains.plan([_user("hi"), _assistant("Hello!"), _user("tell me a story")])
    chains.claim_lane("lane-1")
    chains.record("resp_2", "lane-1", second, [_server_message("Once upon a time there was")])
    # The user heard only the first words; the context keeps what was spoken.
    context = [_user("hi"), _assistant("Hello!"), _user("tell me a story"), _assistant("Once upon"), _user("stop")]
    plan = chains.plan(context)
    assert plan.previous_response_id == "resp_1"
    assert plan.input == context[2:]


def test_a_lane_about_to_be_reused_is_never_a_parent_and_misses_are_forgotten() -> None:
    chains = ServerChains()
    plan = chains.plan([_user("hi")])
    chains.record("resp_1", "lane-0", plan, [_server_message("Hello!")])
    context = [_user("hi"), _assistant("Hello!"), _user("more")]
    assert chains.plan(context).incremental
    chains.forget("resp_1")
    assert not chains.plan(context).incremental
    chains.record("resp_1", "lane-0", plan, [_server_message("Hello!")])
    chains.claim_lane("lane-0")
    assert not chains.plan(context).incremental


def test_an_edited_history_falls_back_to_the_full_context() -> None:
    chains = ServerChains()
    plan = chains.plan([_user("hi")])
    chains.record("resp_1", None, plan, [_server_message("Hello!")])
    edited = [_user("hello"), _assistant("Hello!"), _user("more")]
    assert chains.plan(edited).input == edited


@pytest.mark.parametrize("sent", ["planned", "whole"])
def test_a_response_is_recorded_with_the_input_it_was_sent_even_if_the_context_changes_after(sent: str) -> None:
    chains = ServerChains()
    history = [_user("hi")]
    plan = chains.plan(history) if sent == "planned" else InputPlan.whole(history)  # a turn sent again in full
    history[0]["content"] = "hello"  # edited in place after the request went out
    chains.record("resp_1", None, plan, [_server_message("Hello!")])
    # The server holds "hi", not "hello": the edited history cannot continue from it.
    assert not chains.plan([*history, _assistant("Hello!"), _user("more")]).incremental
    # What was sent still continues.
    follow_up = chains.plan([_user("hi"), _assistant("Hello!"), _user("more")])
    assert follow_up.previous_response_id == "resp_1" and follow_up.input == [_user("more")]


def test_a_history_keyed_again_reuses_only_the_keys_of_items_that_did_not_change() -> None:
    keys = ConversationKeys()
    history = [_user("hi"), _assistant("Hello there, how"), _user("more")]
    assert keys.of(history) == [item_key(item) for item in history]
    # The next turn: the same items as new objects, two more at the end.
    grown = [dict(item) for item in history] + [_call("c1"), _out("c1")]
    assert keys.of(grown) == [item_key(item) for item in grown]
    # A barge-in's cut: the answer as spoken replaces the one generated; what follows it is new.
    cut = [_user("hi"), _assistant("Hello there"), _user("stop")]
    assert keys.of(cut) == [item_key(item) for item in cut]
    # An item edited in place is keyed again, though it is the very object keyed before.
    cut[0]["content"] = "hello"
    assert keys.of(cut)[0] == item_key(_user("hello"))
    # Shorter, then something that is not JSON as it stands: still every item's own key.
    odd = [_user("hi"), {"type": "function_call_output", "call_id": "c1", "output": object()}]
    assert keys.of(odd[:1]) == [item_key(odd[0])]
    assert keys.of(odd)[1][:2] == ("function_call_output", "c1")
    assert keys.of([_user("hi")]) == [item_key(_user("hi"))]


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
