"""CPU time per streamed text delta: our stack vs a bare websockets+json loop vs Pipecat's built-in.

The emulator runs in its own process and streams long answers as fast as it can, so this
process's CPU time (``time.process_time``) is the receiving side's alone. Five receivers, each
over the same number of deltas:

- ``floor``: ``websockets`` + ``json.loads`` in a loop, counting text deltas: the least any
  client can do;
- ``our client``: our connection, client session (typed events, lanes, the response's rules), without
  Pipecat: what our code adds between the socket and a text delta;
- ``pipeline floor``: the bare loop inside a Pipecat ``FrameProcessor`` that pushes one
  ``LLMTextFrame`` per delta through the same pipeline the services run in;
- ``ours``: ``ResponsesWSLLMService`` in that pipeline;
- ``pipecat``: Pipecat's built-in ``OpenAIResponsesLLMService`` in that pipeline.

Ratios compare like with like: our client against the floor, each service against the pipeline
floor (Pipecat's own frame handling is the same for all three). Every receiver runs once per
repetition (``--reps``), all of them in turn, so a busy moment of the machine lands on one
repetition of each rather than on every run of one; figures are the median (min–max) over the
repetitions, a ratio's of each repetition's pair.

    .venv/bin/python bench/cpu_per_delta.py [--deltas 100000] [--words 100] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import websockets
from _answers import AnswerCounter
from _emulator import emulator_process
from loguru import logger
from pipecat.frames.frames import (
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipecat_responses_ws.client.client import ClientOptions, ResponsesClient
from pipecat_responses_ws.harness.pipeline import Conversation
from pipecat_responses_ws.harness.runner import resolve_factory
from pipecat_responses_ws.measures import Spread, cpu_per_delta_us
from pipecat_responses_ws.protocol import wire
from pipecat_responses_ws.protocol.events import TextDelta
from pipecat_responses_ws.protocol.response import ENDINGS

Receiver = Callable[[str, int, "CpuMeter"], Awaitable[None]]
HEADERS = {"Authorization": "Bearer bench"}
TURNS_PER_CONVERSATION = 20
# A request-level error ends the bare loop's answer too.
TERMINALS = wire.TERMINAL_EVENTS | {wire.ERROR}


def create_request(text: str) -> dict[str, Any]:
    return {
        "type": wire.RESPONSE_CREATE,
        "model": "emulated",
        "store": False,
        "input": [{"type": "message", "role": "user", "content": text}],
    }


class CpuMeter:
    """Process CPU time spent inside turns only: set-up and tear-down are not per-delta costs."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.deltas = 0

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        started = time.process_time()
        try:
            yield
        finally:
            self.seconds += time.process_time() - started


# -- receivers: each streams ``turns`` answers and returns what its meter saw ----------------


async def floor(url: str, turns: int, meter: CpuMeter) -> None:
    async with websockets.connect(url, additional_headers=HEADERS, compression=None, max_size=None) as ws:
        for _ in range(turns):
            with meter.turn():
                await ws.send(json.dumps(create_request("go")))
                async for raw in ws:
                    event = json.loads(raw)
                    kind = event["type"]
                    if kind == wire.OUTPUT_TEXT_DELTA:
                        meter.deltas += 1
                    elif kind in TERMINALS:
                        break


async def our_client(url: str, turns: int, meter: CpuMeter) -> None:
    client = ResponsesClient(ClientOptions(url=url, headers=HEADERS))
    await client.start()
    request = create_request("go")
    fields = {k: v for k, v in request.items() if k not in ("type", "input")}
    try:
        for _ in range(turns):
            with meter.turn():
                # A fresh context each turn, like the bare loop's: nothing to continue from.
                conn, response = await client.open_response(request["input"])
                await conn.send_create(response, fields)
                while True:
                    happening = await conn.next_happening(response, None, None)
                    if type(happening) is TextDelta:
                        meter.deltas += 1
                    elif isinstance(happening, ENDINGS):
                        break
    finally:
        await client.close()


