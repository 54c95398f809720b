"""The harness at the caller's ear: real voice pipelines in real time, and the measurer tested on toys
built to add known amounts (talking on after a barge-in, answering late)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipecat_responses_ws.harness.recording import write_events
from pipecat_responses_ws.harness.remeasure import remeasure
from pipecat_responses_ws.harness.runner import RunResult, resolve_factory, run_scenario
from pipecat_responses_ws.harness.scenario import Scenario, Turn
from pipecat_responses_ws.harness.speech import SILENCE_RMS, espeak_missing, spoken, synthesize, window_rms

from . import toys

pytestmark = pytest.mark.skipif(espeak_missing() is not None, reason=str(espeak_missing()))


@pytest.fixture(autouse=True)
def _no_long_collections() -> Iterator[None]:
    """The line plays in real time, so a loop stall is a gap in the bot's voice. Once in CI, late in the
    session, a 0.27 s gap split one overrun in two; a full collection over the heap of every earlier test is
    the likely cause. The heap so far is frozen, as a tuned voice server would do after start-up."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


MID_ANSWER = Scenario(1, 0, (Turn(1, "barge_in", phase="mid_text"),))


async def _play(factory, name: str, scenario: Scenario = MID_ANSWER, **kwargs) -> RunResult:
    return await run_scenario(factory, scenario, service_name=name, budget=45, **kwargs)


def _only_barge_in(result: RunResult):
    assert result.note == "", result.note
    assert len(result.heard) == 1, result.heard
    return result.heard[0]


async def test_a_barge_in_heard_on_a_voice_pipeline_is_measured_and_recorded(tmp_path: Path) -> None:
    recording = tmp_path / "run.wav"
    result = await _play(resolve_factory("ours"), "ours", audio=True, recording=recording)
    assert result.total_violations == 0, result.violations
    heard = _only_barge_in(result)
    # The bot was speaking when the caller began and stopped once Pipecat's VAD heard the caller.
    assert 0.05 < heard.overrun < 1.0
    assert heard.overlap == pytest.approx(heard.overrun, abs=0.05)
    assert heard.stale_audio == 0
    assert heard.voice_to_voice is not None and 0.3 < heard.voice_to_voice < 3.0
    assert heard.onset < heard.silent_at < heard.caller_end < heard.fresh_at  # type: ignore[operator]
    # The recording holds what the figures were made from: re-measured with another energy rule,
    # the onset and the overrun agree within 20 ms.
    onset, overrun = remeasure(recording, heard.onset)
    assert onset == pytest.approx(heard.onset, abs=0.02)
    assert overrun == pytest.approx(heard.overrun, abs=0.02)
    events = json.loads(write_events(tmp_path, [result]).read_text())
    (run,) = events["runs"]
    assert run["wav"] == "run.wav"
    assert run["barge_ins"][0]["caller_onset_s"] == pytest.approx(heard.onset, abs=1e-3)
    assert run["barge_ins"][0]["overrun_ms"] == pytest.approx(heard.overrun * 1000, abs=0.1)


async def test_the_audio_figures_show_what_toys_were_built_to_add() -> None:
    """Talking on after a barge-in shows as that much more overrun (at once) or stale audio (after a
    pause); answering late shows as that much more voice-to-voice latency. All four play at once."""
    prompt, on_at_once, on_after_pause, slow = await asyncio.gather(
        _play(resolve_factory("ours"), "ours", audio=True),
        _play(toys.factory(toys.KeepsTalking), "keeps-talking", audio=True),
        _play(toys.factory(toys.KeepsTalkingAfterAPause), "keeps-talking-after-a-pause", audio=True),
        _play(toys.factory(toys.SlowToAnswer), "slow", audio=True),
    )
    clip = await synthesize(spoken(toys.extra_sentence("1a")), words_per_minute=240)
    # Overrun runs through the pauses between words; stale audio counts only what is audible.
    extra, extra_audible = len(clip) / 16_000, float((window_rms(clip) > SILENCE_RMS).sum()) * 0.01
    base, at_once, after_pause, late = (_only_barge_in(r) for r in (prompt, on_at_once, on_after_pause, slow))
    assert base.stale_audio == 0 and late.stale_audio == 0
    # Stale text is stale audio: the frame-level harness sees the same toys leak.
    assert prompt.violations["leaked_text"] == 0
    assert on_at_once.violations["leaked_text"] > 0 and on_after_pause.violations["leaked_text"] > 0
    assert at_once.overrun - base.overrun == pytest.approx(extra, abs=0.15)
    assert after_pause.overrun == pytest.approx(base.overrun, abs=0.1)
    assert after_pause.stale_audio == pytest.approx(extra_audible, abs=0.1)
    assert base.voice_to_voice is not None and late.voice_to_voice is not None
    assert late.voice_to_voice - base.voice_to_voice == pytest.approx(toys.SLOW_BY, abs=0.15)
