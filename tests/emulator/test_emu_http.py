"""The official SDK over HTTP: ``POST /v1/responses`` on the emulator's WebSocket port."""

from __future__ import annotations

import asyncio
import json
import time
import typing
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import openai
import pytest
import websockets
from emu_helpers import STREAM_EVENTS, Connect, MakeEmulator, text_of, validate_events
from openai import AsyncOpenAI
from openai.types.responses import ResponseStreamEvent
from websockets.exceptions import InvalidStatus

from pipecat_responses_ws.emulator import Emulator, Fault, Reply
from pipecat_responses_ws.protocol import wire

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ECHO = "You said: Hello there. That is a fine thing to talk about. Let me know what else you need."
# The concrete classes of the SDK's union: a parsed event of any other class fell through to an unknown type.
STREAM_EVENT_CLASSES = typing.get_args(typing.get_args(ResponseStreamEvent)[0])


Sdk = Callable[..., AsyncOpenAI]


@pytest.fixture
async def sdk() -> AsyncIterator[Sdk]:
    """SDK clients on an emulator's HTTP base URL, closed after the test (before the emulator stops)."""
    made: list[AsyncOpenAI] = []

    def make(emu: Emulator, key: str = "sk-test") -> AsyncOpenAI:
        # No retries: a refused request must surface as the first error, not as a third attempt.
        made.append(AsyncOpenAI(api_key=key, base_url=emu.http_base_url, max_retries=0))
        return made[-1]

    yield make
    for client in made:
        await client.close()


def sent_on(emu: Emulator, connection_id: int) -> list[dict[str, Any]]:
    return [s.event for s in emu.records.sent(connection_id)]


