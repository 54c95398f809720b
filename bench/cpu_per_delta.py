"""CPU time and frames per streamed text delta: ours (coalescing off and on), Pipecat's built-in, their floors.

The emulator runs in its own process and streams 100-word answers (a sentence every 10 words) as
fast as it can, so this process's CPU time (``time.process_time``, inside turns only) is the
receiving side's alone. Receivers:

- ``floor``: ``websockets`` + ``json.loads`` in a loop, counting text deltas: the least any
  client can do;
- ``our client``: our connection and client session (typed events, lanes, the response's rules),
  without Pipecat: what our code adds between the socket and a text delta;

and in each of two Pipecat pipelines (user aggregator, LLM stage, probe, then the downstream,
then the assistant aggregator):

- ``pipeline floor``: the bare loop as an LLM stage, one ``LLMTextFrame`` per delta;
- ``ours, coalescing off``: ``ResponsesWSLLMService(coalesce_text=False, text_pacing=None)``, one
  frame per delta;
- ``ours, coalescing on``: ``ResponsesWSLLMService()`` as it ships, text already received pushed
  together, and text paced into at most a frame per 40 ms but at sentence and clause ends;
- ``pipecat``: Pipecat's built-in ``OpenAIResponsesLLMService``.

The ``plain`` pipeline has nothing downstream but a frame counter; the ``tts`` pipeline has what a
voice bot has after its LLM: a real Pipecat ``TTSService`` (its sentence aggregation, audio
contexts and text frames) whose synthesis is a stand-in that returns a short silence with no I/O.
Every frame the LLM pushes is paid for again by each processor after it, so the ``tts`` rows
show what fewer frames save.

Every repetition runs every receiver once, in an order rotated per repetition, so all of them see
the same machine; the table gives the median and the spread (min–max) over repetitions, and
ratios are paired within a repetition. The unpaced emulator makes deltas queue up at the
receiver, so the coalescing rows show the most coalescing can save; a call paced at the model's
speed sees one frame per delta while the event loop keeps up.

    .venv/bin/python bench/cpu_per_delta.py [--deltas 50000] [--reps 3] [--pipelines plain,tts]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import websockets
from _answers import AnswerCounter
from _emulator import emulator_process
from _floor import HEADERS, TERMINALS, BareLoopLLM, create_request
from _tts import SilentTTS
from loguru import logger
from pipecat.processors.frame_processor import FrameProcessor

from pipecat_responses_ws import ResponsesWSLLMService
from pipecat_responses_ws.client.client import ClientOptions, ResponsesClient
from pipecat_responses_ws.harness.pipeline import Conversation
from pipecat_responses_ws.harness.runner import resolve_factory
from pipecat_responses_ws.measures import Spread, cpu_per_delta_us, frames_per_delta
from pipecat_responses_ws.protocol import wire
from pipecat_responses_ws.protocol.events import TextDelta
from pipecat_responses_ws.protocol.response import ENDINGS

TURNS_PER_CONVERSATION = 20
SETTLE_SECS = 0.25
SENTENCE_WORDS = 10


@dataclass
class Tally:
    """Process CPU time spent inside turns (set-up and tear-down are not per-delta costs), and
    the deltas received and text frames pushed meanwhile."""

    seconds: float = 0.0
    deltas: int = 0
    frames: int = 0

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        started = time.process_time()
        try:
            yield
        finally:
            self.seconds += time.process_time() - started


Run = Callable[[str, int, Tally], Awaitable[None]]


# -- without Pipecat ---------------------------------------------------------------------------


async def floor(url: str, turns: int, tally: Tally) -> None:
    async with websockets.connect(url, additional_headers=HEADERS, compression=None, max_size=None) as ws:
        for _ in range(turns):
            with tally.turn():
                await ws.send(json.dumps(create_request("go")))
                async for raw in ws:
                    event = json.loads(raw)
                    kind = event["type"]
                    if kind == wire.OUTPUT_TEXT_DELTA:
                        tally.deltas += 1
                    elif kind in TERMINALS:
                        break


async def our_client(url: str, turns: int, tally: Tally) -> None:
    client = ResponsesClient(ClientOptions(url=url, headers=HEADERS))
    await client.start()
    request = create_request("go")
    fields = {k: v for k, v in request.items() if k not in ("type", "input")}
    try:
        for _ in range(turns):
            with tally.turn():
                # A fresh context each turn, like the bare loop's: nothing to continue from.
                conn, response = await client.open_response(request["input"])
                await conn.send_create(response, fields)
                while True:
                    happening = await conn.next_happening(response, None, None)
                    if type(happening) is TextDelta:
                        tally.deltas += 1
                    elif isinstance(happening, ENDINGS):
                        break
    finally:
        await client.close()


# -- LLM stages --------------------------------------------------------------------------------


def ours(*, coalesce: bool) -> Callable[[str], FrameProcessor]:
    """Ours as it ships (``coalesce``: text joined where it already arrived, and paced), or pushing
    one frame per delta (neither)."""

    def make(url: str) -> FrameProcessor:
        settings = ResponsesWSLLMService.Settings(model="emulated", system_instruction="Answer briefly.")
        if coalesce:
            return ResponsesWSLLMService(api_key="bench", ws_url=url, settings=settings)
        return ResponsesWSLLMService(
            api_key="bench", ws_url=url, settings=settings, coalesce_text=False, text_pacing=None
        )

    return make


def deltas_received(llm: FrameProcessor, frames: int) -> int:
    """Ours counts the deltas it received; every other stage pushes one frame per delta."""
    return llm.stats.text_deltas_received if isinstance(llm, ResponsesWSLLMService) else frames


# -- downstream --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Downstream:
    name: str
    description: str
    # Processors after the LLM's probe, given the frame counter and the answer counter to place.
    build: Callable[[AnswerCounter, AnswerCounter], list[FrameProcessor]]


DOWNSTREAMS = {
    "plain": Downstream("plain", "a frame counter", lambda frames, answers: [frames]),
    "tts": Downstream(
        "tts",
        "Pipecat's TTSService sentence aggregation and a TTS stand-in with no I/O",
        lambda frames, answers: [frames, SilentTTS(), answers],
    ),
}


def in_pipeline(make: Callable[[str], FrameProcessor], downstream: Downstream) -> Run:
    """Runs ``make(url)`` in a pipeline, a fresh conversation every few turns.

    Conversations stay voice-sized, so per-turn costs that grow with the context (the built-in
    resends it all) stay what a real call sees.
    """

    async def run(url: str, turns: int, tally: Tally) -> None:
        done = 0
        while done < turns:
            frames = AnswerCounter()
            answers = AnswerCounter()
            listeners = downstream.build(frames, answers)
            # In the plain pipeline the frame counter sees the answers end too.
            ends = answers if answers in listeners else frames
            llm = make(url)
            async with Conversation(llm, metrics=False, rtvi=False, listeners=listeners) as conv:
                # Connected before the caller speaks, as a bot is: set-up is not a per-delta cost.
                await asyncio.sleep(SETTLE_SECS)
                for n in range(min(TURNS_PER_CONVERSATION, turns - done)):
                    with tally.turn():
                        await conv.say("go")
                        await ends.wait_answers(n + 1, timeout=60)
            done += ends.answers
            tally.frames += frames.text_frames
            tally.deltas += deltas_received(llm, frames.text_frames)

    return run


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receiver:
    key: str
    label: str
    pipeline: str | None  # None: no Pipecat
    run: Run


def receivers(pipelines: list[str]) -> list[Receiver]:
    found = [Receiver("floor", "floor (websockets + json.loads)", None, floor)]
    found.append(Receiver("client", "our client, no Pipecat", None, our_client))
    stages: list[tuple[str, str, Callable[[str], FrameProcessor]]] = [
        ("pipeline-floor", "pipeline floor", BareLoopLLM),
        ("ours-off", "ours, coalescing off", ours(coalesce=False)),
        ("ours", "ours, coalescing on", ours(coalesce=True)),
        ("pipecat", "Pipecat's built-in", resolve_factory("pipecat")),
    ]
    for pipeline in pipelines:
        for key, label, make in stages:
            found.append(Receiver(f"{pipeline}:{key}", label, pipeline, in_pipeline(make, DOWNSTREAMS[pipeline])))
    return found


@dataclass
class Figures:
    us_per_delta: list[float] = field(default_factory=list)
    frames_per_delta: list[float] = field(default_factory=list)
    deltas: list[int] = field(default_factory=list)


async def measure(receiver: Receiver, turns: int, words: int) -> Tally:
    tally = Tally()
    gc.collect()  # what the previous receiver left is not this one's cost
    settings = {"ttft": 0, "tokens_per_second": 1e9, "long_replies": turns, "words": words}
    async with emulator_process(**settings, sentence_words=SENTENCE_WORDS) as emu:
        await receiver.run(emu.ws_url, turns, tally)
    if not tally.frames:
        tally.frames = tally.deltas  # the loops without Pipecat push nothing; a delta is one event
    return tally


def spread(values: list[float], digits: int = 1) -> str:
    return Spread.of(values).format(digits) if values else "-"


def paired(figures: dict[str, Figures], numerator: str, denominator: str) -> list[float]:
    a, b = figures[numerator].us_per_delta, figures[denominator].us_per_delta
    return [x / y for x, y in zip(a, b, strict=True)]


def print_table(chosen: list[Receiver], figures: dict[str, Figures], pipeline: str | None) -> None:
    rows = [r for r in chosen if r.pipeline == pipeline]
    if not rows:
        return
    if pipeline is None:
        print("\nwithout Pipecat")
    else:
        print(f"\n{pipeline} pipeline: user aggregator → LLM → probe → {DOWNSTREAMS[pipeline].description}")
    floor_key = f"{pipeline}:pipeline-floor" if pipeline else "floor"
    print(f"{'receiver':<32} {'CPU µs/delta':>22} {'frames/delta':>20} {'× its floor':>20}")
    for r in rows:
        f = figures[r.key]
        ratio = spread(paired(figures, r.key, floor_key), 2) if floor_key in figures else "-"
        print(f"{r.label:<32} {spread(f.us_per_delta):>22} {spread(f.frames_per_delta, 3):>20} {ratio:>20}")
    if pipeline is None:
        return
    for key, what in (("ours-off", "coalescing off"), ("ours", "coalescing on")):
        ours_key, builtin_key = f"{pipeline}:{key}", f"{pipeline}:pipecat"
        if ours_key in figures and builtin_key in figures:
            print(f"ours / Pipecat's built-in, {what}: {spread(paired(figures, ours_key, builtin_key), 2)}×")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deltas", type=int, default=50_000, help="text deltas per receiver (default: %(default)s)")
    parser.add_argument("--words", type=int, default=100, help="deltas per answer (default: %(default)s)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every receiver (default: %(default)s)")
    parser.add_argument("--pipelines", default="plain,tts", help="comma-separated: plain, tts (default: %(default)s)")
    parser.add_argument(
        "--receivers",
        default="",
        help="comma-separated subset of: floor, client, pipeline-floor, ours-off, ours, pipecat (default: all)",
    )
    args = parser.parse_args()
    logger.remove()
    pipelines = [p for p in args.pipelines.split(",") if p]
    wanted = set(args.receivers.split(",")) if args.receivers else None
    chosen = [r for r in receivers(pipelines) if wanted is None or r.key.rpartition(":")[2] in wanted]
    turns = max(1, args.deltas // args.words)
    started, load = time.monotonic(), os.getloadavg()
    print(
        f"{turns} answers of {args.words} words per receiver and repetition, {args.reps} repetitions; "
        f"emulator in its own process, unpaced; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    figures = {r.key: Figures() for r in chosen}
    for rep in range(args.reps):
        order = chosen[rep % len(chosen) :] + chosen[: rep % len(chosen)]
        for r in order:
            tally = await measure(r, turns, args.words)
            f = figures[r.key]
            f.us_per_delta.append(cpu_per_delta_us(tally.seconds, tally.deltas))
            f.frames_per_delta.append(frames_per_delta(tally.frames, tally.deltas))
            f.deltas.append(tally.deltas)
        print(f"repetition {rep + 1} of {args.reps} done ({time.monotonic() - started:.0f} s)", flush=True)
    expected = turns * args.words
    for r in chosen:
        if any(d != expected for d in figures[r.key].deltas):
            where = r.pipeline or "no Pipecat"
            print(f"note: {r.label} ({where}) received {figures[r.key].deltas} deltas, not {expected}")
    for pipeline in (None, *pipelines):
        print_table(chosen, figures, pipeline)
    load = os.getloadavg()
    print(
        f"\nmedian (min–max) over {args.reps} repetitions; ratios paired within a repetition; "
        f"{time.monotonic() - started:.0f} s; load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
