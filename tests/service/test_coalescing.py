"""Coalescing text that has already arrived: fewer frames, the same bytes, the first words at once."""

from __future__ import annotations

from pipecat.frames.frames import FunctionCallInProgressFrame, LLMTextFrame

from pipecat_responses_ws.emulator import Reply, ToolCall
from pipecat_responses_ws.emulator.builders import text_chunks
from pipecat_responses_ws.protocol import wire

from .conftest import http_session, session, weather_tools
from .test_tools import _registering

# Words, spaces the aggregator must not see doubled or lost, accents, CJK, an emoji, a newline, a tab.
AWKWARD = "Ünïcode — ça va?  你好，世界! 🎉 Line\nbreak\tand tab. " * 20
# An unpaced emulator in the test's own event loop sends a whole answer without yielding, so the
# client finds it all waiting: the most coalescing can do.
UNPACED = {"ttft": 0.0, "tokens_per_second": 1e9}


def _texts(conv) -> list[str]:
    return [s.frame.text for s in conv.frames(LLMTextFrame)]


def _runs_of_deltas(frames: list[str], deltas: list[str]) -> list[int]:
    """How many consecutive deltas each frame joins; fails unless every frame is a run of whole deltas."""
    runs, position = [], 0
    for frame in frames:
        end = position
        while "".join(deltas[position:end]) != frame:
            end += 1
            assert end <= len(deltas), f"frame {frame!r} is not a run of whole deltas from {position}"
        runs.append(end - position)
        position = end
    assert position == len(deltas)
    return runs


async def test_text_already_received_goes_out_in_fewer_frames_byte_for_byte() -> None:
    async with session(emulator=UNPACED) as (emu, llm, conv):
        emu.queue_replies(Reply(text=AWKWARD))
        await conv.say("go")
        await conv.wait_turns_ended(1)
        deltas = list(text_chunks(AWKWARD))
        frames = _texts(conv)
        assert conv.text() == AWKWARD
        runs = _runs_of_deltas(frames, deltas)
        assert runs[0] == 1  # the first delta went out alone, though the rest had arrived too
        assert len(frames) < len(deltas) / 4
        assert (llm.stats.text_deltas_received, llm.stats.text_frames_pushed) == (len(deltas), len(frames))


async def test_switched_off_every_delta_is_a_frame() -> None:
    async with session(emulator=UNPACED, service={"coalesce_text": False, "text_pacing": None}) as (emu, llm, conv):
        emu.queue_replies(Reply(text=AWKWARD))
        await conv.say("go")
        await conv.wait_turns_ended(1)
        deltas = list(text_chunks(AWKWARD))
        assert _texts(conv) == deltas
        assert llm.stats.text_frames_pushed == llm.stats.text_deltas_received == len(deltas)


async def test_paced_text_is_pushed_as_it_arrives_and_the_first_delta_before_the_second_exists() -> None:
    text = "One two three four."
    async with session(emulator={"ttft": 0.05, "tokens_per_second": 5.0}) as (emu, llm, conv):
        emu.queue_replies(Reply(text=text))
        await conv.say("go")
        await conv.wait_turns_ended(1, timeout=10)
        deltas = list(text_chunks(text))
        assert _texts(conv) == deltas  # the loop kept up: nothing was waiting, so nothing was joined
        sent = [s.time for s in emu.records.sent() if s.event["type"] == wire.OUTPUT_TEXT_DELTA]
        pushed = [s.time for s in conv.frames(LLMTextFrame)]
        assert pushed[0] < sent[1]  # spoken before the server had even sent the second word
        assert all(p < s for p, s in zip(pushed, sent[1:], strict=False))


async def test_coalescing_stops_at_a_tool_call_and_at_the_end_of_each_response() -> None:
    log: list = []
    first, second = "Let me look that up for you right now. " * 5, "It is clear in Oslo, all day long. " * 5
    async with session(emulator=UNPACED, tools=weather_tools(), setup=_registering(log)) as (emu, llm, conv):
        emu.queue_replies(Reply(text=first, calls=[ToolCall("get_weather", {"city": "Oslo"})]), Reply(text=second))
        await conv.say("What's the weather in Oslo?")
        await conv.wait_text(second)
        await conv.wait_turns_ended(1)
        seen = [s for s in conv.downstream.seen if isinstance(s.frame, LLMTextFrame | FunctionCallInProgressFrame)]
        call_at = next(n for n, s in enumerate(seen) if isinstance(s.frame, FunctionCallInProgressFrame))
        before = "".join(s.frame.text for s in seen[:call_at])
        after = "".join(s.frame.text for s in seen[call_at + 1 :])
        assert (before, after) == (first, second)  # no frame spans the call or the two responses
        _runs_of_deltas([s.frame.text for s in seen[call_at + 1 :]], list(text_chunks(second)))
        assert len(log) == 1
        assert llm.stats.text_frames_pushed < llm.stats.text_deltas_received


async def test_over_http_every_delta_is_a_frame_and_counted() -> None:
    async with http_session(emulator=UNPACED, service={"text_pacing": None}) as (emu, llm, conv):
        emu.queue_replies(Reply(text=AWKWARD))
        await conv.say("go")
        await conv.wait_turns_ended(1)
        deltas = list(text_chunks(AWKWARD))
        assert _texts(conv) == deltas
        assert llm.stats.text_frames_pushed == llm.stats.text_deltas_received == len(deltas)
