"""The examples are built and run here so they cannot rot: each is imported from its file, the voice
bots are wired with fake keys and a fake websocket (never started, so no network), and the console
chat runs end to end on the embedded emulator. ``examples/test_my_bot.py`` is collected through
``testpaths``, not from here, so it runs once. The voice bots need the ``examples`` extra (Daily,
FastAPI, uvicorn); where it is not installed their tests are skipped and say so.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.processors.aggregators.llm_response_universal import LLMAssistantAggregator, LLMUserAggregator
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

from pipecat_responses_ws import ResponsesWSLLMService

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NO_EXTRA = 'the examples extra is not installed (pip install -e ".[examples]")'


def needs(*modules: str) -> None:
    """Skip, saying why, unless the voice bots' own dependencies are importable."""
    for name in modules:
        pytest.importorskip(name, reason=f"needs {name}: {NO_EXTRA}")


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` by path, as a user running the file would get it."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flatten(processor: FrameProcessor) -> list[FrameProcessor]:
    """Every processor in a pipeline, nested pipelines opened, in order."""
    found = [processor]
    for child in processor.processors:
        found += flatten(child)
    return found


def stages(worker: Any) -> list[FrameProcessor]:
    """The processors between the worker's own source and sink, without wrappers."""
    names = ("Pipeline", "PipelineSource", "PipelineSink", "RTVIProcessor")
    return [p for p in flatten(worker.pipeline) if type(p).__name__ not in names]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a bot must not open a connection; any attempt fails the test."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("building a bot tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


class FakeWebSocket:
    """Just enough of FastAPI's WebSocket for building a transport and reading Twilio's first messages."""

    headers: dict[str, str] = {}

    def __init__(self, messages: list[dict[str, Any]] | None = None) -> None:
        self._messages = [json.dumps(m) for m in messages or []]

    async def receive_text(self) -> str:
        return self._messages.pop(0)


# -- Daily ------------------------------------------------------------------------------------


async def test_daily_bot_is_wired_in_order_without_touching_the_network(no_network: None) -> None:
    needs("daily")
    from pipecat.transports.daily.transport import DailyInputTransport, DailyOutputTransport

    bot = load("daily_voice_bot")
    worker = bot.build_bot("https://example.daily.co/test-room", None, "sk-test", llm_model="gpt-test")

    kinds = [type(p) for p in stages(worker)]
    assert kinds == [
        DailyInputTransport,
        OpenAISTTService,
        LLMUserAggregator,
        ResponsesWSLLMService,
        OpenAITTSService,
        DailyOutputTransport,
        LLMAssistantAggregator,
    ]
    llm = next(p for p in stages(worker) if isinstance(p, ResponsesWSLLMService))
    assert llm._settings.model == "gpt-test"
    assert llm.has_function("get_weather")
    user = next(p for p in stages(worker) if isinstance(p, LLMUserAggregator))
    assert isinstance(user._params.vad_analyzer, SileroVADAnalyzer)
    stop = user._params.user_turn_strategies.stop
    assert [type(s) for s in stop] == [TurnAnalyzerUserTurnStopStrategy]


def test_daily_main_explains_missing_settings(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    needs("daily")
    monkeypatch.delenv("DAILY_ROOM_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert load("daily_voice_bot").main() == 2
    assert "DAILY_ROOM_URL" in capsys.readouterr().err


# -- Twilio -----------------------------------------------------------------------------------


async def test_twilio_bot_is_wired_for_8_khz_phone_audio(no_network: None) -> None:
    needs("fastapi")
    from pipecat.serializers.twilio import TwilioFrameSerializer
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketInputTransport, FastAPIWebsocketOutputTransport

    bot = load("twilio_phone_bot")
    worker = bot.build_bot(FakeWebSocket(), "MZ0001", "CA0001", api_key="sk-test")

    kinds = [type(p) for p in stages(worker)]
    assert kinds == [
        FastAPIWebsocketInputTransport,
        OpenAISTTService,
        LLMUserAggregator,
        ResponsesWSLLMService,
        OpenAITTSService,
        FastAPIWebsocketOutputTransport,
        LLMAssistantAggregator,
    ]
    assert worker.params.audio_in_sample_rate == worker.params.audio_out_sample_rate == 8000
    serializer = stages(worker)[0]._params.serializer
    assert isinstance(serializer, TwilioFrameSerializer)
    assert serializer._stream_sid == "MZ0001" and not serializer._params.auto_hang_up  # no credentials given


def test_twilio_bot_hangs_up_only_with_credentials(no_network: None) -> None:
    needs("fastapi")
    bot = load("twilio_phone_bot")
    worker = bot.build_bot(FakeWebSocket(), "MZ1", "CA1", api_key="sk-test", account_sid="AC1", auth_token="t")
    assert stages(worker)[0]._params.serializer._params.auto_hang_up


async def test_twilio_app_answers_the_webhook_and_reads_the_stream_start() -> None:
    needs("fastapi")
    bot = load("twilio_phone_bot")
    app = bot.create_app(api_key="sk-test", public_host="bot.example.com")
    routes = {getattr(r, "path", None): r for r in app.routes}
    assert "/ws" in routes

    response = await routes["/twiml"].endpoint()
    body = response.body.decode()
    assert response.media_type == "application/xml"
    assert re.search(r'<Connect><Stream url="wss://bot\.example\.com/ws" ?/></Connect>', body), body

    twilio = FakeWebSocket(
        [
            {"event": "connected", "protocol": "Call", "version": "1.0.0"},
            {"event": "start", "streamSid": "MZ9", "start": {"streamSid": "MZ9", "callSid": "CA9"}},
        ]
    )
    assert await bot.read_twilio_start(twilio) == ("MZ9", "CA9")


def test_twilio_main_explains_missing_settings(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    needs("fastapi")
    monkeypatch.delenv("PUBLIC_HOST", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert load("twilio_phone_bot").main() == 2
    assert "PUBLIC_HOST" in capsys.readouterr().err


# -- console chat -----------------------------------------------------------------------------


@pytest.mark.slow
def test_console_chat_runs_on_the_emulator_as_a_user_would_run_it() -> None:
    """``python examples/console_chat.py --emulator``, typed lines on stdin, no key, loopback only."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "console_chat.py"), "--emulator"],
        input="Hello there\nget weather in Oslo please\n\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    echo = "You said: Hello there. That is a fine thing to talk about. Let me know what else you need."
    assert lines[1] == f"you: bot: {echo}"
    assert lines[2].startswith("you: bot: [get_weather(city='Oslo')] Here is what I found: ")
    assert '"forecast": "sunny"' in lines[2]
    assert lines[3] == "you: "  # the empty line ends the chat


async def test_console_chat_reports_an_error_instead_of_waiting_forever() -> None:
    """A refused key must not leave the prompt hanging: the error ends the turn."""
    from pipecat_responses_ws.emulator import Emulator

    chat = load("console_chat")
    lines = ["Hello?"]

    async def read_line() -> str | None:
        return lines.pop(0) if lines else None

    out = io.StringIO()
    async with Emulator(api_key="the-right-key") as emulator:
        llm = chat.create_llm(emulator.ws_url, api_key="a-wrong-key")
        await asyncio.wait_for(chat.chat(llm, read_line, out), timeout=30)
    assert "[error:" in out.getvalue()


# -- CI ---------------------------------------------------------------------------------------


def test_the_suite_collects_the_user_test_example_and_ci_installs_the_examples_extra() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "examples" in config["tool"]["pytest"]["ini_options"]["testpaths"]
    assert "examples" in config["project"]["optional-dependencies"]
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert '".[test,examples]"' in ci_command
    assert f"```bash\n{ci_command}\n```" in (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_without_the_examples_extra_the_voice_bot_tests_skip_and_say_why(tmp_path: Path) -> None:
    """This file run as on a machine without Daily, FastAPI and uvicorn (their imports refused)."""
    (tmp_path / "no_examples_extra.py").write_text(
        "import sys\n\nfor name in ('daily', 'fastapi', 'uvicorn'):\n    sys.modules[name] = None\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no_examples_extra", "-q", "-rs",
         str(Path(__file__)), "-k", "daily or twilio"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    assert "6 skipped" in done.stdout and "failed" not in done.stdout, done.stdout + done.stderr
    assert 'needs daily: the examples extra is not installed (pip install -e ".[examples]")' in done.stdout
    assert "needs fastapi" in done.stdout
