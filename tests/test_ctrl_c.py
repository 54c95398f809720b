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
from pathlib import Path

import pytest

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

    async def interrupt(self) -> tuple[float, str]:
        """SIGINT; how long until the process ended, and its stderr."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(STOP_WITHIN):
                _, err = await self.process.communicate()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            pytest.fail(f"still running {STOP_WITHIN:g}s after Ctrl-C")
        return time.monotonic() - sent, err.decode()


async def start(*args: str) -> Command:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONUNBUFFERED"] = "1"
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return Command(process)


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


async def test_the_console_chat_example_stops_on_ctrl_c_at_its_prompt() -> None:
    command = await start(str(ROOT / "examples" / "console_chat.py"), "--emulator")
    await command.wait_for_output("you: ")
    took, err = await command.interrupt()
    assert_clean_goodbye(command, took, err, "console chat: stopped (Ctrl-C)")
