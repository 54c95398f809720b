"""``pipecat-responses-ws serve`` in a subprocess, and the pytest plugin's ``emulator`` fixture."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys

import pytest
import websockets
from emu_helpers import validate_events
from openai import AsyncOpenAI
from websockets.exceptions import InvalidStatus

from pipecat_responses_ws.cli import build_parser
from pipecat_responses_ws.emulator import Emulator


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
async def test_serve_runs_until_terminated() -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from pipecat_responses_ws.cli import main; sys.exit(main())",
        "serve", "--port", str(port), "--api-key", "sk-cli", "--ttft", "0.01", "--tokens-per-second", "500",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            lines = [(await process.stdout.readline()).decode() for _ in range(2)]
        assert lines == [f"ws_url:   ws://127.0.0.1:{port}/v1/responses\n", f"base_url: ws://127.0.0.1:{port}/v1\n"]
        url = lines[0].split()[-1]
        events = []
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer sk-cli"}) as ws:
            await ws.send(json.dumps({"type": "response.create", "input": "ping", "stream_id": "cli"}))
            while not events or events[-1]["type"] != "response.completed":
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        validate_events(events)
        assert "".join(e.get("delta", "") for e in events).startswith("You said: ping.")
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert b"sk-cli" not in stderr


@pytest.mark.slow
async def test_serve_refusing_websocket_still_answers_http() -> None:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from pipecat_responses_ws.cli import main; sys.exit(main())",
        "serve", "--port", str(port), "--websocket", "refuse",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            lines = [(await process.stdout.readline()).decode() for _ in range(3)]
        assert lines[2] == f"http_base_url: http://127.0.0.1:{port}/v1\n"
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(lines[0].split()[-1], additional_headers={"Authorization": "Bearer k"})
        assert refused.value.response.status_code == 426
        async with AsyncOpenAI(api_key="k", base_url=lines[2].split()[-1], max_retries=0) as client:
            response = await client.responses.create(model="m", input="ping")
        assert response.output_text.startswith("You said: ping.")
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()


def test_parser_has_serve_and_room_for_more_commands() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "--port", "0", "--cancel-policy", "honor", "--jitter", "0.2"])
    chosen = (args.command, args.port, args.cancel_policy, args.jitter, args.host)
    assert chosen == ("serve", 0, "honor", 0.2, "127.0.0.1")
    with pytest.raises(SystemExit):
        parser.parse_args([])


async def test_plugin_fixture_yields_a_started_emulator(emulator: Emulator) -> None:
    async with websockets.connect(emulator.ws_url, additional_headers={"Authorization": "Bearer x"}) as ws:
        await ws.send(json.dumps({"type": "response.create", "input": "hi", "generate": False}))
        events = [json.loads(await ws.recv()) for _ in range(3)]
    assert [e["type"] for e in events][-1] == "response.completed"
    assert emulator.settings.ttft == 0.05 and emulator.connection_count == 1
    validate_events([s.event for s in emulator.records.sent()])
