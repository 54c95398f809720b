"""One accepted WebSocket: reads frames, carries out the session's decisions, enforces the age limit.

A response is a task of its own (:mod:`.runner`), so lanes stream concurrently while this loop
keeps reading (a cancel or steer must be read while responses stream). Closing the connection,
for any reason, cuts every running response without a terminal event, as a real socket loss would.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Coroutine
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..log import logger
from .conversation import conversation_tokens, count_tokens, normalize_input
from .model import plan_from_reply, respond
from .records import InjectedFault, ReceivedFrame, ResponseRecord
from .requests import connection_limit_error, parse_frame
from .runner import ResponseRunner
from .session import Accepted, Action, Cancel, ConnectionState, Dropped, Job, Send, Start, Steer
from .settings import Shared
from .stream import Pacing, ResponseStream


class ConnectionHandler:
    def __init__(
        self,
        shared: Shared,
        ws: ServerConnection,
        connection_id: int,
        api_key: str | None = None,
        model: str | None = None,
    ) -> None:
        self.connection_id = connection_id
        self._shared = shared
        self._ws = ws
        # The key the client presented on the upgrade, for the fault that echoes it.
        self._api_key = api_key
        settings = shared.settings
        self.state = ConnectionState(
            store=shared.store,
            new_id=shared.new_id,
            cancel_policy=settings.cancel_policy,
            # The upgrade's ``?model=`` names this connection's responses when a create names none.
            model=model or settings.model,
            multiplexing=settings.multiplexing,
            stream_id_policy=settings.stream_id_policy,
        )
        self._runners: dict[str, ResponseRunner] = {}
        self._response_tasks: set[asyncio.Task[None]] = set()
        self._close_tasks: set[asyncio.Task[None]] = set()
        self._records: dict[str, ResponseRecord] = {}
        self._closing = False
        self._reading = True
        self._done = asyncio.Event()

    # -- the read loop --------------------------------------------------------------------------

    async def serve(self) -> None:
        age_limit = asyncio.create_task(self._age_limit())
        try:
            async for message in self._ws:
                if not self._reading:
                    # Frames that had already arrived stay unread too; wait for the connection to go.
                    await self._ws.wait_closed()
                    break
                await self._receive(message)
        except ConnectionClosed:
            pass
        finally:
            age_limit.cancel()
            self._cut_responses()
            await asyncio.gather(age_limit, *self._response_tasks, *self._close_tasks, return_exceptions=True)
            self._done.set()
            logger.debug("emulator connection {} closed (code {})", self.connection_id, self._ws.close_code)

    async def wait_closed(self) -> None:
        await self._done.wait()

    async def _receive(self, message: str | bytes) -> None:
        payload, error = parse_frame(message)
        raw = message if isinstance(message, str) else message.decode("utf-8", errors="replace")
        lane = payload.get("stream_id") if payload is not None else None
        lane = lane if isinstance(lane, str) else None
        frame = ReceivedFrame(self.connection_id, time.monotonic(), payload, raw, lane)
        self._shared.records.add_frame(frame)
        logger.debug("emulator connection {} received {}", self.connection_id, payload.get("type") if payload else "?")
        await self.apply([Send(error)] if error is not None else self.state.handle(payload or {}))

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
        record = self._records.get(action.job.response_id)
        if record is not None and record.cancelled_at is None:
            record.cancelled_at = time.monotonic()
        runner = self._runners.get(action.job.response_id)
        if action.stop and runner is not None:
            runner.cancel()

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
        runner = ResponseRunner(self, job, stream, fault, record)
        self._runners[job.response_id] = runner
        self._spawn(runner.run(), self._response_tasks)
        logger.debug("emulator connection {} starts {} on lane {}", self.connection_id, job.response_id, job.lane)

    # -- the socket -----------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        if self._closing:
            raise ConnectionClosed(None, None)
        self._shared.records.add_sent(self.connection_id, event)
        logger.debug("emulator connection {} sends {}", self.connection_id, event.get("type"))
        await self._ws.send(json.dumps(event))

    async def send_raw(self, text: str) -> None:
        if self._closing:
            raise ConnectionClosed(None, None)
        await self._ws.send(text)

    def stop_reading(self) -> None:
        """Read nothing more from the socket, so a client's large send fills the buffers and blocks.

        Pausing the transport is what stops the bytes; stopping the read loop as well keeps
        websockets from resuming the transport when its own frame queue drains.
        """
        self._reading = False
        if self._ws.transport is not None:
            self._ws.transport.pause_reading()
        logger.debug("emulator connection {} stops reading", self.connection_id)

    def close(self, code: int, reason: str) -> None:
        """Close now; ``1006`` aborts the transport without a close frame, as a network failure would."""
        if self._closing:
            return
        self._closing = True
        self._cut_responses()
        logger.debug("emulator connection {} closing with {} ({})", self.connection_id, code, reason)
        if code == 1006:
            if self._ws.transport is not None:
                self._ws.transport.abort()
        else:
            self._spawn(self._ws.close(code, reason), self._close_tasks)

    def _cut_responses(self) -> None:
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

    async def _age_limit(self) -> None:
        await asyncio.sleep(self._shared.settings.max_connection_age)
        event = connection_limit_error()
        self._cut_responses()
        try:
            await self.send(event)
        except ConnectionClosed:
            return
        self.close(self._shared.settings.age_limit_close_code, "connection age limit reached")


def _instruction_tokens(instructions: Any) -> int:
    if isinstance(instructions, str):
        return count_tokens(instructions)
    items = normalize_input(instructions)
    return conversation_tokens(items) if items else 0
