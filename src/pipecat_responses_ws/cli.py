"""Command line: ``pipecat-responses-ws demo | serve | harness``, and ``--version``.

Each subcommand registers itself with :func:`build_parser` through an ``add_*`` function that
sets ``handler``; :func:`main` parses and dispatches, so adding a command touches nothing else.
One Ctrl-C ends any command with a one-line goodbye on stderr and exit status 130
(:mod:`.interrupt`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from . import interrupt
from .arguments import USAGE_ERROR, OneLineParser, log_level
from .log import logger

if TYPE_CHECKING:
    from .emulator import Emulator

Handler = Callable[[argparse.Namespace], int]

# Where serve listens unless told: a port a README command can name (Emulator(...) picks a free one).
DEFAULT_PORT = 8765


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the Responses WebSocket emulator (HTTP too, on the same port) until interrupted",
        description="Serve the Responses WebSocket protocol, and POST /v1/responses on the same port, locally "
        "with a deterministic scripted model.",
    )
    from .emulator.faults import describe_kinds
    from .emulator.options import add_flags
    from .emulator.settings import Settings

    # Every option of the emulator, as Emulator(...) takes it; a served one listens on a port of its own by default.
    add_flags(parser, Settings, defaults={"port": DEFAULT_PORT})
    parser.add_argument(
        "--script",
        metavar="FILE",
        default=None,
        help="a JSON file of replies and faults for the generated responses, in order "
        '({"replies": [{"text": ...}, {"calls": [{"name": ..., "arguments": {...}}]}], "faults": [...]}); '
        "after the last reply the scripted model answers. Fault kinds, with what each reads: " + describe_kinds(),
    )
    parser.add_argument(
        "--log-level", type=log_level, default="INFO", help="loguru level, e.g. DEBUG for every event (default: INFO)"
    )
    parser.set_defaults(handler=_serve)


def add_harness_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Listed for --help only: main() hands everything after "harness" to the harness's own parser.
    commands.add_parser("harness", help="barge-ins, tools and faults against any Pipecat LLM service")


def package_version() -> str:
    """The installed distribution's version, as pip reports it."""
    try:
        return version("pipecat-responses-ws")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = OneLineParser(
        prog="pipecat-responses-ws",
        description="OpenAI Responses API over one WebSocket, for Pipecat: emulator, demo and harness.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    with quiet_pipecat_import():
        from .demo import add_demo_command  # imports Pipecat: only when the parser is built

    add_demo_command(commands)
    add_serve_command(commands)
    add_harness_command(commands)
    for command in commands.choices.values():
        # So that an unknown flag is reported by the command's parser, whose usage it belongs to.
        command.set_defaults(command_parser=command)
    return parser


@contextlib.contextmanager
def quiet_pipecat_import() -> Iterator[None]:
    """Pipecat logs a banner at INFO when first imported; on a command line it is noise above the output."""
    logger.disable("pipecat")
    try:
        yield
    finally:
        logger.enable("pipecat")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """The arguments; an unknown flag is reported by its command's parser, whose usage it belongs to."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command_parser: argparse.ArgumentParser = args.command_parser
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # answered without importing Pipecat, as build_parser() would
        print(f"pipecat-responses-ws {package_version()}")
        return 0
    try:
        if argv[:1] == ["harness"]:
            with quiet_pipecat_import():
                from .harness.__main__ import main as harness_main

            return harness_main(argv[1:])
        args = parse(build_parser(), argv)
        handler: Handler = args.handler
        return handler(args)
    except KeyboardInterrupt:  # Ctrl-C before a command's event loop runs (Pipecat's imports take a while)
        print("interrupted", file=sys.stderr)
        return interrupt.EXIT_INTERRUPTED


def _serve(args: argparse.Namespace) -> int:
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    try:
        emulator = _emulator(args)
    except ValueError as exc:
        # Flags that are each valid but do not go together (--stream-id reject needs --multiplexing none),
        # and a --script file that cannot be read into replies and faults.
        print(f"serve: {exc}", file=sys.stderr)
        return USAGE_ERROR
    serving = _serve_until_stopped(emulator, args.host, args.port)
    return interrupt.run(serving, goodbye="serve: interrupted; the emulator is stopped")


def _emulator(args: argparse.Namespace) -> Emulator:
    from .emulator import Emulator
    from .emulator.script import load_script
    from .emulator.settings import Settings

    # Read first: a wrong file is a ScriptFileError (a ValueError), one line and exit status 2.
    script = load_script(args.script) if args.script is not None else None
    emulator = Emulator(**{option.name: getattr(args, option.name) for option in fields(Settings)})
    if script is not None:
        emulator.queue_replies(*script.replies)
        for fault in script.faults:
            emulator.add_fault(fault)
    return emulator


async def _serve_until_stopped(emulator: Emulator, host: str, port: int) -> int:
    """Serve until SIGTERM (exit status 0) or Ctrl-C (:func:`.interrupt.run` makes that 130)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Not every platform lets asyncio handle signals; there SIGTERM ends the process as it would anyway.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await emulator.start()
    except OSError as e:
        print(f"serve: {cannot_listen(e, host, port)}", file=sys.stderr)
        return USAGE_ERROR
    try:
        print(f"ws_url:   {emulator.ws_url}", flush=True)
        print(f"base_url: {emulator.base_url}", flush=True)
        print(f"http_base_url: {emulator.http_base_url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()
    finally:
        await emulator.stop()
    print("stopped", flush=True)
    return 0


def cannot_listen(error: OSError, host: str, port: int) -> str:
    """Why the emulator cannot listen where it was asked to, and what to do about it, in one line."""
    where = f"{host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return f"port {port} is in use on {host}; pick another with --port, or --port 0 for a free one"
    if error.errno == errno.EACCES:
        return f"not allowed to listen on {where} (ports below 1024 need privileges); pick another --port"
    if isinstance(error, socket.gaierror):
        return f"cannot listen on {host!r}: no such host; --host takes an address of this machine, such as 127.0.0.1"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host!r}: not an address of this machine; try 127.0.0.1, or 0.0.0.0 for every one"
    return f"cannot listen on {where}: {error.strerror or error}"
