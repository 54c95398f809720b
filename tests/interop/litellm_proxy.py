"""A LiteLLM proxy from PyPI in a subprocess, offline, with a mock model behind its Responses bridge.

LiteLLM has served WebSocket mode on ``/v1/responses`` since 1.82.1, with no setting to turn it on.
It answers ``/v1/responses`` (HTTP and WebSocket mode) for a chat model by translating the
Responses request into a chat completion and the chat chunks back into Responses events (its
"bridge"). The chat model here is LiteLLM's own mock: the ``upstream`` model's ``mock_response``
on the same proxy's ``/v1/chat/completions``, which streams its text a few characters a chunk.
``bridged``, the model our services ask for, is a ``custom_openai`` model (a provider without a
Responses API of its own, so both transports take the bridge) whose ``api_base`` is the proxy
itself. Every request stays on loopback.

A ``mock_response`` on the bridged model itself would be simpler, but LiteLLM then answers
``/v1/responses`` with a canned non-streamed response, which fails a ``stream: true`` request
("Error processing stream start", 1.108.7), and never reaches the bridge.

``passthrough`` is an ``openai`` model whose ``api_base`` is our emulator (``serve`` in a
subprocess of its own): LiteLLM as the gateway in front of a Responses server, passing requests
and events through rather than translating them.

Where LiteLLM comes from: ``INTEROP_LITELLM`` (a ``litellm`` executable, e.g. in a virtualenv of
its own), else the ``litellm`` beside this Python (``pip install -e ".[interop]"``), else ``PATH``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MASTER_KEY = "sk-interop-master"
BRIDGED_MODEL = "bridged"
PASSTHROUGH_MODEL = "passthrough"
MOCK_TEXT = "Hello from the mock model. It streams in small pieces."
# Long enough to be still streaming when a barge-in comes: ~3,500 chunks, seconds through the bridge.
LONG_MODEL = "bridged-long"
LONG_TEXT = " ".join(f"word{n}" for n in range(1500)) + "."
# LiteLLM imports hundreds of modules before it listens: ~6 s on an idle two-core machine.
READY_DEADLINE_SECS = 120.0


def litellm_executable() -> str | None:
    """The ``litellm`` command to run, or ``None`` when it is not installed."""
    chosen = os.environ.get("INTEROP_LITELLM")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    beside = Path(sys.executable).parent / "litellm"
    if beside.is_file():
        return str(beside)
    return shutil.which("litellm")


def proxy_config(port: int, upstream_http_base_url: str) -> dict[str, object]:
    return {
        "model_list": [
            {
                "model_name": "upstream",
                "litellm_params": {"model": "openai/upstream", "api_key": "unused", "mock_response": MOCK_TEXT},
            },
            {
                "model_name": BRIDGED_MODEL,
                "litellm_params": {
                    "model": "custom_openai/upstream",
                    "api_base": f"http://127.0.0.1:{port}/v1",
                    "api_key": MASTER_KEY,
                },
            },
            {
                "model_name": "upstream-long",
                "litellm_params": {"model": "openai/upstream-long", "api_key": "unused", "mock_response": LONG_TEXT},
            },
            {
                "model_name": LONG_MODEL,
                "litellm_params": {
                    "model": "custom_openai/upstream-long",
                    "api_base": f"http://127.0.0.1:{port}/v1",
                    "api_key": MASTER_KEY,
                },
            },
            {
                "model_name": PASSTHROUGH_MODEL,
                "litellm_params": {
                    "model": "openai/emulated",
                    "api_base": upstream_http_base_url,
                    "api_key": "sk-upstream",
                },
            },
        ],
        "general_settings": {"master_key": MASTER_KEY},
    }


@dataclass
class LiteLLMProxy:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def http_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/responses"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        _stop(self.process)


def start_proxy(executable: str, workdir: Path, upstream_http_base_url: str) -> LiteLLMProxy:
    """Start the proxy on a free loopback port and return once its liveness endpoint answers."""
    port = _free_port()
    config = workdir / "litellm_config.yaml"
    config.write_text(json.dumps(proxy_config(port, upstream_http_base_url), indent=2))  # JSON is YAML
    log_path = workdir / "litellm.log"
    environment = {
        **os.environ,
        # Offline: the model price list shipped in the package, not the one on the network.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "PYTHONUNBUFFERED": "1",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [executable, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=workdir,
        )
    proxy = LiteLLMProxy(process, port, log_path)
    try:
        _wait_ready(proxy)
    except BaseException:
        proxy.stop()
        raise
    return proxy


def _wait_ready(proxy: LiteLLMProxy) -> None:
    deadline = time.monotonic() + READY_DEADLINE_SECS
    url = f"http://127.0.0.1:{proxy.port}/health/liveliness"
    while True:
        if proxy.process.poll() is not None:
            status = proxy.process.returncode
            raise RuntimeError(f"litellm exited with {status} before it was ready:\n{proxy.log()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"litellm not ready after {READY_DEADLINE_SECS:.0f} s:\n{proxy.log()[-3000:]}")
        time.sleep(0.2)


@dataclass
class Upstream:
    """Our emulator, ``pipecat-responses-ws serve``, in a subprocess."""

    process: subprocess.Popen[bytes]
    http_base_url: str

    def stop(self) -> None:
        _stop(self.process)


def start_upstream() -> Upstream:
    """Start ``serve`` on a free port and return once it has printed its URLs (it listens by then)."""
    command = "import sys; from pipecat_responses_ws.cli import main; sys.exit(main())"
    process = subprocess.Popen(
        [sys.executable, "-c", command, "serve", "--port", "0", "--ttft", "0.01", "--tokens-per-second", "500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Unbuffered: a line read ahead into a buffer would be one select() no longer sees.
        bufsize=0,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + READY_DEADLINE_SECS
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = process.stdout.readline().decode() if readable else ""
        if line.startswith("http_base_url:"):
            return Upstream(process, line.split()[-1])
        if not line and process.poll() is not None:
            break
    _stop(process)
    raise RuntimeError(f"serve did not print its URLs within {READY_DEADLINE_SECS:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
