"""What the emulator sends is valid against the Open Responses specification's own schemas.

Every event of every emulator in these tests is also checked at teardown (``conftest.py``); the
tests here read the objects as a client receives them, on each road: the JSON answer of
``POST /responses``, its server-sent events, and WebSocket frames.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from emu_helpers import Connect, MakeEmulator, terminal_of
from spec_schema import check_event, check_response

from pipecat_responses_ws.emulator import Emulator, Fault, Reply, ToolCall
from pipecat_responses_ws.protocol import wire

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HEADERS = {"Authorization": "Bearer k", "Content-Type": "application/json"}


async def _post(emu: Emulator, body: dict[str, Any]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        answer = await http.post(f"{emu.http_base_url}/responses", data=json.dumps(body), headers=HEADERS)
        return answer.status, await answer.text()


def _sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: {")]


async def test_a_json_answer_is_a_response_resource_with_integer_timestamps_and_normalized_tools(
    emu: Emulator,
) -> None:
    status, text = await _post(emu, {"model": "m", "input": "Hello there", "tools": [WEATHER_TOOL]})
    assert status == 200
    response = json.loads(text)
    check_response(response)
    assert type(response["created_at"]) is int and type(response["completed_at"]) is int
    assert response["completed_at"] >= response["created_at"]
    # Echoed as the API echoes a function tool sent without them: strict on, no description.
    assert response["tools"] == [{**WEATHER_TOOL, "description": None, "strict": True}]
    assert (response["temperature"], response["top_p"], response["truncation"]) == (1.0, 1.0, "disabled")


async def test_request_settings_are_echoed_as_sent(emu: Emulator) -> None:
    settings = {
        "temperature": 0.2,
        "top_p": 0.5,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.3,
        "top_logprobs": 2,
        "truncation": "auto",
        "max_tool_calls": 4,
        "service_tier": "flex",
        "safety_identifier": "user-7",
        "prompt_cache_key": "voice-bot",
        "metadata": {"call": "42"},
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"verbosity": "low"},
        "tools": [{**WEATHER_TOOL, "strict": False, "description": "Weather."}],
    }
    status, text = await _post(emu, {"model": "m", "input": "Hello there", **settings})
    assert status == 200
    response = json.loads(text)
    check_response(response)
    echoed = {name: response[name] for name in settings}
    assert echoed == {**settings, "text": {"format": {"type": "text"}, "verbosity": "low"}}


async def test_every_server_sent_event_and_its_response_are_valid(emu: Emulator) -> None:
    emu.queue_replies(Reply(text="Checking.", calls=[ToolCall("get_weather", {"city": "Oslo"})], reasoning="Think."))
    status, text = await _post(emu, {"model": "m", "input": "Weather?", "tools": [WEATHER_TOOL], "stream": True})
    assert status == 200
    events = _sse_events(text)
    assert events[-1]["type"] == wire.COMPLETED
    assert {"reasoning", "message", "function_call"} == {e["item"]["type"] for e in events if "item" in e}
    for event in events:
        check_event(event, websocket=False)
    completed = events[-1]["response"]
    assert type(completed["completed_at"]) is int
    assert (
        events[0]["response"]["completed_at"] is None
        and events[0]["response"]["created_at"] == (completed["created_at"])
    )


async def test_websocket_events_of_every_ending_are_valid(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator()
    peer = await connect(emu)
    emu.queue_replies(Reply(text="One two three.", calls=[ToolCall("get_weather", {"city": "Oslo"})]))
    await peer.create(model="m", input="Hi", tools=[WEATHER_TOOL], store=False, stream_id="a")
    completed = await peer.response()
    emu.add_fault(Fault("fail", after_events=4))
    await peer.create(model="m", input="Hi", store=False)
    failed = await peer.response()
    emu.add_fault(Fault("incomplete", after_events=4))
    await peer.create(model="m", input="Hi", store=False)
    incomplete = await peer.response()
    await peer.create(model="m", input="Hi", store=False, previous_response_id="resp_missing")
    refused = await peer.until(lambda e: e["type"] == wire.ERROR)

    assert [terminal_of(events)["response"]["status"] for events in (completed, failed, incomplete)] == [
        "completed",
        "failed",
        "incomplete",
    ]
    for event in [*completed, *failed, *incomplete, *refused]:
        check_event(event, websocket=True)
    assert terminal_of(failed)["response"]["completed_at"] is None
    assert terminal_of(completed)["response"]["tools"][0]["strict"] is True
