"""One Ctrl-C ends a command: a one-line goodbye on stderr, exit status 130, no traceback.

:func:`run` runs a command's coroutine. The first SIGINT cancels it, so ``finally`` blocks and
``async with`` exits close pipelines and servers as usual, and gives that ``GRACE`` seconds; what
is still stuck then (a socket that will not close, a thread blocked on a read) is left behind and
the process ends anyway. A second SIGINT ends it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C
GRACE = 1.5  # seconds of cleanup after the first Ctrl-C


class _Goodbye:
    """Says the goodbye once, whichever way the process ends."""

    def __init__(self, goodbye: str | Callable[[], str]) -> None:
        self._goodbye = goodbye
        self._lock = threading.Lock()
        self._said = False
        self.interrupted = False

    def say(self) -> None:
        with self._lock:
            if self._said:
                return
            self._said = True
        text = self._goodbye() if callable(self._goodbye) else self._goodbye
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            # On a terminal the cursor may sit after a prompt or amid streamed words (and after the
            # echoed ^C): the goodbye starts a line of its own.
            start = "\n" if sys.stderr.isatty() else ""
            sys.stderr.write(f"{start}{text}\n")
            sys.stderr.flush()

    def leave_now(self) -> None:
        self.say()
        os._exit(EXIT_INTERRUPTED)


def run(main: Coroutine[Any, Any, int], *, goodbye: str | Callable[[], str], grace: float = GRACE) -> int:
    """``asyncio.run(main)``, ending with :data:`EXIT_INTERRUPTED` and ``goodbye`` on Ctrl-C.

    ``goodbye`` may be a callable, read when the goodbye is written (to say how far a run got).
    """
    bye = _Goodbye(goodbye)

    def watchdog() -> None:
        threading.Event().wait(grace)
        bye.leave_now()

    async def guarded() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(main)

        def on_sigint() -> None:
            if bye.interrupted:
                bye.leave_now()
            bye.interrupted = True
            threading.Thread(target=watchdog, name="ctrl-c-grace", daemon=True).start()
            task.cancel()

        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (NotImplementedError, RuntimeError):  # no asyncio signal handling here: KeyboardInterrupt instead
            pass
        try:
            return await task
        finally:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signal.SIGINT)

    try:
        code = asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        bye.say()
        return EXIT_INTERRUPTED
    except Exception:
        if not bye.interrupted:
            raise
        # Whatever broke while everything was being torn down after Ctrl-C is not the user's news.
        bye.say()
        return EXIT_INTERRUPTED
    if bye.interrupted:
        bye.say()
        return EXIT_INTERRUPTED
    return code
