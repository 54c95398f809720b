"""Sums many runs per service into a terminal table, a JSON file and (optionally) a plot; reads the JSON back.

The figures are :mod:`..measures`'s; the JSON holds every run whole, so shards' files can be
merged into the report one process would have written (``harness --merge``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..measures import Distribution, barge_in_penalties, bytes_per_turn, incremental_share
from .campaign import Campaign
from .eager import KINDS as EAGER_KINDS
from .ear import HeardBargeIn
from .invariants import INVARIANTS
from .result import EagerFigures, RunResult
from .scenario import PHASES, Scenario

PLOT_NEEDS = '--plot needs matplotlib: pip install "matplotlib>=3.8" (what the plot extra adds)'
ERROR_CHARS = 160  # an error message in the terminal is cut to this; the JSON keeps it whole
ERRORS_SHOWN = 10  # distinct messages listed per column


def _errors(runs: list[RunResult]) -> list[dict[str, Any]]:
    """Distinct ErrorFrame texts with how often each came, most frequent first (ties: first seen first)."""
    counted = Counter(text for r in runs for text in r.errors)
    return [{"message": text, "count": count} for text, count in counted.most_common()]


def _distribution_ms(seconds: list[float]) -> dict[str, float | None]:
    figures = Distribution.of([v * 1000 for v in seconds])
    if figures is None:
        return {"median": None, "p95": None, "max": None}
    return {"median": figures.median, "p95": figures.p95, "max": figures.max}


def summarise(results: Iterable[RunResult]) -> dict[str, dict[str, Any]]:
    """Per ``service/cancel_policy`` (``/none`` added for an emulator without lanes): runs, violations and figures."""
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.label, []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for key, runs in groups.items():
        after = [a for r in runs for a in r.after_barge_in]
        uninterrupted = [u for r in runs for u in r.uninterrupted]
        share = incremental_share(sum(r.incremental for r in runs), sum(r.eligible for r in runs))
        out[key] = {
            "runs": len(runs),
            "reply_gap_s": max(r.reply_gap for r in runs),
            "violations": {name: sum(r.violations.get(name, 0) for r in runs) for name in INVARIANTS},
            "after_barge_in_ms": _distribution_ms(after),
            "uninterrupted_ms": _distribution_ms(uninterrupted),
            "penalty_ms": _distribution_ms(barge_in_penalties(after, uninterrupted)),
            "tool_dispatch_ms": _distribution_ms([d for r in runs for d in r.tool_dispatch]),
            "incremental_pct": None if share is None else 100.0 * share,
            "bytes_per_turn": bytes_per_turn(sum(r.bytes_uploaded for r in runs), sum(r.user_turns for r in runs)),
            "reconnects": sum(r.reconnects for r in runs),
            "abandoned_tokens": sum(r.abandoned_tokens for r in runs),
            "failing_runs": [r.scenario.describe() for r in runs if r.total_violations][:20],
            "errors": _errors(runs),
        }
        if eager := _eager_summary(runs):
            out[key]["eager"] = eager
        heard = [b for r in runs for b in r.heard]
        if heard:  # --audio: each barge-in as the caller heard it
            out[key]["audio"] = {
                "barge_ins": len(heard),
                "overrun_ms": _distribution_ms([b.overrun for b in heard]),
                "stale_audio_ms": _distribution_ms([b.stale_audio for b in heard]),
                "stale_barge_ins": sum(b.stale_audio > 0 for b in heard),
                "voice_to_voice_ms": _distribution_ms(
                    [b.voice_to_voice for b in heard if b.voice_to_voice is not None]
                ),
                "no_next_answer_audio": sum(b.voice_to_voice is None for b in heard),
                "overlap_ms": _distribution_ms([b.overlap for b in heard]),
                # Stale text should be heard as stale audio: runs with each, side by side.
                "runs_with_stale_text": sum(r.violations.get("leaked_text", 0) > 0 for r in runs),
                "runs_with_stale_audio": sum(any(b.stale_audio > 0 for b in r.heard) for r in runs),
                "by_phase": {
                    phase: {
                        "barge_ins": len(mine),
                        "overrun_ms": _distribution_ms([b.overrun for b in mine]),
                        "voice_to_voice_ms": _distribution_ms([v for b in mine if (v := b.voice_to_voice) is not None]),
                    }
                    for phase in PHASES
                    if (mine := [b for b in heard if b.phase == phase])
                },
            }
    return out


def _eager_summary(runs: list[RunResult]) -> dict[str, Any] | None:
    """``--eager``: commit → first text and voice-to-voice after kept and after resumed turns, and the price."""
    figures = [r.eager for r in runs if r.eager is not None]
    if not figures:
        return None
    turns = [t for f in figures for t in f.turns]
    out: dict[str, Any] = {"turns": {kind: sum(t.kind == kind for t in turns) for kind in EAGER_KINDS}}
    for kind in EAGER_KINDS:
        mine = [t for t in turns if t.kind == kind]
        out[f"{kind}_commit_to_first_text_ms"] = _distribution_ms(
            [v for t in mine if (v := t.commit_to_first_text) is not None]
        )
        out[f"{kind}_voice_to_voice_ms"] = _distribution_ms([v for t in mine if (v := t.voice_to_voice) is not None])
    withdrawn_tokens = sum(f.withdrawn_tokens for f in figures)
    out.update(
        requests=sum(f.requests for f in figures),
        withdrawn_answers=sum(f.withdrawn_answers for f in figures),
        withdrawn_tokens=withdrawn_tokens,
        withdrawn_tokens_per_turn=withdrawn_tokens / len(turns) if turns else None,
        answered_unfinished=sum(f.answered_unfinished for f in figures),
    )
    return out


def _eager_rows(summary: dict[str, dict[str, Any]], keys: list[str]) -> list[tuple[str, list[str]]]:
    eager = [summary[k].get("eager") for k in keys]
    rows: list[tuple[str, list[str]]] = [
        (
            "eager: turns kept / resumed",
            [f"{e['turns']['kept']} / {e['turns']['resumed']}" if e else "-" for e in eager],
        )
    ]
    audio = any(e and e[f"{kind}_voice_to_voice_ms"]["median"] is not None for e in eager for kind in EAGER_KINDS)
    figures = [("commit_to_first_text_ms", "commit → first text")]
    if audio:
        figures.append(("voice_to_voice_ms", "voice-to-voice"))
    for figure, label in figures:
        for kind in EAGER_KINDS:
            rows.append(
                (
                    f"{label}, {kind} turn ms median / p95 / max",
                    [
                        " / ".join(_fmt(e[f"{kind}_{figure}"][stat], 0) for stat in ("median", "p95", "max"))
                        if e
                        else "-"
                        for e in eager
                    ],
                )
            )
    rows += [
        ("requests / withdrawn answers", [f"{e['requests']} / {e['withdrawn_answers']}" if e else "-" for e in eager]),
        (
            "tokens of withdrawn answers (per turn)",
            [f"{e['withdrawn_tokens']} ({_fmt(e['withdrawn_tokens_per_turn'])})" if e else "-" for e in eager],
        ),
        ("answers to an unfinished transcript heard", [str(e["answered_unfinished"]) if e else "-" for e in eager]),
    ]
    return rows


AUDIO_FIGURES = (
    ("overrun_ms", "overrun (caller onset → bot silent) ms"),
    ("stale_audio_ms", "stale audio after the overrun ms"),
    ("voice_to_voice_ms", "voice-to-voice after a barge-in ms"),
    ("overlap_ms", "overlap with the caller's speech ms"),
)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(summary: dict[str, dict[str, Any]]) -> str:
    """One column per service, one row per figure, so side-by-side comparison reads across."""
    keys = list(summary)
    audio = [summary[k].get("audio") for k in keys]
    rows: list[tuple[str, list[str]]] = [("runs", [str(summary[k]["runs"]) for k in keys])]
    # An --eager campaign has no barge-in and no tool: its own rows replace theirs.
    eager = all(summary[k].get("eager") for k in keys)
    if not any(audio) and not eager:  # on a voice pipeline the reply is the barge-in's own words, with no set gap
        rows.append(("user's reply after a barge-in s", [_fmt(summary[k]["reply_gap_s"], 2) for k in keys]))
    for name in INVARIANTS:
        rows.append((f"violations: {name}", [str(summary[k]["violations"][name]) for k in keys]))
    if any(summary[k].get("eager") for k in keys):
        rows += _eager_rows(summary, keys)
    # First text minus model time, after a barge-in and for a turn nobody interrupted; the penalty
    # is each barge-in's figure minus the uninterrupted median (measures.barge_in_penalty).
    figures = (
        ("after_barge_in_ms", "first text after a barge-in ms"),
        ("uninterrupted_ms", "first text, uninterrupted turn ms"),
        ("penalty_ms", "barge-in penalty ms"),
        ("tool_dispatch_ms", "tool dispatch ms"),
    )
    for figure, label in () if eager else figures:
        for stat in ("median", "p95", "max"):
            rows.append((f"{label} {stat}", [_fmt(summary[k][figure][stat]) for k in keys]))
    if any(audio):
        rows.append(("at the ear: barge-ins heard", [str(a["barge_ins"]) if a else "-" for a in audio]))
        for figure, label in AUDIO_FIGURES:
            for stat in ("median", "p95", "max"):
                rows.append((f"{label} {stat}", [_fmt(a[figure][stat]) if a else "-" for a in audio]))
        rows.append(("barge-ins with stale audio", [str(a["stale_barge_ins"]) if a else "-" for a in audio]))
        for phase in PHASES:
            rows.append(
                (
                    f"at {phase}: overrun / voice-to-voice median ms",
                    [_by_phase(a, phase) for a in audio],
                )
            )
        rows.append(
            (
                "runs with stale text / stale audio",
                [f"{a['runs_with_stale_text']} / {a['runs_with_stale_audio']}" if a else "-" for a in audio],
            )
        )
        rows.append(
            ("barge-ins with no next answer heard", [str(a["no_next_answer_audio"]) if a else "-" for a in audio])
        )
    rows += [
        ("incremental turns %", [_fmt(summary[k]["incremental_pct"]) for k in keys]),
        ("bytes uploaded / turn", [_fmt(summary[k]["bytes_per_turn"], 0) for k in keys]),
        ("reconnects", [str(summary[k]["reconnects"]) for k in keys]),
        ("abandoned tokens", [str(summary[k]["abandoned_tokens"]) for k in keys]),
    ]
    first = max(len(label) for label, _ in rows)
    widths = [max(len(k), *(len(cells[i]) for _, cells in rows)) for i, k in enumerate(keys)]
    lines = [" " * first + "  " + "  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True))]
    lines += [
        label.ljust(first) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
        for label, cells in rows
    ]
    return "\n".join(lines)


def _by_phase(audio: dict[str, Any] | None, phase: str) -> str:
    figures = (audio or {}).get("by_phase", {}).get(phase)
    if not figures:
        return "-"
    return f"{_fmt(figures['overrun_ms']['median'], 0)} / {_fmt(figures['voice_to_voice_ms']['median'], 0)}"


def _shorten(text: str, limit: int = ERROR_CHARS) -> str:
    text = " ".join(text.split())  # one line, whatever the server put in it
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_list(summary: dict[str, dict[str, Any]]) -> str:
    """The distinct error messages per column, for under the table; empty when no run saw one.

    A service that is misconfigured (a refused key, a wrong URL) fails every turn the same way, so
    its cause is the first line here rather than something to dig out of ``--verbose`` logs.
    """
    lines: list[str] = []
    for key, figures in summary.items():
        errors = figures.get("errors") or []
        if not errors:
            continue
        total = sum(e["count"] for e in errors)
        lines.append(f"{key}: {total} error frame(s), {len(errors)} distinct, most frequent first:")
        width = len(str(errors[0]["count"]))
        lines += [f"  {e['count']:>{width}}×  {_shorten(e['message'])}" for e in errors[:ERRORS_SHOWN]]
        if len(errors) > ERRORS_SHOWN:
            lines.append(f"  … and {len(errors) - ERRORS_SHOWN} more distinct messages (all of them in --json)")
    return "\n".join(lines)


def run_to_dict(r: RunResult) -> dict[str, Any]:
    """One run whole, times in ms: what :func:`run_from_dict` needs to sum it again."""
    return {
        "run": r.run,
        "service": r.service,
        "cancel_policy": r.cancel_policy,
        "multiplexing": r.multiplexing,
        "reply_gap_s": r.reply_gap,
        "scenario": r.scenario.to_dict(),
        "violations": r.violations,
        "after_barge_in_ms": [v * 1000 for v in r.after_barge_in],
        "uninterrupted_ms": [v * 1000 for v in r.uninterrupted],
        "tool_dispatch_ms": [v * 1000 for v in r.tool_dispatch],
        "incremental": r.incremental,
        "eligible": r.eligible,
        "bytes_uploaded": r.bytes_uploaded,
        "user_turns": r.user_turns,
        "reconnects": r.reconnects,
        "abandoned_tokens": r.abandoned_tokens,
        "errors": r.errors,
        "note": r.note,
        "heard": [b.to_dict() for b in r.heard],
        "recording": r.recording,
        "eager": None if r.eager is None else r.eager.to_dict(),
    }


def run_from_dict(data: dict[str, Any]) -> RunResult:
    return RunResult(
        data["service"],
        data["cancel_policy"],
        Scenario.from_dict(data["scenario"]),
        data["violations"],
        [v / 1000 for v in data["after_barge_in_ms"]],
        [v / 1000 for v in data["uninterrupted_ms"]],
        [v / 1000 for v in data["tool_dispatch_ms"]],
        incremental=data["incremental"],
        eligible=data["eligible"],
        bytes_uploaded=data["bytes_uploaded"],
        user_turns=data["user_turns"],
        reconnects=data["reconnects"],
        abandoned_tokens=data["abandoned_tokens"],
        reply_gap=data["reply_gap_s"],
        note=data["note"],
        multiplexing=data["multiplexing"],
        errors=data["errors"],
        run=data["run"],
        heard=[HeardBargeIn.from_dict(b) for b in data.get("heard", [])],
        recording=data.get("recording"),
        eager=None if data.get("eager") is None else EagerFigures.from_dict(data["eager"]),
    )


def write_json(
    path: str | Path, summary: dict[str, Any], results: list[RunResult], campaign: Campaign | None = None
) -> None:
    document = {
        "campaign": None if campaign is None else campaign.to_dict(),
        "summary": summary,
        "runs": [run_to_dict(r) for r in results],
    }
    Path(path).write_text(json.dumps(document, indent=2))


def read_json(path: str | Path) -> tuple[Campaign, list[RunResult]]:
    """A campaign's file from :func:`write_json`; ``ValueError`` saying why one cannot be used."""
    try:
        document = json.loads(Path(path).read_text())
        if document.get("campaign") is None:
            raise ValueError("it records no campaign (not written by harness --json, or by an older version)")
        return Campaign.from_dict(document["campaign"]), [run_from_dict(r) for r in document["runs"]]
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        reason = f"no {e} in it" if isinstance(e, KeyError) else str(e)
        raise ValueError(f"{path} is not a harness campaign's JSON: {reason}") from None


