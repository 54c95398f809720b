"""Our HTTP service reading what real servers send: raw line separators, both stream endings, a
stream kept open after its end, and servers that are not Responses servers at all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from aiohttp import web

from pipecat_responses_ws import ResponsesHTTPLLMService
from pipecat_responses_ws.emulator import Fault, Reply
from pipecat_responses_ws.harness.pipeline import Conversation
from pipecat_responses_ws.log import logger

from .conftest import http_session


@contextmanager
def logged(level: str = "WARNING") -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level=level)
    try:
        yield lines
    finally:
        logger.remove(sink)


async def test_a_delta_with_unicode_line_separators_is_heard_whole_and_the_turn_ends() -> None:
    with logged() as warnings:
        async with http_session() as (emu, llm, conv):
            emu.queue_replies(Reply(text="one two three four five.", fault=Fault("line_separators")))
            await conv.say("Hi")
            await conv.wait_turns_ended(1)
            assert conv.turns()[0].text == emu.records.responses[0].text == "one\u2028two\u2029three\x85four five."
            assert not conv.errors()
    assert not warnings


@pytest.mark.parametrize("stream_end", ["terminal", "done"])
async def test_either_stream_ending_is_read_with_no_malformed_event(stream_end: str) -> None:
    with logged() as warnings:
        async with http_session(emulator={"stream_end": stream_end}) as (emu, llm, conv):
            emu.queue_replies(Reply(text="First."), Reply(text="Second."))
            await conv.say("Hi")
            await conv.wait_turns_ended(1)
            await conv.say("Again")
            await conv.wait_turns_ended(2)
            assert [t.text for t in conv.turns()] == ["First.", "Second."] and not conv.errors()
    assert not warnings, warnings
    assert llm.stats.events_skipped == 0


async def test_a_stream_kept_open_after_its_terminal_event_is_closed_by_the_client() -> None:
    async with http_session(emulator={"stream_end": "done"}) as (emu, llm, conv):
        emu.add_fault(Fault("hold_open", count=2))
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        await emu.records.wait_for(lambda: emu.records.http_requests[0].closed_at is not None, 5)
        await conv.say("Again")
        await conv.wait_turns_ended(2)
        await emu.records.wait_for(lambda: emu.records.http_requests[1].closed_at is not None, 5)
        assert not conv.errors()
        # No answer is left open on the server, and no reader on the client.
        await emu.records.wait_for(lambda: not emu._http.exchanges, 5)
        assert not llm._client._running
    assert [r.status for r in emu.records.responses] == ["completed", "completed"]


@asynccontextmanager
async def not_a_responses_server(handler: web.Handler) -> AsyncIterator[str]:
    """A real HTTP server on loopback that answers every request with ``handler``; its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def http_service_on(base_url: str) -> AsyncIterator[Conversation]:
    llm = ResponsesHTTPLLMService(
        api_key="test-key", base_url=base_url, settings=ResponsesHTTPLLMService.Settings(model="emulated")
    )
    async with Conversation(llm) as conv:
        yield conv


async def answer_501(request: web.Request) -> web.Response:
    return web.Response(status=501, text="<html><body>Not Implemented</body></html>", content_type="text/html")


async def answer_a_web_page(request: web.Request) -> web.Response:
    return web.Response(text="<html><body>Welcome to nginx!</body></html>", content_type="text/html")


@pytest.mark.parametrize(
    ("handler", "came_back"),
    [(answer_501, "HTTP 501 Not Implemented (text/html"), (answer_a_web_page, "HTTP 200 with text/html")],
)
async def test_a_server_without_the_responses_api_gets_an_error_that_says_what_to_try(
    handler: web.Handler, came_back: str
) -> None:
    async with not_a_responses_server(handler) as base_url, http_service_on(base_url) as conv:
        await conv.say("Hi")
        await conv.wait_for(lambda: bool(conv.errors()), 5, "an error")
        error = conv.errors()[0].error
        assert f"POST {base_url}/responses answered {came_back}" in error, error
        assert "<html><body>" in error and "a Responses API server answers HTTP 200 with text/event-stream" in error
        assert f"check that base_url ({base_url})" in error and "https://api.openai.com/v1" in error, error
        assert "closed mid-response" not in error
