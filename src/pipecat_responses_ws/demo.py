"""``pipecat-responses-ws demo``: a real Pipecat pipeline on the embedded emulator, no key needed.

user aggregator → ResponsesWSLLMService → transcript printer → assistant aggregator. The scripted
conversation streams text, runs a parallel and a chained tool call, and is barged in on
mid-answer; then a summary of what was measured, next to what the emulator was set to do.
``--interactive`` lets a person type (typing while the bot streams is a barge-in); ``--openai``
talks to OpenAI with ``OPENAI_API_KEY``. One Ctrl-C ends either.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    FunctionCallInProgressFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams

from . import interrupt
from .arguments import log_level
from .changes import Changes
from .client.connection import Connection
from .emulator import Emulator, Reply, ToolCall
from .harness.pipeline import Conversation
from .log import logger
from .protocol.errors import AuthenticationError
from .service import ResponsesWSLLMService

INSTRUCTIONS = "You are a friendly voice assistant. Answer in one or two short sentences."
STORY = (
    "Once upon a time, in a harbour town where the fog rolled in every evening, there lived a "
    "lighthouse keeper who collected stories from every ship that passed, and one night a small "
    "boat arrived carrying a letter addressed to nobody at all, sealed with green wax and smelling of pine."
)
FAKE_DATA = {
    "get_weather": lambda a: {"city": a.get("city"), "forecast": "sunny, 21 degrees"},
    "get_time": lambda a: {"city": a.get("city"), "time": "18:40"},
    "find_restaurant": lambda a: {"name": "Fiskebaren", "near": a.get("city")},
    "book_table": lambda a: {"restaurant": a.get("name"), "confirmed": True, "time": "19:30"},
}


class AnswerFailed(Exception):
    """The service reported an error where an answer was due: the demo ends with it rather than wait."""


class TranscriptPrinter(FrameProcessor):
    """Prints the bot's words as they stream, tool calls as they start, and barge-ins."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(name="transcript")
        self._out = out
        self.printed = 0  # frames handled on their way downstream
        self.changes = Changes()  # notified as each is

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self._print(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            self.printed += 1
            self.changes.notify()
        await self.push_frame(frame, direction)

    def _print(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, LLMFullResponseStartFrame):
            self._write("\n  bot: ")
        elif isinstance(frame, LLMTextFrame):
            self._write(frame.text)
        elif isinstance(frame, FunctionCallInProgressFrame) and direction is FrameDirection.DOWNSTREAM:
            self._write(f"[tool {frame.function_name}({_args(frame.arguments)})] ")
        elif isinstance(frame, InterruptionFrame):
            self._write("  [user barges in]")
        elif isinstance(frame, LLMFullResponseEndFrame):
            self._out.flush()

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


def _args(arguments: Any) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in dict(arguments).items())


def _tools() -> ToolsSchema:
    def schema(name: str, prop: str) -> FunctionSchema:
        return FunctionSchema(
            name=name, description=name.replace("_", " "), properties={prop: {"type": "string"}}, required=[prop]
        )

    return ToolsSchema(
        standard_tools=[
            schema("get_weather", "city"),
            schema("get_time", "city"),
            schema("find_restaurant", "city"),
            schema("book_table", "name"),
        ]
    )


def _register_tools(llm: ResponsesWSLLMService) -> None:
    async def handler(params: FunctionCallParams) -> None:
        await asyncio.sleep(0.05)  # a quick lookup
        await params.result_callback(FAKE_DATA[params.function_name](dict(params.arguments)))

    for name in FAKE_DATA:
        llm.register_function(name, handler)


def _script() -> list[Reply]:
    return [
        Reply(text="Hi! I can check the weather and the time, find restaurants and book tables. What do you need?"),
        Reply(calls=[ToolCall("get_weather", {"city": "Oslo"}), ToolCall("get_time", {"city": "Tokyo"})]),
        Reply(text="Oslo is sunny at 21 degrees, and in Tokyo it is 18:40."),
        Reply(calls=[ToolCall("find_restaurant", {"city": "Bergen"})]),
        Reply(calls=[ToolCall("book_table", {"name": "Fiskebaren"})]),
        Reply(text="Done: a table at Fiskebaren in Bergen, 19:30, is confirmed."),
        Reply(text=STORY, tokens_per_second=12),
        Reply(text="Of course, no story. Two plus two is four."),
    ]


