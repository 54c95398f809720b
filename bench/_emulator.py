"""An emulator in its own process, so a benchmark's CPU time and event loop are the client's alone.

As a script it starts an :class:`Emulator`, optionally queues long scripted replies, prints its
``ws_url`` on one line and serves until its stdin closes. :func:`emulator_process` runs it from a
benchmark and reads the process's CPU time from ``/proc``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class EmulatorProcess:
    ws_url: str
    pid: int

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the emulator process so far (Linux only)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def emulator_process(**settings: Any) -> AsyncIterator[EmulatorProcess]:
    """Run this file as a child process; ``settings`` become its ``--option value`` arguments."""
    args = [sys.executable, __file__]
    for name, value in settings.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    child = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None and child.stdin is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
        if not line.startswith(b"ws://"):
            raise RuntimeError(f"the emulator process did not start (it printed {line!r})")
        yield EmulatorProcess(line.decode().strip(), child.pid)
    finally:
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), timeout=10)
        except TimeoutError:
            child.kill()
            await child.wait()


async def _serve(args: argparse.Namespace) -> None:
    from loguru import logger

    from pipecat_responses_ws.emulator import Emulator, Reply, ToolCall

    logger.remove()  # the benchmark's terminal is for its figures
    # The emulator stands in for a server on another machine, whose pauses are not the client's.
    # It keeps a record of every event it sends, so its collector's full passes grow with the run
    # (60-150 ms at 250 sessions) and would stall every stream at once: the client's lateness would
    # measure the emulator. Without the collector, only reference cycles are left unfreed, a few
    # megabytes over a benchmark.
    gc.disable()
    emulator = Emulator(
        cancel_policy=args.cancel_policy,
        ttft=args.ttft,
        tokens_per_second=args.tokens_per_second,
        max_connection_age=args.max_connection_age,
        multiplexing=args.multiplexing,
        argument_delta_chars=args.argument_delta_chars,
    )
    async with emulator:
        if args.long_replies:
            # Sentences of --sentence-words words, so a sentence aggregator downstream has work to do.
            every = args.sentence_words
            text = " ".join(f"w{n}." if every and (n + 1) % every == 0 else f"w{n}" for n in range(args.words))
            emulator.queue_replies(*(Reply(text=text) for _ in range(args.long_replies)))
        if args.long_calls:
            # Arguments of --call-chars characters: a JSON object of one long string.
            call = ToolCall("write_note", {"text": "x" * max(0, args.call_chars - 12)})
            emulator.queue_replies(*(Reply(calls=[call]) for _ in range(args.long_calls)))
        print(emulator.ws_url, flush=True)
        # Serve until the parent closes our stdin (or dies).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cancel-policy", default="error")
    parser.add_argument("--ttft", type=float, default=0.05)
    parser.add_argument("--tokens-per-second", type=float, default=100.0)
    parser.add_argument("--max-connection-age", type=float, default=3600.0)
    parser.add_argument("--long-replies", type=int, default=0, help="queue this many scripted replies of --words")
    parser.add_argument("--words", type=int, default=10_000)
    parser.add_argument("--sentence-words", type=int, default=0, help="end a sentence every N words (0: never)")
    parser.add_argument("--multiplexing", default="lanes", choices=["lanes", "none"])
    parser.add_argument("--argument-delta-chars", type=int, default=None, help="characters per argument delta")
    parser.add_argument("--long-calls", type=int, default=0, help="queue this many replies of one long call")
    parser.add_argument("--call-chars", type=int, default=100_000, help="characters of each long call's arguments")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
