"""Each invariant check fails on hand-made evidence of the fault it names, and passes a clean run."""

from __future__ import annotations

from pipecat_responses_ws.harness.invariants import (
    END,
    INTERRUPTION,
    START,
    TEXT,
    Event,
    Observed,
    ToolRun,
    bad_tool_runs,
    calls_without_output,
    check,
    context_mismatch,
    leaked_text,
    repeated_text,
    unexpected_errors,
)

SPOKEN = [Event(1.0, START), Event(1.1, TEXT, "t1as0w0 t1as0w1."), Event(1.2, END)]
CONTEXT = [{"role": "user", "content": "u1a"}, {"role": "assistant", "content": "t1as0w0 t1as0w1."}]


def test_a_clean_run_has_no_violations() -> None:
    assert sum(check(Observed(events=SPOKEN, messages=CONTEXT)).values()) == 0


def test_another_turns_words_in_a_bracket_are_a_leak() -> None:
    events = [Event(1.0, START), Event(1.1, TEXT, "u2b said."), Event(1.2, TEXT, " t1as3w4"), Event(1.3, END)]
    assert leaked_text(Observed(events=events)) == 1


def test_abandoned_words_after_the_cut_are_a_leak_even_in_a_new_bracket() -> None:
    events = [
        Event(1.0, START),
        Event(1.1, TEXT, "t1as0w0"),
        Event(1.2, INTERRUPTION),
        Event(1.3, START),
        Event(1.4, TEXT, "t1as0w1"),
    ]
    assert leaked_text(Observed(events=events, abandoned={"1a": 1.2})) == 1


def test_a_scripted_word_delivered_twice_in_one_bracket_is_repeated_text() -> None:
    words = ["t1as0w0 ", "t1as0w1 ", "t1as0w2 ", "t1as0w3."]
    clean = [Event(1.0, START), *(Event(1.1 + i / 10, TEXT, w) for i, w in enumerate(words)), Event(2.0, END)]
    assert repeated_text(Observed(events=clean)) == 0
    # One delta pushed twice: no sentence repeats, but its word does.
    doubled = [*clean[:3], Event(1.25, TEXT, "t1as0w1 "), *clean[3:]]
    assert repeated_text(Observed(events=doubled)) == 1
    # The same word in two brackets is another check's business (leaked_text), not a repeat.
    again = [*clean, Event(2.1, START), Event(2.2, TEXT, "t1as0w1 "), Event(2.3, END)]
    assert repeated_text(Observed(events=again)) == 0


def test_a_call_run_before_its_arguments_completed_is_caught() -> None:
    assert bad_tool_runs(Observed(tool_runs=[ToolRun("call_1", "get_weather", 1.0)])) == 1
    done = {"call_1": 0.9}
    assert bad_tool_runs(Observed(tool_runs=[ToolRun("call_1", "get_weather", 1.0)], completed_calls=done)) == 0


def test_a_tool_call_without_output_in_the_context_is_caught() -> None:
    messages = [
        {"role": "assistant", "tool_calls": [{"id": "call_1"}, {"id": "call_2"}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{}"},
    ]
    assert calls_without_output(Observed(messages=messages)) == 1


def test_errors_outside_fault_windows_are_unexpected() -> None:
    obs = Observed(errors=[(1.0, "injected"), (5.0, "surprise")], fault_windows=[(0.5, 2.0)])
    assert unexpected_errors(obs) == 1


def test_a_context_that_differs_from_what_was_spoken_is_caught() -> None:
    assert context_mismatch(Observed(events=SPOKEN, messages=CONTEXT)) == 0
    assert context_mismatch(Observed(events=SPOKEN, messages=[*CONTEXT, {"role": "assistant", "content": "x"}])) == 1
