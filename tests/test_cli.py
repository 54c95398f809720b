"""``pipecat-responses-ws --version`` and the package's licence."""

from __future__ import annotations

from importlib.metadata import metadata, version
from pathlib import Path

import pytest

from pipecat_responses_ws.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"pipecat-responses-ws {version('pipecat-responses-ws')}\n"


def test_the_parser_knows_version_too(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"pipecat-responses-ws {version('pipecat-responses-ws')}\n"


def test_the_licence_file_matches_the_declared_licence() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 2-Clause License\n")
    assert "Copyright (c) 2026, pipecat-responses-ws contributors" in text
    declared = metadata("pipecat-responses-ws")
    assert "BSD-2-Clause" in (declared.get("License-Expression") or declared.get("License") or "")


def test_install_hints_name_packages_an_index_has_at_the_extras_versions() -> None:
    """The package is on no index, so a hint names the missing dependency, as its extra pins it."""
    import tomllib

    from pipecat_responses_ws.harness.report import PLOT_NEEDS
    from pipecat_responses_ws.pytest_plugin import MISSING_ASYNCIO

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    asyncio_pin = next(r for r in extras["testing"] if r.startswith("pytest-asyncio"))
    assert f'pip install "{asyncio_pin}"' in MISSING_ASYNCIO
    assert f'pip install "{extras["plot"][0]}"' in PLOT_NEEDS
    for hint in (MISSING_ASYNCIO, PLOT_NEEDS):
        assert "pipecat-responses-ws[" not in hint


def test_the_changelog_s_latest_section_is_the_version_the_package_reports() -> None:
    import re
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    latest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert latest and latest.group(1) == declared, f"CHANGELOG.md's latest section is {latest and latest.group(0)!r}"