class BareLoopLLM(FrameProcessor):
    """The floor inside a pipeline: one ``LLMTextFrame`` per delta, nothing else."""

    def __init__(self, url: str) -> None:
        super().__init__(name="bare-loop-llm")
        self._url = url
        self._ws: Any = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        if self._ws is None:
            self._ws = await websockets.connect(self._url, additional_headers=HEADERS, compression=None, max_size=None)
        await self.push_frame(LLMFullResponseStartFrame())
        await self._ws.send(json.dumps(create_request("go")))
        async for raw in self._ws:
            event = json.loads(raw)
            kind = event["type"]
            if kind == wire.OUTPUT_TEXT_DELTA:
                await self.push_frame(LLMTextFrame(event["delta"]))
            elif kind in TERMINALS:
                break
        await self.push_frame(LLMFullResponseEndFrame())

    async def cleanup(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        await super().cleanup()


def in_pipeline(make: Callable[[str], FrameProcessor]) -> Receiver:
    """A receiver that runs ``make(url)`` in a pipeline, a fresh conversation every few turns.

    Conversations stay voice-sized, so per-turn costs that grow with the context (the built-in
    resends it all) stay what a real call sees.
    """

    async def run(url: str, turns: int, meter: CpuMeter) -> None:
        done = 0
        while done < turns:
            counter = AnswerCounter()
            async with Conversation(make(url), metrics=False, rtvi=False, listeners=[counter]) as conv:
                for n in range(min(TURNS_PER_CONVERSATION, turns - done)):
                    with meter.turn():
                        await conv.say("go")
                        await counter.wait_answers(n + 1, timeout=60)
                done += counter.answers
                meter.deltas += counter.deltas

    return run


RECEIVERS: dict[str, Receiver] = {
    "floor": floor,
    "our client": our_client,
    "pipeline floor": in_pipeline(BareLoopLLM),
    "ours": in_pipeline(resolve_factory("ours")),
    "pipecat": in_pipeline(resolve_factory("pipecat")),
}


async def measure(name: str, turns: int, words: int) -> tuple[int, float]:
    """(deltas, CPU µs per delta) for one receiver."""
    meter = CpuMeter()
    async with emulator_process(ttft=0, tokens_per_second=1e9, long_replies=turns, words=words) as emu:
        await RECEIVERS[name](emu.ws_url, turns, meter)
    return meter.deltas, cpu_per_delta_us(meter.seconds, meter.deltas)


RATIOS = (
    ("our client", "floor"),
    ("ours", "pipeline floor"),
    ("pipecat", "pipeline floor"),
    ("ours", "pipecat"),
    ("pipeline floor", "floor"),
)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deltas", type=int, default=100_000, help="text deltas per receiver (default: %(default)s)")
    parser.add_argument("--words", type=int, default=100, help="deltas per answer (default: %(default)s)")
    parser.add_argument("--receivers", default=",".join(RECEIVERS), help="comma-separated subset")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every receiver (default: %(default)s)")
    args = parser.parse_args()
    logger.remove()
    turns = max(1, args.deltas // args.words)
    names = args.receivers.split(",")
    results: dict[str, list[float]] = {name: [] for name in names}
    deltas: dict[str, int] = {}
    print(f"{turns} answers of {args.words} words per receiver; emulator in its own process, unpaced")
    for rep in range(1, args.reps + 1):
        for name in names:
            deltas[name], cpu_us = await measure(name, turns, args.words)
            results[name].append(cpu_us)
            print(f"  repetition {rep}: {name:<16} {cpu_us:6.1f} µs/delta", flush=True)
    print(f"\nCPU µs per delta, median (min–max) over {args.reps} repetitions")
    print(f"{'receiver':<16} {'deltas':>8} {'CPU µs/delta':>20}")
    for name in names:
        print(f"{name:<16} {deltas[name]:>8} {Spread.of(results[name]).format():>20}")
    print()
    for numerator, denominator in RATIOS:
        if numerator in results and denominator in results:
            each = [a / b for a, b in zip(results[numerator], results[denominator], strict=True)]
            print(f"{numerator} / {denominator}: {Spread.of(each).format(digits=2, unit='×')}")


if __name__ == "__main__":
    asyncio.run(main())
