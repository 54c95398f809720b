"""Incremental share and uploaded bytes over one long conversation with parallel tools and barge-ins.

A 50-turn harness scenario (a fixed mix of text turns, single, parallel and chained tool calls,
and barge-ins cycling through every phase) is played against each service side by side, on the emulator with ``cancel``
ignored. A request is *incremental* when it names a ``previous_response_id`` and does not carry
the conversation's first user message again; every generated request after the first could be.
The same run is checked by the harness's invariants, so a service cannot buy bytes with a lost
turn.

    .venv/bin/python bench/incremental.py [--turns 50]
"""

from __future__ import annotations

import argparse
import asyncio

from loguru import logger

from pipecat_responses_ws.harness.runner import resolve_factory, run_scenario
from pipecat_responses_ws.harness.scenario import PHASES, Scenario, Turn

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
    args = parser.parse_args()
    logger.remove()
    scenario = conversation(args.turns)
    kinds = [t.kind for t in scenario.turns]
    print(
        f"{len(kinds)} user turns: "
        + ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds))
        + f"; cancel {args.cancel_policy}"
    )
    header = ("service", "requests", "incremental", "share", "bytes", "bytes/turn", "violations")
    print("{:<8} {:>8} {:>11} {:>7} {:>9} {:>10} {:>10}".format(*header))
    shares: dict[str, tuple[float, float]] = {}
    for name in args.services.split(","):
        result = await run_scenario(
            resolve_factory(name), scenario, cancel_policy=args.cancel_policy, service_name=name, budget=600
        )
        share = result.incremental / result.eligible if result.eligible else 0.0
        per_turn = result.bytes_uploaded / result.user_turns
        shares[name] = (share, per_turn)
        print(
            f"{name:<8} {result.eligible + 1:>8} {result.incremental:>11} {share:>7.1%} {result.bytes_uploaded:>9} "
            f"{per_turn:>10.0f} {result.total_violations:>10}",
            flush=True,
        )
        if result.total_violations:
            print(f"         violations: { {k: v for k, v in result.violations.items() if v} }")
    if "ours" in shares and "pipecat" in shares:
        print(f"bytes per turn, ours / pipecat: {shares['ours'][1] / shares['pipecat'][1]:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
