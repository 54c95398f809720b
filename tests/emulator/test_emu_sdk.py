"""The official SDK talks to the emulator unchanged."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from emu_helpers import MakeEmulator, validate_events
from openai import AsyncOpenAI
from openai.resources.responses.responses import AsyncResponsesConnection

from pipecat_responses_ws.emulator import Emulator, Reply, ToolCall

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


async def _collect(conn: AsyncResponsesConnection) -> list[Any]:
    events = []
    async for event in conn:
        events.append(event)
        if event.type in ("response.completed", "response.failed", "response.incomplete"):
            return events
    raise AssertionError("the connection ended before a terminal event")


async def test_sdk_streams_text_then_function_call_then_tool_answer(emu: Emulator) -> None:
    client = AsyncOpenAI(api_key="sk-test", websocket_base_url=emu.base_url)
    async with client.responses.connect() as conn:
        await conn.response.create(model="gpt-test", input="Hello there", store=False)
        first = await _collect(conn)
        assert "".join(e.delta for e in first if e.type == "response.output_text.delta") == (
            "You said: Hello there. That is a fine thing to talk about. Let me know what else you need."
        )
        assert first[-1].response.model == "gpt-test"

        await conn.response.create(
            model="gpt-test",
            input="What does get_weather say for Oslo?",
            tools=[WEATHER_TOOL],
            previous_response_id=first[-1].response.id,
            store=False,
        )
        second = await _collect(conn)
        calls = [e.item for e in second if e.type == "response.output_item.done"]
        assert [(c.type, c.name, json.loads(c.arguments)) for c in calls] == [
            ("function_call", "get_weather", {"city": "Oslo"})
        ]

        output = {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21 degrees"}
        await conn.response.create(
            model="gpt-test", input=[output], previous_response_id=second[-1].response.id, store=False
        )
        third = await _collect(conn)
        assert third[-1].response.output_text == "Here is what I found: Sunny, 21 degrees."

    assert emu.records.handshakes[0].headers["user-agent"].startswith("AsyncOpenAI/Python")
    assert "sk-test" not in repr(emu.records.handshakes[0])


async def test_sdk_scripted_reply_and_raw_recv_validate(emu: Emulator) -> None:
    emu.queue_replies(Reply(text="Checking.", calls=[ToolCall("lookup", {"q": "x"}), ToolCall("lookup", "{bad")]))
    client = AsyncOpenAI(api_key="sk-test", websocket_base_url=emu.base_url)
    async with client.responses.connect() as conn:
        await conn.response.create(model="m", input="hi", stream_id="lane-1")
        raw = []
        while True:
            event = json.loads(await conn.recv_bytes())
            raw.append(event)
            if event["type"] == "response.completed":
                break
    validate_events(raw)
    assert all(e["stream_id"] == "lane-1" for e in raw)
    output = raw[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["message", "function_call", "function_call"]
    assert [item.get("arguments") for item in output[1:]] == ['{"q": "x"}', "{bad"]


async def test_sdk_reconnects_after_the_age_limit_and_cache_is_gone(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(max_connection_age=0.4)
    closes: list[int] = []
    client = AsyncOpenAI(api_key="sk-test", websocket_base_url=emu.base_url)
    manager = client.responses.connect(on_reconnecting=lambda e: closes.append(e.close_code), initial_delay=0.05)
    async with manager as conn:
        await conn.response.create(model="m", input="before", store=False)
        first = await _collect(conn)
        events = aiter(conn)
        limit = await anext(events)
        assert limit.type == "error" and limit.error.code == "websocket_connection_limit_reached"
        # The SDK reconnects only while it is being read, so keep reading while the new socket opens.
        reader = asyncio.create_task(anext(events))
        await emu.records.wait_for(lambda: emu.connection_count == 2)
        await conn.response.create(model="m", input="after", store=False, previous_response_id=first[-1].response.id)
        missed = await asyncio.wait_for(reader, 5)
        assert missed.type == "error" and missed.error.code == "previous_response_not_found"
    assert closes == [1011]
