"""The wheel and sdist build from a clean checkout and pass ``twine check`` (their metadata and README render).

Optional: it needs ``build`` and ``twine`` (not in any extra) and the package index for the build's own
setuptools, so without them it is skipped and says why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_and_sdist_build_and_pass_twine_check(tmp_path: Path) -> None:
    pytest.importorskip("build", reason="needs the build package (pip install build twine)")
    pytest.importorskip("twine", reason="needs twine (pip install build twine)")
    checkout = tmp_path / "checkout"
    # A clone, not the working tree: what a user building the package from a clone gets.
    subprocess.run(["git", "clone", "-q", str(ROOT), str(checkout)], check=True, timeout=60)
    for name in ("pyproject.toml", "README.md"):  # with this tree's uncommitted packaging changes, if any
        (checkout / name).write_bytes((ROOT / name).read_bytes())
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(checkout)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "deprecated" not in built.stdout + built.stderr
    files = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert len(files) == 2 and files[0].endswith("-py3-none-any.whl") and files[1].endswith(".tar.gz"), files
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *(str(tmp_path / "dist" / f) for f in files)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
