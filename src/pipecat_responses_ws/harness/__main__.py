"""``python -m pipecat_responses_ws.harness``: seeded barge-in runs against one or more services.

Prints a table per service and cancel policy, then the distinct error messages the services
reported, so a misconfigured service shows its cause without ``--verbose``. ``--jobs N`` plays the
runs in N processes, ``--shard K/N`` plays one slice of them (for a CI matrix), and ``--merge``
reports the shards' JSON files as one campaign (:mod:`.campaign`).
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from .. import interrupt
from ..arguments import USAGE_ERROR, OneLineParser, output_file, positive_int, seconds
from ..emulator.options import choices_of
from ..emulator.settings import Settings
from ..log import only_critical
from .campaign import Campaign, Shard, execute, merge
from .eager import MODES as EAGER_MODES
from .recording import write_events
from .report import error_list, plot_missing, read_json, summarise, table, write_json, write_plot
from .result import RunResult
from .runner import resolve_factory
from .scenario_run import REPLY_GAP
from .speech import espeak_missing
from .workers import run_in_workers


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="pipecat-responses-ws harness", description=__doc__)
    p.add_argument(
        "--service", action="append", help="ours | ours-http | pipecat | pipecat-http | module:factory (repeatable)"
    )
    p.add_argument("--runs", type=positive_int, default=20, metavar="N", help="scenarios (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--cancel-policy",
        action="append",
        choices=choices_of(Settings, "cancel_policy"),
        help="how the emulator treats response.cancel (repeatable; default ignore)",
    )
    p.add_argument("--faults", choices=["none", "some"], default="none")
    p.add_argument(
        "--multiplexing",
        choices=choices_of(Settings, "multiplexing"),
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
        type=seconds,
        default=REPLY_GAP,
        metavar="SECONDS",
        help="from a barge-in to the user's next turn; 0 makes the next turn race the interruption "
        f"through the pipeline, which no voice pipeline does (default: {REPLY_GAP:g})",
    )
    p.add_argument(
        "--jobs",
        type=_positive_jobs,
        default=1,
        metavar="N",
        help="play the runs in N worker processes, the same seed's runs of every service side by side; "
        "the report is the one a single process writes (default: %(default)s, in this process)",
    )
    p.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="only the K-th of N slices of the campaign (every N-th scenario, K from 1), to split it across "
        "machines; the JSON records the shard, and --merge puts the shards' files together",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="run nothing: the report of the --json files of every shard of one campaign, as if one "
        "command had run it (--json and --plot write the merged files)",
    )
    p.add_argument(
        "--handshake-delay",
        type=seconds,
        default=0.0,
        metavar="SECONDS",
        help="the emulator's delay before answering each WebSocket upgrade and each new HTTP connection, "
        "a stand-in for the TCP and TLS round trips of a real endpoint (default: %(default)g)",
    )
    p.add_argument(
        "--audio",
        action="store_true",
        help="play every run on a voice pipeline in real time (a caller speaking through Silero VAD, "
        "espeak-ng for both voices, a phone line at real-time pace) and measure each barge-in at the "
        "caller's ear: overrun, stale audio, voice-to-voice latency, overlap; needs espeak-ng",
    )
    p.add_argument(
        "--record",
        metavar="DIR",
        help="with --audio: one stereo 16 kHz WAV per run in DIR (left the caller, right the bot as the caller "
        "heard it) and DIR/events.json with each barge-in's times in the WAV and its figures",
    )
    p.add_argument(
        "--eager",
        action="append",
        choices=EAGER_MODES,
        help="play turns answered ahead of their commit, kept or withdrawn as the caller resumes, in each mode "
        "given (repeatable): off (the speech timeout alone), vad (speculative() at the VAD's stop), stt (a "
        "scripted Flux-style eager STT); tables commit → first text, voice-to-voice with --audio, withdrawn tokens",
    )
    p.add_argument("--json", type=output_file, metavar="PATH", help="write the campaign, summary and every run here")
    p.add_argument("--plot", type=output_file, metavar="PATH", help="draw the latency CDFs here (needs matplotlib)")
    p.add_argument("--verbose", action="store_true", help="keep the services' and emulator's logs")
    return p


# Where a factory is pointed while it is checked: the service is built there, never started.
CHECK_URL = "ws://127.0.0.1:9/v1/responses"


def check_factory(name: str) -> None:
    """``ValueError`` saying why ``--service name`` cannot give the harness an LLM service.

    The factory is called once, so one that raises, returns something else or takes other arguments
    is refused before the campaign starts.
    """
    from pipecat.services.llm_service import LLMService

    try:
        factory = resolve_factory(name)
    except (ImportError, AttributeError) as e:
        raise ValueError(str(e)) from None
    usage = "a factory takes the emulator's ws_url and returns a Pipecat LLMService"
    if not callable(factory):
        raise ValueError(f"it is a {type(factory).__name__}, not callable; {usage}")
    try:
        service = factory(CHECK_URL)
    except Exception as e:
        raise ValueError(f"calling it raised {type(e).__name__}: {e}; {usage}") from None
    if not isinstance(service, LLMService):
        raise ValueError(f"it returned {type(service).__name__}, not a Pipecat LLMService; {usage}")


def _positive_jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of processes, 1 or more, not {text!r}")
    return value


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _campaign(args: argparse.Namespace) -> Campaign:
    return Campaign(
        seed=args.seed,
        runs=args.runs,
        services=tuple(args.service or ["ours"]),
        cancel_policies=tuple(args.cancel_policy or ["ignore"]),
        faults=args.faults == "some",
        multiplexing=args.multiplexing,
        rtvi=args.rtvi,
        reply_gap=args.reply_gap,
        handshake_delay=args.handshake_delay,
        shard=args.shard,
        audio=args.audio,
        record=None if args.record is None else str(Path(args.record).resolve()),
        eager=tuple(args.eager or ()),
    )


async def _run_all(campaign: Campaign, jobs: int, verbose: bool, results: list[RunResult]) -> int:
    """Every planned run, appended to ``results`` as it finishes (so an interrupted session can say how far it got)."""
    planned = campaign.plan()
    total = len(planned)
    where = [f"seed {campaign.seed}"]
    if campaign.shard is not None:
        where.append(f"shard {campaign.shard} of {campaign.runs} scenarios")
    if jobs > 1:
        where.append(f"{min(jobs, total)} processes")
    print(
        f"harness: {total} runs of {', '.join(campaign.services)} "
        f"(cancel policy {', '.join(campaign.cancel_policies)}, {', '.join(where)})",
        file=sys.stderr,
        flush=True,
    )

    def finished(result: RunResult) -> None:
        results.append(result)
        if result.total_violations:
            bad = {k: v for k, v in result.violations.items() if v}
            print(f"  {result.label} {result.scenario.describe()}: {bad} {result.note}", file=sys.stderr)
        if len(results) % 10 == 0 or len(results) == total:
            print(f"[{len(results)}/{total}] runs", file=sys.stderr, flush=True)

    if jobs == 1:
        for run in planned:
            # Each run starts with the garbage of the ones before it collected, so a full
            # collection does not land inside a run's milliseconds.
            gc.collect()
            finished(await execute(campaign, run))
    else:
        await run_in_workers(campaign, planned, jobs, verbose, finished)
    results.sort(key=lambda r: r.run)  # the plan's order, however the runs were spread
    return 0


def _merge(paths: list[str]) -> tuple[Campaign, list[RunResult]]:
    """The campaign the shards' files make together; ``ValueError`` saying why they make none."""
    campaign, results = merge([(path, *read_json(path)) for path in paths])
    print(f"harness: {len(results)} runs merged from {len(paths)} shards", file=sys.stderr)
    return campaign, results


