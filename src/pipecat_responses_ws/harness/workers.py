"""``harness --jobs N``: a campaign's runs spread over N worker processes.

Each worker is a fresh interpreter (the ``spawn`` start method: nothing of the parent's event loop
or sockets is copied) that plays one run at a time, each on an event loop and emulator of its
own, as the single-process harness does. Runs are handed out in plan order to whichever worker
is free, so the runs going at any moment are neighbours in the plan: the same scenario for each
service (:mod:`.campaign`), which keeps the side-by-side comparison fair.

Ctrl-C belongs to the parent. A terminal sends SIGINT to the whole process group, so workers
ignore it from their first instruction; the parent's :mod:`..interrupt` cancels the campaign and
this module terminates the workers it started, which stops their runs mid-way at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import signal
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess

from ..log import only_critical
from .campaign import Campaign, PlannedRun, execute
from .result import RunResult

STOP_WAIT = 2.0  # seconds a finished worker may take to exit before it is terminated


@dataclass(frozen=True)
class _Failure:
    """A run that raised in a worker, with the worker's traceback."""

    run: int
    traceback: str


class WorkerError(RuntimeError):
    """A worker process failed a run or ended without answering."""


async def run_in_workers(
    campaign: Campaign, planned: list[PlannedRun], jobs: int, verbose: bool, on_result: Callable[[RunResult], None]
) -> None:
    """Every planned run in one of ``jobs`` processes; ``on_result`` as each one finishes (in any order)."""
    if not planned:  # a shard of a campaign smaller than its number of shards
        return
    context = multiprocessing.get_context("spawn")
    queue = deque(planned)
    workers: list[_Worker] = []
    tasks: list[asyncio.Task[None]] = []
    finished = False
    try:
        for _ in range(min(jobs, len(planned))):
            workers.append(_Worker.start(context, campaign, verbose))
        tasks = [asyncio.create_task(w.play(queue, on_result)) for w in workers]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # the first failure, if any, is the campaign's
        finished = True
    finally:
        for task in tasks:
            task.cancel()
        for worker in workers:
            worker.stop(terminate=not finished)


class _Worker:
    def __init__(self, process: SpawnProcess, connection: Connection) -> None:
        self.process, self.connection = process, connection

    @classmethod
    def start(cls, context: SpawnContext, campaign: Campaign, verbose: bool) -> _Worker:
        ours, theirs = context.Pipe()
        process = context.Process(target=serve, args=(theirs, verbose), name="harness-worker", daemon=True)
        with _started_quietly(verbose):
            process.start()
        theirs.close()  # the worker's end: once it exits, our reads see the end of the pipe
        ours.send(campaign)
        return cls(process, ours)

    async def play(self, queue: deque[PlannedRun], on_result: Callable[[RunResult], None]) -> None:
        """Take the next planned run until none is left; each result to ``on_result``."""
        while queue:
            planned = queue.popleft()
            self.connection.send(planned)
            reply = await self._receive(planned)
            if isinstance(reply, _Failure):
                raise WorkerError(f"run {reply.run} failed in a worker process:\n{reply.traceback}")
            on_result(reply)

    async def _receive(self, planned: PlannedRun) -> RunResult | _Failure:
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()
        fd = self.connection.fileno()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, ready)
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        try:
            reply: RunResult | _Failure = self.connection.recv()
        except EOFError:
            self.process.join(STOP_WAIT)
            raise WorkerError(
                f"the worker process playing run {planned.index} ended without a result "
                f"(exit code {self.process.exitcode})"
            ) from None
        return reply

    def stop(self, *, terminate: bool) -> None:
        """An idle worker is told to exit; one still playing a run (Ctrl-C, a failure) is terminated."""
        if not terminate:
            with contextlib.suppress(OSError):
                self.connection.send(None)
            self.process.join(STOP_WAIT)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_WAIT)
        self.connection.close()


@contextlib.contextmanager
def _started_quietly(verbose: bool) -> Iterator[None]:
    """What a process started inside inherits, for the start-up before :func:`serve` runs.

    SIGINT ignored, so a Ctrl-C then prints no KeyboardInterrupt traceback from the worker (only
    the main thread may change signal handling; elsewhere :func:`serve` alone does it). And,
    unless ``verbose``, loguru's first handler at CRITICAL (``LOGURU_LEVEL``): importing the
    harness imports Pipecat, which greets every new process with a log line.
    """
    with contextlib.ExitStack() as undo:
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            undo.callback(signal.signal, signal.SIGINT, previous)
        if not verbose:
            level = os.environ.get("LOGURU_LEVEL")
            os.environ["LOGURU_LEVEL"] = "CRITICAL"
            undo.callback(_restore_environment, "LOGURU_LEVEL", level)
        yield


def _restore_environment(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def serve(connection: Connection, verbose: bool) -> None:
    """A worker's life: the campaign, then planned runs until ``None``, each answered with its result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not verbose:
        only_critical()
    try:
        campaign = connection.recv()
        while (planned := connection.recv()) is not None:
            # As in one process: each run starts with the garbage of the ones before it collected.
            gc.collect()
            try:
                result = asyncio.run(execute(campaign, planned))
            except Exception:
                connection.send(_Failure(planned.index, traceback.format_exc()))
                return
            connection.send(result)
    except EOFError:  # the parent is gone: nobody is waiting for a result
        return
