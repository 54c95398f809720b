"""One Ctrl-C ends every long-running command: a goodbye line on stderr, exit status 130, no traceback.

Each command runs in its own process, as a user runs it, and gets SIGINT at a moment where a
careless shutdown hangs or prints a traceback: while the bot speaks, while it waits for the user to
type (a thread blocked on stdin), while the emulator serves, in the middle of a harness run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CLI = ["-c", "import sys; from pipecat_responses_ws.cli import main; sys.exit(main())"]
STOP_WITHIN = 5.0  # seconds from SIGINT to exit; the commands allow themselves 1.5


class Command:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.out = ""

    async def wait_for_output(self, fragment: str, timeout: float = 60.0) -> None:
        """Read stdout until ``fragment`` shows (prompts end without a newline, so not line by line)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while fragment not in self.out:
                chunk = await self.process.stdout.read(4096)
                assert chunk, f"exited before printing {fragment!r}: {self.out!r}"
                self.out += chunk.decode()

    async def interrupt(self, *, group: bool = False) -> tuple[float, str]:
        """SIGINT (to its whole process group, as a terminal sends it, if ``group``); how long until
        the process ended, and its stderr."""
        sent = time.monotonic()
        if group:
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(STOP_WITHIN):
                _, err = await self.process.communicate()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            pytest.fail(f"still running {STOP_WITHIN:g}s after Ctrl-C")
        return time.monotonic() - sent, err.decode()


async def start(*args: str, own_group: bool = False) -> Command:
    """``own_group``: in a process group of its own, which :meth:`Command.interrupt` can signal whole."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONUNBUFFERED"] = "1"
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, env=env, start_new_session=own_group,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return Command(process)


def alive_in_group(group: int) -> list[int]:
    """Processes of a process group that still run (an exited one waiting to be reaped does not)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # it ended while being read
        if int(pgrp) == group and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def assert_clean_goodbye(command: Command, took: float, err: str, goodbye: str) -> None:
    """Exit status 130 in time, no traceback, and stderr's last line starts with ``goodbye``."""
    assert command.process.returncode == 130, err
    assert took < STOP_WITHIN
    assert "Traceback" not in err and "Exception" not in err, err
    assert err.strip().splitlines()[-1].startswith(goodbye), err


async def test_serve_stops_on_ctrl_c() -> None:
    command = await start(*CLI, "serve", "--port", "0")
    await command.wait_for_output("ws_url:")
    took, err = await command.interrupt()
    assert_clean_goodbye(command, took, err, "serve: interrupted; the emulator is stopped")


async def test_the_scripted_demo_stops_on_ctrl_c_while_the_bot_speaks() -> None:
    command = await start(*CLI, "demo")
    await command.wait_for_output("Pipeline:")
    await command.wait_for_output("Tell me a long story.")  # the story streams at 12 tokens/s
    await command.wait_for_output("Once upon")
    took, err = await command.interrupt()
    assert_clean_goodbye(command, took, err, "demo: stopped (Ctrl-C)")
    assert "--- summary ---" not in command.out


async def test_the_scripted_demo_stops_on_ctrl_c_as_soon_as_it_printed() -> None:
    command = await start(*CLI, "demo")
    await command.wait_for_output("Pipeline:")
    took, err = await command.interrupt()
    assert_clean_goodbye(command, took, err, "demo: stopped (Ctrl-C)")


async def test_the_interactive_demo_stops_on_ctrl_c_while_waiting_for_the_user() -> None:
    command = await start(*CLI, "demo", "--interactive")
    await command.wait_for_output(" user: ")
    assert command.process.stdin is not None
    command.process.stdin.write(b"Hello there\n")
    await command.process.stdin.drain()
    await command.wait_for_output("Let me know what else you need.")
    await command.wait_for_output(" user: ")  # the next prompt: a thread is blocked reading stdin
    took, err = await command.interrupt()
    assert_clean_goodbye(command, took, err, "demo: stopped (Ctrl-C)")


async def test_the_harness_stops_on_ctrl_c_mid_run() -> None:
    command = await start(*CLI, "harness", "--runs", "50", "--seed", "2")
    assert command.process.stderr is not None
    async with asyncio.timeout(60):
        while not (line := (await command.process.stderr.readline()).decode()).startswith("harness: "):
            assert line, "exited before saying what it runs"  # Pipecat's banner may come first
    assert line.startswith("harness: 50 runs of ours"), line
    await asyncio.sleep(1.5)  # inside the first run or two
    took, err = await command.interrupt()
    assert_clean_goodbye(command, took, err, "harness: stopped (Ctrl-C) after ")
    assert command.out == ""  # no table for a run that was stopped


async def polled(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether ``predicate`` came true within ``timeout`` seconds (/proc has nothing to wait on)."""
    for _ in range(round(timeout / 0.1)):
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process groups from /proc")
async def test_the_harness_with_worker_processes_stops_them_all_on_ctrl_c() -> None:
    command = await start(*CLI, "harness", "--runs", "50", "--seed", "2", "--jobs", "2", own_group=True)
    assert command.process.stderr is not None
    async with asyncio.timeout(60):
        while not (line := (await command.process.stderr.readline()).decode()).startswith("harness: "):
            assert line, "exited before saying what it runs"
    assert "2 processes" in line, line
    group = command.process.pid
    # The parent, both workers and multiprocessing's resource tracker.
    assert await polled(lambda: len(alive_in_group(group)) >= 4, 30), alive_in_group(group)
    await asyncio.sleep(2.0)  # the workers inside their first runs
    took, err = await command.interrupt(group=True)  # the workers get the Ctrl-C too, as from a terminal
    assert_clean_goodbye(command, took, err, "harness: stopped (Ctrl-C) after ")
    assert command.out == ""
    assert await polled(lambda: not alive_in_group(group), STOP_WITHIN), alive_in_group(group)


async def test_the_console_chat_example_stops_on_ctrl_c_at_its_prompt() -> None:
    command = await start(str(ROOT / "examples" / "console_chat.py"), "--emulator")
    await command.wait_for_output("you: ")
    took, err = await command.interrupt()
    assert_clean_goodbye(command, took, err, "console chat: stopped (Ctrl-C)")
