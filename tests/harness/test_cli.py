"""The command line runs, writes its JSON, and explains a missing plot rather than failing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pipecat_responses_ws.harness.__main__ import main


async def test_main_writes_a_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    # main() runs its own event loop, so it must run outside this test's loop.
    # --verbose leaves loguru's handlers alone for the rest of the test session.
    argv = ["--service", "ours", "--runs", "1", "--seed", "3", "--json", str(out), "--plot", str(tmp_path / "o.png"),
            "--verbose"]
    code = await asyncio.to_thread(main, argv)
    assert code == 0
    printed = capsys.readouterr()
    assert "barge-in penalty ms p95" in printed.out and "ours/ignore" in printed.out
    data = json.loads(out.read_text())
    assert data["summary"]["ours/ignore"]["runs"] == 1
    assert (tmp_path / "o.png").exists() or "matplotlib" in printed.err