async def test_streamed_create_parses_every_event_as_a_member_of_the_sdk_union(emu: Emulator, sdk: Sdk) -> None:
    stream = await sdk(emu).responses.create(model="gpt-test", input="Hello there", stream=True)
    events = [event async for event in stream]
    assert all(isinstance(event, STREAM_EVENT_CLASSES) for event in events), {type(e) for e in events}
    assert [e.type for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed" and events[-1].response.model == "gpt-test"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == ECHO
    # What went on the wire, as plain JSON, against the SDK's validating union.
    (request,) = emu.records.http_requests
    wire_events = sent_on(emu, request.connection_id)
    validate_events(wire_events, STREAM_EVENTS)
    assert [e["type"] for e in wire_events] == [e.type for e in events]
    assert request.status == 200 and request.stream is True and request.closed_at is None


async def test_http_sends_the_events_a_websocket_sends_for_the_same_request(
    emu: Emulator, connect: Connect, sdk: Sdk
) -> None:
    peer = await connect(emu)
    await peer.create(model="m", input="What does get_weather say for Oslo?", tools=[WEATHER_TOOL])
    over_ws = await peer.response()
    stream = await sdk(emu).responses.create(
        model="m", input="What does get_weather say for Oslo?", tools=[WEATHER_TOOL], stream=True
    )
    over_http = [event.to_dict() async for event in stream]

    def shape(events: list[dict[str, Any]]) -> list[tuple[str, int, Any]]:
        return [(e["type"], e["sequence_number"], e.get("delta") or e.get("arguments")) for e in events]

    assert shape(over_http) == shape(over_ws)
    assert over_http[-1]["response"]["output"][0]["name"] == "get_weather"


async def test_sdk_stream_helper_and_a_non_streamed_create(emu: Emulator, sdk: Sdk) -> None:
    client = sdk(emu)
    async with client.responses.stream(model="m", input="Hello there") as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()
    assert final.output_text == ECHO and final.status == "completed"

    emu.queue_replies(Reply(text="One whole answer."))
    response = await client.responses.create(model="m", input="Hi")
    assert response.output_text == "One whole answer."
    assert response.usage is not None and response.usage.output_tokens == 3
    request = emu.records.http_requests[-1]
    assert request.stream is False and request.status == 200
    # The events were still generated (and recorded), though only the Response was written.
    assert sent_on(emu, request.connection_id)[-1]["type"] == "response.completed"


async def test_tool_round_trip_with_store_and_previous_response_id(emu: Emulator, sdk: Sdk) -> None:
    client = sdk(emu)
    first = await client.responses.create(
        model="m", input="What does get_weather say for Oslo?", tools=[WEATHER_TOOL], store=True
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Oslo"})

    output = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 degrees"}
    stream = await client.responses.create(
        model="m", input=[output], previous_response_id=first.id, tools=[WEATHER_TOOL], store=True, stream=True
    )
    events = [event async for event in stream]
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "Here is what I found: Sunny, 21 degrees."
    second = emu.records.response(events[-1].response.id)
    # Only the new item was sent; the rest of the conversation came from the store.
    assert second.parent == first.id and second.input_items == 1
    assert [c.get("previous_response_id") for c in emu.records.creates()] == [None, first.id]


async def test_previous_response_id_reaches_only_stored_responses(emu: Emulator, connect: Connect, sdk: Sdk) -> None:
    client = sdk(emu)
    unstored = await client.responses.create(model="m", input="Hi", store=False)
    peer = await connect(emu)
    await peer.create(model="m", input="Hi", store=True)
    stored_over_ws = (await peer.response())[-1]["response"]["id"]

    with pytest.raises(openai.BadRequestError) as missing:
        await client.responses.create(model="m", input="Again", previous_response_id=unstored.id)
    assert missing.value.status_code == 400 and missing.value.code == wire.PREVIOUS_RESPONSE_NOT_FOUND
    assert missing.value.param == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as unknown:
        await client.responses.create(model="m", input="Again", previous_response_id="resp_never", stream=True)
    assert unknown.value.code == wire.PREVIOUS_RESPONSE_NOT_FOUND
    # A response stored from a WebSocket is reachable over HTTP.
    chained = await client.responses.create(model="m", input="Again", previous_response_id=stored_over_ws)
    assert chained.status == "completed"
    # A refused request left no response behind.
    assert [r.id for r in emu.records.responses if r.parent is not None] == [chained.id]


@pytest.mark.parametrize("param", ["stream_id", "generate"])
async def test_websocket_only_parameters_are_refused(emu: Emulator, param: str, sdk: Sdk) -> None:
    extra = {param: "lane-1" if param == "stream_id" else False}
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk(emu).responses.create(model="m", input="Hi", stream=True, extra_body=extra)
    error = refused.value
    assert error.code == "unknown_parameter" and error.param == param
    assert isinstance(error.body, dict) and error.body["type"] == "invalid_request_error"
    assert emu.records.responses == [] and emu.records.http_requests[0].status == 400


async def test_an_output_answering_no_call_is_a_400(emu: Emulator, sdk: Sdk) -> None:
    output = {"type": "function_call_output", "call_id": "call_nobody_made", "output": "x"}
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk(emu).responses.create(model="m", input=[output])
    assert refused.value.status_code == 400 and refused.value.param == "input"
    assert refused.value.type == "invalid_request_error"
    assert refused.value.body == {
        "type": "invalid_request_error",
        "code": wire.INVALID_REQUEST,
        "param": "input",
        "message": "No tool call found for function call output with call_id call_nobody_made.",
    }
    assert not emu.records.responses


@pytest.mark.parametrize(
    ("body", "param"),
    [(b"{not json", None), (b"[1, 2]", None), (b'{"input": 3}', "input"), (b'{"stream": "yes"}', "stream")],
)
async def test_malformed_bodies_get_400_invalid_request_error(emu: Emulator, body: bytes, param: str | None) -> None:
    async with aiohttp.ClientSession() as http:
        answer = await http.post(
            f"{emu.http_base_url}/responses",
            data=body,
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        )
        error = (await answer.json())["error"]
    assert answer.status == 400
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    assert emu.records.frames[0].raw == body.decode()


async def test_keys_are_checked_as_on_the_upgrade(make_emulator: MakeEmulator, sdk: Sdk) -> None:
    emu = await make_emulator(api_key="sk-right")
    with pytest.raises(openai.AuthenticationError) as wrong:
        await sdk(emu, "sk-wrong").responses.create(model="m", input="Hi")
    assert wrong.value.status_code == 401 and "sk-wrong" not in str(wrong.value)
    assert (await sdk(emu, "sk-right").responses.create(model="m", input="Hi")).status == "completed"
    async with aiohttp.ClientSession() as http:
        url, body = f"{emu.http_base_url}/responses", {"model": "m", "input": "Hi"}
        assert (await http.post(url, json=body)).status == 401
        assert (await http.post(url, json=body, headers={"api-key": "sk-right"})).status == 200
        assert (await http.post(url, json=body, headers={"api-key": "sk-other"})).status == 401
        unknown = await http.post(f"{emu.http_base_url}/chat/completions", json=body)
        assert unknown.status == 404
        assert (await unknown.json())["error"]["message"] == "Invalid URL (POST /v1/chat/completions)"
    assert [r.status for r in emu.records.http_requests] == [401, 200, 401, 200, 401, 404]
    assert "sk-right" not in repr(emu.records.http_requests)
    # Only requests that got past the key were read.
    assert len(emu.records.frames) == 2


async def test_refusing_websocket_answers_the_upgrade_with_426_and_still_serves_http(
    make_emulator: MakeEmulator, sdk: Sdk
) -> None:
    emu = await make_emulator(websocket="refuse")
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(emu.ws_url, additional_headers={"Authorization": "Bearer k"}, open_timeout=5)
    assert refused.value.response.status_code == 426
    assert json.loads(refused.value.response.body)["error"]["code"] == "upgrade_required"
    assert [h.status for h in emu.records.handshakes] == [426] and emu.connection_count == 0
    response = await sdk(emu).responses.create(model="m", input="Hello there")
    assert response.output_text == ECHO
    with pytest.raises(ValueError, match="websocket must be one of"):
        Emulator(websocket="maybe")


async def test_closing_the_stream_mid_answer_stops_the_response_and_is_recorded(
    make_emulator: MakeEmulator, sdk: Sdk
) -> None:
    emu = await make_emulator(tokens_per_second=50.0)
    emu.queue_replies(Reply(text=" ".join(f"w{n}" for n in range(100))))
    stream = await sdk(emu).responses.create(model="m", input="Hi", stream=True)
    deltas = 0
    async for event in stream:
        deltas += event.type == "response.output_text.delta"
        if deltas == 3:
            break
    closed = time.monotonic()
    await stream.close()
    request = emu.records.http_requests[0]
    await emu.records.wait_for(lambda: request.closed_at is not None)
    (record,) = emu.records.responses
    assert record.cancelled_at == request.closed_at and request.closed_at >= closed
    assert record.status == "in_progress" and record.finished_at is None and record.end_reason is None
    assert request.closed_at - closed < 1.0
    generated, sent = record.output_tokens_generated, len(emu.records.sent())
    # Five token intervals later, nothing more was generated or sent.
    await asyncio.sleep(0.1)
    assert record.output_tokens_generated == generated < 100 and len(emu.records.sent()) == sent


async def test_faults_over_http(make_emulator: MakeEmulator, sdk: Sdk) -> None:
    emu = await make_emulator()
    client = sdk(emu)
    emu.add_fault(Fault("stray_error", after_events=3))
    stream = await client.responses.create(model="m", input="Hello there", stream=True)
    events = [event async for event in stream]
    errors = [e for e in events if e.type == "error"]
    assert len(errors) == 1 and errors[0].code == "server_error" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))

    emu.add_fault(Fault("drop", after_events=4, close_code=1006))
    stream = await client.responses.create(model="m", input="Hello there", stream=True)
    with pytest.raises(openai.APIConnectionError):
        async for _ in stream:
            pass

    emu.add_fault(Fault("drop", after_events=4, close_code=1011))
    stream = await client.responses.create(model="m", input="Hello there", stream=True)
    cut = [event.type async for event in stream]
    assert len(cut) == 4 and not set(cut) & wire.TERMINAL_EVENTS

    emu.add_fault(Fault("fail", after_events=5))
    failed = await client.responses.create(model="m", input="Hello there")
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"

    emu.add_fault(Fault("key_error", after_events=3))
    with pytest.raises(openai.AuthenticationError) as quoted:
        await client.responses.create(model="m", input="Hello there")
    assert "sk-test" in str(quoted.value)  # the gateway's fault: the key it echoes is the one sent
    assert [r.status for r in emu.records.http_requests] == [200, 200, 200, 200, 401]


