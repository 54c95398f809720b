"""Streams one response onto its connection in real time, with its pacing and its fault.

The only place that sleeps. A wait is cut short by a cancel, so an honoured cancel ends the
response within one token interval even mid-stall.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol

from websockets.exceptions import ConnectionClosed

from ..protocol import wire
from .records import ResponseRecord
from .script import Fault
from .session import Action, Job
from .stream import Event, ResponseStream

MALFORMED_FRAME = '{"type": "response.output_text.delta", '


class Outlet(Protocol):
    """What a runner needs from its connection."""

    async def send(self, event: Event) -> None: ...

    async def send_raw(self, text: str) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def finished(self, job: Job) -> list[Action]: ...

    async def apply(self, actions: list[Action]) -> None: ...


class ResponseRunner:
    def __init__(self, outlet: Outlet, job: Job, stream: ResponseStream, fault: Fault | None, record: ResponseRecord):
        self.job = job
        self.stream = stream
        self._outlet = outlet
        self._fault = fault
        self._record = record
        self._wake = asyncio.Event()

    def cancel(self) -> None:
        self.stream.stop("cancelled")
        self._wake.set()

    def steer(self) -> None:
        self.stream.steer()

    async def run(self) -> None:
        try:
            await self._run()
        except ConnectionClosed:
            # The connection went away mid-response: the response is cut, with no terminal.
            pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stream, pending = self.stream, self._fault
        trigger = self._trigger_index() if pending is not None else 0
        sent = 0
        deadline = loop.time()
        while (delay := stream.peek_delay()) is not None:
            if pending is not None and self._due(pending, trigger, sent):
                fault, pending = pending, None
                if not await self._fire(fault):
                    return
                # A fault may change what comes next (a terminal) and resets the pacing clock.
                deadline = loop.time()
                continue
            if delay > 0:
                deadline += delay
                # A cancel during this wait makes next() the terminal instead of the delta.
                await self._pause(deadline - loop.time())
            await self._outlet.send(stream.next())
            sent += 1
            self._record.output_tokens_generated = stream.tokens
            self._record.text = stream.text
        self._finish()
        await self._outlet.apply(self._outlet.finished(self.job))

    def _due(self, fault: Fault, trigger: int, sent: int) -> bool:
        if fault.kind == "delay_terminal":
            return self.stream.next_is_terminal()
        return sent == trigger

    def _trigger_index(self) -> int:
        """How many events are sent before the fault fires (clamped so it always fires)."""
        assert self._fault is not None
        last = self.stream.planned_events - 1
        kind, after = self._fault.kind, self._fault.after_events
        if kind == "delay_created":
            return 0
        if kind in ("fail", "incomplete"):
            return max(2, min(after, last))
        return min(after, last)

    async def _fire(self, fault: Fault) -> bool:
        """Carry out ``fault``; ``False`` when the response must not go on (the connection is gone)."""
        if fault.kind in ("delay_created", "stall", "delay_terminal"):
            await self._pause(fault.seconds)
        elif fault.kind == "drop":
            self._outlet.close(fault.close_code, "connection dropped (injected fault)")
            return False
        elif fault.kind == "fail":
            self.stream.stop("failed", fault.code or "server_error")
        elif fault.kind == "incomplete":
            self.stream.stop("incomplete", fault.code or "max_output_tokens")
        elif fault.kind == "stray_error":
            code = fault.code or "server_error"
            message = "An error not tied to any request (injected fault)."
            await self._outlet.send(wire.error_event(code, message, status=500, error_type="server_error"))
        elif fault.kind == "malformed":
            await self._outlet.send_raw(MALFORMED_FRAME)
        return True

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless a cancel comes first."""
        if seconds <= 0 or self._wake.is_set():
            return
        try:
            async with asyncio.timeout(None if math.isinf(seconds) else seconds):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _finish(self) -> None:
        job, writer = self.job, self.stream.writer
        job.status = writer.status
        job.output = list(writer.output)
        job.end_reason = self.stream.end_reason
        self._record.status = writer.status
        self._record.end_reason = self.stream.end_reason
        self._record.finished_at = time.monotonic()
