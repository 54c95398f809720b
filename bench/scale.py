"""Scale: concurrent voice sessions in one process, ours and Pipecat's built-in on the same machine.

The emulator runs in its own process (the other core) and paces every answer at
``--tokens-per-second``. Each session is a real Pipecat pipeline (aggregators, the LLM service, a
probe, and with ``--tts`` Pipecat's TTS text handling with a stand-in that synthesises nothing)
that talks like a caller: a ~20-word turn, a streamed answer of ~35 words, then ``--think``
seconds of the answer being spoken and the caller replying, with random start offsets so
sessions do not move in step.

At each level of concurrency the services take turns (ours, Pipecat's, then the other way round
for the next repetition), ``--reps`` times, so both see the same machine. Each run reports over
its ``--window``:

- *text lateness*: how much later than the emulator's pacing each text delta reached the end of
  the LLM stage, measured from the answer's first text (a frame carrying several deltas is as
  late as each of them); and the same for the deltas that end a sentence or a clause alone,
  which is what a TTS speaking whole sentences waits for;
- first text after the user's turn, minus the emulator's TTFT;
- frames per delta, CPU use of this process and of the emulator's, the event loop's lag (how
  late a 5 ms timer fires) and the longest garbage-collector pause: what limits the level.

With ``--services ours,pipecat,floor`` the bare loop (``websockets`` and ``json.loads``, one frame
per delta, no context) runs as a third LLM stage: the sessions it holds are what the pipeline
itself allows, the most any LLM service could reach on this machine. ``ours`` is the service as
it ships (its text paced into frames, see ``text_pacing``); ``ours-unpaced`` pushes every delta
at once, as the built-in and the floor do.

A service holds a level when the p99 lateness over all its repetitions' deltas is within
``--limit-ms`` (20 ms); judged again on their sentence and clause ends alone, which is what paced
text is for. It is not run at higher levels once it fails one under both. ``--no-collector``
turns the garbage collector off while each window is measured: the lateness left is what the
collector's pauses do not explain.

    .venv/bin/python bench/scale.py [--levels 25,50,75,100,150,200,300] [--reps 3] [--no-tts] [--rtvi]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from _answers import AnswerCounter
from _emulator import emulator_process
from _floor import BareLoopLLM
from _tts import SilentTTS
from loguru import logger
from pipecat.frames.frames import LLMFullResponseEndFrame, LLMFullResponseStartFrame, LLMTextFrame
from pipecat.processors.frame_processor import FrameProcessor

from pipecat_responses_ws import ResponsesWSLLMService
from pipecat_responses_ws.emulator.builders import text_chunks
from pipecat_responses_ws.harness.pipeline import Conversation, Seen
from pipecat_responses_ws.harness.runner import resolve_factory
from pipecat_responses_ws.measures import (
    Spread,
    clause_end_lateness,
    cpu_per_delta_us,
    first_text_delay,
    frames_per_delta,
    lateness,
    percentile,
)

USER_WORDS = 20
# LLM stages of this benchmark's own, beside the harness's services.
STAGES: dict[str, Callable[[str], FrameProcessor]] = {
    "floor": BareLoopLLM,
    "ours-unpaced": lambda url: ResponsesWSLLMService(
        api_key="k",
        ws_url=url,
        settings=ResponsesWSLLMService.Settings(model="emulated", system_instruction="Answer briefly."),
        text_pacing=None,
    ),
}
LAG_TICK_SECS = 0.005


@dataclass
class Run:
    service: str
    sessions: int
    lateness: list[float] = field(default_factory=list)
    end_lateness: list[float] = field(default_factory=list)  # of the deltas ending a sentence or clause
    first_text: list[float] = field(default_factory=list)
    answers: int = 0
    deltas: int = 0
    frames: int = 0
    cpu_here: float = 0.0  # share of one core
    cpu_emulator: float | None = None
    cpu_per_delta_us: float = 0.0
    loop_lag: list[float] = field(default_factory=list)
    gc_max_pause: float = 0.0


async def caller(
    conv: Conversation,
    answers: AnswerCounter,
    rng: random.Random,
    think: float,
    stop: asyncio.Event,
    asked: list[float],
) -> None:
    """Talk until ``stop``: a turn, its answer, a pause."""
    await asyncio.sleep(rng.uniform(0, think))
    n = 0
    while not stop.is_set():
        n += 1
        asked.append(await conv.say(" ".join(f"w{n}x{k}" for k in range(USER_WORDS))))
        try:
            await answers.wait_answers(n, timeout=30)
        except TimeoutError:
            return
        await asyncio.sleep(rng.uniform(0.5, 1.5) * think)


# An answer's bracket in a ``Timeline``; a text frame's mark is its text.
START, END = 0, 1


class Timeline:
    """What left one session's LLM stage: ``(time, text)`` per text frame, ``(time, START | END)``
    per bracket. The session keeps no frames: tuples of a float and a string or an int are
    dropped from the collector's view, so the heap it walks does not grow with the run, and the
    pauses measured are the pipeline's, not this benchmark's."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, str | int]] = []

    def __call__(self, seen: Seen) -> None:
        frame = seen.frame
        if isinstance(frame, LLMTextFrame):
            self.marks.append((seen.time, frame.text))
        elif isinstance(frame, LLMFullResponseStartFrame):
            self.marks.append((seen.time, START))
        elif isinstance(frame, LLMFullResponseEndFrame):
            self.marks.append((seen.time, END))


