"""Helpers for the emulator tests: a raw client, SDK validation and event accessors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from openai.types.responses import ResponsesServerEvent, ResponseStreamEvent
from pydantic import TypeAdapter
from spec_schema import check_event
from websockets.asyncio.client import ClientConnection

from pipecat_responses_ws.emulator import Emulator
from pipecat_responses_ws.protocol import wire

SERVER_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponsesServerEvent)
# What an HTTP stream carries: the same events, but its ``error`` is the flat ``ResponseErrorEvent``.
STREAM_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
FAST = {"ttft": 0.01, "tokens_per_second": 500.0}
NO_LANE = object()

Event = dict[str, Any]


def validate_events(events: list[Event], union: TypeAdapter[Any] = SERVER_EVENTS) -> None:
    """Every event must parse as a member of the SDK's union (WebSocket by default), keeping its type."""
    for event in events:
        parsed = union.validate_python(event)
        assert parsed.type == event["type"], event


def validate_sent(emu: Emulator) -> None:
    """Every event the emulator sent, against the SDK's union and the specification's schema for the way it went."""
    http = {request.connection_id for request in emu.records.http_requests}
    validate_events([s.event for s in emu.records.sent() if s.connection_id not in http])
    validate_events([s.event for s in emu.records.sent() if s.connection_id in http], STREAM_EVENTS)
    for sent in emu.records.sent():
        check_event(sent.event, websocket=sent.connection_id not in http)


def check_sequence_numbers(emu: Emulator) -> None:
    """Within each (connection, lane), a response numbers its events 0, 1, 2… up to its terminal.

    An ``error`` in an HTTP stream is numbered with the response's events; on a WebSocket it is not.
    """
    http = {request.connection_id for request in emu.records.http_requests}
    expected: dict[tuple[int, str | None], int | None] = {}
    for sent in emu.records.sent():
        event = sent.event
        key = (sent.connection_id, event.get("stream_id"))
        if event["type"] in (wire.ERROR, wire.STEER_FAILED) and sent.connection_id not in http:
            continue
        if event["type"] == wire.CREATED:
            assert event["sequence_number"] == 0, event
            expected[key] = 1
            continue
        assert expected.get(key) is not None, f"{event['type']} outside a response on {key}"
        assert event["sequence_number"] == expected[key], event
        expected[key] = None if event["type"] in wire.TERMINAL_EVENTS else event["sequence_number"] + 1


class Peer:
    """A raw client: JSON in and out, with helpers that read until something arrives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[Event] = []

    async def send(self, event: Event | str) -> None:
        await self.ws.send(event if isinstance(event, str) else json.dumps(event))

    async def create(self, **fields: Any) -> None:
        await self.send({"type": "response.create", **fields})

    async def recv(self, timeout: float = 5.0) -> Event:
        async with asyncio.timeout(timeout):
            raw = await self.ws.recv()
        event = json.loads(raw)
        self.received.append(event)
        return event

    async def until(self, predicate: Callable[[Event], bool], timeout: float = 5.0) -> list[Event]:
        """Events up to and including the first one that matches."""
        events: list[Event] = []
        async with asyncio.timeout(timeout):
            while True:
                events.append(await self.recv(timeout=timeout))
                if predicate(events[-1]):
                    return events

    async def response(self, lane: Any = NO_LANE, timeout: float = 5.0) -> list[Event]:
        """Events up to the next terminal event (of ``lane`` when given)."""
        return await self.until(
            lambda e: e["type"] in wire.TERMINAL_EVENTS and (lane is NO_LANE or e.get("stream_id") == lane),
            timeout,
        )

    async def quiet(self, seconds: float) -> list[Event]:
        """Whatever arrives within ``seconds``."""
        events: list[Event] = []
        try:
            async with asyncio.timeout(seconds):
                while True:
                    events.append(await self.recv(timeout=seconds + 1))
        except TimeoutError:
            pass
        return events


def text_of(events: list[Event]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == wire.OUTPUT_TEXT_DELTA)


def terminal_of(events: list[Event]) -> Event:
    return next(e for e in events if e["type"] in wire.TERMINAL_EVENTS)


def response_id_of(events: list[Event]) -> str:
    return next(e["response"]["id"] for e in events if e["type"] == wire.CREATED)


Connect = Callable[..., Awaitable[Peer]]
MakeEmulator = Callable[..., Awaitable[Emulator]]
