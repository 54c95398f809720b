"""Next turn's first text after a barge-in vs an uninterrupted turn: ours vs Pipecat's built-in.

Both services run in real pipelines against the same emulator settings, side by side, for each
cancel policy the emulator can take (the real server's is undocumented) and for two moments of
interruption: mid-answer, and after the context reached the LLM but before a request went out.
The figure is the barge-in penalty (``measures.barge_in_penalty``): the first text of the turn
after the barge-in minus the first text of an uninterrupted turn (the faster of two warm-up
turns of the same conversation), both measured from the moment the user's turn was handed to the
pipeline. Each cell is the median (min–max) over ``--reps`` repetitions.

    .venv/bin/python bench/barge_in.py [--reps 3] [--policies error,ignore,honor]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import LLMContextFrame
from pipecat.services.openai.responses.llm import OpenAIResponsesLLMService

from pipecat_responses_ws import ResponsesWSLLMService
from pipecat_responses_ws.emulator import Emulator, Reply
from pipecat_responses_ws.harness.pipeline import Conversation
from pipecat_responses_ws.measures import Spread, barge_in_penalty, first_text_delay

LONG_REPLY = " ".join(f"word{n}" for n in range(60)) + "."
TTFT = 0.05
TOKENS_PER_SECOND = 25.0  # the abandoned answer still has ~2 s to stream when the user barges in
INSTRUCTIONS = "Answer briefly."


def ours(url: str) -> Any:
    settings = ResponsesWSLLMService.Settings(model="emulated", system_instruction=INSTRUCTIONS)
    return ResponsesWSLLMService(api_key="bench", ws_url=url, settings=settings)


def pipecat_builtin(url: str) -> Any:
    settings = OpenAIResponsesLLMService.Settings(model="emulated", system_instruction=INSTRUCTIONS)
    return OpenAIResponsesLLMService(api_key="bench", ws_url=url, settings=settings)


SERVICES: dict[str, Callable[[str], Any]] = {"ours": ours, "pipecat": pipecat_builtin}


async def _first_text_delay(conv: Conversation, prompt: str, marker: str, timeout: float = 15.0) -> float:
    asked = await conv.say(prompt)
    await conv.wait_for(lambda: any(marker in t.text for t in conv.turns()), timeout, f"text {marker!r}")
    turn = next(t for t in conv.turns() if marker in t.text)
    await conv.wait_for(lambda: turn.ended is not None or conv.turns()[-1].ended is not None, timeout, "turn end")
    return first_text_delay(asked, turn.first_text_at)  # type: ignore[arg-type]


async def one_run(service: str, policy: str, moment: str) -> float:
    """Penalty in seconds of one barge-in at ``moment`` under the emulator's ``policy``."""
    async with Emulator(cancel_policy=policy, ttft=TTFT, tokens_per_second=TOKENS_PER_SECOND) as emu:
        llm = SERVICES[service](emu.ws_url)
        async with Conversation(llm, metrics=False) as conv:
            emu.queue_replies(Reply(text="Warm greeting here."))
            baseline = await _first_text_delay(conv, "Hello", "Warm greeting")
            emu.queue_replies(Reply(text="Baseline answer, a little longer than a greeting."))
            baseline = min(baseline, await _first_text_delay(conv, "Again", "Baseline"))
            emu.queue_replies(Reply(text=LONG_REPLY))
            contexts_before = sum(isinstance(s.frame, LLMContextFrame) for s in conv.upstream.seen)
            await conv.say("Tell me a long story")
            if moment == "mid_answer":
                await conv.wait_text("word3")
            else:
                await conv.wait_for(
                    lambda: sum(isinstance(s.frame, LLMContextFrame) for s in conv.upstream.seen) > contexts_before
                )
            await conv.interrupt()
            emu.queue_replies(Reply(text="Fresh answer now."))
            after = await _first_text_delay(conv, "Something else", "Fresh answer", timeout=30)
            return barge_in_penalty(after, baseline)


def _ms(values: list[float]) -> str:
    return Spread.of(values).format(digits=1, scale=1000) if values else "-"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--policies", default="error,ignore,honor")
    parser.add_argument("--services", default="ours,pipecat")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    rows = []
    started = time.monotonic()
    for policy in args.policies.split(","):
        for moment in ("mid_answer", "before_request"):
            figures: dict[str, list[float]] = {}
            for service in args.services.split(","):
                figures[service] = [await one_run(service, policy, moment) for _ in range(args.reps)]
                print(f"  {policy:6} {moment:14} {service:8} {_ms(figures[service])} ms", file=sys.stderr)
            rows.append((policy, moment, figures))
    print(
        "\nBarge-in penalty: next turn's first text minus an uninterrupted turn's, "
        f"ms, median (min–max) over {args.reps} repetitions"
    )
    print(f"emulator TTFT {TTFT * 1000:.0f} ms, {TOKENS_PER_SECOND:.0f} tokens/s; abandoned answer ~2.4 s long\n")
    services = args.services.split(",")
    header = f"{'cancel policy':14} {'barge-in at':15}" + "".join(f"{s:>26}" for s in services)
    print(header + f"{'pipecat - ours':>18}")
    for policy, moment, figures in rows:
        cells = "".join(f"{_ms(v):>26}" for v in figures.values())
        ratio = ""
        if "ours" in figures and "pipecat" in figures:
            gap = statistics.median(figures["pipecat"]) - statistics.median(figures["ours"])
            ratio = f"{gap * 1000:+14.0f} ms"
        print(f"{policy:14} {moment:15}{cells}{ratio:>18}")
    print(f"\n({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