def measure(
    timeline: Timeline, asked: list[float], window: tuple[float, float], tps: float, ttft: float, run: Run
) -> None:
    """One pass over a session's timeline: figures of the answers whose first text came inside ``window``."""
    arrivals: list[float] = []
    chunks: list[list[str]] = []  # the deltas in each frame
    started = False
    for at, mark in timeline.marks:
        if mark == START:
            started, arrivals, chunks = True, [], []
        elif isinstance(mark, str):
            if started:
                arrivals.append(at)
                # The emulator streams one word (with its space) per delta, so the chunks are the deltas.
                chunks.append(list(text_chunks(mark)))
        elif started and arrivals:
            first = arrivals[0]
            if window[0] <= first <= window[1]:
                counts = [len(deltas) for deltas in chunks]
                run.answers += 1
                run.lateness += lateness(arrivals, tps, counts)
                run.end_lateness += clause_end_lateness(arrivals, tps, chunks)
                run.deltas += sum(counts)
                run.frames += len(arrivals)
                before = [a for a in asked if a <= first]
                if before:
                    run.first_text.append(first_text_delay(before[-1], first, ttft))
            started = False


@contextlib.contextmanager
def collector_pauses() -> Iterator[list[float]]:
    """Durations of the garbage collector's runs while inside the block."""
    pauses: list[float] = []
    started = [0.0]

    def timed(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])

    gc.callbacks.append(timed)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(timed)


@contextlib.asynccontextmanager
async def loop_lag() -> AsyncIterator[list[float]]:
    """How late a short timer fires, sampled all through the block: the event loop's own delay."""
    lags: list[float] = []
    loop = asyncio.get_running_loop()

    async def tick() -> None:
        while True:
            due = loop.time() + LAG_TICK_SECS
            await asyncio.sleep(LAG_TICK_SECS)
            lags.append(loop.time() - due)

    ticker = asyncio.create_task(tick())
    try:
        yield lags
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)


async def run_level(service: str, sessions: int, args: argparse.Namespace) -> Run:
    async with emulator_process(ttft=args.ttft, tokens_per_second=args.tokens_per_second) as emu:
        rng = random.Random(sessions)
        counters = [AnswerCounter() for _ in range(sessions)]
        make = STAGES[service] if service in STAGES else resolve_factory(service)
        timelines = [Timeline() for _ in range(sessions)]
        convs = [
            Conversation(
                make(emu.ws_url),
                rtvi=args.rtvi,
                listeners=[SilentTTS(), counter] if args.tts else [counter],
                keep_frames=False,
                on_downstream=timeline,
            )
            for counter, timeline in zip(counters, timelines, strict=True)
        ]
        await asyncio.gather(*(c.__aenter__() for c in convs))
        await asyncio.sleep(1.0)  # every service connected, as a bot is before its caller speaks
        if args.gc_freeze:
            # Pipecat's and the models' long-lived objects leave the collector's view; without this a
            # full collection over them stops the loop for 100-200 ms every so often (see --no-gc-freeze).
            gc.collect()
            gc.freeze()
        stop = asyncio.Event()
        asked: list[list[float]] = [[] for _ in convs]
        callers = [
            asyncio.create_task(caller(c, n, random.Random(rng.random()), args.think, stop, a))
            for c, n, a in zip(convs, counters, asked, strict=True)
        ]
        await asyncio.sleep(args.think)  # every caller has started
        cpu0, wall0, emu0 = time.process_time(), time.monotonic(), emu.cpu_seconds()
        if not args.collector:
            gc.disable()
        try:
            with collector_pauses() as pauses:
                async with loop_lag() as lags:
                    await asyncio.sleep(args.window)
        finally:
            gc.enable()
        cpu1, wall1, emu1 = time.process_time(), time.monotonic(), emu.cpu_seconds()
        stop.set()
        await asyncio.gather(*callers, return_exceptions=True)
        await asyncio.gather(*(c.__aexit__(None, None, None) for c in convs), return_exceptions=True)
        gc.unfreeze()
    run = Run(service, sessions, cpu_here=(cpu1 - cpu0) / (wall1 - wall0), loop_lag=lags)
    run.gc_max_pause = max(pauses, default=0.0)
    if emu0 is not None and emu1 is not None:
        run.cpu_emulator = (emu1 - emu0) / (wall1 - wall0)
    for timeline, a in zip(timelines, asked, strict=True):
        measure(timeline, a, (wall0, wall1), args.tokens_per_second, args.ttft, run)
    if run.deltas:
        run.cpu_per_delta_us = cpu_per_delta_us(cpu1 - cpu0, run.deltas)
    return run