async def test_http_and_websocket_connections_never_share_an_id(emu: Emulator, connect: Connect, sdk: Sdk) -> None:
    await sdk(emu).responses.create(model="m", input="Hi")
    peer = await connect(emu)
    await peer.create(model="m", input="Hi")
    await peer.response()
    (request,) = emu.records.http_requests
    (handshake,) = emu.records.handshakes
    assert request.connection_id != handshake.connection_id
    assert {r.connection_id for r in emu.records.responses} == {request.connection_id, handshake.connection_id}
    assert text_of(sent_on(emu, handshake.connection_id)) == text_of(sent_on(emu, request.connection_id))


async def test_handshake_delay_is_paid_once_per_tcp_connection(make_emulator: MakeEmulator, sdk: Sdk) -> None:
    emu = await make_emulator(handshake_delay=0.3)
    client = sdk(emu)
    took = []
    for _ in range(2):
        started = time.monotonic()
        await client.responses.create(model="m", input="Hi")
        took.append(time.monotonic() - started)
    # The SDK keeps its connection alive: the second request pays no new handshake.
    assert took[0] >= 0.3 > took[1]


async def test_dropping_connections_and_stopping_end_http_answers_in_progress(
    make_emulator: MakeEmulator, sdk: Sdk
) -> None:
    emu = await make_emulator(tokens_per_second=20.0)
    client = sdk(emu)
    long_reply = Reply(text=" ".join(f"w{n}" for n in range(100)))
    emu.queue_replies(long_reply, long_reply)
    stream = await client.responses.create(model="m", input="Hi", stream=True)
    await emu.records.wait_for(lambda: emu.records.responses[0].output_tokens_generated >= 2)
    await emu.drop_all_connections(code=1011)
    # A close code other than 1006 ends the body cleanly, without a terminal event.
    assert not {event.type async for event in stream} & wire.TERMINAL_EVENTS

    stream = await client.responses.create(model="m", input="Hi", stream=True)
    await emu.records.wait_for(lambda: emu.records.responses[1].output_tokens_generated >= 2)
    started = time.monotonic()
    await emu.stop()
    assert time.monotonic() - started < 1.0
    assert not {event.type async for event in stream} & wire.TERMINAL_EVENTS
    # The emulator ended these answers itself: neither is recorded as the client going away.
    assert [r.closed_at for r in emu.records.http_requests] == [None, None]