def plot_missing() -> str | None:
    """Why ``--plot`` cannot work here, if it cannot: checked before any run is spent."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return PLOT_NEEDS
    return None


def write_plot(path: str | Path, results: list[RunResult]) -> str | None:
    """Latency distributions per service as CDFs; returns why not, if matplotlib is missing.

    One panel each for the first text after a barge-in (with the same service's uninterrupted turns
    dashed, so the gap between the two lines is the barge-in penalty) and for tool dispatch. A log time
    axis keeps milliseconds and seconds readable on one chart. With ``--audio`` runs, a row above
    shows one barge-in as each service's caller heard it, and the CDFs are the ear's figures.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a server or in CI
        import matplotlib.pyplot as plt
    except ImportError:
        return f"{PLOT_NEEDS}; no plot written"
    keys = sorted({r.label for r in results})
    if any(r.eager for r in results):
        _eager_plot(plt, path, results, keys)
        return None
    audio = any(r.heard for r in results)
    if audio:
        columns = max(3, len(keys) + 1)
        fig, grid = plt.subplots(2, columns, figsize=(6 * columns, 9), squeeze=False)
        _timelines(list(grid[0][: len(keys)]), results, keys)
        _by_phase_bars(grid[0][len(keys)], results, keys)
        for ax in grid[0][len(keys) + 1 :]:
            ax.set_visible(False)
        cdf_axes = list(grid[1])
        panels: list[tuple[Any, str, str | None, str]] = [
            (cdf_axes[0], "overrun", None, "at the ear: overrun, caller's onset → bot silent"),
            (cdf_axes[1], "voice_to_voice", None, "at the ear: voice-to-voice after a barge-in"),
            (cdf_axes[2], "after_barge_in", "uninterrupted", "frames: first text after a barge-in, minus model time"),
        ]
        for ax in cdf_axes[3:]:
            ax.set_visible(False)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(13, 5))
        panels = [
            (axes[0], "after_barge_in", "uninterrupted", "first text after a barge-in, minus model time"),
            (axes[1], "tool_dispatch", None, "tool handler start after its output_item.done"),
        ]
    for ax, attr, dashed, title in panels:
        for n, key in enumerate(keys):
            color = f"C{n}"
            mine = [r for r in results if r.label == key]
            _cdf(ax, [v * 1000 for v in _values(mine, attr)], key, color, "-")
            if dashed:
                _cdf(ax, [v * 1000 for v in _values(mine, dashed)], f"{key}, uninterrupted turn", color, "--")
        if attr in ("overrun", "voice_to_voice"):  # hundreds of ms to seconds, zeros included: linear
            ax.set_xlabel("ms")
            ax.set_xlim(left=0)
        else:
            ax.set_xscale("log")
            ax.set_xlabel("ms (log scale)")
        ax.set_ylabel("share of cases at or below")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _eager_plot(plt: Any, path: str | Path, results: list[RunResult], keys: list[str]) -> None:
    """``--eager``: commit → first text (and voice-to-voice with ``--audio``) per mode and service as
    CDFs, kept turns solid and resumed turns dashed, and the tokens of withdrawn answers per turn."""
    figures = ["commit_to_first_text"]
    if any(t.voice_to_voice is not None for r in results if r.eager for t in r.eager.turns):
        figures.append("voice_to_voice")
    fig, axes = plt.subplots(1, len(figures) + 1, figsize=(6.5 * (len(figures) + 1), 5), squeeze=False)
    titles = {"commit_to_first_text": "commit → first text", "voice_to_voice": "at the ear: voice-to-voice"}
    for ax, figure in zip(axes[0], figures, strict=False):
        for n, key in enumerate(keys):
            turns = [t for r in results if r.label == key and r.eager for t in r.eager.turns]
            for kind, style in zip(EAGER_KINDS, ("-", "--"), strict=True):
                values = [v * 1000 for t in turns if t.kind == kind and (v := getattr(t, figure)) is not None]
                _cdf(ax, values, f"{key}, {kind}", f"C{n}", style)
        ax.set_xlabel("ms")
        ax.set_xlim(left=0)
        ax.set_ylabel("share of turns at or below")
        ax.set_title(f"{titles[figure]} (kept solid, resumed dashed)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small", loc="lower right")
    tokens = axes[0][len(figures)]
    per_turn = []
    for key in keys:
        mine = [r.eager for r in results if r.label == key and r.eager]
        count = sum(len(e.turns) for e in mine)
        per_turn.append(sum(e.withdrawn_tokens for e in mine) / count if count else 0.0)
    tokens.bar(range(len(keys)), per_turn, color=[f"C{n}" for n in range(len(keys))])
    tokens.set_xticks(range(len(keys)), keys, rotation=20, fontsize="small")
    tokens.set_ylabel("output tokens per turn")
    tokens.set_title("tokens generated for withdrawn answers")
    tokens.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _values(runs: list[RunResult], attr: str) -> list[float]:
    """A figure's cases over runs: a list on the run, or one value per barge-in heard."""
    if attr in ("overrun", "voice_to_voice", "stale_audio", "overlap"):
        return [v for r in runs for b in r.heard if (v := getattr(b, attr)) is not None]
    return [v for r in runs for v in getattr(r, attr)]


