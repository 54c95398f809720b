"""Scale: concurrent voice sessions in one process on this machine, until streaming falls behind.

The emulator runs in its own process (the other core) and paces every answer at
``--tokens-per-second``. Each session is a real Pipecat pipeline (aggregators, the LLM service,
probes) that talks like a caller: a ~20-word turn, a streamed answer of ~35 words, then
``--think`` seconds of the user speaking, with random start offsets so sessions do not move in
step. At each level of concurrency the benchmark reports, over a ``--window`` of seconds:

- *delta lateness*: how much later than the emulator's pacing each text frame reached the end of
  the pipeline, measured from the answer's first text (p50 / p99);
- first text after the user's turn, minus the emulator's TTFT (p50 / p99);
- CPU use of this process and of the emulator's, so it is clear which side ran out.

Levels grow until the p99 delta lateness passes ``--limit-ms`` (20 ms). The whole climb is
repeated ``--reps`` times, each service's in turn within a repetition; the summary gives each
figure's median (min–max) over the repetitions that reached the level, and the highest level
within the limit as a spread too: the tail at the limit moves from run to run.

    .venv/bin/python bench/scale.py [--services ours,pipecat] [--levels 25,50,75,100,150,200,300,400] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from _answers import AnswerCounter
from _emulator import emulator_process
from loguru import logger
from pipecat.frames.frames import LLMFullResponseEndFrame, LLMFullResponseStartFrame, LLMTextFrame

from pipecat_responses_ws.harness.pipeline import Conversation
from pipecat_responses_ws.harness.runner import resolve_factory
from pipecat_responses_ws.measures import Spread, first_text_delay, lateness, percentile

USER_WORDS = 20


@dataclass
class Level:
    sessions: int
    lateness: list[float]
    first_text: list[float]
    answers: int
    cpu_here: float  # share of one core
    cpu_emulator: float | None
    deltas_in_window: int = 0
    cpu_per_delta_us: float = 0.0
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


@dataclass
class AnswerFigures:
    lateness: list[float]
    first_text: list[float]
    answers: int
    deltas_in_window: int


def measure(
    conv: Conversation, asked: list[float], window: tuple[float, float], tps: float, ttft: float
) -> AnswerFigures:
    """One pass over a session's frames: figures of the answers that started inside ``window``."""
    figures = AnswerFigures([], [], 0, 0)
    texts: list[float] = []
    started: float | None = None
    for seen in conv.downstream.seen:
        if isinstance(seen.frame, LLMFullResponseStartFrame):
            started, texts = seen.time, []
        elif isinstance(seen.frame, LLMTextFrame):
            figures.deltas_in_window += window[0] <= seen.time <= window[1]
            if started is not None:
                texts.append(seen.time)
        elif isinstance(seen.frame, LLMFullResponseEndFrame) and started is not None and texts:
            if window[0] <= texts[0] <= window[1]:
                figures.answers += 1
                figures.lateness += lateness(texts, tps)
                before = [a for a in asked if a <= texts[0]]
                if before:
                    figures.first_text.append(first_text_delay(before[-1], texts[0], ttft))
            started = None
    return figures


async def run_level(service: str, sessions: int, args: argparse.Namespace, url: str, emu: Any) -> Level:
    rng = random.Random(sessions)
    counters = [AnswerCounter() for _ in range(sessions)]
    make = resolve_factory(service)
    convs = [Conversation(make(url), rtvi=args.rtvi, listeners=[counter]) for counter in counters]
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
    await asyncio.sleep(args.think * 1.5)  # let the staggered starts settle
    cpu0, wall0, emu0 = time.process_time(), time.monotonic(), emu.cpu_seconds()
    with collector_pauses() as pauses:
        await asyncio.sleep(args.window)
    cpu1, wall1, emu1 = time.process_time(), time.monotonic(), emu.cpu_seconds()
    stop.set()
    await asyncio.gather(*callers, return_exceptions=True)
    await asyncio.gather(*(c.__aexit__(None, None, None) for c in convs), return_exceptions=True)
    gc.unfreeze()
    level = Level(sessions, [], [], 0, (cpu1 - cpu0) / (wall1 - wall0), None, gc_max_pause=max(pauses, default=0.0))
    if emu0 is not None and emu1 is not None:
        level.cpu_emulator = (emu1 - emu0) / (wall1 - wall0)
    for conv, a in zip(convs, asked, strict=True):
        part = measure(conv, a, (wall0, wall1), args.tokens_per_second, args.ttft)
        level.lateness += part.lateness
        level.first_text += part.first_text
        level.answers += part.answers
        level.deltas_in_window += part.deltas_in_window
    level.cpu_per_delta_us = (cpu1 - cpu0) / max(1, level.deltas_in_window) * 1e6
    return level


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


