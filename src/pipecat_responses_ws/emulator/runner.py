"""Streams one response onto its connection in real time, with its pacing and its fault.

The only place that sleeps. A wait is cut short by a cancel, so an honoured cancel ends the
response within one token interval even mid-stall.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from typing import Protocol

from websockets.exceptions import ConnectionClosed

from ..protocol import wire
from . import builders
from .faults import FAULTS, Timing
from .records import ResponseRecord
from .script import Fault
from .session import Action, Job
from .stream import Event, ResponseStream

MALFORMED_FRAME = '{"type": "response.output_text.delta", '
# Valid JSON, wrong shape: ``error`` must be an object and ``status`` a number.
MALFORMED_EVENT = {
    "type": "error",
    "error": "upstream connect error or disconnect/reset before headers (injected fault)",
    "status": "bad",
}
KEY_ERROR_CODE = "invalid_api_key"
DEEP_JSON_LEVELS = 1_000


class Outlet(Protocol):
    """What a runner needs from its connection."""

    async def send(self, event: Event) -> None: ...

    async def send_raw(self, text: str) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def finished(self, job: Job) -> list[Action]: ...

    async def apply(self, actions: list[Action]) -> None: ...

    async def expire(self, job: Job, *, echo_lane: bool) -> None: ...

    def stop_reading(self) -> None: ...

    def presented_key(self) -> str | None: ...

    def injected(self, job: Job, kind: str, frame: str | None) -> None: ...


class ResponseRunner:
    def __init__(
        self,
        outlet: Outlet,
        job: Job,
        stream: ResponseStream,
        fault: Fault | None,
        record: ResponseRecord,
        recorded: Callable[[], None],
    ):
        """``recorded`` is called after each change the runner makes to ``record``."""
        self.job = job
        self.stream = stream
        self._outlet = outlet
        self._fault = fault
        self._record = record
        self._recorded = recorded
        self._wake = asyncio.Event()
        # A duplicating fault's last matching event sent before its trigger, repeated at the terminal.
        self._copy: Event | None = None
        # A text delta ``reorder_deltas`` holds back to send after the next one.
        self._held: Event | None = None

    def cancel(self) -> None:
        self.stream.stop("cancelled")
        self._wake.set()

    def steer(self) -> None:
        self.stream.steer()

    async def run(self) -> None:
        try:
            await self._run()
        except (ConnectionClosed, ConnectionResetError):
            # The connection (a WebSocket, or an HTTP answer) went away mid-response: it is cut, with no terminal.
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
            event = stream.next()
            sent += 1
            timing = FAULTS[pending.kind].timing if pending is not None else None
            if pending is not None and timing is Timing.DELTAS and sent > trigger:
                if not await self._reorder(pending, event):
                    pending = None
                continue
            await self._outlet.send(event)
            self._record.output_tokens_generated = stream.tokens
            self._record.text = stream.text
            self._recorded()
            if pending is not None and timing is Timing.REPEAT and _duplicated_by(pending, event):
                if sent > trigger:
                    pending = None
                    await self._resend(event)
                else:
                    self._copy = event
        self._finish()
        await self._outlet.apply(self._outlet.finished(self.job))

    async def _reorder(self, fault: Fault, event: Event) -> bool:
        """Send ``event`` under a fault that reorders or loses text deltas; False once the fault is done with."""
        held, self._held = self._held, None
        if event["type"] != wire.OUTPUT_TEXT_DELTA:
            if held is not None:
                await self._outlet.send(held)
            await self._outlet.send(event)
            return True
        if fault.kind == "lose_delta":
            self._outlet.injected(self.job, fault.kind, json.dumps(event))
            return False
        if held is None:
            self._held = event
            return True
        self._outlet.injected(self.job, fault.kind, None)
        await self._outlet.send(event)
        await self._outlet.send(held)
        return True

    def _due(self, fault: Fault, trigger: int, sent: int) -> bool:
        timing = FAULTS[fault.kind].timing
        if timing is Timing.DELTAS:
            return False  # it acts on the deltas themselves, in _run
        if timing is Timing.TERMINAL:
            return self.stream.next_is_terminal()
        if timing is Timing.REPEAT:
            # Only the fallback fires from here; the duplicate itself follows its original in _run.
            return self._copy is not None and self.stream.next_is_terminal()
        return sent == trigger

    def _trigger_index(self) -> int:
        """How many events are sent before the fault fires (clamped so it always fires).

        For a duplicating fault, the index from which a matching event is the one repeated.
        """
        assert self._fault is not None
        last = self.stream.planned_events - 1
        timing, after = FAULTS[self._fault.kind].timing, self._fault.after_events
        if timing in (Timing.FIRST, Timing.WHOLE):
            return 0
        if timing is Timing.CREATED:
            return max(2, min(after, last))
        return min(after, last)

    async def _fire(self, fault: Fault) -> bool:
        """Carry out ``fault``; ``False`` when the response must not go on (the connection is gone or expired)."""
        kind, declared = fault.kind, FAULTS[fault.kind]
        code = fault.code or declared.default_code
        if declared.timing is Timing.REPEAT:
            assert self._copy is not None, "_due fires a duplicating fault only once it has an event to repeat"
            await self._resend(self._copy)
            return True
        if declared.raw_frame:
            await self._send_raw(kind, self._raw_frame(fault))
            return True
        self._outlet.injected(self.job, kind, None)
        if kind in ("delay_created", "stall", "delay_terminal"):
            await self._pause(fault.seconds)
        elif kind == "drop":
            self._outlet.close(fault.close_code, "connection dropped (injected fault)")
            return False
        elif kind in ("connection_limit", "connection_limit_lane"):
            await self._outlet.expire(self.job, echo_lane=kind == "connection_limit_lane")
            return False
        elif kind == "fail":
            self.stream.stop("failed", code)
        elif kind == "incomplete":
            self.stream.stop("incomplete", code)
        elif kind == "stray_error":
            assert code is not None
            message = "An error not tied to any request (injected fault)."
            await self._outlet.send(builders.error_event(code, message, status=500, error_type="server_error"))
        elif kind == "stop_reading":
            self._outlet.stop_reading()
        elif kind == "key_error":
            # A gateway that echoes the credential: the client must keep it out of its logs and errors.
            message = f"Incorrect API key provided: {self._outlet.presented_key() or ''}."
            await self._outlet.send(builders.error_event(KEY_ERROR_CODE, message, status=401))
        return True

    def _raw_frame(self, fault: Fault) -> str:
        if fault.kind == "malformed":
            return MALFORMED_FRAME
        if fault.kind == "malformed_event":
            return json.dumps(MALFORMED_EVENT)
        lane = f', "stream_id": {json.dumps(self.job.lane)}' if self.job.lane is not None else ""
        if fault.kind == "deep_json":
            nested = "[" * DEEP_JSON_LEVELS + "]" * DEEP_JSON_LEVELS
            return f'{{"type": "{wire.OUTPUT_TEXT_DELTA}"{lane}, "delta": {nested}}}'
        stray_id = f"stray_{self.job.response_id.removeprefix('resp_')}"
        if fault.kind.startswith("laneless_stray_"):
            # Another stream's event, its lane lost on the way: no stream_id, whatever this response's lane.
            # Nor a sequence_number (a number of its own stream could pass for one of this response's).
            stray = builders.ResponseEventWriter(f"resp_{stray_id}", "")
            if fault.kind == "laneless_stray_completed":
                event = stray.completed(builders.usage(1, 1))
            else:
                event = stray.output_text_delta(f"msg_{stray_id}", 0, fault.text)
            del event["sequence_number"]
            return json.dumps(event)
        # stray_early_delta: a delta for an item this response never announces, numbered as if it came first
        # (a writer of its own, so the response's own numbering is untouched).
        writer = builders.ResponseEventWriter(self.job.response_id, "", stream_id=self.job.lane)
        return json.dumps(writer.output_text_delta(f"msg_{stray_id}", 0, fault.text))

    async def _resend(self, event: Event) -> None:
        """``event`` again, byte for byte: ``json.dumps`` of the same dict is the same text."""
        assert self._fault is not None
        await self._send_raw(self._fault.kind, json.dumps(event))

    async def _send_raw(self, kind: str, frame: str) -> None:
        # Outside Records.sent, which must stay the well-formed events the SDK validates.
        self._outlet.injected(self.job, kind, frame)
        await self._outlet.send_raw(frame)

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
        self._recorded()


def _duplicated_by(fault: Fault, event: Event) -> bool:
    """Whether ``event`` is one a duplicating ``fault`` repeats."""
    if fault.kind == "duplicate_delta":
        return event["type"] == wire.OUTPUT_TEXT_DELTA
    item = event.get("item")
    return event["type"] == wire.OUTPUT_ITEM_DONE and isinstance(item, dict) and item.get("type") == "function_call"
