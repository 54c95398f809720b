"""``run_inference`` while a turn streams: how long it takes, and whether the turn is held up.

    .venv/bin/python bench/run_inference.py --reps 5 --inferences 5

Per repetition and service (ours, then Pipecat's built-in, alternating which goes first): one
emulator, a turn streaming a long answer, and ``--inferences`` calls of ``run_inference`` one after
the other while it streams. Ours runs them on a lane of the turn's own WebSocket; the built-in
over HTTP (``base_url``, the emulator's HTTP endpoint). A second turn with no inference beside it
is the control.

Figures: inference latency (call → text returned; the emulator waits ``--ttft`` before each first
token, so that much is the model's, not the transport's), and the streaming turn's text lateness
(each text frame's arrival after the emulator wrote its last delta) with the inferences beside it
and without, p50/p99 per run; the table shows the spread over repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from loguru import logger
from pipecat.frames.frames import LLMTextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import LLMService
from pipecat.services.openai.responses.llm import OpenAIResponsesLLMService

from pipecat_responses_ws import ResponsesWSLLMService
from pipecat_responses_ws.emulator import Emulator, Reply
from pipecat_responses_ws.harness.pipeline import Conversation
from pipecat_responses_ws.measures import Spread, percentile

STORY = " ".join(f"word{n}" for n in range(150)) + "."
QUESTION = LLMContext(messages=[{"role": "user", "content": "Is the caller asking about billing? Answer yes or no."}])


def make(which: str, emu: Emulator) -> LLMService[Any]:
    if which == "ours":
        settings = ResponsesWSLLMService.Settings(model="emulated", system_instruction="Answer briefly.")
        return ResponsesWSLLMService(api_key="bench", ws_url=emu.ws_url, settings=settings)
    builtin = OpenAIResponsesLLMService.Settings(model="emulated", system_instruction="Answer briefly.")
    return OpenAIResponsesLLMService(api_key="bench", ws_url=emu.ws_url, base_url=emu.http_base_url, settings=builtin)


def lateness_ms(emu: Emulator, talk: Conversation, turn: int, item_id: str) -> list[float]:
    """Each text frame of ``turn``: how long after the emulator wrote the last delta it carries."""
    written: list[tuple[int, float]] = []
    chars = 0
    for sent in emu.records.sent():
        event = sent.event
        if event.get("type") == "response.output_text.delta" and event.get("item_id") == item_id:
            chars += len(event["delta"])
            written.append((chars, sent.time))
    frames = talk.frames(LLMTextFrame)
    record = talk.turns()[turn]
    frames = [s for s in frames if s.time >= record.started and (record.ended is None or s.time <= record.ended)]
    out: list[float] = []
    received = 0
    index = 0
    for seen in frames:
        received += len(seen.frame.text)  # type: ignore[attr-defined]
        while index < len(written) - 1 and written[index][0] < received:
            index += 1
        out.append((seen.time - written[index][1]) * 1000)
    return out


def story_item_ids(emu: Emulator) -> list[str]:
    """The message items that told the story, in order."""
    ids: list[str] = []
    for sent in emu.records.sent():
        event = sent.event
        if event.get("type") == "response.output_item.done" and "word0" in str(event.get("item")):
            ids.append(event["item"]["id"])
    return ids


async def one_run(which: str, args: argparse.Namespace) -> dict[str, list[float]]:
    options = {"ttft": args.ttft, "tokens_per_second": args.tokens_per_second, "handshake_delay": args.handshake_delay}
    async with Emulator(**options) as emu:
        llm = make(which, emu)
        async with Conversation(llm, rtvi=False) as talk:
            latencies: list[float] = []
            for turn in range(2):
                emu.queue_replies(Reply(text=STORY))
                await talk.say("Tell me a long story.")
                await talk.wait_text("word5" if turn == 0 else "word5 word6 word7 word8", timeout=30)
                if turn == 0:
                    for _ in range(args.inferences):
                        # A classifier's answer: a word, at once (the emulator's ttft still applies).
                        emu.queue_replies(Reply(text="No.", tokens_per_second=10_000.0))
                        started = time.monotonic()
                        text = await llm.run_inference(QUESTION)
                        latencies.append((time.monotonic() - started) * 1000)
                        if not text:
                            raise RuntimeError(f"{which}: run_inference returned {text!r}")
                    if talk.turns()[0].ended is not None:
                        raise RuntimeError("the turn ended before the inferences did: make --tokens-per-second lower")
                await talk.wait_turns_ended(turn + 1, timeout=60)
            beside, alone = story_item_ids(emu)[:2]
            with_inference = lateness_ms(emu, talk, 0, beside)
            without = lateness_ms(emu, talk, 1, alone)
    return {"latency": latencies, "late_with": with_inference, "late_without": without}


async def main_async(args: argparse.Namespace) -> int:
    services = ["ours", "pipecat"]
    runs: dict[str, list[dict[str, list[float]]]] = {s: [] for s in services}
    for rep in range(args.reps):
        order = services if rep % 2 == 0 else services[::-1]
        for which in order:
            runs[which].append(await one_run(which, args))
    print(
        f"\nrun_inference beside a streaming turn: {args.reps} reps x {args.inferences} inferences, "
        f"emulator ttft {args.ttft * 1000:.0f} ms, handshake delay {args.handshake_delay * 1000:.0f} ms"
    )
    print(f"{'figure (ms; median (min–max) over reps)':<45} {'ours':<24} pipecat")
    rows = [
        ("inference latency, median", lambda r: statistics.median(r["latency"])),
        ("inference latency, max", lambda r: max(r["latency"])),
        ("turn text lateness p50, inferences beside", lambda r: percentile(r["late_with"], 0.5)),
        ("turn text lateness p99, inferences beside", lambda r: percentile(r["late_with"], 0.99)),
        ("turn text lateness p50, alone", lambda r: percentile(r["late_without"], 0.5)),
        ("turn text lateness p99, alone", lambda r: percentile(r["late_without"], 0.99)),
    ]
    for title, figure in rows:
        cells = [Spread.of([figure(run) for run in runs[s]]).format() for s in services]
        print(f"{title:<45} {cells[0]:<24} {cells[1]}")
    medians = {s: [statistics.median(run["latency"]) for run in runs[s]] for s in services}
    ratio = [o / p for o, p in zip(medians["ours"], medians["pipecat"], strict=True)]
    print(f"ours / pipecat inference latency (median per rep): {Spread.of(ratio).format(digits=2)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--inferences", type=int, default=5, help="run_inference calls beside each turn")
    parser.add_argument("--ttft", type=float, default=0.05, help="the emulator's time to first token, seconds")
    parser.add_argument("--tokens-per-second", type=float, default=50.0)
    parser.add_argument("--handshake-delay", type=float, default=0.0, help="the emulator's per-handshake delay")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
