"""Gateway faults end to end: duplicated and stray frames, spent connections, a blocked send,
an echoed key, malformed events, close codes, cancel turned off, and a clean shutdown.

Each test drives a real Pipecat pipeline against the emulator and checks what a caller would
notice: what was spoken, what the context holds, which requests reached the server, which
errors were pushed and how long the turn took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from loguru import logger

from pipecat_responses_ws.changes import Changes
from pipecat_responses_ws.emulator import Fault, Reply, ToolCall

from .conftest import LONG_TEXT, session, weather_tools

TEXT = "One two three four five six."
# Far below the 15 s first-event timeout: a turn answered in time was moved, not waited out.
MOVED_IN_TIME_SECS = 3.0


class LogLines(list[str]):
    """Loguru lines as formatted for a sink, and the changes a wait for one wakes on."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = Changes()

    def write(self, line: str) -> None:
        self.append(line)
        self.changes.notify()


@contextmanager
def captured_logs(level: str = "DEBUG") -> Iterator[LogLines]:
    """Every loguru line written while the block runs."""
    lines = LogLines()
    sink_id = logger.add(lines.write, level=level)
    try:
        yield lines
    finally:
        logger.remove(sink_id)


def assistant_texts(conv) -> list[str]:
    return [m["content"] for m in conv.messages() if m.get("role") == "assistant" and isinstance(m.get("content"), str)]


def cancel_frames(emu) -> list[dict]:
    return [f.payload for f in emu.records.frames if f.payload and f.payload.get("type") == "response.cancel"]


def follow_ups(emu) -> list[dict]:
    return [c for c in emu.records.creates() if any(i.get("type") == "function_call_output" for i in c["input"])]


def generated_creates(emu, connection_id: int | None = None) -> list[dict]:
    return [c for c in emu.records.creates(connection_id) if c.get("generate", True) is not False]


# -- duplicated and stray frames ------------------------------------------------------------------


async def test_a_duplicated_text_delta_is_spoken_once() -> None:
    async with session() as (emu, llm, conv):
        emu.queue_replies(Reply(text=TEXT, fault=Fault(kind="duplicate_delta", after_events=6)))
        await conv.say("Count for me")
        await conv.wait_turns_ended(1)
        await conv.wait_for(lambda: len(assistant_texts(conv)) == 1, 2, "the assistant message")
        assert [f.kind for f in emu.records.faults] == ["duplicate_delta"]
        assert conv.turns()[0].text == TEXT
        assert assistant_texts(conv) == [TEXT]
        assert not conv.errors(), [e.error for e in conv.errors()]


async def test_a_duplicated_function_call_done_runs_the_tool_once() -> None:
    ran: list[dict] = []

    def register(llm) -> None:
        async def get_weather(params) -> None:
            ran.append(dict(params.arguments))
            await params.result_callback({"city": params.arguments.get("city"), "sky": "clear"})

        llm.register_function("get_weather", get_weather)

    async with session(tools=weather_tools(), setup=register) as (emu, llm, conv):
        emu.queue_replies(
            Reply(calls=[ToolCall("get_weather", {"city": "Oslo"})], fault=Fault(kind="duplicate_item_done")),
            Reply(text="Clear in Oslo."),
        )
        await conv.say("What's the weather in Oslo?")
        await conv.wait_text("Clear in Oslo.")
        await asyncio.sleep(0.3)  # room for a second run or a second follow-up to show up
        assert [f.kind for f in emu.records.faults] == ["duplicate_item_done"]
        assert ran == [{"city": "Oslo"}]
        assert len(follow_ups(emu)) == 1
        assert conv.text().count("Clear in Oslo.") == 1
        messages = conv.messages()
        calls = [c for m in messages for c in (m.get("tool_calls") or [])]
        outputs = [m for m in messages if m.get("role") == "tool"]
        assert len(calls) == 1 and calls[0]["function"]["name"] == "get_weather"
        assert len(outputs) == 1 and outputs[0]["tool_call_id"] == calls[0]["id"]
        assert not conv.errors(), [e.error for e in conv.errors()]


@pytest.mark.parametrize("lanes", [True, False], ids=["named-lane", "default-lane"])
async def test_a_stray_delta_before_response_created_is_never_spoken(lanes: bool) -> None:
    async with session(service={"lanes": lanes}) as (emu, llm, conv):
        emu.queue_replies(Reply(text=TEXT, fault=Fault(kind="stray_early_delta", text="STRAY ")))
        await conv.say("Count for me")
        await conv.wait_turns_ended(1)
        await conv.wait_for(lambda: len(assistant_texts(conv)) == 1, 2, "the assistant message")
        assert [f.kind for f in emu.records.faults] == ["stray_early_delta"]
        assert "STRAY" not in conv.text()
        assert conv.turns()[0].text == TEXT
        assert not any("STRAY" in str(m.get("content")) for m in conv.messages())
        assert assistant_texts(conv) == [TEXT]


