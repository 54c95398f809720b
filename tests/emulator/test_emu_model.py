"""The scripted model and the script queues, without a socket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipecat_responses_ws.emulator import Fault, Reply, ToolCall
from pipecat_responses_ws.emulator.model import PlannedCall, PlannedText, arguments_for, plan_from_reply, respond
from pipecat_responses_ws.emulator.script import Script

FORECAST = {
    "type": "function",
    "name": "get_forecast",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "verbose": {"type": "boolean"},
        },
    },
}
TIME = {
    "type": "function",
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
}


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _calls(text: str, **request: Any) -> list[tuple[str, dict[str, Any]]]:
    plan = respond([_user(text)], {"tools": [FORECAST, TIME], **request})
    return [(p.name, json.loads(p.arguments)) for p in plan if isinstance(p, PlannedCall)]


def test_plain_answer_echoes_the_user() -> None:
    assert respond([_user("  What is up?  ")], {}) == [
        PlannedText("You said: What is up. That is a fine thing to talk about. Let me know what else you need.")
    ]
    assert respond([], {}) == [PlannedText("Hello! How can I help you today?")]
    long = " ".join(str(n) for n in range(100))
    assert respond([_user(long)], {})[0].text.startswith("You said: " + " ".join(str(n) for n in range(30)) + ".")


def test_tool_outputs_are_summarised() -> None:
    items = [
        _user("weather?"),
        {"type": "function_call", "call_id": "c1", "name": "get_forecast", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "Sunny."},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "12:00"}]},
    ]
    assert respond(items, {"tools": [FORECAST]}) == [PlannedText("Here is what I found: Sunny. 12:00.")]


def test_named_tools_are_called_in_the_order_named() -> None:
    assert _calls("What is the get time in Paris, and the forecast? get_forecast for Oslo 3 days") == [
        ("get_time", {"zone": "Oslo"}),
        ("get_forecast", {"city": "Oslo", "days": 3, "unit": "celsius"}),
    ]
    assert _calls("GET FORECAST city is Bergen, unit fahrenheit") == [
        ("get_forecast", {"city": "Bergen", "days": 0, "unit": "fahrenheit"})
    ]
    assert _calls("nothing to look up") == []


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "parameters": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
    },
}


def _called(text: str, *tools: dict[str, Any]) -> list[str]:
    return [p.name for p in respond([_user(text)], {"tools": list(tools)}) if isinstance(p, PlannedCall)]


def test_a_tool_sharing_a_content_word_with_the_message_is_called() -> None:
    plan = respond([_user("What's the weather like in San Francisco?")], {"tools": [WEATHER]})
    assert plan == [PlannedCall("get_weather", json.dumps({"location": "Francisco", "unit": "celsius"}))]
    assert _calls("forecast please") == [("get_forecast", {"city": "unknown", "days": 0, "unit": "celsius"})]
    # Case, plurals and camelCase names.
    assert _called("Any FORECASTS for Oslo?", FORECAST) == ["get_forecast"]
    assert _called("Which cities are sunny?", {"type": "function", "name": "listCity"}) == ["listCity"]
    assert _called("what time is it in the HTTP server", {"type": "function", "name": "getHTTPServerTime"}) == [
        "getHTTPServerTime"
    ]


def test_stop_words_and_tool_verbs_call_nothing() -> None:
    assert _called("Can you get me what I need, please?", WEATHER, FORECAST, TIME) == []
    assert _called("Tell me a joke", WEATHER) == []


def test_tools_are_called_in_the_order_of_their_first_shared_word() -> None:
    assert _called("What time is it, and what's the weather?", WEATHER, TIME) == ["get_time", "get_weather"]
    assert _called("Weather first, then the time", TIME, WEATHER) == ["get_weather", "get_time"]


def test_descriptions_count_only_when_no_name_shares_a_word() -> None:
    assert _called("Where is my location right now?", WEATHER, TIME) == ["get_weather"]
    # "current" is in the weather tool's description, but "time" names get_time.
    assert _called("What is the current time?", WEATHER, TIME) == ["get_time"]


def test_tool_choice_and_parallel_tool_calls() -> None:
    assert _calls("get_time and get_forecast", parallel_tool_calls=False) == [("get_time", {"zone": "unknown"})]
    assert _calls("get_time", tool_choice="none") == []
    assert [name for name, _ in _calls("nothing named", tool_choice="required")] == ["get_forecast"]
    forced = {"type": "function", "name": "get_time"}
    assert _calls("get_forecast in Rome", tool_choice=forced) == [("get_time", {"zone": "Rome"})]


def test_arguments_rule() -> None:
    schema = FORECAST["parameters"]
    assert arguments_for(schema, "days 2.5 city: Lima") == {"city": "Lima", "days": 2, "unit": "celsius"}
    assert arguments_for({"properties": {"t": {"type": "number"}}}, "about -3.5 degrees") == {"t": -3.5}
    assert arguments_for({}, "x") == {}


def test_chat_completions_tool_shape_is_read() -> None:
    nested = {"type": "function", "function": {"name": "lookup", "parameters": {"properties": {}}}}
    assert respond([_user("please lookup")], {"tools": [nested]}) == [PlannedCall("lookup", "{}")]


def test_reply_plan_keeps_text_first_and_verbatim_arguments() -> None:
    reply = Reply(text="Hi", calls=[ToolCall("a", {"x": 1}), ToolCall("b", "{oops")])
    assert plan_from_reply(reply) == [PlannedText("Hi"), PlannedCall("a", '{"x": 1}'), PlannedCall("b", "{oops")]
    assert plan_from_reply(Reply()) == []


def test_script_queues() -> None:
    script = Script()
    assert script.take() == (None, None)
    fail, stall = Fault("fail", count=2), Fault("stall")
    script.add_fault(fail)
    script.add_fault(stall)
    own = Fault("drop")
    script.queue_replies(Reply(text="a"), Reply(text="b", fault=own))
    assert script.take() == (Reply(text="a"), fail)
    assert script.take() == (Reply(text="b", fault=own), own)
    assert script.take() == (None, fail)
    assert script.take() == (None, stall)
    assert script.take() == (None, None)


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")
    with pytest.raises(ValueError):
        Fault("fail", count=0)
