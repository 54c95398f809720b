"""The README's testing example, run as a user runs it: its own file, plain ``pytest``, no configuration.

The example is read from README.md between its markers, so the README cannot drift from what passes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKED = re.compile(
    r"<!-- testing-example:start -->\s*```python\n(?P<code>.*?)```\s*<!-- testing-example:end -->", re.S
)

pytestmark = pytest.mark.slow


def readme_example() -> str:
    found = MARKED.search((ROOT / "README.md").read_text())
    assert found, "README.md lost its testing example (the testing-example markers around a python block)"
    return found.group("code")


def run_user_pytest(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``pytest`` in ``directory`` with an empty ini file, so nothing of this repository's config applies."""
    (directory / "pytest.ini").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", "pytest.ini", "-q", *extra,
         "test_my_bot.py"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_readme_example_passes_with_no_marker_and_no_config(tmp_path: Path) -> None:
    code = readme_example()
    assert "async def test_" in code and "(emulator)" in code and "pytest.mark" not in code
    (tmp_path / "test_my_bot.py").write_text(code)
    done = run_user_pytest(tmp_path)
    assert "1 passed" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 0


def test_without_pytest_asyncio_the_fixture_fails_with_the_install_line(tmp_path: Path) -> None:
    (tmp_path / "test_my_bot.py").write_text(readme_example())
    done = run_user_pytest(tmp_path, "-p", "no:asyncio")
    assert done.returncode != 0 and "skipped" not in done.stdout, done.stdout
    # The missing package by its own name: pipecat-responses-ws itself is on no package index.
    assert 'pip install "pytest-asyncio>=0.24"' in done.stdout, done.stdout
    assert "pipecat-responses-ws[" not in done.stdout


def test_a_test_already_marked_or_in_strict_mode_class_runs_once(tmp_path: Path) -> None:
    (tmp_path / "test_my_bot.py").write_text(
        "import pytest\n\n\n"
        "@pytest.mark.asyncio\n"
        "async def test_marked(emulator):\n"
        "    assert emulator.ws_url.startswith('ws://')\n\n\n"
        "class TestInAClass:\n"
        "    async def test_method(self, emulator):\n"
        "        assert emulator.connection_count == 0\n\n\n"
        "def test_sync_without_the_fixture():\n"
        "    assert True\n"
    )
    done = run_user_pytest(tmp_path)
    assert "3 passed" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("extra", [["--asyncio-mode=auto"], ["--asyncio-mode=strict"]])
def test_the_example_passes_in_either_asyncio_mode(tmp_path: Path, extra: list[str]) -> None:
    (tmp_path / "test_my_bot.py").write_text(readme_example())
    done = run_user_pytest(tmp_path, *extra)
    assert "1 passed" in done.stdout, done.stdout + done.stderr
