"""Each figure means what its definition says, on values small enough to check by hand."""

from __future__ import annotations

import pytest

from pipecat_responses_ws.measures import (
    Distribution,
    Spread,
    barge_in_penalties,
    barge_in_penalty,
    bytes_per_turn,
    cpu_per_delta_us,
    first_text_delay,
    frames_per_delta,
    incremental_share,
    lateness,
    overlap,
    overrun,
    percentile,
    stale_audio,
    voice_to_voice,
)


def test_a_percentile_is_the_nearest_rank_always_one_of_the_values() -> None:
    hundred = [float(v) for v in range(100, 0, -1)]  # unordered on purpose
    assert percentile(hundred, 0.99) == 99.0  # 99 of the 100 values are at or below it
    assert percentile(hundred, 0.95) == 95.0
    assert percentile(hundred, 1.0) == 100.0 and percentile(hundred, 0.0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0] * 9 + [50.0], 0.95) == 50.0  # a p95 over 10 cases is the largest
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 95)  # a share, not a percentage


def test_a_distribution_of_no_cases_is_none_not_zero() -> None:
    assert Distribution.of([]) is None
    assert Distribution.of([4.0, 1.0, 2.0, 3.0]) == Distribution(median=2.5, p95=4.0, max=4.0, count=4)


def test_a_spread_shows_the_median_run_and_the_range() -> None:
    spread = Spread.of([13.5, 13.0, 13.2])
    assert spread == Spread(median=13.2, low=13.0, high=13.5, runs=3)
    assert spread.format() == "13.2 (13.0–13.5)"
    assert Spread.of([0.0123, 0.0101]).format(digits=1, scale=1000) == "11.2 (10.1–12.3)"
    assert Spread.of([1.07, 1.05, 1.09]).format(digits=2, unit="×") == "1.07× (1.05–1.09)"
    assert Spread.of([7.0]).format() == "7.0"  # one run has no range to show
    with pytest.raises(ValueError):
        Spread.of([])


def test_the_barge_in_penalty_is_the_wait_beyond_an_uninterrupted_turn() -> None:
    after = first_text_delay(asked=10.0, first_text=10.3, model_time=0.05)
    plain = first_text_delay(asked=20.0, first_text=20.06, model_time=0.05)
    assert after == pytest.approx(0.25) and plain == pytest.approx(0.01)
    assert barge_in_penalty(after, plain) == pytest.approx(0.24)
    # Against the median uninterrupted turn of the same runs, not the fastest or the slowest.
    assert barge_in_penalties([0.5, 0.1], [0.0, 0.1, 0.4]) == pytest.approx([0.4, 0.0])
    assert barge_in_penalties([0.5], []) == []


def test_lateness_is_measured_against_the_pacing_from_the_first_frame() -> None:
    assert lateness([5.0, 5.1, 5.25, 5.3], tokens_per_second=10) == pytest.approx([0.0, 0.0, 0.05, 0.0])
    assert lateness([], tokens_per_second=10) == []


def test_a_frame_of_several_deltas_is_as_late_as_each_of_them() -> None:
    # Two frames: the first delta alone, then three joined that were due 0.1, 0.2 and 0.3 s after it.
    assert lateness([5.0, 5.3], tokens_per_second=10, deltas_per_frame=[1, 3]) == pytest.approx([0.0, 0.2, 0.1, 0.0])
    with pytest.raises(ValueError):
        lateness([5.0, 5.3], tokens_per_second=10, deltas_per_frame=[1])


def test_counts_per_unit() -> None:
    assert cpu_per_delta_us(0.5, 10_000) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        cpu_per_delta_us(0.5, 0)
    assert frames_per_delta(25, 100) == 0.25
    with pytest.raises(ValueError):
        frames_per_delta(1, 0)
    assert incremental_share(3, 4) == 0.75 and incremental_share(0, 0) is None
    assert bytes_per_turn(3000, 2) == 1500 and bytes_per_turn(0, 0) is None


def test_the_ear_figures_of_a_barge_in() -> None:
    bot = [(0.0, 2.4), (3.0, 3.5), (6.0, 9.0)]  # speaking, cut, a stale burst, the next answer
    caller = (2.0, 3.2)
    assert overrun(bot, caller) == pytest.approx(0.4)  # from the onset to the bot's silence
    assert overrun([(2.5, 2.8)], caller) == pytest.approx(0.8)  # started while the caller spoke
    assert overrun([(0.0, 1.0), (4.0, 5.0)], caller) == 0.0  # silent all through the caller
    assert overlap(bot, caller) == pytest.approx(0.4 + 0.2)  # wherever in the utterance the bot spoke
    assert stale_audio([(2.3, 2.4), (3.0, 3.5)], 2.4) == pytest.approx(0.5)  # only after the silence
    assert stale_audio([(2.35, 2.45)], 2.4) == pytest.approx(0.05)
    assert voice_to_voice(3.2, 4.25) == pytest.approx(1.05)
