"""A user's mistake on the command line: one line saying what is wrong and what to do, exit status 2,
no traceback, and nothing spent before it is said."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipecat_responses_ws import cli
from pipecat_responses_ws.harness import campaign
from pipecat_responses_ws.harness.__main__ import main as harness_main

ENTRY = "import sys; from pipecat_responses_ws.cli import main; sys.exit(main())"


def run_cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The command line in a process of its own, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def one_line_usage_error(done: subprocess.CompletedProcess[str] | tuple[int, str]) -> str:
    code, err = (done.returncode, done.stderr) if isinstance(done, subprocess.CompletedProcess) else done
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def no_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a run started although the arguments could not be used")

    monkeypatch.setattr(campaign, "run_scenario", refuse)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["serve", "--port", "99999"], "--port: a port is 0 to 65535"),
        (["serve", "--port", "-1"], "--port: a port is 0 to 65535"),
        (["serve", "--port", "eighty"], "'eighty' is not a port number"),
        (["serve", "--log-level", "bogus"], "'bogus' is not a log level; one of TRACE, DEBUG, INFO"),
        (["demo", "--log-level", "bogus"], "'bogus' is not a log level"),
        (["demo", "--foo"], "pipecat-responses-ws demo: unrecognized arguments: --foo"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_2(argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    line = one_line_usage_error((int(str(done.value.code)), capsys.readouterr().err))
    assert said in line and f"(see pipecat-responses-ws {argv[0]} --help)" in line


@pytest.mark.slow  # a subprocess
def test_serve_on_a_port_in_use_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_usage_error(run_cli("serve", "--port", str(port)))
    assert line == f"serve: port {port} is in use on 127.0.0.1; pick another with --port, or --port 0 for a free one"


@pytest.mark.slow  # a subprocess
def test_serve_on_a_host_that_is_not_here_says_so_in_one_line() -> None:
    line = one_line_usage_error(run_cli("serve", "--host", "999.1.1.1", "--port", "0"))
    assert line.startswith("serve: cannot listen on '999.1.1.1'") and "--host takes" in line


@pytest.mark.slow  # a subprocess
def test_pipecat_banner_is_not_printed() -> None:
    done = run_cli("demo", "--foo")
    assert "Pipecat" not in done.stderr and "ᓚᘏᗢ" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--runs", "0"], "--runs: must be 1 or more, not 0"),
        (["--runs", "-1"], "--runs: must be 1 or more, not -1"),
        (["--reply-gap", "-1"], "--reply-gap: must be 0 seconds or more, not -1"),
        (["--handshake-delay", "-1"], "--handshake-delay: must be 0 seconds or more, not -1"),
        (["--json", "no/such/folder/out.json"], "--json: the folder"),
        (["--plot", "no/such/folder/out.png"], "--plot: the folder"),
    ],
)
def test_a_bad_harness_flag_stops_before_any_run(
    argv: list[str], said: str, no_runs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        harness_main(argv)
    line = one_line_usage_error((int(str(done.value.code)), capsys.readouterr().err))
    assert said in line and "(see pipecat-responses-ws harness --help)" in line


def raises(url: str) -> object:
    raise RuntimeError("no model configured")


def returns_none(url: str) -> None:
    return None


def takes_nothing() -> object:
    raise AssertionError("never called with no arguments")


@pytest.mark.parametrize(
    ("factory", "said"),
    [
        ("raises", "calling it raised RuntimeError: no model configured"),
        ("returns_none", "it returned NoneType, not a Pipecat LLMService"),
        ("takes_nothing", "calling it raised TypeError"),
    ],
)
def test_a_factory_that_cannot_build_a_service_is_refused_with_exit_2(
    factory: str, said: str, no_runs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"{__name__}:{factory}"
    assert harness_main(["--service", name, "--runs", "1"]) == 2
    line = one_line_usage_error((2, capsys.readouterr().err))
    assert line.startswith(f"harness: --service {name!r} cannot be used: {said}")
    assert "a factory takes the emulator's ws_url and returns a Pipecat LLMService" in line


# ``demo --openai`` with its endpoint swapped for an emulator that wants another key, in a process of its own
# (the demo replaces loguru's handlers, which the rest of this test session keeps).
DEMO_WITH_A_WRONG_KEY = """
import contextlib, sys
from pipecat_responses_ws import cli, demo
from pipecat_responses_ws.emulator import Emulator

@contextlib.asynccontextmanager
async def guarded(use_openai):
    async with Emulator(api_key="sk-the-right-key") as emulator:
        yield emulator.ws_url, "sk-a-wrong-key", None

demo._endpoint = guarded
sys.exit(cli.main(["demo", "--openai", *sys.argv[1:]]))
"""


@pytest.mark.slow  # a subprocess
@pytest.mark.parametrize("interactive", [False, True])
def test_demo_against_a_refused_key_ends_at_once_with_one_line(interactive: bool) -> None:
    """The first turn's error ends the demo with a line saying why, not a 30 s wait and a traceback.

    Interactive, the user's first line meets the refusal, and stdin stays open as at a terminal.
    """
    started = time.monotonic()
    argv = [sys.executable, "-c", DEMO_WITH_A_WRONG_KEY, *(["--interactive"] if interactive else [])]
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdin is not None
        process.stdin.write("Hi!\n")
        process.stdin.flush()
        try:
            out, err = process.communicate(timeout=40) if not interactive else _wait_open(process)
        finally:
            process.kill()
    done = subprocess.CompletedProcess(argv, process.returncode, out, err)
    assert done.returncode == 1 and time.monotonic() - started < 20, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("demo: no answer: ") and "refused the API key" in last, done.stderr
    assert "sk-a-wrong-key" not in done.stderr + done.stdout


def _wait_open(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Its output once it ends, with its stdin left open (communicate would close it)."""
    process.wait(timeout=40)
    assert process.stdout is not None and process.stderr is not None
    return process.stdout.read(), process.stderr.read()


def test_output_folder_check_accepts_a_file_in_an_existing_folder(tmp_path: Path, no_runs: None) -> None:
    from pipecat_responses_ws.arguments import output_file

    assert output_file(str(tmp_path / "out.json")) == str(tmp_path / "out.json")