def _report(args: argparse.Namespace, campaign: Campaign, results: list[RunResult]) -> int:
    summary = summarise(results)
    if results:
        print(table(summary))
    else:  # a shard of a campaign with fewer scenarios than shards
        print(
            f"harness: shard {campaign.shard} holds none of the campaign's {campaign.runs} scenarios", file=sys.stderr
        )
    if errors := error_list(summary):
        print(f"\n{errors}")
    if campaign.record is not None:
        print(f"recordings and their events: {write_events(Path(campaign.record), results)}", file=sys.stderr)
    if args.json:
        write_json(args.json, summary, results, campaign)
    if args.plot:
        why_not = write_plot(args.plot, results)
        if why_not:
            print(why_not, file=sys.stderr)
    return 1 if any(r.total_violations for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 when any invariant was violated, so CI can gate on it; 2 for unusable arguments."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.merge and (args.shard is not None or args.jobs != 1):
        parser.error("--merge runs nothing, so it takes no --shard or --jobs")
    if args.record and not args.audio:
        parser.error("--record writes the audio of --audio runs, so it needs --audio")
    if args.audio and not args.merge and (why_not := espeak_missing()):
        print(f"harness --audio: {why_not}", file=sys.stderr)
        return USAGE_ERROR
    if args.plot and (why_not := plot_missing()):
        print(why_not, file=sys.stderr)
        return USAGE_ERROR
    if args.merge:
        try:
            merged = _merge(args.merge)
        except ValueError as e:
            print(f"harness --merge: {e}", file=sys.stderr)
            return USAGE_ERROR
        return _report(args, *merged)
    for name in args.service or ["ours"]:
        try:  # a misspelt service or a broken factory fails now, with its reason, not mid-campaign
            check_factory(name)
        except ValueError as e:
            print(f"harness: --service {name!r} cannot be used: {e}", file=sys.stderr)
            return USAGE_ERROR
    if not args.verbose:
        only_critical()
    campaign = _campaign(args)
    results: list[RunResult] = []

    def goodbye() -> str:
        return f"harness: stopped (Ctrl-C) after {len(results)} runs; no table written"

    code = interrupt.run(_run_all(campaign, args.jobs, args.verbose, results), goodbye=goodbye)
    return code or _report(args, campaign, results)


if __name__ == "__main__":
    sys.exit(main())
