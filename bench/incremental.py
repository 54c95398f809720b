"""Incremental share and uploaded bytes over one long conversation with parallel tools and barge-ins.

A 50-turn harness scenario (a fixed mix of text turns, single, parallel and chained tool calls,
and barge-ins cycling through every phase) is played against each service side by side, on the emulator with ``cancel``
ignored. A request is *incremental* when it names a ``previous_response_id`` and does not carry
the conversation's first user message again; every generated request after the first could be.
The same run is checked by the harness's invariants, so a service cannot buy bytes with a lost
turn. The conversation is played ``--reps`` times per service, the services in turn: the counts
move a little from run to run, since where a barge-in lands depends on timing.

    .venv/bin/python bench/incremental.py [--turns 50] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio

from loguru import logger

from pipecat_responses_ws.harness.runner import resolve_factory, run_scenario
from pipecat_responses_ws.harness.scenario import PHASES, Scenario, Turn
from pipecat_responses_ws.measures import Spread, bytes_per_turn, incremental_share

# Per eight turns: two parallel tool calls, a chained call, a single call, three barge-ins, one text turn.
MIX = ("text", "parallel", "barge_in", "chain", "parallel", "barge_in", "tool", "barge_in")


def conversation(turns: int) -> Scenario:
    barge_ins = 0
    out = []
    for n in range(1, turns + 1):
        kind = MIX[(n - 1) % len(MIX)]
        phase = None
        if kind == "barge_in":
            phase, barge_ins = PHASES[barge_ins % len(PHASES)], barge_ins + 1
        out.append(Turn(n=n, kind=kind, phase=phase))
    return Scenario(seed=0, index=0, turns=tuple(out))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--services", default="ours,pipecat")
    parser.add_argument("--cancel-policy", default="ignore", choices=["error", "ignore", "honor"])
    parser.add_argument("--reps", type=int, default=3, help="conversations per service (default: %(default)s)")
    args = parser.parse_args()
    logger.remove()
    scenario = conversation(args.turns)
    kinds = [t.kind for t in scenario.turns]
    print(
        f"{len(kinds)} user turns: "
        + ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds))
        + f"; cancel {args.cancel_policy}; {args.reps} repetitions"
    )
    header = ("rep", "service", "requests", "incremental", "share", "bytes", "bytes/turn", "violations")
    print("{:>3} {:<8} {:>8} {:>11} {:>7} {:>9} {:>10} {:>10}".format(*header))
    services = args.services.split(",")
    shares: dict[str, list[float]] = {name: [] for name in services}
    per_turn: dict[str, list[float]] = {name: [] for name in services}
    violations: dict[str, int] = dict.fromkeys(services, 0)
    for rep in range(1, args.reps + 1):
        for name in services:
            result = await run_scenario(
                resolve_factory(name), scenario, cancel_policy=args.cancel_policy, service_name=name, budget=600
            )
            share = incremental_share(result.incremental, result.eligible) or 0.0
            sent = bytes_per_turn(result.bytes_uploaded, result.user_turns) or 0.0
            shares[name].append(share)
            per_turn[name].append(sent)
            violations[name] += result.total_violations
            print(
                f"{rep:>3} {name:<8} {result.eligible + 1:>8} {result.incremental:>11} {share:>7.1%} "
                f"{result.bytes_uploaded:>9} {sent:>10.0f} {result.total_violations:>10}",
                flush=True,
            )
            if result.total_violations:
                print(f"             violations: { {k: v for k, v in result.violations.items() if v} }")
    print(f"\nmedian (min–max) over {args.reps} repetitions; violations summed")
    print(f"{'service':<8} {'sent incrementally %':>22} {'bytes per user turn':>24} {'violations':>10}")
    for name in services:
        share_text = Spread.of(shares[name]).format(scale=100)
        print(f"{name:<8} {share_text:>22} {Spread.of(per_turn[name]).format(digits=0):>24} {violations[name]:>10}")
    if "ours" in per_turn and "pipecat" in per_turn:
        each = [a / b for a, b in zip(per_turn["ours"], per_turn["pipecat"], strict=True)]
        print(f"bytes per turn, ours / pipecat: {Spread.of(each).format(digits=2, unit='×')}")


if __name__ == "__main__":
    asyncio.run(main())
