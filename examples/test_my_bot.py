"""What your own tests can look like: your bot's pipeline against the emulator, offline, no key.

Installing pipecat-responses-ws gives pytest an ``emulator`` fixture: a started local Responses
WebSocket server whose model says what you queue (``Reply``), tool calls included. Point the
service at ``emulator.ws_url`` and run the pipeline your bot runs. The interruption harness then
puts the same LLM stage through seeded barge-ins, tools and faults and counts broken promises.

Run it from the repository root (needs the ``testing`` extra: ``pip install -e ".[testing]"``)::

    pytest examples/test_my_bot.py

"My bot" here is ``console_chat.py`` next to this file; import your own module instead.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Awaitable, Callable

import pytest
from console_chat import chat, create_llm

from pipecat_responses_ws.emulator import Emulator, Reply, ToolCall
from pipecat_responses_ws.harness import run_scenario, scenarios

# The plugin marks tests that use the emulator fixture itself; the harness test below uses none.
pytestmark = pytest.mark.asyncio  # harmless where asyncio_mode is "auto", needed where it is "strict"


def scripted(*lines: str) -> Callable[[], Awaitable[str | None]]:
    """The user's side of the chat: these lines, then the end of input."""
    queue = list(lines)

    async def read_line() -> str | None:
        return queue.pop(0) if queue else None

    return read_line


async def test_my_bot_answers_and_uses_its_tool(emulator: Emulator) -> None:
    emulator.queue_replies(
        Reply(text="Hello! Ask me about the weather."),
        Reply(calls=[ToolCall("get_weather", {"city": "Paris"})]),
        Reply(text="It is sunny and 21 degrees in Paris."),
    )
    out = io.StringIO()
    llm = create_llm(emulator.ws_url, api_key="test-key", model="test-model")

    await chat(llm, scripted("Hi!", "What's the weather in Paris?"), out)

    transcript = out.getvalue()
    assert "bot: Hello! Ask me about the weather.\n" in transcript
    assert "bot: [get_weather(city='Paris')] It is sunny and 21 degrees in Paris.\n" in transcript
    # What the model was sent: my tool on every generated request, and the tool's result.
    generated = [c for c in emulator.records.creates() if c.get("generate") is not False]
    assert all(any(t.get("name") == "get_weather" for t in c.get("tools", [])) for c in generated)
    outputs = [i["output"] for c in generated for i in c.get("input", []) if i.get("type") == "function_call_output"]
    assert [json.loads(o) for o in outputs] == [{"city": "Paris", "forecast": "sunny", "temperature_c": 21}]


async def test_my_bot_keeps_every_promise_under_barge_ins() -> None:
    """Seeded conversations with barge-ins at every phase, parallel and chained tools, and faults.

    Each run starts its own emulator and a fresh service from the factory (anything taking the
    emulator's ``ws_url``): the same check as ``PYTHONPATH=examples OPENAI_API_KEY=test
    pipecat-responses-ws harness --service console_chat:create_llm --seed 7 --runs 4 --faults some``.
    """
    factory = functools.partial(create_llm, api_key="test-key", model="test-model")
    for scenario in scenarios(seed=7, runs=4, faults=True):
        result = await run_scenario(factory, scenario, service_name="my bot")
        assert result.total_violations == 0, (scenario.describe(), result.violations, result.note)
