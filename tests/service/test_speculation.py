"""Speculation for every speech-to-text, in a real pipeline against the emulator.

The caller is VAD frames and a scripted transcript, as a VAD and an STT hand them to the user
aggregator; Pipecat's speech timeout ends the turn; :func:`speculative` answers at the VAD's stop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pipecat.audio.vad.vad_analyzer import VAD_START_SECS, VAD_STOP_SECS
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    LLMContextFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from pipecat_responses_ws import SpeculativeUserTurnStopStrategy, speculative
from pipecat_responses_ws.emulator import Emulator
from pipecat_responses_ws.harness.eager import SPEECH_TIMEOUT, TTFT, EagerRun, Words
from pipecat_responses_ws.harness.pipeline import Seen
from pipecat_responses_ws.harness.runner import resolve_factory

# Half a second to the first token, as the harness's --eager runs.
MODEL = {"ttft": TTFT, "tokens_per_second": 25.0, "cancel_policy": "ignore"}
# Pipecat's own service under the same strategy is a comparison, in the slow tier; ours is in both.
SERVICES = ["ours", pytest.param("pipecat", marks=pytest.mark.slow)]


def _guessing(
    *, min_pause: float = 0.0, max_per_turn: int = 2
) -> tuple[SpeculativeUserTurnStopStrategy, UserTurnStrategies]:
    inner = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=SPEECH_TIMEOUT)
    strategy = speculative(inner, min_pause=min_pause, max_per_turn=max_per_turn)
    return strategy, UserTurnStrategies(stop=[strategy])


def _generated(emu: Emulator) -> list[Any]:
    """Responses the server generated (a service may also send a warm-up that generates nothing)."""
    return [r for r in emu.records.responses if r.generate]


def _downstream(run: EagerRun) -> list[Seen]:
    """What the user aggregator sent towards the LLM."""
    return [s for s in run.conv.upstream.seen if s.direction == FrameDirection.DOWNSTREAM]


def _speculative_contexts(run: EagerRun) -> int:
    return sum(isinstance(s.frame, LLMContextFrame) and s.frame.speculation for s in _downstream(run))


def _withdrawals(run: EagerRun) -> int:
    return sum(isinstance(s.frame, EagerEndOfTurnCancelFrame) for s in _downstream(run))


def _unfinished_answer_reached_tts_or_context(run: EagerRun, said: Words) -> bool:
    marker = said.unfinished_answer
    assert marker is not None
    assistant = " ".join(str(m["content"]) for m in run.conv.messages() if m["role"] == "assistant")
    return marker in run.conv.text() or marker in assistant


@pytest.mark.parametrize("service", SERVICES)
async def test_a_finished_caller_commits_and_hears_the_answer_already_streaming(service: str) -> None:
    strategy, strategies = _guessing()
    async with Emulator(**MODEL) as emu:
        run = EagerRun(emu, resolve_factory(service)(emu.ws_url), "vad", turn_strategies=strategies)
        said = Words("u1a please answer briefly")
        async with run.conv:
            await run.speak_turn(said, 0.0)
            answer = await run.answered_whole(said, 1, 0)
            assert answer is not None, run.conv.text()
        commit = run.commits()[0]
        # Asked once, at the VAD's stop: the commit 0.6 s later asked nothing, and the answer it
        # released was already streaming, sooner than a request sent at the commit could answer.
        assert len(_generated(emu)) == 1
        assert _speculative_contexts(run) == 1 and _withdrawals(run) == 0
        assert (created := _generated(emu)[0].created_at) is not None and created < commit
        assert answer.first_text_at - commit < TTFT
        assert (strategy.stats.started, strategy.stats.kept, strategy.stats.withdrawn) == (1, 1, 0)
        messages = [(m["role"], m["content"]) for m in run.conv.messages()]
        assert messages == [("user", said.whole), ("assistant", answer.text.strip())], messages


# Nearly 3 s of a resumed turn in real time: in the slow tier. A withdrawn guess is in the quick tier
# through test_eager_end_of_turn (the service holds and drops it), the strategy's guess through the test above.
@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
async def test_a_caller_who_resumes_withdraws_the_guess_and_only_the_whole_turn_is_answered(service: str) -> None:
    strategy, strategies = _guessing()
    async with Emulator(**MODEL) as emu:
        run = EagerRun(emu, resolve_factory(service)(emu.ws_url), "vad", turn_strategies=strategies)
        said = Words("u1a please", "answer briefly")
        async with run.conv:
            await run.speak_turn(said, 0.3)
            answer = await run.answered_whole(said, 1, 0)
            assert answer is not None, run.conv.text()
        # The first words were guessed finished and the guess withdrawn when the caller spoke again;
        # the whole turn was guessed at the next stop and kept by the commit.
        assert _speculative_contexts(run) == 2 and _withdrawals(run) == 1
        assert len(_generated(emu)) == 2
        assert (strategy.stats.started, strategy.stats.kept, strategy.stats.resumed) == (2, 1, 1)
        assert not _unfinished_answer_reached_tts_or_context(run, said)
        assert [t.text.count("You said:") for t in run.conv.turns()] == [1]
        assert [m["content"] for m in run.conv.messages() if m["role"] == "user"] == [said.whole]
        # The withdrawn guess was generated all the same (the server ignores cancel): its tokens are the price.
        withdrawn = run.finish(None)
        assert withdrawn.withdrawn_answers == 1 and withdrawn.withdrawn_tokens > 0
        assert withdrawn.answered_unfinished == 0


# The strategy's two bounds each take a resumed turn in real time (seconds): in the slow tier.
@pytest.mark.slow
async def test_the_per_turn_bound_leaves_later_pauses_to_the_commit() -> None:
    strategy, strategies = _guessing(max_per_turn=1)
    async with Emulator(**MODEL) as emu:
        run = EagerRun(emu, resolve_factory("ours")(emu.ws_url), "vad", turn_strategies=strategies)
        said = Words("u1a please", "answer briefly")
        async with run.conv:
            await run.speak_turn(said, 0.3)
            assert await run.answered_whole(said, 1, 0) is not None, run.conv.text()
        # One guess, withdrawn (and withdrawn again at the commit, which sweeps up a guess whose
        # withdrawal overtook it); the second stop was left to the commit, which asked as usual.
        assert _speculative_contexts(run) == 1 and _withdrawals(run) == 2
        assert (strategy.stats.started, strategy.stats.skipped, strategy.stats.kept) == (1, 1, 0)
        assert len(_generated(emu)) == 2
        assert not _unfinished_answer_reached_tts_or_context(run, said)


@pytest.mark.slow
async def test_no_guess_on_a_pause_shorter_than_min_pause() -> None:
    # The VAD's stop comes 0.2 s into the pause; the caller resumes 0.1 s later, inside min_pause.
    strategy, strategies = _guessing(min_pause=0.25)
    async with Emulator(**MODEL) as emu:
        run = EagerRun(emu, resolve_factory("ours")(emu.ws_url), "vad", turn_strategies=strategies)
        said = Words("u1a please", "answer briefly")
        async with run.conv:
            await run.speak_turn(said, 0.3)
            assert await run.answered_whole(said, 1, 0) is not None, run.conv.text()
        # Only the whole turn's pause was long enough, and its guess was kept.
        assert _speculative_contexts(run) == 1 and _withdrawals(run) == 0
        assert (strategy.stats.started, strategy.stats.kept) == (1, 1)
        assert len(_generated(emu)) == 1


def test_bounds_must_make_sense() -> None:
    inner = SpeechTimeoutUserTurnStopStrategy()
    with pytest.raises(ValueError, match="min_pause"):
        speculative(inner, min_pause=-0.1)
    with pytest.raises(ValueError, match="max_per_turn"):
        speculative(inner, max_per_turn=-1)


# Seconds of real time, 1.5 of them watching that nothing is released: in the slow tier.
@pytest.mark.slow
async def test_a_guess_withdrawn_before_the_llm_began_it_is_not_released_by_the_commit() -> None:
    # An STT that finalizes one stretch of speech in two pieces: the first is guessed finished, the
    # second withdraws the guess at once. The withdrawal is broadcast, the guess's context frame is
    # queued, so the LLM sees the withdrawal first and holds the guess's answer when it arrives; the
    # bound leaves the commit to ask again, and the turn's end must not release the held answer.
    strategy, strategies = _guessing(max_per_turn=1)
    async with Emulator(**MODEL) as emu:
        run = EagerRun(emu, resolve_factory("ours")(emu.ws_url), "vad", turn_strategies=strategies)
        said = Words("u1a please", "answer briefly")
        async with run.conv:
            queue = run.conv.worker.queue_frame
            await queue(VADUserStartedSpeakingFrame(start_secs=VAD_START_SECS))
            await asyncio.sleep(0.3)
            await queue(VADUserStoppedSpeakingFrame(stop_secs=VAD_STOP_SECS))
            await queue(TranscriptionFrame(said.first, "caller", "now"))
            await queue(TranscriptionFrame(said.rest or "", "caller", "now", finalized=True))
            assert await run.answered_whole(said, 1, 0) is not None, run.conv.text()
            await asyncio.sleep(1.5)  # the held answer would be released at the commit, long before this
        assert (strategy.stats.started, strategy.stats.changed) == (1, 1)
        assert not _unfinished_answer_reached_tts_or_context(run, said), run.conv.text()
        assert [t.text.count("You said:") for t in run.conv.turns()] == [1]
