"""Function-call arguments streamed one character per delta: does the cost per delta stay flat?

One gateway streamed a call's arguments one character at a time, 83 000–117 000 argument deltas
for one call. The emulator (in its own process, unpaced) sends one call whose arguments arrive as
``--chars`` one-character deltas; each receiver reads them all until the call is done:

- ``floor``: ``websockets`` + ``json.loads`` in a loop, doing nothing with an argument delta;
- ``our client``: our connection and client session, up to the call being ready with its arguments.

Both are timed at two sizes, so a cost that grows with the arguments already received (quadratic
handling) shows as a per-delta figure that grows with the size. Repeated ``--reps`` times.

    .venv/bin/python bench/argument_deltas.py [--chars 100000] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import websockets
from _emulator import emulator_process
from loguru import logger

from pipecat_responses_ws.client.client import ClientOptions, ResponsesClient
from pipecat_responses_ws.measures import Spread, cpu_per_delta_us
from pipecat_responses_ws.protocol import wire
from pipecat_responses_ws.protocol.response import ENDINGS, ToolCallReady

HEADERS = {"Authorization": "Bearer bench"}
CREATE = {
    "type": wire.RESPONSE_CREATE,
    "model": "emulated",
    "store": False,
    "input": [{"role": "user", "content": "go"}],
}
Receiver = Callable[[str], Awaitable[int]]  # returns the argument characters received


async def floor(url: str) -> int:
    received = 0
    async with websockets.connect(url, additional_headers=HEADERS, max_size=None, compression=None) as ws:
        await ws.send(json.dumps(CREATE))
        async for raw in ws:
            event = json.loads(raw)
            if event["type"] == wire.FUNCTION_CALL_ARGUMENTS_DELTA:
                received += len(event["delta"])
            elif event["type"] in wire.TERMINAL_EVENTS:
                return received
    return received


async def our_client(url: str) -> int:
    client = ResponsesClient(ClientOptions(url=url, headers=HEADERS))
    await client.start()
    try:
        conn, response = await client.open_response(CREATE["input"])
        fields = {k: v for k, v in CREATE.items() if k not in ("type", "input")}
        await conn.send_create(response, fields)
        received = 0
        while True:
            happening = await conn.next_happening(response, None, None)
            if isinstance(happening, ToolCallReady):
                received = len(json.dumps(happening.arguments, separators=(",", ":")))
            elif isinstance(happening, ENDINGS):
                return received
    finally:
        await client.close()


RECEIVERS: dict[str, Receiver] = {"floor": floor, "our client": our_client}


async def measure(name: str, chars: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per argument delta for one receiver and one call of ``chars`` characters."""
    async with emulator_process(
        ttft=0, tokens_per_second=1e9, argument_delta_chars=1, long_calls=1, call_chars=chars
    ) as emu:
        cpu, wall = time.process_time(), time.perf_counter()
        received = await RECEIVERS[name](emu.ws_url)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if abs(received - chars) > 16:
        raise RuntimeError(f"{name} received {received} argument characters, expected about {chars}")
    return cpu_per_delta_us(cpu, chars), cpu_per_delta_us(wall, chars)


def spread(values: list[float]) -> str:
    return Spread.of(values).format(digits=2)


def ratios(numerators: list[float], denominators: list[float]) -> str:
    """The ratio of each repetition's pair, as a spread over the repetitions."""
    return Spread.of([a / b for a, b in zip(numerators, denominators, strict=True)]).format(digits=2, unit="×")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=100_000, help="argument deltas in the large call")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    logger.remove()
    sizes = (args.chars // 10, args.chars)
    cpu: dict[tuple[str, int], list[float]] = {}
    wall: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.reps):
        for size in sizes:
            for name in RECEIVERS:
                c, w = await measure(name, size)
                cpu.setdefault((name, size), []).append(c)
                wall.setdefault((name, size), []).append(w)
    print(f"one call, arguments in one-character deltas; emulator in its own process; {args.reps} repetitions")
    print("median (min–max) µs per delta")
    print(f"{'receiver':<12} {'deltas':>8} {'CPU':>22} {'wall':>22}")
    for size in sizes:
        for name in RECEIVERS:
            print(f"{name:<12} {size:>8} {spread(cpu[name, size]):>22} {spread(wall[name, size]):>22}")
    for size in sizes:
        print(f"our client / floor at {size} deltas (CPU): {ratios(cpu['our client', size], cpu['floor', size])}")
    growth = ratios(cpu["our client", sizes[1]], cpu["our client", sizes[0]])
    print(f"our client, µs per delta at {sizes[1]} / at {sizes[0]}: {growth} (1.0 = linear)")


if __name__ == "__main__":
    asyncio.run(main())
