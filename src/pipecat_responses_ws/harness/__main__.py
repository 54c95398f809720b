"""``python -m pipecat_responses_ws.harness``: seeded barge-in runs against one or more services.

Prints a table per service and cancel policy, then the distinct error messages the services
reported, so a misconfigured service shows its cause without ``--verbose``.
"""

from __future__ import annotations

import argparse
import gc
import sys
from typing import Any

from .. import interrupt
from ..log import logger
from .report import error_list, plot_missing, summarise, table, write_json, write_plot
from .runner import REPLY_GAP, RunResult, resolve_factory, run_scenario
from .scenario import scenarios


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pipecat-responses-ws harness", description=__doc__)
    p.add_argument(
        "--service", action="append", help="ours | ours-http | pipecat | pipecat-http | module:factory (repeatable)"
    )
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--cancel-policy",
        action="append",
        choices=["error", "ignore", "honor"],
        help="how the emulator treats response.cancel (repeatable; default ignore)",
    )
    p.add_argument("--faults", choices=["none", "some"], default="none")
    p.add_argument(
        "--multiplexing",
        choices=["lanes", "none"],
        default="lanes",
        help="the emulator's lanes as OpenAI runs them, or none: one response at a time per connection, "
        "as Azure OpenAI runs it, with stream_id ignored (default: %(default)s)",
    )
    p.add_argument(
        "--rtvi",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="add Pipecat's RTVI observer, as PipelineWorker does by default; it costs every service the "
        "same few ms per turn, which hides the LLM stage's own figures (default: off)",
    )
    p.add_argument(
        "--reply-gap",
        type=float,
        default=REPLY_GAP,
        metavar="SECONDS",
        help="from a barge-in to the user's next turn; 0 makes the next turn race the interruption "
        f"through the pipeline, which no voice pipeline does (default: {REPLY_GAP:g})",
    )
    p.add_argument(
        "--handshake-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the emulator's delay before answering each WebSocket upgrade and each new HTTP connection, "
        "a stand-in for the TCP and TLS round trips of a real endpoint (default: %(default)g)",
    )
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--plot", metavar="PATH")
    p.add_argument("--verbose", action="store_true", help="keep the services' and emulator's logs")
    return p


async def _run_all(args: argparse.Namespace, results: list[RunResult]) -> int:
    """Every run, appended to ``results`` as it finishes (so an interrupted session can say how far it got)."""
    plan = scenarios(args.seed, args.runs, faults=args.faults == "some")
    services = args.service or ["ours"]
    policies = args.cancel_policy or ["ignore"]
    total, done = len(plan) * len(services) * len(policies), 0
    print(
        f"harness: {total} runs of {', '.join(services)} (cancel policy {', '.join(policies)}, seed {args.seed})",
        file=sys.stderr,
        flush=True,
    )
    # Only when asked for, so a caller's own emulator options are not replaced by none.
    extra: dict[str, Any] = (
        {"emulator_options": {"handshake_delay": args.handshake_delay}} if args.handshake_delay else {}
    )
    for name in services:
        factory = resolve_factory(name)
        for policy in policies:
            for scenario in plan:
                # Each run starts with the garbage of the ones before it collected, so a full
                # collection does not land inside a run's milliseconds.
                gc.collect()
                result = await run_scenario(
                    factory,
                    scenario,
                    cancel_policy=policy,
                    service_name=name,
                    rtvi=args.rtvi,
                    reply_gap=args.reply_gap,
                    multiplexing=args.multiplexing,
                    **extra,
                )
                results.append(result)
                done += 1
                if result.total_violations:
                    bad = {k: v for k, v in result.violations.items() if v}
                    print(f"  {result.label} {scenario.describe()}: {bad} {result.note}", file=sys.stderr)
                if done % 10 == 0 or done == total:
                    print(f"[{done}/{total}] runs", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 when any invariant was violated, so CI can gate on it."""
    args = _parser().parse_args(argv)
    if args.plot and (why_not := plot_missing()):
        print(why_not, file=sys.stderr)
        return 2
    for name in args.service or ["ours"]:
        try:  # a misspelt service fails now, with its reason, not after a traceback mid-campaign
            resolve_factory(name)
        except (ValueError, ImportError, AttributeError) as e:
            print(f"harness: --service {name!r} cannot be used: {e}", file=sys.stderr)
            return 2
    if not args.verbose:
        # Hundreds of runs of debug logs would bury the progress lines and the table.
        logger.remove()
        logger.add(sys.stderr, level="CRITICAL")
    results: list[RunResult] = []

    def goodbye() -> str:
        return f"harness: stopped (Ctrl-C) after {len(results)} runs; no table written"

    code = interrupt.run(_run_all(args, results), goodbye=goodbye)
    if code:
        return code
    summary = summarise(results)
    print(table(summary))
    if errors := error_list(summary):
        print(f"\n{errors}")
    if args.json:
        write_json(args.json, summary, results)
    if args.plot:
        why_not = write_plot(args.plot, results)
        if why_not:
            print(why_not, file=sys.stderr)
    return 1 if any(r.total_violations for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
