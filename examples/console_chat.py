"""A text chat in the terminal with ResponsesWSLLMService in a real Pipecat pipeline.

    user aggregator → ResponsesWSLLMService → printer → assistant aggregator

Each line you type becomes a user message; the bot's words print as they stream, and a tool call
(a fake ``get_weather``) shows up before the answer that uses its result. An empty line or
Ctrl-D quits; Ctrl-C stops at once, even mid-answer (exit status 130).

Run it::

    OPENAI_API_KEY=sk-... python examples/console_chat.py   # talks to OpenAI
    python examples/console_chat.py --emulator               # offline, no key

Environment:

- ``OPENAI_API_KEY``: your key (not needed with ``--emulator``).
- ``OPENAI_MODEL``: the model (default ``gpt-4.1-mini``); ``--model`` wins over it.

On the emulator the model is scripted: it echoes what you say, and calls ``get_weather`` when
your line names the tool ("get weather in Paris").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TextIO

from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallsStartedFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams
from pipecat.workers.runner import WorkerRunner

from pipecat_responses_ws import ResponsesWSLLMService

OPENAI_WS_URL = "wss://api.openai.com/v1/responses"
DEFAULT_MODEL = "gpt-4.1-mini"
INSTRUCTIONS = "You are a helpful assistant in a terminal chat. Answer in one or two short sentences."

WEATHER_TOOL = FunctionSchema(
    name="get_weather",
    description="The current weather in a city.",
    properties={"city": {"type": "string", "description": "The city, e.g. Paris"}},
    required=["city"],
)

ReadLine = Callable[[], Awaitable[str | None]]


async def get_weather(params: FunctionCallParams) -> None:
    """Stands in for a real weather API, so the example runs without one."""
    city = params.arguments.get("city", "somewhere")
    await params.result_callback({"city": city, "forecast": "sunny", "temperature_c": 21})


def create_llm(
    ws_url: str = OPENAI_WS_URL, *, api_key: str | None = None, model: str = DEFAULT_MODEL
) -> ResponsesWSLLMService:
    """The LLM stage with its tool registered.

    Takes the WebSocket URL first so tests can point it at an emulator and the interruption
    harness can use it as a factory: ``PYTHONPATH=examples OPENAI_API_KEY=test
    pipecat-responses-ws harness --service console_chat:create_llm`` (the emulator accepts any key).
    """
    llm = ResponsesWSLLMService(
        api_key=api_key,  # None: OPENAI_API_KEY
        ws_url=ws_url,
        settings=ResponsesWSLLMService.Settings(model=model, system_instruction=INSTRUCTIONS),
    )
    llm.register_function("get_weather", get_weather)
    return llm


class Printer(FrameProcessor):
    """Prints the bot's words as they stream and tells the chat loop when an answer is complete.

    An answer is complete at the end of a response that started no tool call: a response that
    did start one is followed by another that speaks about the result.
    """

    def __init__(self, out: TextIO) -> None:
        super().__init__(name="printer")
        self.answered = asyncio.Event()
        self._out = out
        self._speaking = False  # "bot: " was written for this answer
        self._called_tool = False  # in the current response

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMFullResponseStartFrame):
            self._called_tool = False
        elif isinstance(frame, LLMTextFrame):
            self._write(frame.text)
        elif isinstance(frame, FunctionCallsStartedFrame):
            self._called_tool = True  # pushed before the response's end frame; the calls run after it
        elif isinstance(frame, FunctionCallInProgressFrame) and direction is FrameDirection.DOWNSTREAM:
            args = ", ".join(f"{k}={v!r}" for k, v in dict(frame.arguments).items())
            self._write(f"[{frame.function_name}({args})] ")
        elif isinstance(frame, LLMFullResponseEndFrame) and not self._called_tool:
            self.finish()
        await self.push_frame(frame, direction)

    def finish(self, note: str = "") -> None:
        """End the bot's line and let the user type again."""
        if self._speaking or note:
            self._out.write(f"{note}\n")
            self._out.flush()
        self._speaking = False
        self.answered.set()

    def _write(self, text: str) -> None:
        if not self._speaking:
            self._out.write("bot: ")
            self._speaking = True
        self._out.write(text)
        self._out.flush()


