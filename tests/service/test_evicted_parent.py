"""A continuation the server refuses with an error, and the turns after it.

The Open Responses specification has the server evict a continuation's parent from its
connection cache when it refuses the continuation with an error; PROTOCOL.md §5 limits that to a
same-lane continuation. The refusal here is the API's for a tool result answering no call: the
app put a stray tool message in the context, then takes it out again and the user goes on.
"""

from __future__ import annotations

from typing import Any

import pytest
from pipecat.frames.frames import LLMMessagesAppendFrame, LLMMessagesUpdateFrame

from pipecat_responses_ws.emulator import Emulator, Reply
from pipecat_responses_ws.harness.pipeline import Conversation
from pipecat_responses_ws.protocol import wire

from .conftest import session

# A tool result the app put in the context for a call the model never made.
ORPHAN = {"role": "tool", "tool_call_id": "call_nobody_made", "content": "Sunny."}


def _generated(emu: Emulator) -> list[dict[str, Any]]:
    return [c for c in emu.records.creates() if c.get("generate", True) is not False]


def _error_codes(emu: Emulator) -> list[str]:
    return [s.event["error"]["code"] for s in emu.records.sent() if s.event["type"] == wire.ERROR]


async def _refused_then_resumed(emu: Emulator, conv: Conversation) -> str:
    """Turn 1, the refused continuation, then the next turn once the stray result is gone; turn 1's id."""
    emu.queue_replies(Reply(text="Hello there."), Reply(text="Still here."))
    await conv.say("Hi")
    await conv.wait_turns_ended(1)
    parent = next(r.id for r in emu.records.responses if r.generate)
    await conv.worker.queue_frame(LLMMessagesAppendFrame([ORPHAN], run_llm=True))
    await conv.wait_for(lambda: bool(conv.errors()), timeout=3, what="the refusal")
    assert "call_nobody_made" in conv.errors()[0].error and not conv.errors()[0].fatal
    kept = [m for m in conv.messages() if m.get("role") != "tool"]
    await conv.worker.queue_frame(
        LLMMessagesUpdateFrame([*kept, {"role": "user", "content": "Are you there?"}], run_llm=True)
    )
    await conv.wait_text("Still here.")
    assert conv.text().count("Still here.") == 1 and len(conv.errors()) == 1
    return parent


async def test_with_lanes_the_refused_fork_keeps_its_parent_and_the_next_turn_continues_from_it() -> None:
    async with session() as (emu, llm, conv):
        parent = await _refused_then_resumed(emu, conv)
        # Each turn is on a lane of its own, so the refusal was of a fork from another lane.
        assert [c.get("previous_response_id") for c in _generated(emu)][1:] == [parent, parent]
        assert _error_codes(emu) == [wire.INVALID_REQUEST]
        assert llm.stats.full_context_fallbacks == 0


@pytest.mark.xfail(
    strict=True,
    reason="without lanes the client takes an error naming no stream_id as connection-level unless its code is "
    "in protocol/lanes.py REQUEST_SCOPED_ERRORS, so a create refused with invalid_request waits for its "
    "first-event timeout instead of ending",
)
@pytest.mark.slow
async def test_without_lanes_the_evicted_parent_is_found_missing_and_the_turn_falls_back_to_the_full_context() -> None:
    async with session(emulator={"multiplexing": "none"}, service={"first_event_timeout": 2.0}) as (emu, llm, conv):
        parent = await _refused_then_resumed(emu, conv)
        assert [c.get("previous_response_id") for c in _generated(emu)][1:] == [parent, parent, None]
        assert _error_codes(emu) == [wire.INVALID_REQUEST, wire.PREVIOUS_RESPONSE_NOT_FOUND]
        assert llm.stats.full_context_fallbacks == 1
        user_texts = [m["content"] for m in _generated(emu)[-1]["input"] if m.get("role") == "user"]
        assert user_texts == ["Hi", "Are you there?"]
