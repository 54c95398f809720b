"""The Open Responses compliance suite, in full, against ``serve``: ``bench/compliance.sh`` run as a test.

It needs a checkout of the specification's repository (``../shared/conformance/openresponses`` beside
this one, or ``OPENRESPONSES_DIR``) and npm, which installs bun and zod once; without either the test
is skipped and says which.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "compliance.sh"


def suite_checkout() -> Path | None:
    candidates = [os.environ.get("OPENRESPONSES_DIR", ""), ROOT.parent / "shared" / "conformance" / "openresponses"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "bin" / "compliance-test.ts").is_file():
            return Path(candidate)
    return None


def test_every_compliance_test_passes_against_serve() -> None:
    checkout = suite_checkout()
    if checkout is None:
        pytest.skip(
            "no Open Responses checkout: put it at ../shared/conformance/openresponses or set OPENRESPONSES_DIR"
        )
    if shutil.which("bun") is None and shutil.which("npm") is None:
        pytest.skip("neither bun nor npm is installed: the compliance suite runs on bun, which npm installs")
    done = subprocess.run(
        ["bash", str(SCRIPT), str(checkout)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    counts = re.search(r"passed (\d+), failed (\d+) of (\d+)", output)
    assert counts is not None, output
    passed, failed, total = map(int, counts.groups())
    assert (failed, passed) == (0, total) and total >= 17, output
    assert done.returncode == 0, output
