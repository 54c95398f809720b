"""The connection-age limit: first-text latency of the turn that crosses it vs a normal turn.

OpenAI closes a Responses WebSocket after 60 minutes. The emulator here closes it after a few
seconds (``--age``) and charges every handshake ``--handshake-delay`` seconds, as TCP + TLS +
the upgrade would over a real network (loopback charges nothing). A conversation of short turns
runs across several age limits, for each service side by side. A turn is *crossing* when a new
connection was opened since the previous turn ended; every other turn is *normal*.

Ours is told the limit (``max_connection_age``) and rotates while idle, ``--margin`` seconds
before it; Pipecat's built-in learns of it when the server closes the connection.

    .venv/bin/python bench/rollover.py [--turns 100] [--age 4] [--handshake-delay 0.15]
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
                    (outcome.crossing if crossing else outcome.normal).append(turn.first_text_at - asked - TTFT)
                handshakes = len(emu.records.handshakes)
                await asyncio.sleep(rng.uniform(0.5, 1.5) * args.gap)
            outcome.errors = len(conv.errors())
        outcome.connections = emu.connection_count
    return outcome


def ms(values: list[float], stat: Callable[[list[float]], float]) -> str:
    return f"{stat(values) * 1000:.1f}" if values else "-"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--age", type=float, default=4.0, help="the emulator's connection age limit, seconds")
    parser.add_argument("--margin", type=float, default=1.0, help="ours rotates this long before the limit")
    parser.add_argument("--gap", type=float, default=0.4, help="mean seconds between an answer and the next turn")
    parser.add_argument("--handshake-delay", type=float, default=0.15, help="seconds each handshake costs")
    parser.add_argument("--services", default="ours,pipecat")
    args = parser.parse_args()
    logger.remove()
    print(
        f"{args.turns} turns, {TTFT * 1000:.0f} ms TTFT (subtracted), connection age limit {args.age:g} s, "
        f"handshake {args.handshake_delay * 1000:.0f} ms"
    )
    print(
        f"{'service':<8} {'connections':>11} {'normal n':>8} {'median':>7} {'max':>7} "
        f"{'crossing n':>10} {'median':>7} {'max':>7} {'ratio':>6} {'cut':>4} {'unanswered':>10} {'errors':>6}"
    )
    for service in args.services.split(","):
        o = await run(service, args)
        ratio = (
            f"{statistics.median(o.crossing) / statistics.median(o.normal):.2f}x" if o.crossing and o.normal else "-"
        )
        print(
            f"{service:<8} {o.connections:>11} {len(o.normal):>8} {ms(o.normal, statistics.median):>7} "
            f"{ms(o.normal, max):>7} {len(o.crossing):>10} {ms(o.crossing, statistics.median):>7} "
            f"{ms(o.crossing, max):>7} {ratio:>6} {o.cut:>4} {o.unanswered:>10} {o.errors:>6}",
            flush=True,
        )
    print("latencies in ms: first text after the user's turn, minus TTFT; ratio = crossing median / normal median")


if __name__ == "__main__":
    asyncio.run(main())
