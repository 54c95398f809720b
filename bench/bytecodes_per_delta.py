"""Bytecodes per streamed text delta: ours (coalescing off), Pipecat's built-in and the pipeline floor.

CPU time on a shared 2-core machine moves by several per cent from run to run, more than the
difference between the services; a count of the bytecodes executed moves far less (only the
read-ahead behind a delta depends on what has arrived). This traces
every Python function of Pipecat, ``websockets`` and this package (``sys.settrace`` with opcode
events) over whole turns of the ``plain`` pipeline of ``cpu_per_delta.py``, divides by the deltas,
and prints the total per receiver side by side, then every function whose count differs between
them (the stages themselves, and whatever they make Pipecat do differently). C code
(``json.loads``, the event loop) is not counted. Tracing makes the run slow, so it is short; each
conversation's set-up is included, spread over its turns. Totals are the median (min–max) over
``--reps`` runs of every receiver; the per-function rows are from the first. The same count over
answers of ``--short-words`` words splits each receiver's cost above the floor into what every delta
adds and what every answer costs whatever its length.

    .venv/bin/python bench/bytecodes_per_delta.py [--turns 10] [--reps 3] [--short-words 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Callable
from types import FrameType
from typing import Any

from _emulator import emulator_process
from _floor import BareLoopLLM
from cpu_per_delta import DOWNSTREAMS, SENTENCE_WORDS, Tally, in_pipeline, ours
from loguru import logger
from pipecat.processors.frame_processor import FrameProcessor

from pipecat_responses_ws.harness.runner import resolve_factory
from pipecat_responses_ws.measures import Spread

TRACED = ("/pipecat/", "/websockets/", "/pipecat_responses_ws/", "/_floor.py")
STAGES: dict[str, Callable[[str], FrameProcessor]] = {
    "pipeline-floor": BareLoopLLM,
    "ours-off": ours(coalesce=False),
    "pipecat": resolve_factory("pipecat"),
}


def function_name(frame: FrameType) -> str:
    path = frame.f_code.co_filename
    for marker in ("site-packages/", "src/", "bench/"):
        path = path.rpartition(marker)[2] if marker in path else path
    return f"{path}:{frame.f_code.co_qualname}"


async def count(receiver: str, turns: int, words: int) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()

    def trace(frame: FrameType, _event: str, _arg: Any) -> Any:
        if not any(part in frame.f_code.co_filename for part in TRACED):
            return None
        frame.f_trace_opcodes = True
        name = function_name(frame)

        def opcode(_frame: FrameType, event: str, _arg: Any) -> Any:
            if event == "opcode":
                counts[name] += 1
            return opcode

        return opcode

    run = in_pipeline(STAGES[receiver], DOWNSTREAMS["plain"])
    tally = Tally()
    settings = {"ttft": 0, "tokens_per_second": 1e9, "long_replies": turns, "words": words}
    async with emulator_process(**settings, sentence_words=SENTENCE_WORDS) as emu:
        sys.settrace(trace)
        try:
            await run(emu.ws_url, turns, tally)
        finally:
            sys.settrace(None)
    return counts, tally.deltas


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10, help="answers per receiver (default: %(default)s)")
    parser.add_argument("--words", type=int, default=100, help="deltas per answer (default: %(default)s)")
    parser.add_argument("--reps", type=int, default=3, help="runs of every receiver (default: %(default)s)")
    parser.add_argument("--receivers", default=",".join(STAGES), help="comma-separated (default: %(default)s)")
    parser.add_argument(
        "--short-words",
        type=int,
        default=10,
        help="also count answers this long, to split the cost per delta from the cost per answer; 0: don't",
    )
    parser.add_argument(
        "--min-difference",
        type=float,
        default=2.0,
        help="show functions whose bytecodes per delta differ by this much between receivers (default: %(default)s)",
    )
    args = parser.parse_args()
    logger.remove()
    names = args.receivers.split(",")
    runs: list[dict[str, dict[str, float]]] = []  # per repetition: receiver -> function -> per delta
    for _ in range(args.reps):
        run = {}
        for name in names:
            counts, deltas = await count(name, args.turns, args.words)
            run[name] = {f: n / deltas for f, n in counts.items()}
        runs.append(run)
    per_delta = runs[0]
    print(f"plain pipeline, {args.turns} answers of {args.words} words each, {args.reps} runs; bytecodes per delta")
    totals = {name: [sum(run[name].values()) for run in runs] for name in names}
    for name in names:
        print(f"{name:<16} {Spread.of(totals[name]).format(0):>22}")
    if "ours-off" in totals and "pipecat" in totals:
        ratios = [a / b for a, b in zip(totals["ours-off"], totals["pipecat"], strict=True)]
        print(f"ours-off / pipecat: {Spread.of(ratios).format(3)}×")
    if args.short_words and "pipeline-floor" in names:  # the split is above the floor, so it needs one
        await print_split(names, totals, args)
    print("\n" + "".join(f"{name:>16}" for name in names) + "  function (first run)")
    # The functions that differ between receivers: each one's own stage, and what it makes Pipecat do.
    functions = {f for counts in per_delta.values() for f in counts}
    rows = []
    for function in functions:
        values = [per_delta[name].get(function, 0.0) for name in names]
        if max(values) - min(values) >= args.min_difference:
            rows.append((max(values) - min(values), function, values))
    for _, function, values in sorted(rows, reverse=True):
        print("".join(f"{v:>16.1f}" for v in values) + f"  {function}")


async def print_split(names: list[str], totals: dict[str, list[float]], args: argparse.Namespace) -> None:
    """Each receiver's cost split into what every delta adds and what every answer costs whatever
    its length, above the floor: from the same count over answers of ``--short-words`` words, paired
    by repetition (a line through the two lengths). A voice bot's answers are short, so the part
    per answer weighs more there than in the long answers above."""
    long, short = args.words, args.short_words
    shorts: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.reps):
        for name in names:
            counts, deltas = await count(name, args.turns, short)
            shorts[name].append(sum(counts.values()) / deltas)
    # An answer of n words costs fixed + n × per_delta, so the two lengths give both, per run.
    split = {
        name: [_line(long, t_long, short, t_short) for t_long, t_short in zip(totals[name], shorts[name], strict=True)]
        for name in names
    }
    floor = split["pipeline-floor"]
    print(f"\nanswers of {short} and {long} words, paired by run; above the pipeline floor")
    print("(each conversation's set-up spread over its answers):")
    print(f"{'':<16} {'bytecodes per delta':>22} {'bytecodes per answer':>22}")
    for name in names:
        if name == "pipeline-floor":
            continue
        per_delta = [d - f[0] for (d, _), f in zip(split[name], floor, strict=True)]
        per_answer = [a - f[1] for (_, a), f in zip(split[name], floor, strict=True)]
        print(f"{name:<16} {Spread.of(per_delta).format(0):>22} {Spread.of(per_answer).format(0):>22}")


def _line(long: int, per_delta_long: float, short: int, per_delta_short: float) -> tuple[float, float]:
    """(cost per delta, cost per answer) through answers of ``long`` and ``short`` words."""
    per_delta = (long * per_delta_long - short * per_delta_short) / (long - short)
    return per_delta, short * (per_delta_short - per_delta)


if __name__ == "__main__":
    asyncio.run(main())
