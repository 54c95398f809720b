"""The emulator's options (:class:`Settings`), and what its connections share: settings, script, records, store, ids."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..arguments import port
from .cache import ResponseStore
from .handshake import WEBSOCKET_POLICIES
from .http_wire import STREAM_ENDS
from .options import (
    check_options,
    close_code,
    fraction,
    not_negative,
    option,
    port_number,
    positive,
    positive_int_or_none,
    redacted_repr,
)
from .records import Records
from .script import Script
from .session import CANCEL_POLICIES, MULTIPLEXING_MODES, STREAM_ID_POLICIES


@dataclass(frozen=True)
class Settings:
    """The emulator's options, declared once: ``Emulator(...)`` takes them as keywords and ``serve`` as flags.

    Each field's :class:`~.options.Option` carries its help (what ``serve --help`` prints) and its bounds.
    """

    api_key: str | None = option(
        None, "require this key, as a bearer token or an api-key header", default_text="any", secret=True
    )
    cancel_policy: str = option(
        "error", "what response.cancel does: answer it with an error, ignore it, or honour it", choices=CANCEL_POLICIES
    )
    ttft: float = option(0.05, "seconds to the first delta", check=not_negative)
    tokens_per_second: float = option(100.0, "delta rate", check=positive)
    jitter: float = option(0.0, "± fraction of each token interval", check=fraction)
    seed: int = option(0, "seed of the jitter")
    max_connection_age: float = option(3600.0, "seconds before the age limit", check=positive)
    age_limit_close_code: int = option(1011, "close code after the age limit", check=close_code)
    host: str = option("127.0.0.1", "address to bind")
    port: int = option(0, "port; 0 picks a free one", check=port_number, parse=port)
    model: str = option("emulated", "the model a response names when its create names none")
    handshake_delay: float = option(
        0.0,
        "seconds before answering each WebSocket upgrade and each new HTTP connection, a stand-in for the TCP "
        "and TLS round trips of a real endpoint (loopback costs none of that)",
        check=not_negative,
    )
    multiplexing: str = option(
        "lanes",
        "lanes as OpenAI runs them, or none: one response at a time per connection, as Azure OpenAI, LocalAI "
        "and vLLM do",
        choices=MULTIPLEXING_MODES,
    )
    stream_id_policy: str = option(
        "ignore",
        "with multiplexing none: drop a create's stream_id, or refuse the create with an unknown_parameter error",
        choices=STREAM_ID_POLICIES,
        flag="--stream-id",
    )
    argument_delta_chars: int | None = option(
        None,
        "stream function-call arguments N characters per delta, as some gateways cut them",
        check=positive_int_or_none,
        metavar="N",
        default_text="at most three deltas per call",
    )
    websocket: str = option(
        "accept",
        "refuse: answer every WebSocket upgrade with HTTP 426, as a gateway without WebSocket mode does, "
        "while POST /v1/responses still works",
        choices=WEBSOCKET_POLICIES,
    )
    stream_end: str = option(
        "terminal",
        "how a streamed HTTP answer ends: terminal, right after its terminal event as OpenAI's, or done, with "
        "data: [DONE] after it as the Open Responses specification has it",
        choices=STREAM_ENDS,
    )

    def __post_init__(self) -> None:
        check_options(self)
        if self.stream_id_policy == "reject" and self.multiplexing == "lanes":
            # Refusing stream_id where lanes exist would be a profile no server has, so it is a mistake, not a choice.
            raise ValueError("stream_id_policy 'reject' needs multiplexing 'none'; a server with lanes takes stream_id")

    def __repr__(self) -> str:
        # Settings end up in logs and assertion messages; the key must not.
        return redacted_repr(self)


class Ids:
    """Counter-based ids (``resp_000001``, ``msg_000001``, …), unique per emulator and reproducible."""

    def __init__(self) -> None:
        self._counters: Counter[str] = Counter()

    def __call__(self, prefix: str) -> str:
        self._counters[prefix] += 1
        return f"{prefix}_{self._counters[prefix]:06d}"


@dataclass
class Shared:
    settings: Settings
    script: Script = field(default_factory=Script)
    records: Records = field(default_factory=Records)
    store: ResponseStore = field(default_factory=ResponseStore)
    new_id: Ids = field(default_factory=Ids)
    # One numbering for WebSocket connections and HTTP requests, so records never mix two up.
    connection_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
