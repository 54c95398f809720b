"""The emulator's faults and options, each declared once: what the constructor, ``serve`` and script files take."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from pipecat_responses_ws import cli
from pipecat_responses_ws.emulator import Emulator, Fault, Reply
from pipecat_responses_ws.emulator.faults import FAULTS
from pipecat_responses_ws.emulator.script import FAULT_KINDS, ScriptFileError, parse_script
from pipecat_responses_ws.emulator.settings import Settings
from pipecat_responses_ws.harness.scenario import FAULT_PLANS, Turn


def serve_flags() -> dict[str, str]:
    """Each serve flag's destination, by flag."""
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    serve = commands.choices["serve"]  # type: ignore[index]
    return {flag: action.dest for action in serve._actions for flag in action.option_strings}


def test_every_option_is_a_keyword_and_a_serve_flag_with_help() -> None:
    flags = serve_flags()
    for option in fields(Settings):
        assert option.name in flags.values(), f"serve has no flag for {option.name}"
        assert option.metadata["option"].help
    assert flags["--stream-id"] == "stream_id_policy" and flags["--model"] == "model"
    emulator = Emulator(ttft=0.2, model="m", stream_end="done", port=0)
    assert (emulator.settings.ttft, emulator.settings.model, emulator.settings.stream_end) == (0.2, "m", "done")


def test_a_wrong_option_name_is_one_line_naming_the_valid_ones() -> None:
    with pytest.raises(TypeError) as wrong:
        Emulator(tft=0.2)  # type: ignore[call-arg]
    message = str(wrong.value)
    assert message.startswith("unknown emulator option 'tft'; expected one of api_key, ") and "ttft" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"ttft": math.nan}, "ttft must not be negative"),
        ({"tokens_per_second": math.nan}, "tokens_per_second must be positive"),
        ({"age_limit_close_code": 5}, "age_limit_close_code must be 1006 (abort) or a close code a server sends"),
        ({"port": 70000}, "port must be 0 to 65535"),
    ],
)
def test_a_value_out_of_bounds_is_refused_by_the_emulator(options: dict[str, object], said: str) -> None:
    with pytest.raises(ValueError) as wrong:
        Emulator(**options)  # type: ignore[arg-type]
    assert str(wrong.value).startswith(said)


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        ({"ttft": -1}, "replies[0]: ttft must not be negative"),
        ({"tokens_per_second": 0}, "replies[0]: tokens_per_second must be positive"),
        ({"fault": {"kind": "drop", "close_code": 5}}, "replies[0].fault: close_code must be 1006 (abort) or"),
        (
            {"fault": {"kind": "stall", "code": "x"}},
            "replies[0].fault: fault 'stall' takes after_events, seconds, count; not code",
        ),
        ({"fault": {"kind": "delay_terminal", "text": "x"}}, "replies[0].fault: fault 'delay_terminal' takes seconds,"),
    ],
)
def test_a_reply_or_fault_out_of_bounds_is_refused_as_the_emulator_refuses_it(
    reply: dict[str, object], said: str
) -> None:
    with pytest.raises(ScriptFileError) as wrong:
        parse_script({"replies": [reply]}, source="f.json")
    assert str(wrong.value).startswith(f"f.json: {said}")


def test_the_fault_table_is_the_kinds_and_names_what_each_reads() -> None:
    assert FAULT_KINDS == frozenset(FAULTS)
    assert FAULTS["hold_open"].wire == "http" and FAULTS["drop"].wire == "both"
    assert FAULTS["drop"].parameters == ("after_events", "close_code", "count")
    assert FAULTS["stray_early_delta"].parameters == ("text", "count")
    assert Fault("drop", close_code=1006).close_code == 1006
    assert Reply(ttft=0.0, tokens_per_second=math.inf).ttft == 0.0


def test_serve_lists_the_fault_kinds_in_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(kind in out for kind in FAULTS)


def test_the_harness_fault_turns_are_kinds_of_the_table_that_apply_over_both_wires() -> None:
    # The harness plays its campaigns over HTTP as well as over a WebSocket.
    for name, plan in FAULT_PLANS.items():
        reply = plan(Turn(1, "fault", fault=name), "t1as0w0.")
        assert reply.fault is not None and FAULTS[reply.fault.kind].wire == "both", name


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--tokens-per-second", "0"], "argument --tokens-per-second: must be positive, not 0.0"),
        (["--ttft", "nan"], "argument --ttft: must not be negative, not nan"),
        (["--age-limit-close-code", "5"], "argument --age-limit-close-code: must be 1006 (abort) or a close code"),
        (["--argument-delta-chars", "x"], "argument --argument-delta-chars: 'x' is not a whole number"),
        (["--stream-end", "eof"], "argument --stream-end: invalid choice: 'eof' (choose from 'done', 'terminal')"),
    ],
)
def test_a_serve_flag_out_of_bounds_is_one_line_before_anything_starts(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["serve", *argv])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and "\n" not in err
    assert err.startswith(f"pipecat-responses-ws serve: {said}")
