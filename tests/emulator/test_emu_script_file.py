"""Script files: replies and faults as JSON, read into the dataclasses and served by ``serve --script``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import websockets
from emu_helpers import validate_events
from openai import AsyncOpenAI

from pipecat_responses_ws.emulator import Fault, Reply, ToolCall
from pipecat_responses_ws.emulator.script import ScriptFile, ScriptFileError, load_script, parse_script

CLI = [sys.executable, "-c", "import sys; from pipecat_responses_ws.cli import main; sys.exit(main())"]
TERMINALS = ("response.completed", "response.failed", "response.incomplete")


def test_a_script_reads_into_the_dataclasses() -> None:
    script = parse_script(
        {
            "replies": [
                {"text": "Hi", "ttft": 1, "reasoning": "Think first."},
                {"calls": [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": "{oops"}, {"name": "c"}]},
                {"text": None, "fault": {"kind": "stall", "seconds": 0.5, "after_events": 3}},
            ],
            "faults": [{"kind": "fail", "code": "server_error", "count": 2}],
        }
    )
    assert script == ScriptFile(
        replies=[
            Reply(text="Hi", ttft=1.0, reasoning="Think first."),
            Reply(calls=[ToolCall("a", {"x": 1}), ToolCall("b", "{oops"), ToolCall("c")]),
            Reply(fault=Fault("stall", seconds=0.5, after_events=3)),
        ],
        faults=[Fault("fail", code="server_error", count=2)],
    )
    assert isinstance(script.replies[0].ttft, float)
    assert parse_script({}) == ScriptFile()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"text": "x"}], "f.json: expected an object, got a list"),
        ({"reply": []}, "f.json: unknown field 'reply'; expected one of replies, faults"),
        ({"replies": {"text": "x"}}, "f.json: replies: expected a list, got an object"),
        ({"replies": [{"text": "a"}, {"txt": "b"}]}, "f.json: replies[1]: unknown field 'txt'; expected one of text,"),
        ({"replies": [{"calls": [{"arguments": {}}]}]}, "f.json: replies[0].calls[0]: missing field 'name'"),
        (
            {"replies": [{"calls": [{"name": "x", "arguments": 3}]}]},
            "f.json: replies[0].calls[0].arguments: expected an object or a string, got the number 3",
        ),
        ({"replies": [{"ttft": "fast"}]}, "f.json: replies[0].ttft: expected a number or null, got the string 'fast'"),
        ({"replies": [{"fault": {"kind": "stall", "seconds": True}}]}, "f.json: replies[0].fault.seconds: expected a"),
        ({"replies": [{"argument_delta_chars": 0}]}, "f.json: replies[0]: argument_delta_chars must be None or a"),
        ({"faults": [{"kind": "explode"}]}, "f.json: faults[0]: unknown fault kind 'explode'"),
        ({"faults": [{"kind": "fail", "count": 0}]}, "f.json: faults[0]: a fault must apply to at least one"),
    ],
)
def test_a_wrong_script_names_the_entry_and_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(ScriptFileError) as wrong:
        parse_script(data, source="f.json")
    assert str(wrong.value).startswith(message)
    assert "\n" not in str(wrong.value)


def test_a_file_that_is_not_json_or_not_there_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"replies": [\n  {"text": "a"}\n  {"text": "b"}]}')
    with pytest.raises(ScriptFileError, match=rf"^{broken}: not JSON: Expecting ',' delimiter at line 3 column 3$"):
        load_script(broken)
    with pytest.raises(ScriptFileError, match=rf"^{tmp_path / 'absent.json'}: cannot be read: No such file"):
        load_script(tmp_path / "absent.json")


# A subprocess (a second or so, importing Pipecat): in the slow tier, as the CLI's other error
# subprocesses are. The message is checked in process above, the one line and exit 2 in test_cli_errors.
@pytest.mark.slow
async def test_serve_with_a_wrong_script_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    script = tmp_path / "wrong.json"
    script.write_text(json.dumps({"replies": [{"text": "ok"}, {"calls": [{"name": 7}]}]}))
    process = await asyncio.create_subprocess_exec(
        *CLI, "serve", "--port", "0", "--script", str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    assert process.returncode == 2
    assert stdout == b""
    # Before it, only what importing Pipecat logs (its banner).
    assert stderr.decode().splitlines()[-1] == (
        f"serve: {script}: replies[1].calls[0].name: expected a string, got the number 7"
    )
    assert b"Traceback" not in stderr


async def test_serve_plays_the_script_in_order_over_websocket_and_http(tmp_path: Path) -> None:
    script = tmp_path / "conversation.json"
    script.write_text(
        json.dumps(
            {
                "replies": [
                    {"text": "Hello from the script."},
                    {"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
                    {"text": "This one stops early.", "fault": {"kind": "incomplete"}},
                ],
                "faults": [{"kind": "stray_error", "code": "server_error"}],
            }
        )
    )
    process = await asyncio.create_subprocess_exec(
        *CLI, "serve", "--port", "0", "--ttft", "0.01", "--tokens-per-second", "500", "--script", str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            lines = [(await process.stdout.readline()).decode() for _ in range(3)]
        ws_url, http_base_url = lines[0].split()[-1], lines[2].split()[-1]

        async with websockets.connect(ws_url, additional_headers={"Authorization": "Bearer k"}) as ws:
            first = await _response(ws, {"type": "response.create", "model": "m", "input": "Hi"})
            second = await _response(ws, {"type": "response.create", "model": "m", "input": "Weather?"})
        validate_events([e for e in first + second if e["type"] != "error"])
        # The queued fault goes to the first generated response; the reply's text is untouched by it.
        assert [e["error"]["code"] for e in first if e["type"] == "error"] == ["server_error"]
        assert "".join(e.get("delta", "") for e in first if e["type"] == "response.output_text.delta") == (
            "Hello from the script."
        )
        calls = [e["item"] for e in second if e["type"] == "response.output_item.done"]
        assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("get_weather", {"city": "Paris"})]

        async with AsyncOpenAI(api_key="k", base_url=http_base_url, max_retries=0) as client:
            third = await client.responses.create(model="m", input="Go on")
            fourth = await client.responses.create(model="m", input="And now?")
        assert (third.status, third.incomplete_details and third.incomplete_details.reason) == (
            "incomplete",
            "max_output_tokens",
        )
        # Past the script's end, the scripted model answers.
        assert fourth.output_text.startswith("You said: And now.")
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()


async def _response(ws: websockets.ClientConnection, create: dict[str, Any]) -> list[dict[str, Any]]:
    await ws.send(json.dumps(create))
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] not in TERMINALS:
        events.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    return events
