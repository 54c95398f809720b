"""Command line: ``pipecat-responses-ws demo | serve | harness``."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("not yet available")