# What the emulator's scripted model does with a typed message (see emulator/model.py).
OFFLINE_MODEL = (
    "The emulator's model echoes what you say, and calls a tool when a word of its name is in your message "
    '(weather, time, restaurant, table): try "What\'s the weather in Oslo?"'
)

SCRIPTED_TURNS = [
    ("Hi! What can you do?", None),
    ("What's the weather in Oslo and the time in Tokyo?", None),
    ("Book me a table at a fish place in Bergen.", None),
    ("Tell me a long story.", "lighthouse"),  # barge in once this word was heard
    ("Actually, stop. What's two plus two?", None),
]


@contextlib.asynccontextmanager
async def _endpoint(use_openai: bool) -> AsyncIterator[tuple[str, str, Emulator | None]]:
    if use_openai:
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise SystemExit("--openai needs OPENAI_API_KEY in the environment")
        yield "wss://api.openai.com/v1/responses", key, None
        return
    async with Emulator(ttft=0.12, tokens_per_second=30.0) as emulator:
        yield emulator.ws_url, "demo-key", emulator


async def run_demo(*, interactive: bool, use_openai: bool, model: str, out: TextIO = sys.stdout) -> int:
    async with _endpoint(use_openai) as (url, key, emulator):
        where = "OpenAI" if emulator is None else f"the embedded emulator at {url}"
        out.write(
            f"Pipeline: user aggregator -> ResponsesWSLLMService -> transcript -> assistant aggregator\n"
            f"LLM endpoint: {where}\n"
        )
        settings = ResponsesWSLLMService.Settings(model=model, system_instruction=INSTRUCTIONS)
        llm = ResponsesWSLLMService(api_key=key, ws_url=url, settings=settings)
        _register_tools(llm)
        printer = TranscriptPrinter(out)
        conv = Conversation(llm, context=LLMContext(tools=_tools()), listeners=[printer])
        conv.follow(printer.changes)
        async with conv:
            if interactive:
                await _interactive(conv, printer, out, offline=emulator is not None)
            else:
                if emulator is not None:
                    emulator.queue_replies(*_script())
                await _scripted(conv, printer, out)
            _summary(conv, llm, out, emulator)
    return 0


async def _scripted(conv: Conversation, printer: TranscriptPrinter, out: TextIO) -> None:
    """The scripted turns; the first error the service reports ends them (:class:`AnswerFailed`).

    The script expects none, so an error (a refused key, no network) means no answer is coming.
    """
    for text, barge_at in SCRIPTED_TURNS:
        out.write(f"\n\n user: {text}")
        before = len(conv.turns())
        await conv.say(text)
        if barge_at is not None:
            await _unless_failed(conv, lambda: barge_at in conv.text(), f"text {barge_at!r}")  # noqa: B023
            interruptions = len(conv.frames(InterruptionFrame))
            await conv.interrupt()
            # The barge-in shows in the transcript before the next words.
            await conv.wait_for(lambda: len(conv.frames(InterruptionFrame)) > interruptions, 5, "the barge-in")  # noqa: B023
            await conv.wait_for(lambda: _printed(conv, printer), 5, "the transcript")
            continue
        await _unless_failed(conv, lambda: _settled(conv, before), "the answer")  # noqa: B023
        await conv.wait_for(lambda: _printed(conv, printer), 5, "the transcript")


async def _unless_failed(conv: Conversation, predicate: Callable[[], bool], what: str) -> None:
    await conv.wait_for(lambda: predicate() or bool(conv.errors()), timeout=30, what=what)
    _raise_first_error(conv, since=0)


def _raise_first_error(conv: Conversation, since: int, *, refused_key_only: bool = False) -> None:
    for error in conv.errors()[since:]:
        if not refused_key_only or _refused_key(error):
            raise AnswerFailed(error.error)


