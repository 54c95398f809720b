"""The harness says what went wrong: the distinct error messages of the runs, under the table and in the JSON."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import pytest

from pipecat_responses_ws.harness import RunResult, Scenario, Turn, campaign, resolve_factory, run_scenario
from pipecat_responses_ws.harness import __main__ as harness_cli
from pipecat_responses_ws.harness.report import ERROR_CHARS, error_list, summarise, write_json

RIGHT_KEY = "the-right-key-0123"  # the harness's services send "k"


def _one(*turns: Turn) -> Scenario:
    return Scenario(seed=0, index=0, turns=turns)


def _result(service: str, *errors: str) -> RunResult:
    return RunResult(service, "ignore", _one(Turn(1, "text")), {}, errors=list(errors))


@pytest.mark.slow
async def test_a_refused_key_is_what_the_run_reports() -> None:
    result = await run_scenario(
        resolve_factory("ours"),
        _one(Turn(1, "text")),
        service_name="ours",
        wait=0.5,
        emulator_options={"api_key": RIGHT_KEY},
    )
    assert result.errors, result
    assert all("401" in text for text in result.errors), result.errors
    assert result.violations["unanswered_turns"] == 1
    listed = error_list(summarise([result]))
    assert listed.startswith("ours/ignore: ") and "401" in listed, listed
    assert RIGHT_KEY not in listed


def test_messages_are_counted_most_frequent_first_and_cut_for_the_terminal(tmp_path: Path) -> None:
    long = "upstream gateway said: " + "x" * 300
    results = [_result("a", "rare"), _result("a", "often", "often"), _result("a", "often", long), _result("b")]
    summary = summarise(results)
    assert summary["a/ignore"]["errors"] == [
        {"message": "often", "count": 3},
        {"message": "rare", "count": 1},
        {"message": long, "count": 1},
    ]
    assert summary["b/ignore"]["errors"] == []
    lines = error_list(summary).splitlines()
    assert lines[0] == "a/ignore: 5 error frame(s), 3 distinct, most frequent first:"
    assert lines[1] == "  3×  often" and lines[2] == "  1×  rare"
    assert lines[3].endswith("…") and len(lines[3]) == len("  1×  ") + ERROR_CHARS
    assert len(lines) == 4  # nothing for the column without errors
    out = tmp_path / "out.json"
    write_json(out, summary, results)
    data = json.loads(out.read_text())
    assert data["summary"]["a/ignore"]["errors"][2]["message"] == long  # whole in the JSON
    assert [r["errors"] for r in data["runs"]] == [["rare"], ["often", "often"], ["often", long], []]


def test_a_clean_run_lists_nothing() -> None:
    assert error_list(summarise([_result("a"), _result("b")])) == ""


@pytest.mark.slow
async def test_the_command_prints_the_cause_under_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every run's emulator wants a key the service does not have: a misconfigured service.
    wrong_key = functools.partial(run_scenario, emulator_options={"api_key": RIGHT_KEY}, wait=0.3)
    monkeypatch.setattr(campaign, "run_scenario", wrong_key)
    out = tmp_path / "out.json"
    argv = ["--service", "ours", "--runs", "1", "--seed", "3", "--json", str(out), "--verbose"]
    code = await asyncio.to_thread(harness_cli.main, argv)
    printed = capsys.readouterr().out
    assert code == 1  # the unanswered turns are violations
    table, _, errors = printed.partition("\n\nours/ignore: ")
    assert "violations: unanswered_turns" in table
    assert "distinct, most frequent first:" in errors and "401" in errors, printed
    assert "401" in json.loads(out.read_text())["summary"]["ours/ignore"]["errors"][0]["message"]
