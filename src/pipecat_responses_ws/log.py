"""The project's logger: loguru's, with every message redacted before any handler sees it."""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Any

from loguru import logger as _logger

from .protocol.redaction import redact

if TYPE_CHECKING:
    from loguru import Record


def _redact_record(record: Record) -> None:
    record["message"] = redact(record["message"])


logger: Any = _logger.patch(_redact_record)


def exception_text(error: BaseException) -> str:
    """A traceback without the frames' local variables (they may hold a key), for a log line."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()


def only_critical() -> None:
    """Every handler replaced by one for CRITICAL lines on stderr.

    For the harness and its worker processes: hundreds of runs' debug logs (Pipecat's and the
    emulator's) would bury the progress lines and the table.
    """
    _logger.remove()
    _logger.add(sys.stderr, level="CRITICAL")