def pct(values: list[float], share: float) -> float:
    """``measures.percentile`` in ms; NaN for a run with no answer in its window."""
    return percentile(values, share) * 1000 if values else float("nan")


def limited_by(runs: list[Run], limit_ms: float) -> str:
    """What held a level back: a saturated core, the collector's pauses, or a loop busy in bursts."""
    reasons = []
    if max(r.cpu_here for r in runs) >= 0.85:
        reasons.append("CPU")
    if max(r.gc_max_pause for r in runs) * 1000 >= limit_ms:
        reasons.append("GC pauses")
    if pct([lag for r in runs for lag in r.loop_lag], 0.99) >= limit_ms:
        reasons.append("event-loop lag")
    if any(r.cpu_emulator is not None and r.cpu_emulator >= 0.85 for r in runs):
        reasons.append("the emulator's CPU")
    return ", ".join(reasons) or "none of CPU, GC pauses or event-loop lag"


LATENESS_COLUMNS = "late_p50 late_p99 end_p99 first_p50 first_p99"
HEADER = f"service sessions rep answers {LATENESS_COLUMNS} frames/Δ CPU emu_CPU lag_p99 GC_max µs/Δ"
ROW = "{:<12} {:>8} {:>3} {:>7} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8} {:>5} {:>7} {:>7} {:>6} {:>8}"


SUMMARY_HEADER = "service sessions pooled_p99 pooled_end_p99 late_p99 end_p99 frames/Δ CPU lag_p99 GC_max µs/Δ"
SUMMARY_ROW = "{:<12} {:>8} {:>10} {:>14} {:>18} {:>18} {:>20} {:>14} {:>16} {:>14} {:>14}"


def _spreads(runs: list[Run]) -> list[str]:
    """Per-run figures of one service at one level, each as its spread over the runs."""
    columns: list[tuple[list[float], int]] = [  # the values, and the digits to show
        ([pct(r.lateness, 0.99) for r in runs if r.lateness], 1),
        ([pct(r.end_lateness, 0.99) for r in runs if r.end_lateness], 1),
        ([frames_per_delta(r.frames, r.deltas) for r in runs if r.deltas], 3),
        ([r.cpu_here * 100 for r in runs], 0),
        ([pct(r.loop_lag, 0.99) for r in runs if r.loop_lag], 1),
        ([r.gc_max_pause * 1000 for r in runs], 0),
        ([r.cpu_per_delta_us for r in runs if r.deltas], 0),
    ]
    return [Spread.of(values).format(digits) if values else "-" for values, digits in columns]


