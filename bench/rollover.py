"""The connection-age limit: first-text latency of the turn that crosses it vs a normal turn.

OpenAI closes a Responses WebSocket after 60 minutes. The emulator here closes it after a few
seconds (``--age``) and charges every handshake ``--handshake-delay`` seconds, as TCP + TLS +
the upgrade would over a real network (loopback charges nothing). A conversation of short turns
runs across several age limits, for each service side by side. A turn is *crossing* when a new
connection was opened since the previous turn ended; every other turn is *normal*.

Ours is told the limit (``max_connection_age``) and rotates while idle, ``--margin`` seconds
before it; Pipecat's built-in learns of it when the server closes the connection.

The conversation is played ``--reps`` times per service (the services in turn, with the same
gaps each time); the summary gives each figure's median (min–max) over the repetitions.

    .venv/bin/python bench/rollover.py [--turns 100] [--age 4] [--handshake-delay 0.15] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.services.openai.responses.llm import OpenAIResponsesLLMService

from pipecat_responses_ws import ResponsesWSLLMService
from pipecat_responses_ws.emulator import Emulator
from pipecat_responses_ws.harness.pipeline import Conversation, TurnRecord
from pipecat_responses_ws.measures import Spread, first_text_delay

TTFT = 0.05
INSTRUCTIONS = "Answer briefly."
ENDING = "what else you need."  # the default model's last words


@dataclass
class Outcome:
    normal: list[float] = field(default_factory=list)
    crossing: list[float] = field(default_factory=list)
    unanswered: int = 0
    cut: int = 0  # answered, but the age limit cut the answer short
    errors: int = 0
    connections: int = 0


def ours(url: str, args: argparse.Namespace) -> Any:
    settings = ResponsesWSLLMService.Settings(model="emulated", system_instruction=INSTRUCTIONS)
    return ResponsesWSLLMService(
        api_key="bench", ws_url=url, settings=settings, max_connection_age=args.age, rollover_margin=args.margin
    )


def pipecat_builtin(url: str, args: argparse.Namespace) -> Any:
    settings = OpenAIResponsesLLMService.Settings(model="emulated", system_instruction=INSTRUCTIONS)
    return OpenAIResponsesLLMService(api_key="bench", ws_url=url, settings=settings)


SERVICES: dict[str, Callable[[str, argparse.Namespace], Any]] = {"ours": ours, "pipecat": pipecat_builtin}


def answered(conv: Conversation, marker: str) -> TurnRecord | None:
    return next((t for t in conv.turns() if marker in t.text and t.ended is not None), None)


async def run(service: str, args: argparse.Namespace) -> Outcome:
    outcome = Outcome()
    rng = random.Random(args.seed)  # random gaps, so the limit lands at every moment of a turn
    emulator = Emulator(ttft=TTFT, max_connection_age=args.age, handshake_delay=args.handshake_delay)
    async with emulator as emu:
        async with Conversation(SERVICES[service](emu.ws_url, args), metrics=False) as conv:
            await asyncio.sleep(0.5)  # a caller says hello after the bot has connected, not during
            handshakes = len(emu.records.handshakes)
            for n in range(args.turns):
                asked = await conv.say(f"Turn number {n}")
                marker = f"Turn number {n}."  # the emulator's default model echoes the user
                try:
                    await conv.wait_for(lambda m=marker: answered(conv, m) is not None, 10, marker)
                except TimeoutError:
                    outcome.unanswered += 1
                else:
                    turn = answered(conv, marker)
                    outcome.cut += not turn.text.rstrip().endswith(ENDING)
                    crossing = len(emu.records.handshakes) > handshakes
                    delay = first_text_delay(asked, turn.first_text_at, TTFT)
                    (outcome.crossing if crossing else outcome.normal).append(delay)
                handshakes = len(emu.records.handshakes)
                await asyncio.sleep(rng.uniform(0.5, 1.5) * args.gap)
            outcome.errors = len(conv.errors())
        outcome.connections = emu.connection_count
    return outcome


def ms(values: list[float], stat: Callable[[list[float]], float]) -> str:
    return f"{stat(values) * 1000:.1f}" if values else "-"


def ratio(o: Outcome) -> float | None:
    """Crossing median / normal median: how much more the turn that crosses the limit waits."""
    return statistics.median(o.crossing) / statistics.median(o.normal) if o.crossing and o.normal else None


def spread(values: list[float | None], digits: int = 1, scale: float = 1.0, unit: str = "") -> str:
    present = [v for v in values if v is not None]
    return Spread.of(present).format(digits, scale, unit) if present else "-"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--age", type=float, default=4.0, help="the emulator's connection age limit, seconds")
    parser.add_argument("--margin", type=float, default=1.0, help="ours rotates this long before the limit")
    parser.add_argument("--gap", type=float, default=0.4, help="mean seconds between an answer and the next turn")
    parser.add_argument("--handshake-delay", type=float, default=0.15, help="seconds each handshake costs")
    parser.add_argument("--services", default="ours,pipecat")
    parser.add_argument("--reps", type=int, default=3, help="conversations per service (default: %(default)s)")
    args = parser.parse_args()
    logger.remove()
    print(
        f"{args.turns} turns, {TTFT * 1000:.0f} ms TTFT (subtracted), connection age limit {args.age:g} s, "
        f"handshake {args.handshake_delay * 1000:.0f} ms; {args.reps} repetitions"
    )
    print(
        f"{'rep':>3} {'service':<8} {'connections':>11} {'normal n':>8} {'median':>7} {'max':>7} "
        f"{'crossing n':>10} {'median':>7} {'max':>7} {'ratio':>6} {'cut':>4} {'unanswered':>10} {'errors':>6}"
    )
    services = args.services.split(",")
    outcomes: dict[str, list[Outcome]] = {service: [] for service in services}
    for rep in range(1, args.reps + 1):
        for service in services:
            o = await run(service, args)
            outcomes[service].append(o)
            r = ratio(o)
            print(
                f"{rep:>3} {service:<8} {o.connections:>11} {len(o.normal):>8} {ms(o.normal, statistics.median):>7} "
                f"{ms(o.normal, max):>7} {len(o.crossing):>10} {ms(o.crossing, statistics.median):>7} "
                f"{ms(o.crossing, max):>7} {'-' if r is None else f'{r:.2f}x':>6} {o.cut:>4} {o.unanswered:>10} "
                f"{o.errors:>6}",
                flush=True,
            )
    print("latencies in ms: first text after the user's turn, minus TTFT; ratio = crossing median / normal median")
    print(f"\nmedian (min–max) over {args.reps} repetitions; cut, unanswered and errors summed")
    print(f"{'service':<8} {'normal median':>20} {'crossing median':>24} {'crossing max':>24} {'ratio':>22} "
          f"{'cut':>4} {'unanswered':>10} {'errors':>6}")  # fmt: skip
    for service, runs in outcomes.items():
        normal = spread([statistics.median(o.normal) if o.normal else None for o in runs], scale=1000)
        crossing = spread([statistics.median(o.crossing) if o.crossing else None for o in runs], scale=1000)
        worst = spread([max(o.crossing) if o.crossing else None for o in runs], scale=1000)
        print(
            f"{service:<8} {normal:>20} {crossing:>24} {worst:>24} {spread([ratio(o) for o in runs], 2, unit='×'):>22} "
            f"{sum(o.cut for o in runs):>4} {sum(o.unanswered for o in runs):>10} {sum(o.errors for o in runs):>6}"
        )


if __name__ == "__main__":
    asyncio.run(main())