# -- spent connections ----------------------------------------------------------------------------


async def test_the_connection_limit_moves_the_turn_to_a_fresh_connection_at_once() -> None:
    async with session() as (emu, llm, conv):
        emu.queue_replies(
            Reply(text="Never said.", fault=Fault(kind="connection_limit")),
            Reply(text="Answered on a fresh connection."),
            Reply(text="Later turn works."),
        )
        asked = await conv.say("Hi")
        await conv.wait_turns_ended(1, timeout=MOVED_IN_TIME_SECS + 2)
        turn = conv.turns()[0]
        assert turn.text == "Answered on a fresh connection."
        assert turn.ended - asked < MOVED_IN_TIME_SECS
        assert emu.connection_count >= 2
        assert generated_creates(emu, 2), "the turn was sent again on the second connection"
        await conv.say("And now?")
        await conv.wait_turns_ended(2)
        assert conv.turns()[1].text == "Later turn works."
        assert "Never said" not in conv.text()
        assert not conv.errors(), [e.error for e in conv.errors()]


async def test_the_connection_limit_on_a_lane_moves_the_turn_and_the_connection_is_not_reused() -> None:
    async with session() as (emu, llm, conv):
        emu.queue_replies(
            Reply(text="Never said.", fault=Fault(kind="connection_limit_lane")),
            Reply(text="Answered on a fresh connection."),
            *(Reply(text=f"Later turn {n}.") for n in range(3)),
        )
        asked = await conv.say("Hi")
        await conv.wait_turns_ended(1, timeout=MOVED_IN_TIME_SECS + 2)
        turn = conv.turns()[0]
        assert turn.text == "Answered on a fresh connection."
        assert turn.ended - asked < MOVED_IN_TIME_SECS
        assert emu.connection_count >= 2
        for n in range(3):
            await conv.say(f"Question {n}")
            await conv.wait_turns_ended(n + 2)
        assert [t.text for t in conv.turns()[1:]] == [f"Later turn {n}." for n in range(3)]
        # The spent connection saw the refused create and nothing after it.
        assert len(generated_creates(emu, 1)) == 1
        assert not conv.errors(), [e.error for e in conv.errors()]


# -- a send that cannot finish --------------------------------------------------------------------

# Too large for the loopback socket buffers once the server stops reading, yet within the
# emulator's 32 MiB frame limit so the resend on the fresh connection is accepted.
BLOCKING_MESSAGE_BYTES = 16 * 1024 * 1024


