"""Carrying out one session's decisions, whatever wire the responses go out on.

A :class:`SessionDriver` owns a :class:`~.session.ConnectionState`, turns its actions into
records and running responses (:mod:`.runner`, one task each), and is the runner's
:class:`~.runner.Outlet`. What an event becomes on the wire is the subclass's business: a
WebSocket frame (:mod:`.connection`) or a server-sent event of one HTTP answer (:mod:`.http`).
Either way the same scripted reply, fault and pacing make the same events.
"""

from __future__ import annotations

import asyncio
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any

from ..log import logger
from .conversation import conversation_tokens, count_tokens, normalize_input
from .model import plan_from_reply, respond, with_line_separators
from .records import InjectedFault, ResponseRecord
from .runner import ResponseRunner
from .session import Accepted, Action, Cancel, ConnectionState, Dropped, Job, Send, Start, Steer
from .settings import Shared
from .stream import Event, Pacing, ResponseStream


class SessionDriver(ABC):
    def __init__(self, shared: Shared, connection_id: int, state: ConnectionState, api_key: str | None) -> None:
        self.connection_id = connection_id
        self.state = state
        self._shared = shared
        # The key the client presented, for the fault that echoes it.
        self._api_key = api_key
        self._runners: dict[str, ResponseRunner] = {}
        self._response_tasks: set[asyncio.Task[None]] = set()
        self._records: dict[str, ResponseRecord] = {}

    # -- the wire (subclasses) ------------------------------------------------------------------

    @abstractmethod
    async def send(self, event: Event) -> None:
        """Send one well-formed event (recorded in ``Records.sent``)."""

    @abstractmethod
    async def send_raw(self, text: str) -> None:
        """Send text that is deliberately not a well-formed event (not recorded as sent)."""

    @abstractmethod
    def close(self, code: int, reason: str) -> None:
        """End the connection now; ``1006`` aborts the transport, as a network failure would."""

    @abstractmethod
    def stop_reading(self) -> None: ...

    # -- carrying out decisions -----------------------------------------------------------------

    def finished(self, job: Job) -> list[Action]:
        self._runners.pop(job.response_id, None)
        return self.state.finished(job)

    async def apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                await self.send(action.event)
            elif isinstance(action, Accepted):
                self._add_record(action.job)
            elif isinstance(action, Start):
                self._start(action.job)
            elif isinstance(action, Dropped):
                record = self._records.pop(action.job.response_id)
                self._shared.records.responses.remove(record)
                self._shared.records.notify()
            elif isinstance(action, Cancel):
                self._cancel(action)
            elif isinstance(action, Steer) and action.job.response_id in self._runners:
                self._runners[action.job.response_id].steer()

    async def expire(self, job: Job, *, echo_lane: bool) -> None:
        """The connection reached its limit while ``job`` streamed; it stays open and refuses new work."""
        self._runners.pop(job.response_id, None)
        await self.apply(self.state.expire(job, echo_lane=echo_lane))

    def presented_key(self) -> str | None:
        return self._api_key

    def injected(self, job: Job, kind: str, frame: str | None) -> None:
        fault = InjectedFault(self.connection_id, job.response_id, kind, time.monotonic(), frame)
        self._shared.records.add_fault(fault)

    def _add_record(self, job: Job) -> None:
        record = ResponseRecord(
            id=job.response_id,
            connection_id=self.connection_id,
            lane=job.lane,
            parent=job.parent_id,
            status=job.status,
            generate=job.generate,
            request=job.request,
            input_items=len(job.input_items),
        )
        self._records[job.response_id] = record
        self._shared.records.responses.append(record)
        self._shared.records.notify()

    def _cancel(self, action: Cancel) -> None:
        self._mark_cancelled(action.job.response_id, time.monotonic())
        runner = self._runners.get(action.job.response_id)
        if action.stop and runner is not None:
            runner.cancel()

    def _mark_cancelled(self, response_id: str, at: float) -> None:
        record = self._records.get(response_id)
        if record is not None and record.cancelled_at is None:
            record.cancelled_at = at
            self._shared.records.notify()

    def _start(self, job: Job) -> None:
        assert job.writer is not None, "the session gives a started job its writer"
        settings, record = self._shared.settings, self._records[job.response_id]
        reply, fault = self._shared.script.take() if job.generate else (None, None)
        conversation = [*job.history, *job.input_items]
        if not job.generate:
            plan = []
        elif reply is not None:
            plan = plan_from_reply(reply)
        else:
            plan = respond(conversation, job.request)
        if fault is not None and fault.kind == "line_separators":
            plan = with_line_separators(plan)
        pacing = Pacing(
            settings.ttft if reply is None or reply.ttft is None else reply.ttft,
            settings.tokens_per_second if reply is None or reply.tokens_per_second is None else reply.tokens_per_second,
            settings.jitter,
        )
        delta_chars = settings.argument_delta_chars
        if reply is not None and reply.argument_delta_chars is not None:
            delta_chars = reply.argument_delta_chars
        input_tokens = _instruction_tokens(job.request.get("instructions")) + conversation_tokens(conversation)
        stream = ResponseStream(
            job.writer,
            plan,
            pacing=pacing,
            rng=random.Random(f"{settings.seed}:{job.response_id}"),
            new_id=self._shared.new_id,
            generate=job.generate,
            input_tokens=input_tokens,
            cached_tokens=conversation_tokens(list(job.history)),
            max_output_tokens=job.request.get("max_output_tokens"),
            argument_delta_chars=delta_chars,
        )
        record.status, record.created_at, record.input_tokens = job.status, time.monotonic(), input_tokens
        self._shared.records.notify()
        runner = ResponseRunner(self, job, stream, fault, record, self._shared.records.notify)
        self._runners[job.response_id] = runner
        self._spawn(runner.run(), self._response_tasks)
        logger.debug("emulator connection {} starts {} on lane {}", self.connection_id, job.response_id, job.lane)

    def _cut_responses(self) -> None:
        """Stop every running response where it is, without a terminal event, as a lost socket would."""
        current = asyncio.current_task()
        for task in self._response_tasks:
            if task is not current:
                task.cancel()
        self._runners.clear()

    @staticmethod
    def _spawn(coro: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]]) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def _instruction_tokens(instructions: Any) -> int:
    if isinstance(instructions, str):
        return count_tokens(instructions)
    items = normalize_input(instructions)
    return conversation_tokens(items) if items else 0
