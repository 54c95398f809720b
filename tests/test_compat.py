"""What compat.py relies on, checked against the Pipecat and websockets installed.

Each test names what the installed version no longer has when it fails; the package's own tests
of tools, parity and speculation would fail too, less clearly.
"""

from __future__ import annotations

import asyncio
import inspect
import tomllib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import websockets
from packaging.requirements import Requirement
from pipecat.frames.frames import (
    Frame,
    FunctionCallResultProperties,
    FunctionCallsStartedFrame,
)
from pipecat.services.llm_service import FunctionCallFromLLM, LLMService
from pipecat.services.settings import LLMSettings
from websockets.asyncio.server import ServerConnection, serve

from pipecat_responses_ws import ResponsesWSLLMService, compat
from pipecat_responses_ws.emulator import Emulator
from pipecat_responses_ws.harness.pipeline import Conversation

PIPECAT = f"pipecat-ai {version('pipecat-ai')}"
WEBSOCKETS = f"websockets {version('websockets')}"


class Recording(ResponsesWSLLMService):
    """The service, keeping every ``broadcast_frame`` call Pipecat's runner makes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.broadcasts: list[tuple[type[Frame], dict[str, Any]]] = []

    async def broadcast_frame(self, frame_cls: type[Frame], **kwargs: Any) -> None:
        self.broadcasts.append((frame_cls, kwargs))
        await super().broadcast_frame(frame_cls, **kwargs)


@asynccontextmanager
async def pipeline() -> AsyncIterator[tuple[Recording, Conversation]]:
    async with Emulator() as emu:
        llm = Recording(api_key="test-key", ws_url=emu.ws_url, settings=Recording.Settings(model="emulated"))
        async with Conversation(llm) as conv:
            yield llm, conv


def call(conv: Conversation, name: str, call_id: str) -> FunctionCallFromLLM:
    return FunctionCallFromLLM(function_name=name, tool_call_id=call_id, arguments={}, context=conv.context)


def test_installed_pipecat_is_the_minor_pyproject_allows() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    requirement = Requirement(next(r for r in pyproject["project"]["dependencies"] if r.startswith("pipecat-ai")))
    assert requirement.specifier.contains(version("pipecat-ai")), (
        f"{PIPECAT} is outside {requirement}: check compat.py against it, then move the bound"
    )


def test_the_subclass_contract_the_stage_uses_as_pipecats_services_do() -> None:
    members = (
        "_register_event_handler",
        "_call_event_handler",
        "_push_llm_text",
        "_apply_thinking_default",
        "_check_response_schema",
    )
    missing = [name for name in members if not callable(getattr(LLMService, name, None))]
    assert not missing, f"{PIPECAT}'s LLMService has no {', '.join(missing)}"
    thinking = inspect.signature(LLMService._apply_thinking_default).parameters
    expected = ["self", "params", "model", "default", "can_think", "provider", "settings_fields"]
    assert list(thinking) == expected, f"{PIPECAT}'s _apply_thinking_default takes {list(thinking)}, not {expected}"
    service = ResponsesWSLLMService(api_key="test-key", ws_url="ws://127.0.0.1:9/v1/responses")
    assert isinstance(getattr(service, "_filter_incomplete_user_turns", None), bool), (
        f"{PIPECAT}'s LLMService keeps no _filter_incomplete_user_turns"
    )
    assert isinstance(getattr(service, "_settings", None), LLMSettings), f"{PIPECAT}'s LLMService keeps no _settings"


async def test_a_withheld_event_is_not_fired_and_the_others_are() -> None:
    async with pipeline() as (llm, conv):
        started: list[list[FunctionCallFromLLM]] = []
        cancelled: list[Any] = []

        @llm.event_handler("on_function_calls_started")
        async def on_started(_llm: Any, calls: list[FunctionCallFromLLM]) -> None:
            started.append(calls)

        @llm.event_handler("on_function_calls_cancelled")
        async def on_cancelled(_llm: Any, calls: Any) -> None:
            cancelled.append(calls)

        async def answer(params: Any) -> None:
            await params.result_callback("done")

        llm.register_function("tool", answer)
        with compat.withholding_event(llm, "on_function_calls_started"):
            await llm.run_function_calls([call(conv, "tool", "call_1")])
            assert "_call_event_handler" in vars(llm)
        assert "_call_event_handler" not in vars(llm)
        await llm.run_function_calls([call(conv, "tool", "call_2")])
        await conv.wait_for(lambda: len(conv.tool_results()) == 2, what="both results")
        assert [[c.tool_call_id for c in calls] for calls in started] == [["call_2"]], (
            f"{PIPECAT}'s run_function_calls no longer fires on_function_calls_started through "
            "_call_event_handler: compat.withholding_event cannot hold it back"
        )
        announced = [k["function_calls"][0].tool_call_id for f, k in llm.broadcasts if f is FunctionCallsStartedFrame]
        assert announced == ["call_1", "call_2"]  # only the event is withheld, never the frame


def test_the_registry_tells_which_calls_an_interruption_cancels() -> None:
    llm = ResponsesWSLLMService(api_key="test-key", ws_url="ws://127.0.0.1:9/v1/responses")

    async def handler(params: Any) -> None: ...

    assert compat.cancels_on_interruption(llm, "unregistered")
    llm.register_function("sync_tool", handler)
    llm.register_function("async_tool", handler, cancel_on_interruption=False)
    assert compat.cancels_on_interruption(llm, "sync_tool")
    assert not compat.cancels_on_interruption(llm, "async_tool"), (
        f"{PIPECAT}'s LLMService._functions no longer records cancel_on_interruption=False"
    )
    llm.register_function(None, handler, cancel_on_interruption=False)
    assert not compat.cancels_on_interruption(llm, "anything_else"), "the catch-all (None) is not consulted"


async def test_the_runner_settles_calls_through_broadcast_frame() -> None:
    async with pipeline() as (llm, conv):
        started = asyncio.Event()

        async def answer_in_two(params: Any) -> None:
            await params.result_callback("half", properties=FunctionCallResultProperties(is_final=False))
            await params.result_callback("whole")

        async def hang(params: Any) -> None:
            started.set()
            await asyncio.Event().wait()

        llm.register_function("updating", answer_in_two, cancel_on_interruption=False)
        llm.register_function("hanging", hang)
        await llm.run_function_calls([call(conv, "updating", "call_u")])
        await conv.wait_for(lambda: len(conv.tool_results()) == 2, what="the update and the result")
        results = [(k["result"], compat.final_tool_result(f, k)) for f, k in llm.broadcasts if k.get("result")]
        assert results == [("half", False), ("whole", True)], (
            f"{PIPECAT}'s runner no longer delivers results as broadcast_frame(FunctionCallResultFrame, ...) "
            f"with properties.is_final: {results}"
        )
        await llm.run_function_calls([call(conv, "hanging", "call_h")])
        await asyncio.wait_for(started.wait(), 5)
        await conv.interrupt()
        await conv.wait_for(lambda: any(compat.cancelled_tool_call(f, k) for f, k in llm.broadcasts), 5, "a cancel")
        assert [compat.cancelled_tool_call(f, k) for f, k in llm.broadcasts if compat.cancelled_tool_call(f, k)] == [
            "call_h"
        ], f"{PIPECAT} no longer settles a cancelled call with broadcast_frame(FunctionCallCancelFrame, tool_call_id=)"


def test_pipecat_lists_the_lowest_reasoning_effort_per_model() -> None:
    assert compat.openai_reasoning_effort("gpt-5") == "minimal", f"{PIPECAT} lists no reasoning effort for gpt-5"
    assert compat.openai_reasoning_effort("gpt-5-2025-08-07") == "minimal", "a dated snapshot is not its model"
    assert compat.openai_reasoning_effort("gpt-4.1") is None
    assert compat.openai_model_reasons("o3"), f"{PIPECAT} does not know o3 reasons"
    assert not compat.openai_model_reasons("gpt-4.1")


async def test_the_frames_read_and_not_yet_received_are_websockets_queue() -> None:
    sent = asyncio.Event()

    async def two_messages(ws: ServerConnection) -> None:
        await ws.send("first")
        await ws.send("second")
        sent.set()
        await ws.wait_closed()

    async with serve(two_messages, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with websockets.connect(f"ws://127.0.0.1:{port}") as ws:
            frames = compat.received_frames(ws)
            assert isinstance(frames, deque), f"{WEBSOCKETS} keeps no recv_messages.frames.queue"
            await sent.wait()
            # The pong comes behind both messages on the socket: once it is in, so are they.
            await asyncio.wait_for(await ws.ping(), 5)
            held = [frame.data for frame in frames]
            assert held == [b"first", b"second"], f"{WEBSOCKETS}'s queue holds {held}, not the two messages"
            assert await ws.recv() == "first"
            assert [frame.data for frame in frames] == [b"second"], f"{WEBSOCKETS}'s recv takes from elsewhere"
            assert await ws.recv() == "second"
            assert not frames


def test_a_websockets_without_the_queue_turns_joining_off() -> None:
    assert compat.received_frames(object()) is None  # type: ignore[arg-type]
