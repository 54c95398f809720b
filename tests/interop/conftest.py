"""The interop tier: our services against servers nobody here wrote, each started as a subprocess.

Run it with ``pytest -m interop``; a server that is not installed skips its tests with the line
that installs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .litellm_proxy import LiteLLMProxy, litellm_executable, start_proxy, start_upstream


@pytest.fixture(scope="session")
def litellm_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMProxy]:
    executable = litellm_executable()
    if executable is None:
        pytest.skip(
            'litellm is not installed: .venv/bin/pip install -e ".[interop]", or set INTEROP_LITELLM to a litellm '
            "executable"
        )
    upstream = start_upstream()
    try:
        proxy = start_proxy(executable, Path(tmp_path_factory.mktemp("litellm")), upstream.http_base_url)
        try:
            yield proxy
        finally:
            proxy.stop()
    finally:
        upstream.stop()