def _refused_key(error: ErrorFrame) -> bool:
    """Reported once, at setup or at the first turn; every later turn is refused the same way, silently."""
    return isinstance(error.exception, AuthenticationError)


def _printed(conv: Conversation, printer: TranscriptPrinter) -> bool:
    """The printer, after the probe, has handled every frame the probe passed downstream."""
    return printer.printed >= sum(s.direction is FrameDirection.DOWNSTREAM for s in conv.downstream.seen)


def _settled(conv: Conversation, before: int) -> bool:
    """The turn and any tool follow-ups it set off have finished answering."""
    turns = conv.turns()[before:]
    return bool(turns) and all(t.ended for t in turns) and bool(turns[-1].text)


async def _interactive(conv: Conversation, printer: TranscriptPrinter, out: TextIO, *, offline: bool) -> None:
    """Read lines while the bot talks, so typing is a barge-in; show the prompt once the answer is done.

    The next "user:" prompt is written only when the answer (and any tool follow-up) has settled,
    so the bot's streamed words never land on the prompt line. A line typed before that cuts the
    answer off; it is shown again on its own line, since the terminal echoed it amid the bot's words.
    """
    out.write(
        "\nType a message and press Enter (empty line or Ctrl-D to quit). Typing while the bot talks interrupts it.\n"
    )
    if offline:
        out.write(f"{OFFLINE_MODEL}\n")
    _prompt(out, "\n")
    reading = _read_line()
    answering: asyncio.Future[Any] | None = None
    try:
        while True:
            line = (await reading).strip()
            if not line:
                return
            if answering is not None and not answering.done():
                answering.cancel()
                out.write(f" user: {line}")
                out.flush()
                await conv.interrupt()
            before, errors = len(conv.turns()), len(conv.errors())
            await conv.say(line)
            reading = _read_line()
            answering = asyncio.ensure_future(_answered(conv, printer, before, errors))
            await asyncio.wait({reading, answering}, return_when=asyncio.FIRST_COMPLETED)
            _raise_first_error(conv, since=0, refused_key_only=True)  # no answer will ever come
            if answering.done() and not reading.done():
                _prompt(out)
    finally:
        if answering is not None:
            answering.cancel()


def _read_line() -> asyncio.Future[str]:
    """The next line of stdin ("" at its end), read on a daemon thread.

    Not the loop's executor: its threads are joined when the loop closes, so a Ctrl-C would wait
    for the user to press Enter.
    """
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def deliver(text: str) -> None:
        if not line.done():
            line.set_result(text)

    def read() -> None:
        try:
            text = sys.stdin.readline()
        except (OSError, ValueError):  # stdin closed under the reader
            text = ""
        with contextlib.suppress(RuntimeError):  # the loop closed while the user was typing
            loop.call_soon_threadsafe(deliver, text)

    threading.Thread(target=read, name="demo-stdin", daemon=True).start()
    return line


async def _answered(conv: Conversation, printer: TranscriptPrinter, before: int, errors: int) -> None:
    """The answer settled (or failed), and the printer, after the probe, has caught up with it."""
    with contextlib.suppress(TimeoutError):
        await conv.wait_for(
            lambda: _settled(conv, before) or len(conv.errors()) > errors or any(map(_refused_key, conv.errors())),
            timeout=60,
            what="the answer",
        )
        await conv.wait_for(lambda: _printed(conv, printer), 5, "the transcript")


def _prompt(out: TextIO, gap: str = "\n\n") -> None:
    out.write(f"{gap} user: ")
    out.flush()