def _shown_barge_in(results: list[RunResult], keys: list[str]) -> tuple[int, int] | None:
    """The (scenario, turn) of a mid-answer barge-in every service heard, so the timelines compare alike."""
    heard: dict[str, set[tuple[int, int]]] = {k: set() for k in keys}
    for r in results:
        heard[r.label].update((r.scenario.index, b.turn) for b in r.heard if b.phase == "mid_text")
    common = set.intersection(*heard.values()) if heard else set()
    return min(common) if common else None


def _timelines(axes: list[Any], results: list[RunResult], keys: list[str]) -> None:
    """One barge-in per service: the caller's voice above the line, the bot's below, with the figures marked."""
    shown = _shown_barge_in(results, keys)
    for n, (ax, key) in enumerate(zip(axes, keys, strict=True)):
        found = next(
            (
                b
                for r in results
                if r.label == key
                for b in r.heard
                if shown is None or (r.scenario.index, b.turn) == shown
            ),
            None,
        )
        if found is None:
            ax.set_title(f"{key}: no barge-in heard")
            continue
        b = found
        times = [b.timeline_start + i * 0.01 - b.onset for i in range(len(b.caller_rms))]
        ax.fill_between(times, 0, b.caller_rms, color="C7", alpha=0.8, label="caller", step="post")
        ax.fill_between(times, 0, [-v for v in b.bot_rms], color=f"C{n}", alpha=0.8, label="bot", step="post")
        top = max([*b.caller_rms, *b.bot_rms, 1.0])
        silent, caller_end = b.silent_at - b.onset, b.caller_end - b.onset
        ax.axvspan(0.0, max(silent, 0.005), color="red", alpha=0.15, label="overrun")
        marks = [(0.0, "caller starts"), (silent, "bot silent"), (caller_end, "caller ends")]
        if b.fresh_at is not None:
            ax.axvspan(caller_end, b.fresh_at - b.onset, color="C2", alpha=0.15, label="voice-to-voice")
            marks.append((b.fresh_at - b.onset, "next answer heard"))
        for x, label in marks:
            ax.axvline(x, color="k", linestyle=":", linewidth=1)
            ax.text(x, top * 1.1, label, rotation=90, fontsize="x-small", va="bottom", ha="right")
        v2v = "-" if b.voice_to_voice is None else f"{b.voice_to_voice * 1000:.0f} ms"
        ax.set_title(
            f"{key}, {b.phase} (run {shown[0] if shown else '?'}, turn {b.turn})\n"
            f"overrun {b.overrun * 1000:.0f} ms, voice-to-voice {v2v}",
            fontsize="small",
        )
        ax.set_xlabel("s from the caller's onset")
        ax.set_ylabel("caller above, bot below (RMS per 10 ms)")
        ax.set_ylim(-top * 1.1, top * 1.9)
        ax.legend(fontsize="small", loc="upper right")


