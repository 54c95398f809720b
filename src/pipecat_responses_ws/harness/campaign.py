"""A campaign: the runs one harness command plays, in which order, which slice of them, and merging slices.

Every run of a campaign has an index: its place in :meth:`Campaign.plan`. The plan goes scenario
by scenario and, within a scenario, cancel policy by policy and service by service, so the same
seed's runs of every service are neighbours: in one process they follow each other, in several
(``--jobs``) they run at the same time, and either way both services see the same machine.
Results are put back in index order, so how the runs were spread never shows in the report.

``--shard K/N`` keeps the runs of every N-th scenario (K is 1-based). A scenario's runs stay
together, so the side-by-side comparison holds on each machine, and a scenario's shard does not
depend on ``--runs``. :func:`merge` puts the shards' results back into one campaign.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .eager import scenarios as eager_scenarios
from .recording import recording_name
from .result import RunResult
from .runner import resolve_factory, run_scenario
from .scenario import Scenario, scenarios

SHARD_FORM = "K/N, the K-th of N slices counting from 1 (1/4 is the first of four)"


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"``; ``ValueError`` saying what is wrong with anything else."""
        k, slash, n = text.partition("/")
        if not slash or not k.strip().isdigit() or not n.strip().isdigit():
            raise ValueError(f"{text!r} is not {SHARD_FORM}")
        index, count = int(k), int(n)
        if count < 1:
            raise ValueError(f"{text!r}: there must be at least one slice")
        if not 1 <= index <= count:
            raise ValueError(f"{text!r}: K must be from 1 to {count}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, scenario: Scenario) -> bool:
        return scenario.index % self.count == self.index - 1


@dataclass(frozen=True)
class PlannedRun:
    """One scenario against one service under one cancel policy, and its place in the plan."""

    index: int
    service: str
    cancel_policy: str
    scenario: Scenario
    eager: str | None = None  # the --eager mode, if the campaign has them


@dataclass(frozen=True)
class Campaign:
    """What one ``harness`` command runs; recorded in its JSON so shards can be checked and merged."""

    seed: int
    runs: int  # scenarios, each run once per service and cancel policy
    services: tuple[str, ...]
    cancel_policies: tuple[str, ...]
    faults: bool
    multiplexing: str
    rtvi: bool
    reply_gap: float
    handshake_delay: float = 0.0  # the emulator's, per WebSocket upgrade and new HTTP connection
    shard: Shard | None = None
    audio: bool = False  # a voice pipeline in real time, measured at the caller's ear (:mod:`.voice`)
    record: str | None = None  # with audio: the directory each run's WAV is written to
    eager: tuple[str, ...] = ()  # --eager modes: eager scenarios (:mod:`.eager`), each played in every mode

    def plan(self) -> list[PlannedRun]:
        """This campaign's runs (only its shard's, if it has one), in index order."""
        out: list[PlannedRun] = []
        index = 0
        planned = (
            eager_scenarios(self.seed, self.runs) if self.eager else scenarios(self.seed, self.runs, faults=self.faults)
        )
        for scenario in planned:
            for policy in self.cancel_policies:
                for mode in self.eager or (None,):
                    for service in self.services:
                        if self.shard is None or self.shard.holds(scenario):
                            out.append(PlannedRun(index, service, policy, scenario, mode))
                        index += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "runs": self.runs,
            "services": list(self.services),
            "cancel_policies": list(self.cancel_policies),
            "faults": self.faults,
            "multiplexing": self.multiplexing,
            "rtvi": self.rtvi,
            "reply_gap_s": self.reply_gap,
            "handshake_delay_s": self.handshake_delay,
            "shard": None if self.shard is None else str(self.shard),
            "audio": self.audio,
            "record": self.record,
            "eager": list(self.eager),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Campaign:
        shard = data["shard"]
        return cls(
            seed=data["seed"],
            runs=data["runs"],
            services=tuple(data["services"]),
            cancel_policies=tuple(data["cancel_policies"]),
            faults=data["faults"],
            multiplexing=data["multiplexing"],
            rtvi=data["rtvi"],
            reply_gap=data["reply_gap_s"],
            handshake_delay=data.get("handshake_delay_s", 0.0),
            shard=None if shard is None else Shard.parse(shard),
            audio=data.get("audio", False),
            record=data.get("record"),
            eager=tuple(data.get("eager", ())),
        )


async def execute(campaign: Campaign, planned: PlannedRun) -> RunResult:
    """Play one planned run on a fresh service and emulator, in this process's event loop."""
    # Only when asked for, so a caller's own emulator options are not replaced by none.
    options: dict[str, Any] = (
        {"emulator_options": {"handshake_delay": campaign.handshake_delay}} if campaign.handshake_delay else {}
    )
    result = await run_scenario(
        resolve_factory(planned.service),
        planned.scenario,
        cancel_policy=planned.cancel_policy,
        service_name=planned.service,
        rtvi=campaign.rtvi,
        reply_gap=campaign.reply_gap,
        multiplexing=campaign.multiplexing,
        audio=campaign.audio,
        recording=None
        if campaign.record is None
        else Path(campaign.record) / recording_name(planned.index, planned.service, planned.cancel_policy),
        eager=planned.eager,
        **options,
    )
    result.run = planned.index
    return result


def merge(parts: list[tuple[str, Campaign, list[RunResult]]]) -> tuple[Campaign, list[RunResult]]:
    """The whole campaign from every one of its shards, given as ``(name, campaign, results)``.

    ``ValueError`` when the parts are not exactly the shards of one campaign: a report of part of
    a campaign would pass for the whole, and a shard given twice would count its runs twice.
    """
    shards: list[tuple[str, Campaign, Shard]] = []
    for name, campaign, _ in parts:
        if campaign.shard is None:
            raise ValueError(f"{name} is a whole campaign, not a shard of one")
        shards.append((name, campaign, campaign.shard))
    if not shards:
        raise ValueError("nothing to merge")
    first_name, first, first_shard = shards[0]
    whole = replace(first, shard=None)
    given: dict[int, str] = {}
    for name, campaign, shard in shards:
        if replace(campaign, shard=None) != whole:
            theirs = campaign.to_dict()
            differ = [k for k, v in whole.to_dict().items() if k != "shard" and theirs[k] != v]
            raise ValueError(f"{name} and {first_name} are different campaigns (they differ in {', '.join(differ)})")
        if shard.count != first_shard.count:
            raise ValueError(f"{name} is shard {shard} but {first_name} is shard {first_shard}")
        if shard.index in given:
            raise ValueError(f"shard {shard} is given twice ({given[shard.index]} and {name})")
        given[shard.index] = name
    missing = [f"{k}/{first_shard.count}" for k in range(1, first_shard.count + 1) if k not in given]
    if missing:
        raise ValueError(f"shard {', '.join(missing)} of the campaign is missing")
    results = sorted((r for _, _, shard_results in parts for r in shard_results), key=lambda r: r.run)
    return whole, results
