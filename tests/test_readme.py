"""README.md, kept true: every ```bash and ```python block of it runs, and every file it names exists.

The blocks run as a reader runs them, in a scratch folder with a ``.venv/bin`` that is this test's
interpreter (``python`` and ``pipecat-responses-ws``), with the repository's folders (``bench/``,
``examples/``, ``tests/``…) beside it. What would take long runs small: ``--runs N`` becomes ``--runs 2`` (one
for an audio campaign), ``--reps N`` one repetition; ``serve`` runs until it says where it listens, on a free
port, and is then stopped. What installs or runs this suite (``python3 -m venv``, ``pip install``, ruff, mypy,
pytest) is checked for shape instead: the extras it names exist, a requirement parses, the tool is in the
``test`` extra. ``--plot`` is dropped where matplotlib is not installed.

A block preceded by ``<!-- readme-test: skip (why) -->`` is not run (its files are still checked). The
longer blocks are marked ``slow``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PACKAGE = ROOT / "src" / "pipecat_responses_ws"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

FENCE = re.compile(r"(?P<before>(?:<!--[^\n]*-->\n)*)```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S)
SKIP = re.compile(r"<!-- readme-test: skip \((?P<why>[^)]+)\) -->")
SLOW_SECONDS = 20  # a block expected to take longer than this is marked slow


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int
    skip: str | None

    @property
    def slow(self) -> bool:
        return bool(re.search(r"harness|bench/|serve|pipecat-responses-ws demo", self.code))

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def blocks() -> list[Block]:
    text = README.read_text()
    found = []
    for match in FENCE.finditer(text):
        skip = SKIP.search(match.group("before"))
        line = text.count("\n", 0, match.start("lang")) + 1
        found.append(Block(match.group("lang"), match.group("code"), line, skip.group("why") if skip else None))
    return found


def params() -> list[object]:
    return [
        pytest.param(b, id=str(b).replace(" ", ""), marks=[pytest.mark.slow] if b.slow and b.lang == "bash" else [])
        for b in blocks()
    ]


# -- shape checks for what installs or runs this suite --------------------------------------------


def check_requirement(word: str) -> None:
    """One argument of ``pip install``: a local path, a wheel, or a requirement, with extras that exist."""
    if word in ("-e", "-q", "--quiet", "--editable"):
        return
    extras: set[str] = set()
    if word.endswith(".whl"):
        name = PROJECT["name"].replace("-", "_")
        assert word.rsplit("/", 1)[-1] == f"{name}-{PROJECT['version']}-py3-none-any.whl", word
        return
    if word.startswith((".", "/")):  # a clone: "." or a path, with [extras]
        path, _, tail = word.partition("[")
        extras = set(tail.rstrip("]").split(",")) if tail else set()
        if path == ".":
            assert (ROOT / "pyproject.toml").exists()
    else:
        try:
            requirement = Requirement(word)
        except InvalidRequirement as e:
            raise AssertionError(f"pip install {word!r} is not a requirement: {e}") from None
        assert requirement.name == PROJECT["name"], f"{word}: the package is {PROJECT['name']}"
        assert requirement.url, f"{word}: the package is on no index, so a requirement needs its URL"
        extras = set(requirement.extras)
    unknown = extras - set(PROJECT["optional-dependencies"])
    assert not unknown, f"pip install {word}: no such extra {sorted(unknown)}"


def check_test_tool(command: str) -> None:
    words = command.split()
    tool = words[0].removeprefix(".venv/bin/")
    if tool == "python":
        tool = words[2]  # python -m pytest
    named = [re.split(r"[<>=\[ ]", r)[0] for r in PROJECT["optional-dependencies"]["test"]]
    assert tool in named, f"{command}: {tool} is not in the test extra"


SHAPE_ONLY = [
    (re.compile(r"python3 -m venv \.venv"), lambda _: None),
    (
        re.compile(r"(?:\.venv/bin/)?pip install (?P<args>[^&;\n#]*)"),
        lambda m: [check_requirement(w) for w in shlex.split(m.group("args"))],
    ),
    (
        re.compile(r"\.venv/bin/(?:ruff|mypy|python -m pytest)\b[^&;\n]*"),
        lambda m: check_test_tool(m.group(0)),
    ),
]


def runnable(code: str) -> str:
    """The block as it runs here: shape-only commands checked and replaced by ``true``, sizes made small."""
    for pattern, check in SHAPE_ONLY:

        def replaced(match: re.Match[str], check: object = check) -> str:
            check(match)  # type: ignore[operator]
            return "true"

        code = pattern.sub(replaced, code)
    audio = "--audio" in code
    code = re.sub(r"--runs \d+", "--runs 1" if audio else "--runs 2", code)
    code = re.sub(r"--reps \d+", "--reps 1", code)
    code = re.sub(r"--port \d+", "--port 0", code)
    if find_spec("matplotlib") is None:
        code = re.sub(r" --plot \S+", "", code)
    return code


# -- where the blocks run --------------------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A folder like a clone's root: ``.venv/bin`` is this interpreter, ``bench/`` and ``examples/`` link back."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "python3").symlink_to(sys.executable)
    command = bin_dir / "pipecat-responses-ws"
    command.write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c "
        '"import sys; from pipecat_responses_ws.cli import main; sys.exit(main())" "$@"\n'
    )
    command.chmod(0o755)
    for name in ("bench", "examples", "src", "tests", "docs"):  # what a command may name, as in a clone
        if (ROOT / name).exists():
            (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("OPENAI_API_KEY", None)  # the README's commands need no key
    return env


def run_until_listening(code: str, cwd: Path) -> None:
    """``serve``: up, saying where, then stopped with SIGTERM (exit status 0)."""
    process = subprocess.Popen(
        ["bash", "-c", f"exec {code.strip()}"], cwd=cwd, env=environment(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("ws_url:   ws://127.0.0.1:"), first + (process.stderr.read() if process.stderr else "")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0


@pytest.mark.parametrize("block", params())
def test_every_block_of_the_readme_runs(block: Block, scratch: Path) -> None:
    if block.skip is not None:
        if block.lang == "bash":
            runnable(block.code)  # still checked for shape
        pytest.skip(f"{block}: {block.skip}")
    if block.lang == "python":
        (scratch / "snippet.py").write_text(block.code)
        done = subprocess.run(
            [sys.executable, "snippet.py"], cwd=scratch, env=environment(), capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{block}\n{block.code}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        return
    code = runnable(block.code)
    if "pipecat-responses-ws serve" in code:
        run_until_listening(code, scratch)
        return
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code], cwd=scratch, env=environment(), capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{block}\n{code}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


# -- files it names ------------------------------------------------------------------------------------

LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?:#[^)]*)?\)")
# A path in backticks under one of the repository's folders, or under the package (harness/phone.py).
NAMED_PATH = re.compile(
    r"`(?P<path>(?:bench|examples|tests|src|docs|\.ci|harness|emulator|protocol|client)/[\w./-]+"
    r"|LICENSE|CHANGELOG\.md|pyproject\.toml)`"
)


def named_files() -> list[str]:
    text = README.read_text()
    links = [m.group("target") for m in LINK.finditer(text) if "://" not in m.group("target")]
    return sorted(set(links) | {m.group("path") for m in NAMED_PATH.finditer(text)})


def test_every_file_the_readme_names_exists() -> None:
    names = named_files()
    assert {"bench/all.py", "LICENSE", "tests/test_session.py"} <= set(names)  # the patterns still find their kind
    missing = [n for n in names if not (ROOT / n).exists() and not (PACKAGE / n).exists()]
    assert not missing, f"README.md names files that do not exist: {missing}"


def test_a_skipped_block_says_why() -> None:
    text = README.read_text()
    for marker in re.finditer(r"<!-- readme-test:[^>]*-->", text):
        assert SKIP.fullmatch(marker.group(0)), f"{marker.group(0)}: write <!-- readme-test: skip (why) -->"