def _by_phase_bars(ax: Any, results: list[RunResult], keys: list[str]) -> None:
    """Median voice-to-voice per barge-in phase and service, the worst case as a tick above each bar."""
    phases = [p for p in PHASES if any(b.phase == p for r in results for b in r.heard)]
    width = 0.8 / max(1, len(keys))
    for n, key in enumerate(keys):
        medians, worst = [], []
        for phase in phases:
            values = [
                v for r in results if r.label == key for b in r.heard if b.phase == phase and (v := b.voice_to_voice)
            ]
            figures = Distribution.of([v * 1000 for v in values])
            medians.append(figures.median if figures else 0.0)
            worst.append(figures.max if figures else 0.0)
        xs = [i + (n - (len(keys) - 1) / 2) * width for i in range(len(phases))]
        ax.bar(xs, medians, width, color=f"C{n}", label=f"{key}, median")
        ax.scatter(xs, worst, color=f"C{n}", marker="_", s=200, label=f"{key}, max")
    ax.set_xticks(range(len(phases)), [p.replace("_", " ") for p in phases], rotation=20, fontsize="small")
    ax.set_ylabel("ms")
    ax.set_title("at the ear: voice-to-voice by where the caller barged in")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")


def _cdf(ax: Any, values: list[float], label: str, color: str, style: str) -> None:
    if not values:
        return
    ordered = sorted(max(v, 0.01) for v in values)  # a log axis has no zero
    shares = [(i + 1) / len(ordered) for i in range(len(ordered))]
    ax.step(ordered, shares, where="post", color=color, linestyle=style, label=f"{label} (n={len(ordered)})")