def _summary(conv: Conversation, llm: ResponsesWSLLMService, out: TextIO, emulator: Emulator | None) -> None:
    """What was measured, next to what the emulator was set to do, so no figure reads better than it is."""
    turns = [t for t in conv.turns() if t.first_text_at is not None]
    first_text = [(t.first_text_at - t.started) * 1000 for t in turns]  # type: ignore[operator]
    stats = llm.stats
    ttft = ""
    if emulator is not None:
        ttft = f" (the emulator is set to {emulator.settings.ttft * 1000:.0f} ms to first token)"
    out.write("\n\n--- summary ---\n")
    if first_text:
        median = statistics.median(first_text)
        out.write(f"first text after the request: median {median:.0f} ms over {len(turns)} answers{ttft}\n")
    barge = _barge_in_recovery(conv)
    if barge is not None:
        out.write(f"barge-in recovery: the answer after the barge-in streamed {barge:.0f} ms after its request{ttft}\n")
    out.write(
        f"requests sent incrementally: {stats.incremental_turns}/{stats.turns}"
        f" ({stats.input_items_sent} input items in all)\n"
    )
    connections = [c for c in (llm.client.current, *llm.client.retired) if c is not None]
    cancels = sum(c.stats.cancels_sent for c in connections)
    rejected = any(not c.state.cancel_supported for c in connections)
    out.write(_cancel_line(cancels, rejected, emulator) + "\n")
    out.write(_abandoned_line(connections, emulator) + "\n")
    out.write(f"tool calls: {len(conv.tool_starts())}; errors: {len(conv.errors())}\n")


# What each of the emulator's cancel policies does with response.cancel (see emulator/session.py).
CANCEL_POLICY_EFFECT = {
    "error": "answers it with an error event and keeps generating the abandoned answer",
    "ignore": "ignores it and keeps generating the abandoned answer",
    "honor": "stops the abandoned answer at once",
}


def _cancel_line(cancels: int, rejected: bool, emulator: Emulator | None) -> str:
    line = f"response.cancel sent: {cancels}"
    if emulator is not None:
        policy = emulator.settings.cancel_policy
        line += f"; the emulator's cancel policy is {policy!r}: it {CANCEL_POLICY_EFFECT[policy]}"
    if rejected:
        return line + "; the client saw the rejection and sends no more cancels on that connection"
    return line + ("; the client saw no rejection" if cancels else "")


def _abandoned_line(connections: list[Connection], emulator: Emulator | None) -> str:
    """Tokens spent on answers nobody heard: the emulator's own count where there is one.

    The client only learns a response's usage from its terminal event, so an abandoned answer
    still streaming (or cut by a closed socket) would count as nothing there.
    """
    if emulator is None:
        reported = sum(c.stats.abandoned_output_tokens for c in connections)
        return f"tokens reported for abandoned answers that ended: {reported}"
    abandoned = [r for r in emulator.records.responses if r.generate and r.cancelled_at is not None]
    if not abandoned:
        return "cancelled answers: none"
    tokens = sum(r.output_tokens_generated for r in abandoned)
    going = sum(r.finished_at is None for r in abandoned)
    answers = "1 cancelled answer" if len(abandoned) == 1 else f"{len(abandoned)} cancelled answers"
    if going:
        answers += ", still generating now" if len(abandoned) == 1 else f", {going} of them still generating now"
    return f"tokens the emulator generated for abandoned answers: {tokens} ({answers})"


def _barge_in_recovery(conv: Conversation) -> float | None:
    turns = conv.turns()
    for previous, turn in itertools.pairwise(turns):
        if previous.interrupted and turn.first_text_at is not None:
            return (turn.first_text_at - turn.started) * 1000
    return None


def add_demo_command(commands: Any) -> None:
    parser = commands.add_parser("demo", help="run a scripted voice-bot conversation on the embedded emulator")
    parser.add_argument("--interactive", action="store_true", help="type your own turns; typing interrupts the bot")
    parser.add_argument("--openai", action="store_true", help="talk to OpenAI instead (needs OPENAI_API_KEY)")
    parser.add_argument("--model", default="gpt-4.1-mini", help="model name (default: %(default)s)")
    parser.add_argument("--log-level", type=log_level, default="WARNING", help="loguru level (default: %(default)s)")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    demo = run_demo(interactive=args.interactive, use_openai=args.openai, model=args.model)
    try:
        return interrupt.run(demo, goodbye="demo: stopped (Ctrl-C)")
    except AnswerFailed as e:
        print(f"\ndemo: no answer: {e}", file=sys.stderr)
        return 1
