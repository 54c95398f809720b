"""The WebSocket service on a gateway that answers the upgrade with 426: HTTP at once, for good, unnoticed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pipecat.processors.aggregators.llm_context import LLMContext

from pipecat_responses_ws.client.client import ClientOptions, ResponsesClient
from pipecat_responses_ws.client.fallback import WebSocketOrHTTP
from pipecat_responses_ws.client.http import HTTPOptions, ResponsesHTTPClient
from pipecat_responses_ws.emulator import Emulator, Fault, Reply
from pipecat_responses_ws.endpoint import http_base_url
from pipecat_responses_ws.log import logger
from pipecat_responses_ws.protocol.response import Failed, Finished
from pipecat_responses_ws.protocol.session import ClientSession

from .conftest import session


@contextmanager
def warnings() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="WARNING")
    try:
        yield lines
    finally:
        logger.remove(sink)


async def test_a_426_switches_to_http_once_and_for_good() -> None:
    with warnings() as logged:
        async with session(emulator={"websocket": "refuse"}) as (emu, llm, conv):
            emu.queue_replies(Reply(text="Hello over HTTP."), Reply(text="Still HTTP."))
            await conv.say("Hi")
            await conv.wait_turns_ended(1)
            await conv.say("Again")
            await conv.wait_turns_ended(2)
            await asyncio.sleep(0.3)  # a reconnect loop would try the upgrade again by now
            assert [t.text for t in conv.turns()] == ["Hello over HTTP.", "Still HTTP."]
            assert not conv.errors()
            assert llm.transport == "http"
            context = LLMContext(messages=[{"role": "user", "content": "Summarise."}])
            emu.queue_replies(Reply(text="A summary."))
            assert await llm.run_inference(context) == "A summary."
    assert [h.status for h in emu.records.handshakes] == [426]
    assert [r.status for r in emu.records.http_requests] == [200, 200, 200]
    # The base URL came from ws_url; the warm-up's generate: false never goes over HTTP.
    assert all("generate" not in c and "stream_id" not in c for c in emu.records.creates())
    switches = [line for line in logged if "426" in line]
    assert len(switches) == 1 and "switching to HTTP" in switches[0], logged


async def test_a_turn_that_meets_the_426_on_a_reconnect_goes_over_http_unnoticed() -> None:
    with warnings() as logged:
        async with session() as (emu, llm, conv):
            emu.queue_replies(Reply(text="Over the socket."))
            await conv.say("Hi")
            await conv.wait_turns_ended(1)
            # The gateway changes its mind: the connection drops before the answer starts, and
            # every upgrade from now on is answered with 426.
            emu.reject_handshakes(426, count=20)
            emu.queue_replies(Reply(text="Never heard.", fault=Fault(kind="drop", after_events=0)))
            emu.queue_replies(Reply(text="Over HTTP now."))
            await conv.say("And now?")
            await conv.wait_turns_ended(2)
            assert [t.text for t in conv.turns()] == ["Over the socket.", "Over HTTP now."]
            assert not conv.errors() and llm.transport == "http"
            assert llm.stats.transparent_retries == 1
    refused = [h for h in emu.records.handshakes if h.status == 426]
    assert 1 <= len(refused) <= 2  # the turn's, and perhaps the background reconnect's; never a retry loop
    assert len(emu.records.http_requests) == 1
    assert len([line for line in logged if "switching to HTTP" in line]) == 1


@pytest.mark.slow
async def test_any_other_handshake_failure_is_retried_on_the_websocket() -> None:
    async with session() as (emu, llm, conv):
        emu.queue_replies(Reply(text="Over the socket."))
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        emu.reject_handshakes(503, count=2)
        await emu.drop_all_connections()
        emu.queue_replies(Reply(text="Still the socket."))
        await emu.records.wait_for(lambda: len(emu.records.handshakes) == 4, 5)  # backing off in between
        await conv.say("Back?")
        await conv.wait_turns_ended(2)
        assert conv.turns()[1].text == "Still the socket." and llm.transport == "websocket"
    assert [h.status for h in emu.records.handshakes] == [101, 503, 503, 101]
    assert emu.records.http_requests == []


def test_the_http_base_url_is_base_url_or_derived_from_ws_url() -> None:
    assert http_base_url("wss://api.openai.com/v1/responses", None) == "https://api.openai.com/v1"
    assert http_base_url("ws://127.0.0.1:8080/v1/responses/", None) == "http://127.0.0.1:8080/v1"
    assert http_base_url("wss://gw.example/openai/v1/responses", "https://gw.example/openai/v1/") == (
        "https://gw.example/openai/v1"
    )


@pytest.mark.parametrize("opening", ["turn", "inference"])
async def test_a_turn_sent_at_any_moment_of_the_start_that_meets_the_426_goes_over_http(opening: str) -> None:
    """However the turn and the background start interleave around the 426, the turn reaches the server."""
    for moment in range(8):  # event-loop steps after the server answered the upgrade
        async with Emulator(websocket="refuse", ttft=0.01, tokens_per_second=500.0) as emu:
            session = ClientSession()
            websocket = ResponsesClient(ClientOptions(url=emu.ws_url, headers={}), session=session)
            http = ResponsesHTTPClient(HTTPOptions(base_url=emu.http_base_url, api_key="test-key"), session=session)
            transport = WebSocketOrHTTP(websocket, http, name="fallback")
            starting = asyncio.create_task(transport.start())
            # Step by step, not an event wait: the moments that lost the turn are one or two steps long.
            while not emu.records.handshakes:  # noqa: ASYNC110
                await asyncio.sleep(0)
            for _ in range(moment):
                await asyncio.sleep(0)
            emu.queue_replies(Reply(text="Over HTTP."))
            user = [{"role": "user", "content": "Hi"}]
            try:
                async with asyncio.timeout(10):
                    if opening == "turn":
                        driver, response = await transport.open_response(user)
                    else:
                        driver, response = await transport.open_out_of_band(user)
                    await driver.send_create(response, {"model": "emulated"})
                    while not isinstance(ending := await driver.next_happening(response, 5, 5), Finished | Failed):
                        pass
                assert isinstance(ending, Finished), (moment, ending)
                assert transport.over_http and len(emu.records.http_requests) == 1, moment
            finally:
                await asyncio.gather(starting, return_exceptions=True)
                await transport.close()
