"""Text paced into frames: fewer frames at a model's pace, every sentence's end at once, nothing lost."""

from __future__ import annotations

import pytest
from pipecat.frames.frames import FunctionCallInProgressFrame, LLMFullResponseEndFrame, LLMTextFrame

from pipecat_responses_ws.client.pacing import CLAUSE_END
from pipecat_responses_ws.emulator import Fault, Reply, ToolCall
from pipecat_responses_ws.emulator.builders import text_chunks

from .conftest import http_session, session, weather_tools
from .test_coalescing import _runs_of_deltas, _texts
from .test_tools import _registering

TEXT_AND_END = LLMTextFrame | LLMFullResponseEndFrame
# Two words per 40 ms interval: a fast model, as a voice bot streams it.
MODEL_PACE = {"ttft": 0.02, "tokens_per_second": 50.0}
ANSWER = (
    "You said: the weather was fine and the trains ran late all week. That is a fine thing to talk "
    "about; I could go on. Let me know what else you need!\nThanks for calling."
)


def _check_paced(frames: list[str], deltas: list[str]) -> None:
    """Every frame is a run of whole deltas, the first alone, and a delta ending a clause ends its frame."""
    runs = _runs_of_deltas(frames, deltas)
    assert runs[0] == 1
    position = 0
    for run in runs:
        inside = deltas[position : position + run - 1]  # every delta of the frame but its last
        assert not any(CLAUSE_END.search(delta) for delta in inside), f"a clause's end waited in {inside}"
        position += run


@pytest.mark.parametrize("transport", ["websocket", "http"])
async def test_text_at_a_models_pace_goes_out_in_fewer_frames_with_every_clause_end_at_once(transport: str) -> None:
    opened = session if transport == "websocket" else http_session
    async with opened(emulator=MODEL_PACE) as (emu, llm, conv):
        emu.queue_replies(Reply(text=ANSWER))
        await conv.say("go")
        await conv.wait_turns_ended(1, timeout=20)
        deltas, frames = list(text_chunks(ANSWER)), _texts(conv)
        assert conv.text() == ANSWER
        _check_paced(frames, deltas)
        # One frame per 40 ms at most, but for clause ends: about half as many frames as deltas.
        assert len(frames) <= 0.8 * len(deltas)
        assert (llm.stats.text_deltas_received, llm.stats.text_frames_pushed) == (len(deltas), len(frames))
        # The last words went before the response's end.
        kinds = [
            type(s.frame) for s in conv.downstream.seen if isinstance(s.frame, LLMTextFrame | LLMFullResponseEndFrame)
        ]
        assert kinds[-1] is LLMFullResponseEndFrame and kinds.count(LLMFullResponseEndFrame) == 1


async def test_without_pacing_nearly_every_delta_at_a_models_pace_is_a_frame() -> None:
    async with session(emulator=MODEL_PACE, service={"text_pacing": None}) as (emu, llm, conv):
        emu.queue_replies(Reply(text=ANSWER))
        await conv.say("go")
        await conv.wait_turns_ended(1, timeout=20)
        deltas, frames = list(text_chunks(ANSWER)), _texts(conv)
        runs = _runs_of_deltas(frames, deltas)
        assert runs[0] == 1
        # Nothing is held for a pace: deltas are joined only when the next had already arrived, which
        # on a loaded machine happens now and then (a delta every 20 ms), never for most of them as
        # pacing does (at most 0.8 of the deltas as frames, above).
        assert len(frames) > 0.8 * len(deltas)


async def test_words_waiting_for_their_pace_go_before_a_tool_call() -> None:
    log: list = []
    first, second = "Let me look that up for you right now and be back " * 2, "It is clear in Oslo, all day long. "
    async with session(emulator=MODEL_PACE, tools=weather_tools(), setup=_registering(log)) as (emu, llm, conv):
        emu.queue_replies(Reply(text=first, calls=[ToolCall("get_weather", {"city": "Oslo"})]), Reply(text=second))
        await conv.say("What's the weather in Oslo?")
        await conv.wait_text(second)
        await conv.wait_turns_ended(1)
        seen = [s for s in conv.downstream.seen if isinstance(s.frame, LLMTextFrame | FunctionCallInProgressFrame)]
        call_at = next(n for n, s in enumerate(seen) if isinstance(s.frame, FunctionCallInProgressFrame))
        before = "".join(s.frame.text for s in seen[:call_at])
        after = "".join(s.frame.text for s in seen[call_at + 1 :])
        assert (before, after) == (first, second)
        _check_paced([s.frame.text for s in seen[:call_at]], list(text_chunks(first)))
        assert len(log) == 1


def test_a_negative_pace_is_refused() -> None:
    from pipecat_responses_ws import ResponsesWSLLMService

    with pytest.raises(ValueError, match="text_pacing"):
        ResponsesWSLLMService(api_key="k", ws_url="ws://127.0.0.1:1/v1/responses", text_pacing=-1.0)


async def test_words_waiting_for_their_pace_go_on_their_own_when_the_model_pauses() -> None:
    # Words that wait go with the next words once the interval is up; when the model pauses
    # instead, they go on their own one interval later, not with whatever ends the pause.
    answer = "One two three four five six seven."
    deltas = list(text_chunks(answer))
    pause = Fault(kind="stall", after_events=6, seconds=1.5)  # right after the second delta
    async with session(emulator=MODEL_PACE, service={"text_pacing": 0.3}) as (emu, llm, conv):
        emu.queue_replies(Reply(text=answer, fault=pause))
        await conv.say("go")
        await conv.wait_turns_ended(1, timeout=20)
        frames = _texts(conv)
        assert "".join(frames) == answer
        # The first delta went alone and the second, 20 ms later, waited for its pace (0.3 s): the
        # pause ended 1.5 s later, and the second had gone on its own before the third came.
        assert _runs_of_deltas(frames, deltas)[:2] == [1, 1], frames
