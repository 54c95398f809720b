"""Runs one scenario against one LLM service on a fresh emulator and collects its figures.

Every wait is bounded: a service that never answers costs the run a few seconds and shows up as
an ``unanswered_turns`` violation, never as a hung harness.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from ..protocol.redaction import redact
from .invariants import END, INTERRUPTION, START, TEXT, Event, Observed, check
from .pipeline import Conversation
from .recording import write_wav
from .result import RunResult
from .scenario import TOOLS, Scenario
from .scenario_run import REPLY_GAP, TOKENS_PER_SECOND, TTFT, WAIT, ScenarioRun, tools_schema

if TYPE_CHECKING:
    from .eager import EagerTurns
    from .voice import VoiceRun

ServiceFactory = Callable[[str], Any]
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
