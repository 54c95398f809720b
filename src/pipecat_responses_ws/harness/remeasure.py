"""``python -m pipecat_responses_ws.harness.remeasure DIR``: a ``harness --record`` directory measured again.

With the plainest rule there is (:func:`remeasure`: mean absolute amplitude per 5 ms, nothing
shared with the harness's own RMS analysis), from the WAVs alone, it prints how far its onsets and
overruns are from the ones the harness reported in ``events.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .recording import EVENTS, read_wav
from .speech import RATE


def remeasure(path: Path, onset_hint: float, *, level: float = 300.0, gap: float = 0.25) -> tuple[float, float]:
    """The caller's onset and the overrun read off a recording alone: 5 ms windows whose mean absolute
    amplitude passes ``level`` are speech, and the bot is silent once quiet for ``gap``.

    ``onset_hint`` (the reported onset) only says which of the caller's utterances to look at: the
    first loud window from half a second before it.
    """
    caller, bot = read_wav(path)
    window = RATE // 200

    def loud(track: np.ndarray) -> np.ndarray:
        whole = len(track) // window * window
        return np.abs(track[:whole].astype(np.int32)).reshape(-1, window).mean(axis=1) > level

    caller_loud, bot_loud = loud(caller), loud(bot)
    first = max(0, int((onset_hint - 0.5) * 200))
    onset = first + int(np.argmax(caller_loud[first:]))
    quiet, end = int(gap * 200), onset
    while end < len(bot_loud) and bot_loud[end : end + quiet].any():
        end += 1
    return onset / 200, (end - onset) / 200


def _compare(directory: Path) -> int:
    events = json.loads((directory / EVENTS).read_text())
    onsets, overruns = [], []
    for run in events["runs"]:
        for b in run["barge_ins"]:
            onset, over = remeasure(directory / run["wav"], b["caller_onset_s"])
            onsets.append(abs(onset - b["caller_onset_s"]) * 1000)
            overruns.append(abs(over * 1000 - b["overrun_ms"]))
    if not onsets:
        print(f"{directory / EVENTS} lists no barge-ins")
        return 1
    print(
        f"{len(onsets)} barge-ins in {len(events['runs'])} recordings, re-measured"
        " by mean absolute amplitude per 5 ms:\n"
        f"  |onset difference| ms: median {np.median(onsets):.1f}, max {max(onsets):.1f}\n"
        f"  |overrun difference| ms: median {np.median(overruns):.1f}, max {max(overruns):.1f}"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m pipecat_responses_ws.harness.remeasure DIR (a harness --record directory)")
    sys.exit(_compare(Path(sys.argv[1])))
