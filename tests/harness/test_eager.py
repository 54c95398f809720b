"""``harness --eager``: eager turns in every mode, at frame level and at the caller's ear."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pipecat_responses_ws.harness import Scenario, Turn, resolve_factory, run_scenario
from pipecat_responses_ws.harness.__main__ import main
from pipecat_responses_ws.harness.campaign import Campaign
from pipecat_responses_ws.harness.eager import TTFT, generate
from pipecat_responses_ws.harness.report import plot_missing, read_json, write_plot
from pipecat_responses_ws.harness.speech import espeak_missing

KEPT_AND_RESUMED = Scenario(1, 0, (Turn(1, "kept"), Turn(2, "resumed", phase="short_pause")))


def test_eager_scenarios_are_seeded_and_plan_every_mode_side_by_side() -> None:
    assert generate(3, 1) == generate(3, 1)
    assert {t.kind for i in range(10) for t in generate(3, i).turns} == {"kept", "resumed"}
    campaign = Campaign(
        seed=3,
        runs=2,
        services=("ours", "pipecat"),
        cancel_policies=("ignore",),
        faults=False,
        multiplexing="lanes",
        rtvi=False,
        reply_gap=0.2,
        eager=("off", "vad"),
    )
    plan = campaign.plan()
    assert [(p.eager, p.service) for p in plan[:4]] == [
        ("off", "ours"),
        ("off", "pipecat"),
        ("vad", "ours"),
        ("vad", "pipecat"),
    ]
    assert len({p.scenario for p in plan[:4]}) == 1  # the same turns for every mode and service
    assert Campaign.from_dict(campaign.to_dict()) == campaign


# Whole eager runs play in real time on a model as slow as a real endpoint (half a second to the
# first token, the speech timeout's wait on every turn): seconds each, so they are in the slow tier.
@pytest.mark.slow
@pytest.mark.parametrize("service", ["ours", "pipecat"])
async def test_speculation_answers_at_the_commit_and_never_answers_the_unfinished_turn(service: str) -> None:
    factory = resolve_factory(service)
    off = await run_scenario(factory, KEPT_AND_RESUMED, service_name=service, eager="off")
    vad = await run_scenario(factory, KEPT_AND_RESUMED, service_name=service, eager="vad")
    for result in (off, vad):
        assert result.total_violations == 0, (result.label, result.violations)
        assert result.eager is not None and len(result.eager.turns) == 2
    assert off.label == f"{service}/ignore/eager-off" and vad.label == f"{service}/ignore/eager-vad"
    assert off.eager is not None and vad.eager is not None
    # Without speculation the model is asked at the commit and its first token is TTFT away; the
    # kept guess was asked at the VAD's stop and its answer is released at the commit.
    assert all((t.commit_to_first_text or 0) >= TTFT for t in off.eager.turns), off.eager.turns
    kept = vad.eager.turns[0]
    assert kept.commit_to_first_text is not None and kept.commit_to_first_text < TTFT
    # The resumed turn's first guess was generated and withdrawn: its tokens are counted, never heard.
    assert vad.eager.withdrawn_answers == 1 and vad.eager.withdrawn_tokens > 0
    assert off.eager.withdrawn_answers == 0 and vad.eager.answered_unfinished == 0


@pytest.mark.slow
async def test_the_scripted_eager_stt_predicts_withdraws_and_commits() -> None:
    result = await run_scenario(resolve_factory("ours"), KEPT_AND_RESUMED, service_name="ours", eager="stt")
    assert result.total_violations == 0, result.violations
    assert result.eager is not None
    kept, resumed = result.eager.turns
    assert kept.commit_to_first_text is not None and kept.commit_to_first_text < TTFT
    assert resumed.commit_to_first_text is not None and resumed.commit_to_first_text < TTFT
    assert result.eager.withdrawn_answers == 1 and result.eager.answered_unfinished == 0


@pytest.mark.slow
async def test_eager_figures_are_tabled_and_come_back_from_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eager.json"
    argv = ["--eager", "off", "--eager", "vad", "--runs", "1", "--seed", "2", "--json", str(out)]
    assert await asyncio.to_thread(main, argv) == 0
    printed = capsys.readouterr().out
    assert "ours/ignore/eager-off" in printed and "ours/ignore/eager-vad" in printed
    assert "tokens of withdrawn answers (per turn)" in printed and "barge-in penalty" not in printed
    campaign, results = read_json(out)
    assert campaign.eager == ("off", "vad")
    if plot_missing() is None:
        assert write_plot(tmp_path / "eager.png", results) is None
        assert (tmp_path / "eager.png").stat().st_size > 10_000
    document = json.loads(out.read_text())
    assert [r["eager"] for r in document["runs"]] == [r.eager.to_dict() for r in results if r.eager is not None]


def test_an_unknown_eager_mode_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--eager", "sometimes"])
    assert stopped.value.code == 2 and "--eager" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(espeak_missing() is not None, reason=str(espeak_missing()))
async def test_at_the_ear_speculation_answers_a_resumed_turn_sooner_and_only_once() -> None:
    scenario = Scenario(1, 0, (Turn(1, "resumed", phase="long_pause"),))
    factory = resolve_factory("ours")
    off = await run_scenario(factory, scenario, service_name="ours", eager="off", audio=True, budget=45)
    vad = await run_scenario(factory, scenario, service_name="ours", eager="vad", audio=True, budget=45)
    for result in (off, vad):
        assert result.total_violations == 0, (result.label, result.violations)
    assert off.eager is not None and vad.eager is not None
    (without,), (with_guess,) = off.eager.turns, vad.eager.turns
    assert without.voice_to_voice is not None and with_guess.voice_to_voice is not None
    # The guess at the VAD's stop saves the speech timeout's wait, less nothing: the model's first
    # token (0.5 s) is no longer heard. Ordering only; the harness reports the milliseconds.
    assert with_guess.voice_to_voice < without.voice_to_voice
    assert vad.eager.withdrawn_answers == 1 and vad.eager.answered_unfinished == 0