@pytest.mark.parametrize(
    ("request_head", "status_line"),
    [
        (
            b"GET /v1/responses HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Authorization: Bearer k\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n",
        ),
        (
            b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\n"
            b'Content-Length: 16\r\nConnection: close\r\n\r\n{"input": "hi"}\n',
            b"HTTP/1.1 200 OK\r\n",
        ),
    ],
    ids=["upgrade", "post"],
)
async def test_a_request_whose_first_bytes_come_one_at_a_time_still_finds_its_server(
    emu: Emulator, request_head: bytes, status_line: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    try:
        for byte in request_head[:3]:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)  # the bytes' pace, not a wait: each must reach the server in a read of its own
        writer.write(request_head[3:])
        async with asyncio.timeout(5):
            assert await reader.readline() == status_line
    finally:
        writer.close()


async def test_a_body_larger_than_aiohttps_default_limit_is_read(emu: Emulator, sdk: Sdk) -> None:
    words = " ".join(["word"] * 400_000)  # 2 MB: a long conversation sent in full
    response = await sdk(emu).responses.create(model="m", input=words)
    assert response.status == "completed" and emu.records.responses[0].input_tokens == 400_000


AUTHORIZATION = {"Authorization": "Bearer sk-test"}


async def raw_body(emu: Emulator, text: str = "Hello there") -> bytes:
    """A streamed answer's body as bytes, read to its end."""
    async with aiohttp.ClientSession() as http:
        body = {"model": "m", "input": text, "stream": True}
        async with http.post(f"{emu.http_base_url}/responses", json=body, headers=AUTHORIZATION) as answer:
            assert answer.headers["Content-Type"].startswith("text/event-stream")
            return await answer.read()


@pytest.mark.parametrize(("stream_end", "ending"), [("terminal", b"event: response.completed\n"), ("done", b"")])
async def test_a_stream_ends_as_the_stream_end_setting_says(
    make_emulator: MakeEmulator, sdk: Sdk, stream_end: str, ending: bytes
) -> None:
    emu = await make_emulator(stream_end=stream_end)
    body = await raw_body(emu)
    last = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    if stream_end == "done":
        assert last == b"data: [DONE]" and b"event: response.completed\n" in body
    else:
        assert last.startswith(ending) and b"[DONE]" not in body
    # The SDK reads either ending as the same events.
    stream = await sdk(emu).responses.create(model="m", input="Hello there", stream=True)
    assert [event.type async for event in stream][-1] == "response.completed"


def test_an_unknown_stream_end_is_refused() -> None:
    with pytest.raises(ValueError, match="stream_end must be one of"):
        Emulator(stream_end="eof")


async def test_line_separators_travel_unescaped_in_the_deltas(make_emulator: MakeEmulator, sdk: Sdk) -> None:
    emu = await make_emulator()
    emu.queue_replies(Reply(text="one two three four five.", fault=Fault("line_separators")))
    body = await raw_body(emu)
    text = "one\u2028two\u2029three\x85four five."
    assert emu.records.responses[0].text == text
    for separator in "\u2028\u2029\x85":
        assert separator.encode() in body and json.dumps(separator).encode() not in body
    emu.queue_replies(Reply(text="one two three four five.", fault=Fault("line_separators")))
    stream = await sdk(emu).responses.create(model="m", input="Hi", stream=True)
    assert text_of([event.model_dump() async for event in stream]) == text


async def test_hold_open_keeps_the_stream_open_after_its_end_until_the_client_closes_it(
    make_emulator: MakeEmulator,
) -> None:
    emu = await make_emulator(stream_end="done")
    emu.add_fault(Fault("hold_open"))
    async with aiohttp.ClientSession() as http:
        body = {"model": "m", "input": "Hello there", "stream": True}
        async with http.post(f"{emu.http_base_url}/responses", json=body, headers=AUTHORIZATION) as answer:
            seen = b""
            while b"data: [DONE]\n\n" not in seen:
                seen += await answer.content.readany()
            assert b"event: response.completed\n" in seen
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await answer.content.readany()  # no end of body while the client stays
            request = emu.records.http_requests[0]
            assert request.closed_at is None and [f.kind for f in emu.records.faults] == ["hold_open"]
        await emu.records.wait_for(lambda: request.closed_at is not None)
    assert emu.records.responses[0].status == "completed"