async def chat(llm: ResponsesWSLLMService, read_line: ReadLine, out: TextIO) -> None:
    """Run the pipeline and take turns: one line in, one complete answer out, until no more lines."""
    context = LLMContext(tools=ToolsSchema(standard_tools=[WEATHER_TOOL]))
    aggregators = LLMContextAggregatorPair(context)
    printer = Printer(out)
    pipeline = Pipeline([aggregators.user(), llm, printer, aggregators.assistant()])
    # No idle timeout: a person may think for longer than Pipecat's default five minutes.
    worker = PipelineWorker(pipeline, idle_timeout_secs=None)

    @worker.event_handler("on_pipeline_error")
    async def on_error(_worker: PipelineWorker, frame: ErrorFrame) -> None:
        printer.finish(f"[error: {frame.error}]")  # never leave the prompt waiting for an answer

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        while (line := await read_line()) is not None:
            printer.answered.clear()
            message = {"role": "user", "content": line}
            await worker.queue_frame(LLMMessagesAppendFrame([message], run_llm=True))
            await printer.answered.wait()
    except BaseException:
        await worker.cancel()  # Ctrl-C (or a failure): stop now instead of letting the answer finish
        raise
    else:
        await worker.queue_frame(EndFrame())
    finally:
        await running


def read_stdin_line() -> asyncio.Future[str]:
    """``sys.stdin.readline()`` on a daemon thread.

    Not ``asyncio.to_thread``: the event loop joins its threads when it closes, so a Ctrl-C would
    wait until the user pressed Enter.
    """
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def deliver(text: str) -> None:
        if not line.done():  # not given up on (cancelled) meanwhile
            line.set_result(text)

    def read() -> None:
        text = sys.stdin.readline()
        with contextlib.suppress(RuntimeError):  # the loop closed while the user was typing
            loop.call_soon_threadsafe(deliver, text)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return line


def stdin_lines(out: TextIO) -> ReadLine:
    """Prompt and read a line without blocking the event loop; ``None`` on an empty line or EOF."""

    async def read_line() -> str | None:
        out.write("you: ")
        out.flush()
        line = await read_stdin_line()
        if not line:  # Ctrl-D: end the prompt's line before the shell prints its own
            out.write("\n")
        return line.strip() or None

    return read_line


async def run(*, use_emulator: bool, model: str, read_line: ReadLine, out: TextIO) -> None:
    """Chat with OpenAI, or with the embedded emulator when ``use_emulator`` is set."""
    if not use_emulator:
        if not os.environ.get("OPENAI_API_KEY"):
            raise SystemExit("Set OPENAI_API_KEY, or run with --emulator to chat offline.")
        await chat(create_llm(model=model), read_line, out)
        return
    from pipecat_responses_ws.emulator import Emulator

    async with Emulator(ttft=0.2, tokens_per_second=30.0) as emulator:
        out.write(f"(offline: the embedded emulator at {emulator.ws_url})\n")
        await chat(create_llm(emulator.ws_url, api_key="emulator", model=model), read_line, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chat in the terminal through ResponsesWSLLMService.")
    parser.add_argument("--emulator", action="store_true", help="use the embedded emulator; no key needed")
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL", DEFAULT_MODEL), help="model name")
    args = parser.parse_args(argv)
    logger.remove()  # Pipecat logs every frame at DEBUG; keep the terminal for the chat
    logger.add(sys.stderr, level="WARNING")
    try:
        chatting = run(use_emulator=args.emulator, model=args.model, read_line=stdin_lines(sys.stdout), out=sys.stdout)
        asyncio.run(chatting)
    except KeyboardInterrupt:
        print(flush=True)  # end the prompt's (or the bot's) line
        print("console chat: stopped (Ctrl-C)", file=sys.stderr)
        return 130  # what a shell reports for a command ended by Ctrl-C
    return 0


if __name__ == "__main__":
    sys.exit(main())