def print_run(run: Run, rep: int) -> None:
    emu_cpu = f"{run.cpu_emulator:.0%}" if run.cpu_emulator is not None else "-"
    print(
        ROW.format(
            run.service,
            run.sessions,
            rep,
            run.answers,
            f"{pct(run.lateness, 0.5):.1f}",
            f"{pct(run.lateness, 0.99):.1f}",
            f"{pct(run.end_lateness, 0.99):.1f}",
            f"{pct(run.first_text, 0.5):.1f}",
            f"{pct(run.first_text, 0.99):.1f}",
            f"{frames_per_delta(run.frames, run.deltas):.3f}" if run.deltas else "-",
            f"{run.cpu_here:.0%}",
            emu_cpu,
            f"{pct(run.loop_lag, 0.99):.1f}",
            f"{run.gc_max_pause * 1000:.0f}",
            f"{run.cpu_per_delta_us:.0f}",
        ),
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--services",
        default="ours,pipecat",
        help="comma-separated: ours, pipecat, floor (the bare loop as the LLM stage: the most any stage can hold), "
        "or any harness service name (default: %(default)s)",
    )
    parser.add_argument("--levels", default="25,50,75,100,150,200,300")
    parser.add_argument("--reps", type=int, default=3, help="runs of each service at each level (default: %(default)s)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per run")
    parser.add_argument(
        "--think",
        type=float,
        default=8.0,
        help="mean seconds from an answer's end to the next turn: the answer being spoken, then the caller",
    )
    parser.add_argument(
        "--tts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Pipecat's TTS text handling after the LLM, with a stand-in that synthesises nothing (default: on)",
    )
    parser.add_argument(
        "--rtvi",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="add Pipecat's RTVI observer (default: off)",
    )
    parser.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gc.freeze() once the sessions are up, as a tuned server would (default: on)",
    )
    parser.add_argument(
        "--collector",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="--no-collector turns the garbage collector off for each measured window: what the sessions would be "
        "without its pauses, to tell them from the rest of what limits a level (default: on)",
    )
    parser.add_argument("--ttft", type=float, default=0.3)
    parser.add_argument("--tokens-per-second", type=float, default=50.0)
    parser.add_argument("--limit-ms", type=float, default=20.0)
    args = parser.parse_args()
    logger.remove()
    started = time.monotonic()
    print(
        f"sessions talk in turns ({USER_WORDS}-word question, ~35-word answer at {args.tokens_per_second:g} tokens/s, "
        f"{args.think:g} s pauses); {args.window:g} s measured per run, {args.reps} runs per service and level, "
        f"services interleaved; TTS stand-in {'on' if args.tts else 'off'}, RTVI {'on' if args.rtvi else 'off'}, "
        f"gc.freeze {'on' if args.gc_freeze else 'off'}, collector {'on' if args.collector else 'off while measuring'}"
    )
    print(ROW.format(*(h.replace("_", " ") for h in HEADER.split())))
    services = args.services.split(",")
    # What a level is judged on: every delta (what a word-streaming TTS hears), or the deltas ending
    # a sentence or clause (what a sentence-aggregating TTS, Pipecat's default, waits for).
    criteria: dict[str, Callable[[Run], list[float]]] = {
        "every delta": lambda run: run.lateness,
        "sentence and clause ends": lambda run: run.end_lateness,
    }
    held: dict[str, dict[str, int]] = {name: {} for name in criteria}
    at_limit: dict[str, dict[str, float]] = {name: {} for name in criteria}
    # criterion -> service -> (level, pooled p99, what limited it)
    stopped: dict[str, dict[str, tuple[int, float, str]]] = {name: {} for name in criteria}
    summary: list[str] = []
    for sessions in (int(n) for n in args.levels.split(",")):
        alive = [s for s in services if not all(s in stopped[name] for name in criteria)]
        if not alive:
            break
        runs: dict[str, list[Run]] = {s: [] for s in alive}
        for rep in range(args.reps):
            for service in alive if rep % 2 == 0 else alive[::-1]:
                run = await run_level(service, sessions, args)
                runs[service].append(run)
                print_run(run, rep + 1)
        for service in alive:
            pooled = {name: pct([x for r in runs[service] for x in of(r)], 0.99) for name, of in criteria.items()}
            summary.append(
                SUMMARY_ROW.format(service, sessions, *(f"{p:.1f}" for p in pooled.values()), *_spreads(runs[service]))
            )
            for name, p99 in pooled.items():
                if service in stopped[name]:
                    continue
                if p99 <= args.limit_ms:
                    held[name][service] = sessions
                    at_limit[name][service] = p99
                else:
                    stopped[name][service] = (sessions, p99, limited_by(runs[service], args.limit_ms))
    print(
        "ms; 'late' = text delta arrival behind the emulator's pacing, 'end' = the same for the deltas that end a "
        "sentence or clause; 'first' = first text minus TTFT; "
        "'lag' = how late a 5 ms timer fired; 'GC max' = longest collector pause; CPU = share of one core"
    )
    print(
        f"\nper level: the p99 over all runs' deltas and over their sentence and clause ends, and each figure's median "
        f"(min–max) over the {args.reps} runs"
    )
    print(SUMMARY_ROW.format(*(h.replace("_", " ") for h in SUMMARY_HEADER.split())))
    print("\n".join(summary))
    for name in criteria:
        print(f"\njudged on {name}:")
        for service in services:
            line = (
                f"{service}: {held[name].get(service, 0)} concurrent sessions with p99 lateness ≤ {args.limit_ms:g} ms"
            )
            if service in at_limit[name]:
                line += f" ({at_limit[name][service]:.1f} ms over {args.reps} runs)"
            if service in stopped[name]:
                level, p99, why = stopped[name][service]
                line += f"; at {level}: {p99:.1f} ms, limited by {why}"
            print(line)
        if held[name].get("ours") and held[name].get("floor"):
            print(f"sessions, ours / floor: {held[name]['ours'] / held[name]['floor']:.2f}x")
    print(f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
