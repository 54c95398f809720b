"""Reasoning: summaries become thought frames, encrypted reasoning is carried to later turns."""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.frames.frames import LLMTextFrame, LLMThoughtEndFrame, LLMThoughtStartFrame, LLMThoughtTextFrame
from pipecat.processors.aggregators.llm_context import LLMSpecificMessage

from pipecat_responses_ws import ResponsesWSLLMService
from pipecat_responses_ws.emulator import Reply

from .conftest import session

SUMMARY = "Thinking about Oslo weather."
REASONING = {"reasoning": ResponsesWSLLMService.ReasoningConfig(effort="low", summary="auto")}


def _reasoning_in(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in items if item.get("type") == "reasoning"]


def _context_reasoning(conv: Any) -> list[dict[str, Any]]:
    return [
        m.message
        for m in conv.context.get_messages()
        if isinstance(m, LLMSpecificMessage) and isinstance(m.message, dict) and m.message.get("type") == "reasoning"
    ]


async def test_reasoning_summary_becomes_thought_frames_before_the_answer() -> None:
    async with session(settings=REASONING) as (emu, llm, conv):
        emu.queue_replies(Reply(reasoning=SUMMARY, text="Sunny."))
        await conv.say("What is the weather in Oslo?")
        await conv.wait_turns_ended(1)
        assert not conv.errors()
        seen = conv.downstream.seen
        kinds = [type(s.frame) for s in seen]
        start = kinds.index(LLMThoughtStartFrame)
        end = kinds.index(LLMThoughtEndFrame)
        first_text = kinds.index(LLMTextFrame)
        thoughts = [s.frame.text for s in seen[start:end] if isinstance(s.frame, LLMThoughtTextFrame)]
        assert start < end < first_text
        assert "".join(thoughts) == SUMMARY and len(thoughts) > 1
        assert kinds.count(LLMThoughtStartFrame) == kinds.count(LLMThoughtEndFrame) == 1
        assert conv.text() == "Sunny."
        create = emu.records.creates()[-1]
        assert create["reasoning"] == {"effort": "low", "summary": "auto"}
        assert create["include"] == ["reasoning.encrypted_content"]


async def test_encrypted_reasoning_is_kept_and_resent_with_the_full_context() -> None:
    async with session(settings=REASONING) as (emu, llm, conv):
        emu.queue_replies(
            Reply(reasoning=SUMMARY, text="Sunny."), Reply(text="Still sunny."), Reply(text="Rain later.")
        )
        await conv.say("What is the weather in Oslo?")
        await conv.wait_turns_ended(1)
        await conv.wait_for(lambda: any(m["role"] == "assistant" for m in conv.messages()), 2, "the context")
        kept = _context_reasoning(conv)
        assert len(kept) == 1 and kept[0]["encrypted_content"].startswith("enc_")
        assert kept[0]["summary"] == [{"type": "summary_text", "text": SUMMARY}]
        encrypted = kept[0]["encrypted_content"]

        # The next turn continues from the reasoning turn: only the new user message is sent.
        await conv.say("And tomorrow?")
        await conv.wait_turns_ended(2)
        creates = [c for c in emu.records.creates() if c.get("generate") is not False]
        assert creates[1].get("previous_response_id")
        assert [item.get("role") for item in creates[1]["input"]] == ["user"]
        assert llm.stats.incremental_turns == 1 and llm.stats.full_context_fallbacks == 0
        await conv.wait_for(lambda: sum(m["role"] == "assistant" for m in conv.messages()) == 2, 2, "the context")

        # A new connection holds nothing: the full context goes out, reasoning included.
        await emu.drop_all_connections()
        await asyncio.sleep(0.2)
        await conv.say("Thanks.")
        await conv.wait_turns_ended(3)
        assert not conv.errors()
        creates = [c for c in emu.records.creates() if c.get("generate") is not False]
        full = creates[-1]
        # At most it continues from the new connection's empty warm-up: the whole conversation is sent.
        assert full["input"][0] == {"role": "user", "content": "What is the weather in Oslo?"}
        assert len(full["input"]) == 6
        sent = _reasoning_in(full["input"])
        assert len(sent) == 1 and sent[0]["encrypted_content"] == encrypted
        assert sent[0]["id"] == kept[0]["id"] and sent[0]["id"].startswith("rs_")
        types = [item.get("type", "message") for item in full["input"]]
        assert types.index("reasoning") == 1  # after the question it answered, before the answer
        assert conv.text().endswith("Rain later.")
