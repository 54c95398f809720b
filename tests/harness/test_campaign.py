"""A campaign's plan, its shards, merging them, and ``--jobs``: however its runs are split, it reports as one."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipecat_responses_ws.harness.__main__ import main
from pipecat_responses_ws.harness.campaign import Campaign, Shard, merge
from pipecat_responses_ws.harness.report import read_json, summarise, write_json
from pipecat_responses_ws.harness.result import RunResult

pytestmark = pytest.mark.slow

CAMPAIGN = Campaign(
    seed=5,
    runs=7,
    services=("ours", "pipecat"),
    cancel_policies=("error", "ignore"),
    faults=True,
    multiplexing="lanes",
    rtvi=False,
    reply_gap=0.2,
)


def _shard(k: int, n: int) -> Campaign:
    return replace(CAMPAIGN, shard=Shard(k, n))


def test_the_plan_puts_every_services_run_of_a_scenario_side_by_side() -> None:
    plan = CAMPAIGN.plan()
    assert [p.index for p in plan] == list(range(7 * 2 * 2))
    for at in range(0, len(plan), 2):  # ours, then pipecat, on the same scenario and policy
        ours, theirs = plan[at], plan[at + 1]
        assert (ours.service, theirs.service) == ("ours", "pipecat")
        assert (ours.scenario, ours.cancel_policy) == (theirs.scenario, theirs.cancel_policy)
    assert [p.scenario.index for p in plan[:4]] == [0, 0, 0, 0]


@pytest.mark.parametrize("count", [1, 2, 3, 7, 9])
def test_the_shards_split_the_plan_exactly_keeping_each_scenario_whole(count: int) -> None:
    whole = CAMPAIGN.plan()
    shards = [_shard(k, count).plan() for k in range(1, count + 1)]
    assert sorted((p for shard in shards for p in shard), key=lambda p: p.index) == whole
    for shard in shards:
        held = {p.scenario.index for p in shard}
        assert all(p in shard for p in whole if p.scenario.index in held)


def test_a_scenario_stays_in_its_shard_whatever_the_number_of_runs() -> None:
    small = {p.scenario for p in _shard(2, 3).plan()}
    large = {p.scenario for p in replace(_shard(2, 3), runs=30).plan()}
    assert small <= large


@pytest.mark.parametrize(
    ("text", "reason"),
    [("0/2", "K must be from 1 to 2"), ("3/2", "K must be from 1 to 2"), ("x", "is not K/N"), ("2", "is not K/N"),
     ("1/0", "at least one")],
)  # fmt: skip
def test_a_shard_that_is_not_one_is_refused_with_its_reason(
    text: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--shard", text])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "--shard" in err and reason in err, err
    assert Shard.parse("2/3") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"


def _results_of(campaign: Campaign) -> list[RunResult]:
    """Stand-ins for played runs: what merging needs is which runs they are."""
    return [
        RunResult(p.service, p.cancel_policy, p.scenario, {"leaked_text": p.index % 3}, [0.001 * p.index], run=p.index)
        for p in campaign.plan()
    ]


def test_merging_every_shard_gives_the_whole_campaign_in_plan_order() -> None:
    parts = [(f"s{k}", _shard(k, 3), _results_of(_shard(k, 3))) for k in (3, 1, 2)]
    campaign, results = merge(parts)
    assert campaign == CAMPAIGN
    assert results == _results_of(CAMPAIGN)
    assert summarise(results) == summarise(_results_of(CAMPAIGN))


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        ([_shard(1, 3), _shard(3, 3)], "shard 2/3 of the campaign is missing"),
        ([_shard(1, 2), _shard(1, 2), _shard(2, 2)], "shard 1/2 is given twice"),
        ([_shard(1, 2), _shard(2, 3)], "is shard 2/3 but"),
        ([_shard(1, 2), replace(_shard(2, 2), seed=6)], "different campaigns (they differ in seed)"),
        ([CAMPAIGN], "is a whole campaign, not a shard"),
    ],
)
def test_what_is_not_every_shard_of_one_campaign_is_not_merged(parts: list[Campaign], reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        merge([(f"f{n}.json", c, _results_of(c)) for n, c in enumerate(parts)])
    assert reason in str(refused.value)


def test_the_json_holds_every_run_whole(tmp_path: Path) -> None:
    results = _results_of(_shard(2, 2))
    write_json(tmp_path / "s.json", summarise(results), results, _shard(2, 2))
    assert read_json(tmp_path / "s.json") == (_shard(2, 2), results)
    (tmp_path / "old.json").write_text(json.dumps({"summary": {}, "runs": []}))
    with pytest.raises(ValueError, match="records no campaign"):
        read_json(tmp_path / "old.json")


async def _harness(*argv: str) -> tuple[int, dict[str, Any]]:
    """The command, outside this test's event loop (it runs its own); its exit status and JSON."""
    code = await asyncio.to_thread(main, [*argv, "--verbose"])  # --verbose: leave loguru's handlers alone
    out = Path(argv[argv.index("--json") + 1])
    return code, json.loads(await asyncio.to_thread(out.read_text))


def _played(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(r["run"], r["service"], r["cancel_policy"], json.dumps(r["scenario"])) for r in document["runs"]]


async def test_shards_played_apart_merge_into_the_campaign_and_say_which_shard_they_are(tmp_path: Path) -> None:
    campaign = ["--service", "ours", "--runs", "3", "--seed", "4"]
    parts = []
    for k in (1, 2, 3, 4):  # four slices of three scenarios: the last holds none
        path = str(tmp_path / f"shard{k}.json")
        code, document = await _harness(*campaign, "--shard", f"{k}/4", "--json", path)
        assert code == 0
        assert document["campaign"]["shard"] == f"{k}/4"
        assert [run[0] for run in _played(document)] == ([k - 1] if k < 4 else [])
        parts.append(path)
    merged = str(tmp_path / "merged.json")
    code, document = await _harness("--merge", *parts, "--json", merged)
    assert code == 0
    assert document["campaign"] == replace(CAMPAIGN, seed=4, runs=3, services=("ours",),
                                           cancel_policies=("ignore",), faults=False).to_dict()  # fmt: skip
    assert [run[0] for run in _played(document)] == [0, 1, 2]
    assert document["summary"]["ours/ignore"]["runs"] == 3


async def test_two_processes_play_the_runs_one_process_plays(tmp_path: Path) -> None:
    campaign = ["--service", "ours", "--service", "pipecat", "--runs", "2", "--seed", "9"]
    code_one, one = await _harness(*campaign, "--json", str(tmp_path / "one.json"))
    code_two, two = await _harness(*campaign, "--jobs", "2", "--json", str(tmp_path / "two.json"))
    assert _played(two) == _played(one) and len(_played(one)) == 4
    assert one["campaign"] == two["campaign"]
    assert list(one["summary"]) == list(two["summary"]) == ["ours/ignore", "pipecat/ignore"]
    ours_one, ours_two = one["summary"]["ours/ignore"], two["summary"]["ours/ignore"]
    assert ours_one["violations"] == ours_two["violations"]
    assert code_one == 0 and code_two == 0, (one["summary"], two["summary"])


def test_merge_runs_nothing_so_it_takes_no_shard(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--merge", "a.json", "--shard", "1/2"])
    assert stopped.value.code == 2 and "--merge runs nothing" in capsys.readouterr().err
    assert main(["--merge", "no-such-file.json"]) == 2
    assert "no-such-file.json" in capsys.readouterr().err
