"""Runs one scenario against one LLM service on a fresh emulator and collects its figures.

Every wait is bounded: a service that never answers costs the run a few seconds and shows up as
an ``unanswered_turns`` violation, never as a hung harness.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    ErrorFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext

from ..emulator import Emulator
from ..endpoint import http_base_url
from ..measures import first_text_delay
from ..protocol.redaction import redact
from .ear import HeardBargeIn
from .invariants import END, INTERRUPTION, START, TEXT, Event, Observed, ToolRun, check
from .pipeline import Conversation
from .recording import write_wav
from .scenario import LONG_WORDS, TOOLS, Scenario, Turn, replies_for, tag_finder

if TYPE_CHECKING:
    from .eager import EagerFigures, EagerTurns
    from .voice import VoiceRun

ServiceFactory = Callable[[str], Any]
TTFT = 0.05
TOKENS_PER_SECOND = 100.0
WAIT = 6.0  # seconds any one expected thing may take before the turn counts as unanswered
TOOL_SLEEP = 5.0  # a tool that is still running when the user barges in
# From the interruption to the user's next turn reaching the pipeline. A person who barges in is
# detected while still speaking: the VAD fires after ~0.2 s of speech, then the words go on and
# the end of the turn waits for silence, so a real gap is half a second or more. 0.2 s keeps the
# abandoned response streaming through the whole next turn; 0 makes the next turn race the
# interruption through every processor, a case no voice pipeline produces (``--reply-gap 0``).
REPLY_GAP = 0.2
# A caller's first words come a second or more after the call connects; a service that connects
# and warms up in the background must not have that work counted in the first turn's figures.
FIRST_TURN_AFTER = 0.3


def _settings(cls: Any) -> Any:
    return cls.Settings(model="emulated", system_instruction="Answer briefly.")


def resolve_factory(name: str) -> ServiceFactory:
    """``ours``, ``ours-http``, ``pipecat``, ``pipecat-http`` or ``module:attr`` (a callable taking
    the emulator's ws_url; the HTTP services go to the base URL on the same port)."""
    if name == "ours":
        from ..service import ResponsesWSLLMService

        return lambda url: ResponsesWSLLMService(api_key="k", ws_url=url, settings=_settings(ResponsesWSLLMService))
    if name == "ours-http":
        from ..service import ResponsesHTTPLLMService

        return lambda url: ResponsesHTTPLLMService(
            api_key="k", base_url=http_base_url(url, None), settings=_settings(ResponsesHTTPLLMService)
        )
    if name == "pipecat":
        from pipecat.services.openai.responses.llm import OpenAIResponsesLLMService

        return lambda url: OpenAIResponsesLLMService(
            api_key="k", ws_url=url, settings=_settings(OpenAIResponsesLLMService)
        )
    if name == "pipecat-http":
        from pipecat.services.openai.responses.llm import OpenAIResponsesHttpLLMService

        return lambda url: OpenAIResponsesHttpLLMService(
            api_key="k", base_url=http_base_url(url, None), settings=_settings(OpenAIResponsesHttpLLMService)
        )
    module, _, attr = name.partition(":")
    if not attr:
        raise ValueError(
            f"service must be 'ours', 'ours-http', 'pipecat', 'pipecat-http' or 'module:attr', not {name!r}"
        )
    return getattr(importlib.import_module(module), attr)


def tools_schema() -> ToolsSchema:
    return ToolsSchema(
        standard_tools=[
            FunctionSchema(
                name=n, description=f"{n} for a city", properties={"city": {"type": "string"}}, required=["city"]
            )
            for n in TOOLS
        ]
    )


@dataclass
class RunResult:
    service: str
    cancel_policy: str
    scenario: Scenario
    violations: dict[str, int]
    # measures.first_text_delay, in seconds, of the turn after each barge-in and of each text turn
    # nobody interrupted: the barge-in penalty is the gap between the two.
    after_barge_in: list[float] = field(default_factory=list)
    uninterrupted: list[float] = field(default_factory=list)
    tool_dispatch: list[float] = field(default_factory=list)  # seconds, arguments done → handler start
    incremental: int = 0
    eligible: int = 0  # generated creates after the first, which could have been incremental
    bytes_uploaded: int = 0
    user_turns: int = 0
    reconnects: int = 0
    abandoned_tokens: int = 0
    reply_gap: float = REPLY_GAP
    note: str = ""
    multiplexing: str = "lanes"  # the emulator's: "lanes", or "none" for a server without lanes
    errors: list[str] = field(default_factory=list)  # every ErrorFrame's text, in order, keys redacted
    run: int = 0  # the run's place in its campaign's plan (campaign.PlannedRun.index)
    # With --audio: every barge-in as the caller heard it, and the run's recording, if one was written.
    heard: list[HeardBargeIn] = field(default_factory=list)
    recording: str | None = None
    eager: EagerFigures | None = None  # with --eager: the mode's figures (:mod:`.eager`)

    @property
    def total_violations(self) -> int:
        return sum(self.violations.values())

    @property
    def label(self) -> str:
        """``service/cancel_policy``, plus ``/none`` when the emulator had no lanes (so lanes keep their old labels)."""
        base = f"{self.service}/{self.cancel_policy}"
        base = base if self.multiplexing == "lanes" else f"{base}/{self.multiplexing}"
        return base if self.eager is None else f"{base}/eager-{self.eager.mode}"


@dataclass(frozen=True)
class RunProgress:
    """How far the run had got when a barge-in turn began: contexts sent, creates received, events sent."""

    contexts: int
    creates: int
    sent: int


class ScenarioRun:
    """State of one run: the emulator, the conversation and what the tool handlers saw."""

    long_words = LONG_WORDS  # the length of an answer a barge-in abandons mid-text

    def __init__(self, emu: Emulator, conv: Conversation, wait: float = WAIT, reply_gap: float = REPLY_GAP) -> None:
        self.emu, self.conv, self.patience, self.reply_gap = emu, conv, wait, reply_gap
        self.tool_runs: list[ToolRun] = []
        self.slow_tools: set[int] = set()
        self.tool_started: dict[int, asyncio.Event] = {}
        self.abandoned_at: dict[str, float] = {}  # tag → time the interruption was queued
        self.unanswered: list[int] = []
        self.fault_windows: list[tuple[float, float]] = []
        self.after_barge_in: list[float] = []
        self.uninterrupted: list[float] = []

    async def handler(self, params: Any) -> None:
        self.tool_runs.append(ToolRun(params.tool_call_id, params.function_name, time.monotonic()))
        # Scripted cities are "City<n>x<k>"; anything else (a call that should never have run) is turn 0.
        found = re.fullmatch(r"City(\d+)x\d+", str(params.arguments.get("city", "")))
        n = int(found.group(1)) if found else 0
        self.tool_started.setdefault(n, asyncio.Event()).set()
        if n in self.slow_tools:
            await asyncio.sleep(TOOL_SLEEP)
        await params.result_callback({"result": f"t{n}r"})

    def bracket_with(self, tag: str, since: int) -> Any:
        # Polled every 2 ms inside the latencies being measured, so it stops at the first match
        # instead of listing every tag of every bracket.
        found = tag_finder(tag)
        return next((t for t in self.conv.turns()[since:] if found(t.text)), None)

    async def wait(self, predicate: Callable[[], bool], n: int, what: str) -> bool:
        try:
            await self.conv.wait_for(predicate, self.patience, what)
            return True
        except TimeoutError:
            self.unanswered.append(n)
            return False

    async def ask(self, text: str) -> tuple[float, int]:
        """The user's turn: when it was queued, and how many brackets came before (its answer comes after)."""
        before = len(self.conv.turns())
        return await self.conv.say(text), before

    async def answered(self, tag: str, n: int, since: int) -> Any:
        def ended() -> bool:
            return (b := self.bracket_with(tag, since)) is not None and b.ended is not None

        return self.bracket_with(tag, since) if await self.wait(ended, n, tag) else None

    async def turn(self, turn: Turn) -> None:
        self.emu.queue_replies(*replies_for(turn, self.long_words))
        if turn.kind in ("text", "tool", "parallel", "chain"):
            asked, since = await self.ask(turn.user_text())
            answer = await self.answered(turn.tag("a" if turn.kind == "text" else "r"), turn.n, since)
            if turn.kind == "text" and answer is not None and answer.first_text_at is not None:
                # The same figure for a turn nobody interrupted: what any turn costs, for comparison.
                model = self.model_time(asked, f"t{turn.n}as0w0", turn.user_text())
                self.uninterrupted.append(first_text_delay(asked, answer.first_text_at, model))
        elif turn.kind == "fault":
            await self.fault_turn(turn)
        else:
            await self.barge_in(turn)

    async def fault_turn(self, turn: Turn) -> None:
        errors = len(self.conv.errors())
        start, brackets = await self.ask(turn.user_text())

        def settled() -> bool:  # an answer (retried or not) or a reported failure
            return any(t.ended for t in self.conv.turns()[brackets:]) or len(self.conv.errors()) > errors

        await self.wait(settled, turn.n, "an answer or an error")
        await asyncio.sleep(0.3)  # a retry may still be on its way; it belongs to this window
        self.fault_windows.append((start, time.monotonic() + 0.2))

    async def barge_in(self, turn: Turn) -> None:
        n = turn.n
        if turn.phase == "during_tool":
            self.slow_tools.add(n)
        records = self.emu.records
        before = RunProgress(self.conv.contexts_sent, len(records.creates()), len(records.sent()))
        _, since = await self.ask(turn.user_text("a"))
        await self.wait(self.phase_reached(turn, since, before), n, f"phase {turn.phase}")
        asked, since = await self.cut_in(turn)
        fresh = await self.answered(turn.tag("b"), n, since)
        if fresh is not None and fresh.first_text_at is not None:
            model = self.model_time(asked, f"u{n}b", turn.user_text("b"))
            self.after_barge_in.append(first_text_delay(asked, fresh.first_text_at, model))

    def phase_reached(self, turn: Turn, since: int, before: RunProgress) -> Callable[[], bool]:
        """Whether the barge-in turn's answer has reached its phase; ``since`` is the brackets before it."""
        conv, records, n = self.conv, self.emu.records, turn.n
        phases: dict[str | None, Callable[[], bool]] = {
            "before_request": lambda: conv.contexts_sent > before.contexts,
            "before_created": lambda: len(records.creates()) > before.creates,
            "mid_text": lambda: f"t{n}as0w3" in conv.text(),
            "mid_arguments": lambda: any(
                s.event["type"] == "response.function_call_arguments.delta" for s in records.sent()[before.sent :]
            ),
            "during_tool": lambda: n in self.tool_started and self.tool_started[n].is_set(),
            "at_terminal": lambda: (b := self.bracket_with(f"{n}a", since)) is not None and b.ended is not None,
        }
        return phases[turn.phase]

    async def cut_in(self, turn: Turn) -> tuple[float, int]:
        """The user barges in and takes the next turn: when it was asked, and the brackets before its answer."""
        self.abandoned_at[turn.tag("a")] = await self.conv.interrupt()
        if self.reply_gap > 0:
            await asyncio.sleep(self.reply_gap)
        return await self.ask(turn.user_text("b"))

    def model_time(self, asked: float, spoken: str, asked_text: str) -> float:
        """The emulator's own share of the delay: create received → first text delta of that answer.

        Subtracting it (ttft plus pacing) leaves what the client and the pipeline added. The answer
        is found by its tag, since an abandoned response may still be streaming on the same socket.
        ``TTFT`` stands in when either end cannot be found, so a lost request still shows.
        """
        records = self.emu.records
        deltas = [s for s in records.sent() if s.time >= asked and s.event["type"] == "response.output_text.delta"]
        tagged = next((s for s in deltas if spoken in s.event.get("delta", "")), None)
        if tagged is None:
            return TTFT
        first = next(s.time for s in deltas if s.event.get("item_id") == tagged.event.get("item_id"))
        creates = [
            f.time
            for f in records.frames
            if asked <= f.time <= first
            and f.payload
            and f.payload.get("type") == "response.create"
            and asked_text in json.dumps(f.payload)
        ]
        return first - creates[-1] if creates else TTFT


def _events(conv: Conversation) -> list[Event]:
    kinds = {LLMFullResponseStartFrame: START, LLMFullResponseEndFrame: END, InterruptionFrame: INTERRUPTION}
    out = []
    for s in conv.downstream.seen:
        if isinstance(s.frame, LLMTextFrame):
            out.append(Event(s.time, TEXT, s.frame.text))
        elif type(s.frame) in kinds:
            out.append(Event(s.time, kinds[type(s.frame)]))
    return out


def _observe(run: ScenarioRun) -> Observed:
    conv, records = run.conv, run.emu.records
    events = _events(conv)
    interruptions = [e.time for e in events if e.kind == INTERRUPTION]
    # The cut is when the interruption reached the speaker: text pushed before that was heard.
    abandoned = {tag: next((t for t in interruptions if t >= q), q) for tag, q in run.abandoned_at.items()}
    completed = {
        s.event["item"]["call_id"]: s.time
        for s in records.sent()
        if s.event["type"] == "response.output_item.done" and s.event["item"].get("type") == "function_call"
    }
    errors = [(s.time, str(s.frame.error)) for s in conv.upstream.seen if isinstance(s.frame, ErrorFrame)]
    return Observed(
        events, abandoned, run.tool_runs, completed, conv.messages(), run.unanswered, errors, run.fault_windows
    )


def _traffic(result: RunResult, emu: Emulator, cuts: list[float]) -> None:
    """Upload size, incremental share, reconnects and tokens spent on responses nobody heard."""
    creates = [f for f in emu.records.frames if f.payload and f.payload.get("type") == "response.create"]
    result.bytes_uploaded = sum(len(f.raw.encode()) for f in creates)
    generated = [f.payload for f in creates if f.payload and f.payload.get("generate") is not False]
    for payload in generated[1:]:
        result.eligible += 1
        # A full resend carries the first user message again; an incremental create does not.
        if payload.get("previous_response_id") and "u1a please" not in json.dumps(payload.get("input")):
            result.incremental += 1
    result.reconnects = max(0, emu.connection_count - 1)
    for r in emu.records.responses:
        start, end = r.created_at, r.finished_at
        hit = start is not None and any(start <= c and (end is None or end > c) for c in cuts)
        if r.generate and (r.cancelled_at is not None or hit):
            result.abandoned_tokens += r.output_tokens_generated


async def run_scenario(
    service_factory: ServiceFactory,
    scenario: Scenario,
    *,
    cancel_policy: str = "ignore",
    service_name: str = "service",
    budget: float = 60.0,
    wait: float = WAIT,
    rtvi: bool = False,
    reply_gap: float = REPLY_GAP,
    multiplexing: str = "lanes",
    emulator_options: dict[str, Any] | None = None,
    audio: bool = False,
    recording: Path | None = None,
    eager: str | None = None,
) -> RunResult:
    """Play ``scenario`` against a fresh service and emulator; never raises for a misbehaving service.

    ``audio=True`` plays it on a voice pipeline in real time (:mod:`.voice`) and measures each
    barge-in at the caller's ear; ``recording`` is then where the run's stereo WAV is written.

    ``multiplexing="none"`` gives the emulator no lanes (one response at a time, ``stream_id`` ignored).
    ``emulator_options`` are further :class:`~pipecat_responses_ws.emulator.Emulator` arguments
    (``api_key=`` makes it refuse any other key, say); they win over the harness's own settings.

    ``eager`` (a :data:`.eager.MODES` name) plays an eager scenario (:func:`.eager.generate`) in that
    mode, on a model as slow as a real endpoint.
    """
    note = ""
    model = (TTFT, TOKENS_PER_SECOND)
    if eager is not None:
        from . import eager as eager_turns

        model = (eager_turns.TTFT, eager_turns.TOKENS_PER_SECOND)
    options: dict[str, Any] = {
        "cancel_policy": cancel_policy,
        "ttft": model[0],
        "tokens_per_second": model[1],
        "seed": scenario.seed,
        "multiplexing": multiplexing,
        **(emulator_options or {}),
    }
    async with Emulator(**options) as emu:
        llm = service_factory(emu.ws_url)
        run: ScenarioRun
        voice: VoiceRun | None = None
        speculation: EagerTurns | None = None
        if eager is not None:
            from .eager import EagerRun

            if audio:
                from .eager_voice import EagerVoiceRun

                run = voice = speculation = EagerVoiceRun(emu, llm, eager, wait=wait, rtvi=rtvi)
            else:
                run = speculation = EagerRun(emu, llm, eager, wait=wait, rtvi=rtvi)
        elif audio:
            from .voice import VoiceRun  # the voice pipeline's imports (Silero, espeak-ng) only when asked for

            run = voice = VoiceRun(emu, llm, wait=wait, reply_gap=reply_gap, rtvi=rtvi)
        else:
            conv = Conversation(llm, context=LLMContext(tools=tools_schema()), rtvi=rtvi)
            run = ScenarioRun(emu, conv, wait, reply_gap)
        conv = run.conv
        for name in TOOLS:
            llm.register_function(name, run.handler)
        async with conv:
            await asyncio.sleep(FIRST_TURN_AFTER)
            try:
                await asyncio.wait_for(_play(run, scenario), budget)
            except TimeoutError:
                note = f"run exceeded {budget:g}s"
                run.unanswered.append(-1)
            await asyncio.sleep(0.3)  # late stale text, if any, must be seen to be counted
        obs = _observe(run)
        if voice is not None:
            obs.spoken = voice.spoken_text()
        result = RunResult(
            service_name,
            cancel_policy,
            scenario,
            check(obs),
            run.after_barge_in,
            run.uninterrupted,
            note=note,
            user_turns=len(scenario.turns),
            reply_gap=reply_gap,
            multiplexing=multiplexing,
        )
        result.errors = [redact(text) for _, text in obs.errors]
        result.tool_dispatch = [
            r.time - obs.completed_calls[r.call_id] for r in obs.tool_runs if r.call_id in obs.completed_calls
        ]
        _traffic(result, emu, list(obs.abandoned.values()))
        if speculation is not None:
            result.eager = speculation.finish(obs.spoken)
            result.violations["answered_unfinished"] = result.eager.answered_unfinished
        if voice is not None:
            ear = voice.ear()
            result.heard = voice.heard(ear)
            if recording is not None:
                write_wav(recording, ear.stereo())
                result.recording = recording.name
        return result


async def _play(run: ScenarioRun, scenario: Scenario) -> None:
    for turn in scenario.turns:
        await run.turn(turn)
