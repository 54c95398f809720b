"""What the client session tells the I/O layer to do, one small value per decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .connection import ConnectionState
from .errors import ResponsesWSError
from .response import Happening, Response


@dataclass(slots=True)  # not frozen: one is made per word, and a frozen one costs three times as much to make
class Deliver:
    """Hand ``happening`` to the owner of ``response``."""

    response: Response
    happening: Happening


@dataclass(frozen=True, slots=True)
class Touch:
    """``response`` showed a sign of life that its owner need not hear about (for its timeouts)."""

    response: Response


@dataclass(frozen=True, slots=True)
class SendEvent:
    """Write ``payload`` on ``connection`` without awaiting it (best effort)."""

    connection: ConnectionState[Response]
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Log:
    level: str  # a loguru level name
    message: str


@dataclass(frozen=True, slots=True)
class Retire:
    """Start nothing new on ``connection``; replace it, and close it once it is quiet.

    ``soon``: a barge-in on a connection without lanes. The next turn must not queue behind the
    abandoned answer, so a warm spare takes over at once, and the old connection is closed
    after a short grace (closing it also stops the server generating what nobody will hear).
    """

    connection: ConnectionState[Response]
    reason: str
    soon: bool = False


@dataclass(frozen=True, slots=True)
class ReportError:
    """A server error no response owns: the user should see it (as a non-fatal ``ErrorFrame``)."""

    error: ResponsesWSError


@dataclass(frozen=True, slots=True)
class ReleaseToolResults:
    """Function call results the gate now lets through, ``run_llm`` already decided."""

    results: list[dict[str, Any]]


Action = Deliver | Touch | SendEvent | Log | Retire | ReportError | ReleaseToolResults
