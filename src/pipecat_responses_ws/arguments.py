"""What the commands' flags share: a parser whose errors are one line, and argument types that refuse a
bad value while the flags are read, before any work starts.

A user's mistake ends with one line saying what is wrong and what to do, and exit status 2; never a
traceback, and never after a campaign has been spent.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn, TypeVar

USAGE_ERROR = 2

Number = TypeVar("Number", int, float)

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


class OneLineParser(argparse.ArgumentParser):
    """``argparse`` with its error as one line that says where the help is, in place of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


def port(text: str) -> int:
    value = _number(text, int, "a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535 (0 picks a free one), not {text}")
    return value


def log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level; one of {', '.join(LOG_LEVELS)}")
    return level


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


def seconds(text: str) -> float:
    """A duration: 0 or more seconds."""
    value = _number(text, float, "a number of seconds")
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 seconds or more, not {text}")
    return value


def output_file(text: str) -> str:
    """A file the command will write at its end: its folder must exist and be writable now."""
    folder = Path(text).expanduser().resolve().parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {str(folder)!r} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"the folder {str(folder)!r} is not writable")
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name")
    return text


def _number(text: str, kind: type[Number], what: str) -> Number:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
