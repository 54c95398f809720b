"""What one streamed text delta costs on our side, in bytecodes over Pipecat's bare pipeline floor.

Counted with ``bench/bytecodes_per_delta.py`` (a count of executed bytecodes moves by about one
from run to run, where CPU time on a shared machine moves by several per cent). The bound is what
the text path costs today: a change that makes every word dearer fails here, not in production.
"""

from __future__ import annotations

from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
# Bytecodes per delta ours (coalescing off) may cost above the floor: today's 331, and room for
# the count's own drift (about one), not for a new cost per word or per answer. (It was 430 while every
# word went through the session's full rule, its sequence check and the reader's express call; the
# lanes' speaking responses, a count per response rather than per word and the express handler swapped
# after a response's first words took off 79; keying only the history's new items, 3 more; recording a
# response with its plan's keys, item events as signs of life at once and a model's reasoning default
# read once, 4 more; a sign of life's depth no longer counted, the first numbered event taken without
# the reordering path and no first-sign-of-life check per word, 5 more; the lookup's type check
# without a call, 4 more; the settings' fields made once per change and a sign of life handed to its
# owner without the queue's look-up, 3 more.)
MAX_ABOVE_FLOOR = 334
TURNS, WORDS = 10, 100  # as the bench counts by default


@pytest.mark.slow
async def test_a_text_delta_costs_at_most_its_bound_above_the_pipeline_floor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import bytecodes_per_delta as bench  # bench/ is on the path only here

    per_delta = {}
    for receiver in ("pipeline-floor", "ours-off"):
        counts, deltas = await bench.count(receiver, TURNS, WORDS)
        per_delta[receiver] = sum(counts.values()) / deltas
    above = per_delta["ours-off"] - per_delta["pipeline-floor"]
    with capsys.disabled():
        print(f"\nbytecodes per delta: floor {per_delta['pipeline-floor']:.0f}, ours {per_delta['ours-off']:.0f}")
    assert above <= MAX_ABOVE_FLOOR, f"ours costs {above:.0f} bytecodes per delta above the floor"