@pytest.mark.slow
async def test_a_blocked_send_drops_the_connection_and_the_turn_is_sent_again_on_a_fresh_one() -> None:
    started = time.monotonic()
    async with session(service={"send_timeout": 0.5}) as (emu, llm, conv):
        emu.queue_replies(
            Reply(text="First answer.", fault=Fault(kind="stop_reading", after_events=3)),
            Reply(text="Second answer."),
        )
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        assert conv.turns()[0].text == "First answer."
        huge = "word " * (BLOCKING_MESSAGE_BYTES // 5)
        asked = await conv.say(huge)
        await conv.wait_turns_ended(2, timeout=8)
        assert conv.turns()[1].text == "Second answer."
        assert conv.turns()[1].ended - asked < 5.0
        assert llm.stats.transparent_retries == 1
        assert emu.connection_count >= 2
        # The first connection never read the big create; the second one got it whole.
        assert len(generated_creates(emu, 1)) == 1
        resent = generated_creates(emu, 2)
        assert len(resent) == 1 and any(huge in str(i.get("content")) for i in resent[0]["input"])
        assert not conv.errors(), [e.error for e in conv.errors()]
    assert time.monotonic() - started < 10.0


# -- connection-level errors ----------------------------------------------------------------------

KEY = "sk-test-abcdefgh12345678"


async def test_a_server_error_that_quotes_the_key_never_shows_it() -> None:
    with captured_logs() as lines:
        async with session(emulator={"api_key": KEY}) as (emu, llm, conv):
            emu.queue_replies(Reply(text=TEXT, fault=Fault(kind="key_error", after_events=4)))
            await conv.say("Count for me")
            await conv.wait_turns_ended(1)
            await conv.wait_for(lambda: bool(conv.errors()), 2, "the error frame")
            assert conv.turns()[0].text == TEXT
            errors = [e.error for e in conv.errors()]
        # The fault did quote the key on the wire: the redaction is what kept it out.
        assert any(KEY in str(s.event) for s in emu.records.sent() if s.event.get("type") == "error")
    assert any("invalid_api_key" in e for e in errors), errors
    assert not any(KEY in e for e in errors), errors
    leaked = [line for line in lines if KEY in line]
    assert not leaked, leaked
    assert lines, "the capture saw no log lines at all"


async def test_a_malformed_connection_level_event_is_skipped_and_logged() -> None:
    with captured_logs("WARNING") as lines:
        async with session() as (emu, llm, conv):
            emu.queue_replies(
                Reply(text=TEXT, fault=Fault(kind="malformed_event", after_events=5)), Reply(text="Still here.")
            )
            await conv.say("Count for me")
            await conv.wait_turns_ended(1)
            assert conv.turns()[0].text == TEXT
            await conv.say("Still there?")
            await conv.wait_turns_ended(2)
            assert conv.turns()[1].text == "Still here."
            assert emu.connection_count == 1
            assert [f.kind for f in emu.records.faults] == ["malformed_event"]
            assert not conv.errors(), [e.error for e in conv.errors()]
    assert any("WARNING" in line and "malformed" in line for line in lines), lines


async def test_a_close_code_reaches_the_error() -> None:
    async with session(emulator={"tokens_per_second": 50}) as (emu, llm, conv):
        emu.queue_replies(Reply(text=TEXT, fault=Fault(kind="drop", after_events=8, close_code=1011)))
        await conv.say("Count for me")
        await conv.wait_turns_ended(1)
        await conv.wait_for(lambda: bool(conv.errors()), 2, "the error frame")
        spoken = conv.turns()[0].text
        assert spoken and TEXT.startswith(spoken) and spoken != TEXT
        errors = [e.error for e in conv.errors()]
        assert any("close code 1011" in e for e in errors), errors


# -- barge-in without response.cancel -------------------------------------------------------------


async def test_without_send_cancel_no_cancel_is_ever_sent_and_the_next_turn_is_answered() -> None:
    async with session(service={"send_cancel": False}, emulator={"tokens_per_second": 25}) as (emu, llm, conv):
        emu.queue_replies(
            Reply(text="Early " + LONG_TEXT, fault=Fault(kind="delay_created", seconds=0.5)),
            Reply(text="Middle " + LONG_TEXT),
            Reply(text="Fresh answer here."),
        )
        await conv.say("Tell me everything.")
        await emu.records.wait_for(lambda: len(emu.records.creates()) == 2)  # warm-up + this turn
        await conv.interrupt()
        await conv.say("Tell me more.")
        await conv.wait_for(lambda: "Middle word0 word1 word2 word3" in conv.text(), 5, "the second answer")
        await conv.interrupt()
        await conv.say("Something else, please.")
        await conv.wait_for(
            lambda: any(t.text == "Fresh answer here." and t.ended for t in conv.turns()), 5, "the fresh answer"
        )
        # The first response's delayed created has arrived by now: the moment a cancel would go out.
        first = emu.records.responses[1].id
        await emu.records.wait_for(
            lambda: any(
                s.event["type"] == "response.created" and s.event["response"]["id"] == first for s in emu.records.sent()
            )
        )
        await asyncio.sleep(0.2)
        assert cancel_frames(emu) == []
        assert "Early" not in conv.text()
        assert "word50" not in conv.text()
        assert conv.text_after_interruptions() == []
        assert not conv.errors(), [e.error for e in conv.errors()]


# -- shutdown -------------------------------------------------------------------------------------


def _our_pending_tasks() -> list[str]:
    current = asyncio.current_task()
    found = []
    for task in asyncio.all_tasks():
        if task.done() or task is current:
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        if code is None:
            continue
        filename = code.co_filename.replace("\\", "/")
        if "/pipecat_responses_ws/client/" in filename or filename.endswith(
            ("/pipecat_responses_ws/service.py", "/pipecat_responses_ws/stage.py")
        ):
            found.append(f"{code.co_qualname} ({task.get_name()})")
    return found


async def test_no_task_of_the_service_is_left_pending_after_a_barge_in_and_a_rotation() -> None:
    async with session(emulator={"tokens_per_second": 25}) as (emu, llm, conv):
        emu.queue_replies(
            Reply(text=LONG_TEXT),
            Reply(text="Never said.", fault=Fault(kind="connection_limit")),
            Reply(text="Fresh answer here."),
        )
        await conv.say("Tell me everything.")
        await conv.wait_text("word3")
        await conv.interrupt()
        await conv.say("Something else, please.")
        await conv.wait_for(
            lambda: any(t.text == "Fresh answer here." and t.ended for t in conv.turns()), 5, "the fresh answer"
        )
        assert emu.connection_count >= 2
        # The abandoned answer still streams on the spent connection, so it waits to be closed.
        assert llm.client.retired, "the spent connection should still be waiting to close"
    await asyncio.sleep(0.1)
    assert _our_pending_tasks() == []