def pct(values: list[float], share: float) -> float:
    """``measures.percentile`` in ms; NaN for a level with no answer in its window."""
    return percentile(values, share) * 1000 if values else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", default="ours,pipecat")
    parser.add_argument("--levels", default="25,50,75,100,150,200,300,400")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per level")
    parser.add_argument(
        "--think",
        type=float,
        default=8.0,
        help="mean seconds from an answer's end to the next turn: the answer being spoken, then the caller",
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
    parser.add_argument("--ttft", type=float, default=0.3)
    parser.add_argument("--tokens-per-second", type=float, default=50.0)
    parser.add_argument("--limit-ms", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=3, help="climbs per service (default: %(default)s)")
    args = parser.parse_args()
    logger.remove()
    print(
        f"sessions talk in turns ({USER_WORDS}-word question, ~35-word answer at {args.tokens_per_second:g} tokens/s, "
        f"{args.think:g} s pauses); {args.window:g} s measured per level; RTVI {'on' if args.rtvi else 'off'}, "
        f"gc.freeze {'on' if args.gc_freeze else 'off'}; {args.reps} repetitions"
    )
    services = args.services.split(",")
    levels: dict[tuple[str, int], list[Level]] = {}
    reached: dict[str, list[int]] = {service: [] for service in services}
    print(ROW.format("rep", *HEADER))
    for rep in range(1, args.reps + 1):
        for service in services:
            highest = 0
            async with emulator_process(ttft=args.ttft, tokens_per_second=args.tokens_per_second) as emu:
                for sessions in (int(n) for n in args.levels.split(",")):
                    level = await run_level(service, sessions, args, emu.ws_url, emu)
                    levels.setdefault((service, sessions), []).append(level)
                    print(ROW.format(rep, *_cells(service, [level])), flush=True)
                    if pct(level.lateness, 0.99) > args.limit_ms:
                        break
                    highest = sessions
            reached[service].append(highest)
    print(
        "ms; 'late' = text frame arrival behind the emulator's pacing; 'first' = first text minus TTFT; "
        "'GC max' = longest garbage-collector pause in the window; CPU % of one core"
    )
    print("\nmedian (min–max) over the repetitions that reached each level ('reps' = how many did)")
    print(ROW.format("reps", *HEADER))
    for (service, _), runs in levels.items():
        print(ROW.format(len(runs), *_cells(service, runs)))
    for service, highest in reached.items():
        print(
            f"{service}: {Spread.of(highest).format(digits=0)} concurrent sessions with p99 delta lateness "
            f"≤ {args.limit_ms:g} ms"
        )
    if "ours" in reached and "pipecat" in reached and all(reached["pipecat"]):
        each = [a / b for a, b in zip(reached["ours"], reached["pipecat"], strict=True)]
        print(f"sessions, ours / pipecat: {Spread.of(each).format(digits=2, unit='×')}")


HEADER = ("service", "sessions", "answers", "late p50", "late p99", "first p50", "first p99", "CPU %", "emu CPU %",
          "µs/delta", "GC max")  # fmt: skip
ROW = "{:>4} {:<8} {:>8} {:>13} {:>18} {:>18} {:>18} {:>18} {:>12} {:>12} {:>12} {:>12}"


def _cells(service: str, runs: list[Level]) -> list[str]:
    """One row's figures for a level, each a spread over ``runs`` (one repetition's value, if one)."""
    columns: list[tuple[list[float], int]] = [  # the values, and the digits to show
        ([level.answers for level in runs], 0),
        ([pct(level.lateness, 0.5) for level in runs], 1),
        ([pct(level.lateness, 0.99) for level in runs], 1),
        ([pct(level.first_text, 0.5) for level in runs], 1),
        ([pct(level.first_text, 0.99) for level in runs], 1),
        ([level.cpu_here * 100 for level in runs], 0),
        ([level.cpu_emulator * 100 for level in runs if level.cpu_emulator is not None], 0),
        ([level.cpu_per_delta_us for level in runs], 0),
        ([level.gc_max_pause * 1000 for level in runs], 0),
    ]
    cells = (Spread.of(values).format(digits) if values else "-" for values, digits in columns)
    return [service, str(runs[0].sessions), *cells]


if __name__ == "__main__":
    asyncio.run(main())
