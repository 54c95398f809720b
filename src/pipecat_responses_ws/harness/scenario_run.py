"""One scenario played turn by turn at frame level: the user's turns, barge-ins and tools, and when each came.

:class:`ScenarioRun` is what the voice (:mod:`.voice`) and eager (:mod:`.eager`) runs build on;
:func:`.runner.run_scenario` picks one, plays it on a fresh emulator and sums it up.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema

from ..emulator import Emulator
from ..measures import first_text_delay
from .invariants import ToolRun
from .pipeline import Conversation
from .scenario import LONG_WORDS, TOOLS, Turn, replies_for, tag_finder

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


def tools_schema() -> ToolsSchema:
    return ToolsSchema(
        standard_tools=[
            FunctionSchema(
                name=n, description=f"{n} for a city", properties={"city": {"type": "string"}}, required=["city"]
            )
            for n in TOOLS
        ]
    )


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
        conv.follow(emu.records.changes)  # the phases are the server's as well as the pipeline's
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
        self.conv.changes.notify()  # a barge-in waiting for its tool to start
        if n in self.slow_tools:
            await asyncio.sleep(TOOL_SLEEP)
        await params.result_callback({"result": f"t{n}r"})

    def bracket_with(self, tag: str, since: int) -> Any:
        # Checked on every frame inside the latencies being measured, so it stops at the first
        # match instead of listing every tag of every bracket.
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
