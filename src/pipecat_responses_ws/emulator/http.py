"""``POST /v1/responses``: one request, one response, answered as server-sent events or as one JSON object.

Each request is an :class:`HttpExchange`, a :class:`~.driver.SessionDriver` over a lane-free
session of its own, so the response is made by the same session, runner, script and faults as
on a WebSocket. Its ``previous_response_id`` reaches only the emulator's store (responses of
any connection created with ``store`` true, the API's default), as over HTTP it only can.

What each fault does over HTTP where that differs is in the table of :mod:`.faults`. For
``stream: false``, the first ``error`` becomes the HTTP answer (its status, the API's error body)
and cuts the response, and frames that are not events are not written.

The client closing the connection before the answer is complete (a barge-in over HTTP) stops
the response at once: ``HttpRequest.closed_at`` and the response's ``cancelled_at`` record it,
and the response keeps the status it had, as one cut by a lost WebSocket does.

``POST /v1/responses/compact`` answers with the compacted window of :mod:`.compaction` at once;
it generates nothing, so it takes no reply or fault of the script.

A stream that reached its terminal event ends as the ``stream_end`` setting says (see
:mod:`.http_wire`); with a ``hold_open`` fault it then stays open until the client closes it.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from typing import Any

from aiohttp import web

from ..log import logger
from ..protocol import wire
from ..protocol.sse import DONE
from .compaction import compact
from .driver import SessionDriver
from .handshake import Decision, azure_key, bearer_token, key_refusal, split_target
from .http_wire import (
    COMPACT_SUFFIX,
    SSE_HEADERS,
    as_create,
    raw_event_name,
    read_body,
    refusal,
    route_refusal,
    sse,
    stream_error,
)
from .records import HttpRequest, ReceivedFrame, Records
from .session import ConnectionState, Job, Send, Start
from .settings import Shared
from .stream import Event


class HttpExchange(SessionDriver):
    """One ``POST /responses``: its create, its one response, and the answer it becomes."""

    def __init__(self, shared: Shared, record: HttpRequest, request: web.BaseRequest, api_key: str | None) -> None:
        state = ConnectionState(
            store=shared.store, new_id=shared.new_id, model=shared.settings.model, multiplexing="none"
        )
        super().__init__(shared, record.connection_id, state, api_key)
        self._record = record
        self._request = request
        self._job: Job | None = None
        self._stream: web.StreamResponse | None = None
        # For stream: false, what the answer will be: the final Response object or an error.
        self._answer: dict[str, Any] | Decision | None = None
        self._closing = False
        self._released = asyncio.Event()  # set when the answer is ended from this side (a drop, a stop)
        self._done = asyncio.Event()

    async def answer(self, create: Event, *, stream: bool) -> web.StreamResponse:
        try:
            return await self._answer_create(create, stream)
        finally:
            self._done.set()

    async def wait_closed(self) -> None:
        await self._done.wait()

    async def _answer_create(self, create: Event, stream: bool) -> web.StreamResponse:
        actions = self.state.handle(create)
        refused = [action.event for action in actions if isinstance(action, Send)]
        if refused:
            # Nothing was generated (an invalid create, an unknown previous_response_id): an HTTP error.
            await self.apply([action for action in actions if not isinstance(action, Send)])
            return _refuse(self._shared.records, self._record, refusal(refused[0]))
        self._job = next(action.job for action in actions if isinstance(action, Start))
        if stream:
            self._stream = web.StreamResponse(headers=SSE_HEADERS)
            self._record.status = self._stream.status
            self._shared.records.notify()
            await self._stream.prepare(self._request)
        await self.apply(actions)
        try:
            await asyncio.wait(list(self._response_tasks))
            if self._stream is not None and not self._closing:
                await self._end_stream()
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the client goes away (or the emulator stops).
            self._client_gone()
            raise
        if self._stream is not None:
            # aiohttp ends the body (the last chunk) once this returns.
            return self._stream
        if isinstance(self._answer, Decision):
            return _refuse(self._shared.records, self._record, self._answer)
        if self._answer is None:
            # The connection was aborted (a drop): whatever is returned now never reaches the client.
            return web.Response(status=500)
        self._record.status = 200
        self._shared.records.notify()
        return web.json_response(self._answer)

    async def _end_stream(self) -> None:
        """After the terminal event: the ``[DONE]`` of the ``done`` ending, and a ``hold_open`` fault."""
        assert self._stream is not None
        if self._shared.settings.stream_end == "done":
            await self._stream.write(sse(DONE))
        if any(f.kind == "hold_open" and f.connection_id == self.connection_id for f in self._shared.records.faults):
            logger.debug("emulator HTTP request {} holds its stream open after the terminal event", self.connection_id)
            await self._released.wait()  # the client closing the connection cancels this wait

    def _client_gone(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._record.closed_at = time.monotonic()
        self._shared.records.notify()
        if self._job is not None:
            self._mark_cancelled(self._job.response_id, self._record.closed_at)
        self._cut_responses()
        logger.debug("emulator HTTP request {} closed by the client", self.connection_id)

    # -- the wire -------------------------------------------------------------------------------

    async def send(self, event: Event) -> None:
        if self._closing:
            raise ConnectionResetError("the HTTP answer is over")
        shown = event
        if event["type"] == wire.ERROR and self._job is not None and self._job.writer is not None:
            shown = stream_error(event, self._job.writer)
        self._shared.records.add_sent(self.connection_id, shown)
        logger.debug("emulator HTTP request {} sends {}", self.connection_id, event["type"])
        if self._stream is not None:
            # Unescaped, as OpenAI sends any character: U+2028 in a delta reaches the client as is.
            await self._stream.write(sse(json.dumps(shown, ensure_ascii=False), shown["type"]))
        elif event["type"] == wire.ERROR:
            self._answer = refusal(event)
            self._end()
            raise ConnectionResetError("an error ended the HTTP answer")
        elif event["type"] in wire.TERMINAL_EVENTS:
            self._answer = event["response"]

    async def send_raw(self, text: str) -> None:
        if self._closing:
            raise ConnectionResetError("the HTTP answer is over")
        if self._stream is not None:
            await self._stream.write(sse(text, raw_event_name(text)))

    async def expire(self, job: Job, *, echo_lane: bool) -> None:
        await super().expire(job, echo_lane=echo_lane)
        self._end()

    def stop_reading(self) -> None:
        if self._request.transport is not None:
            self._request.transport.pause_reading()
        logger.debug("emulator HTTP request {} stops reading", self.connection_id)

    def close(self, code: int, reason: str) -> None:
        """End the answer now: 1006, or any answer not streamed, aborts the connection; else the body ends here."""
        if self._closing:
            return
        self._end()
        logger.debug("emulator HTTP request {} closing with {} ({})", self.connection_id, code, reason)
        if (code == 1006 or self._stream is None) and self._request.transport is not None:
            self._request.transport.abort()

    def _end(self) -> None:
        self._closing = True
        self._released.set()
        self._cut_responses()


class HttpEndpoint:
    """The HTTP side of one emulator: every request aiohttp hands over, answered by its own exchange."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self.exchanges: dict[int, HttpExchange] = {}
        # The TCP connections that already paid the handshake delay: a kept-alive one pays it once.
        self._connected: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        settings, records = self._shared.settings, self._shared.records
        transport = request.transport
        if settings.handshake_delay and transport is not None and transport not in self._connected:
            self._connected.add(transport)
            await asyncio.sleep(settings.handshake_delay)
        path, query = split_target(request.raw_path)
        headers = {name.lower(): ", ".join(request.headers.getall(name)) for name in request.headers}
        record = HttpRequest(next(self._shared.connection_ids), request.method, path, query, headers)
        records.http_requests.append(record)
        records.notify()
        authorization, api_key_header = request.headers.get("Authorization"), request.headers.get("api-key")
        refused = route_refusal(request.method, path) or key_refusal(
            authorization, api_key_header, api_key=settings.api_key
        )
        if refused is not None:
            return _refuse(self._shared.records, record, refused)
        # Read from the stream itself: request.read() would refuse a body over 1 MiB, and a
        # conversation sent in full grows past that (the WebSocket side takes 32 MiB frames).
        raw = await request.content.read()
        body = read_body(raw)
        text = raw.decode("utf-8", errors="replace")
        compacting = path.endswith(COMPACT_SUFFIX)
        # A compaction's body is recorded as sent: it creates no response, so it is no create.
        payload = (body if compacting else as_create(body)) if isinstance(body, dict) else None
        records.add_frame(ReceivedFrame(record.connection_id, time.monotonic(), payload, text, None))
        if not isinstance(body, dict):
            return _refuse(self._shared.records, record, body)
        if compacting:
            return self._compact(record, body)
        record.stream = body.get("stream", False)
        records.notify()
        logger.debug("emulator HTTP request {} creates a response (stream: {})", record.connection_id, record.stream)
        exchange = HttpExchange(self._shared, record, request, bearer_token(authorization) or azure_key(api_key_header))
        self.exchanges[record.connection_id] = exchange
        try:
            return await exchange.answer(as_create(body), stream=bool(record.stream))
        finally:
            del self.exchanges[record.connection_id]
            records.notify()

    def _compact(self, record: HttpRequest, body: dict[str, Any]) -> web.Response:
        answer = compact(body, self._shared.store, self._shared.new_id)
        if answer.get("type") == wire.ERROR:
            return _refuse(self._shared.records, record, refusal(answer))
        record.status = 200
        self._shared.records.notify()
        logger.debug("emulator HTTP request {} compacted {} items", record.connection_id, len(answer["output"]))
        return web.json_response(answer)

    async def close_all(self, code: int, reason: str) -> None:
        """End every answer in progress (see :meth:`HttpExchange.close`) and wait until each is over."""
        exchanges = list(self.exchanges.values())
        for exchange in exchanges:
            exchange.close(code, reason)
        await asyncio.gather(*(exchange.wait_closed() for exchange in exchanges))


def _refuse(records: Records, record: HttpRequest, decision: Decision) -> web.Response:
    record.status = decision.status
    records.notify()
    logger.debug("emulator refused HTTP request {} with {}", record.connection_id, decision.status)
    return web.Response(status=decision.status, text=decision.body, content_type="application/json")
