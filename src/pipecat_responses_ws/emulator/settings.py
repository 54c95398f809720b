"""What every connection of one emulator shares: its settings, script, records, store and ids."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from .cache import ResponseStore
from .handshake import WEBSOCKET_POLICIES
from .http_wire import STREAM_ENDS
from .records import Records
from .script import Script, check_delta_chars
from .session import CANCEL_POLICIES, MULTIPLEXING_MODES, STREAM_ID_POLICIES


@dataclass(frozen=True)
class Settings:
    api_key: str | None = None
    cancel_policy: str = "error"
    ttft: float = 0.05
    tokens_per_second: float = 100.0
    jitter: float = 0.0
    seed: int = 0
    max_connection_age: float = 3600.0
    age_limit_close_code: int = 1011
    model: str = "emulated"
    # A real handshake costs TCP + TLS + the upgrade, round trips away; loopback costs none of that.
    handshake_delay: float = 0.0
    # "lanes" as OpenAI runs them; "none" for servers that run one response at a time (see .session).
    multiplexing: str = "lanes"
    # With multiplexing "none": whether a create's stream_id is dropped ("ignore") or refused ("reject").
    stream_id_policy: str = "ignore"
    # None: a call's arguments stream in at most three deltas; N: in N-character deltas, as some gateways cut them.
    argument_delta_chars: int | None = None
    # "refuse": every upgrade is answered with 426, as by a gateway without WebSocket mode; HTTP still works.
    websocket: str = "accept"
    # How a streamed HTTP answer ends: "terminal" (OpenAI's) or "done" (a data: [DONE] first, as Open Responses).
    stream_end: str = "terminal"

    def __post_init__(self) -> None:
        if self.cancel_policy not in CANCEL_POLICIES:
            raise ValueError(f"cancel_policy must be one of {sorted(CANCEL_POLICIES)}, not {self.cancel_policy!r}")
        if self.tokens_per_second <= 0:
            raise ValueError("tokens_per_second must be positive")
        if self.ttft < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("ttft must not be negative and jitter must be within [0, 1]")
        if self.max_connection_age <= 0:
            raise ValueError("max_connection_age must be positive")
        if self.handshake_delay < 0:
            raise ValueError("handshake_delay must not be negative")
        if self.multiplexing not in MULTIPLEXING_MODES:
            raise ValueError(f"multiplexing must be one of {sorted(MULTIPLEXING_MODES)}, not {self.multiplexing!r}")
        if self.stream_id_policy not in STREAM_ID_POLICIES:
            raise ValueError(
                f"stream_id_policy must be one of {sorted(STREAM_ID_POLICIES)}, not {self.stream_id_policy!r}"
            )
        if self.stream_id_policy == "reject" and self.multiplexing == "lanes":
            # Refusing stream_id where lanes exist would be a profile no server has, so it is a mistake, not a choice.
            raise ValueError("stream_id_policy 'reject' needs multiplexing 'none'; a server with lanes takes stream_id")
        check_delta_chars(self.argument_delta_chars)
        if self.websocket not in WEBSOCKET_POLICIES:
            raise ValueError(f"websocket must be one of {sorted(WEBSOCKET_POLICIES)}, not {self.websocket!r}")
        if self.stream_end not in STREAM_ENDS:
            raise ValueError(f"stream_end must be one of {sorted(STREAM_ENDS)}, not {self.stream_end!r}")

    def __repr__(self) -> str:
        # Settings end up in logs and assertion messages; the key must not.
        key = None if self.api_key is None else "<redacted>"
        return (
            f"Settings(api_key={key}, cancel_policy={self.cancel_policy!r}, ttft={self.ttft}, "
            f"tokens_per_second={self.tokens_per_second}, jitter={self.jitter}, seed={self.seed}, "
            f"max_connection_age={self.max_connection_age}, age_limit_close_code={self.age_limit_close_code}, "
            f"model={self.model!r}, handshake_delay={self.handshake_delay}, multiplexing={self.multiplexing!r}, "
            f"stream_id_policy={self.stream_id_policy!r}, argument_delta_chars={self.argument_delta_chars}, "
            f"websocket={self.websocket!r}, stream_end={self.stream_end!r})"
        )


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
