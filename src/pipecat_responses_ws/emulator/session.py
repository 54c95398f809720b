"""One connection's protocol state, without I/O: client events in, decisions out.

Decides which responses run (FIFO per lane, at most 16 in flight across lanes), what
``previous_response_id`` resolves to (:mod:`.cache`), and what ``response.cancel`` and
``response.steer`` do. The asyncio layer carries the decisions out and reports each terminal
event back through :meth:`ConnectionState.finished`.

``response.cancel`` (undocumented, so a policy):

- ``error``: a connection-level ``error`` (``unknown_event_type``); the response keeps streaming.
- ``ignore``: nothing.
- ``honor``: the response stops at once and ends with ``response.incomplete`` whose
  ``response.status`` is ``cancelled`` (see ``ResponseEventWriter.cancelled``). A missing
  ``response_id`` cancels the running default-lane response, as Realtime does; a response that
  already ended is left alone (a cancel racing the terminal is normal); an id this connection
  never started gets a connection-level ``error`` with code ``response_not_found``.

``response.steer`` (kept modest): a running target gets ``response.steer.accepted``, ends with
``response.incomplete`` (reason ``steered``) once no output item is open, and a successor with the
same settings, the steer input as input and the target as parent starts on the same lane ahead
of anything queued there. Several steers before that boundary are merged, in order.
``response.steer.pending`` is never sent.

An expired connection (the ``connection_limit`` faults, :meth:`ConnectionState.expire`) stays
open but takes no more work: every create, new or still queued, is refused with
``websocket_connection_limit_reached`` and never becomes a response, while responses already
streaming finish. The socket is left open because the protocol does not say whether the server
closes it; a client must act on the error alone.

Multiplexing ``none`` is the profile of servers without lanes (Azure OpenAI's WebSocket mode,
LocalAI, vLLM, load simulators): every create is a default-lane job, so the connection runs one
response at a time in arrival order, no event carries ``stream_id``, the cache keeps one slot
(the connection's latest finished response) and the 32-lane limit never applies. Whether such a
server ignores a create's ``stream_id`` or refuses it is not documented, so it is a policy:
``ignore`` drops the field before any check (an invalid value is not an error either); ``reject``
answers a create that has the key at all, whatever its value, with a connection-level ``error``
(``unknown_parameter``, param ``stream_id``) and creates no response, as a server that refuses
unknown parameters would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..protocol import wire
from . import builders
from .cache import CachedResponse, ConnectionCache, ResponseStore
from .conversation import Item, steer_input_items, unanswerable_call_output
from .requests import (
    CreateRequest,
    check_create,
    connection_limit_error,
    no_tool_call_error,
    not_found_error,
    steer_echo,
    unknown_parameter_error,
    unknown_type_error,
)

CANCEL_POLICIES = frozenset({"error", "ignore", "honor"})
MULTIPLEXING_MODES = frozenset({"lanes", "none"})
STREAM_ID_POLICIES = frozenset({"ignore", "reject"})
RUNNING, QUEUED = "in_progress", "queued"
# A job cut by the connection's expiry: it sent no terminal and never will.
EXPIRED = "expired"


@dataclass(eq=False)
class Job:
    """A response from the accepted create to its terminal event."""

    response_id: str
    lane: str | None
    request: dict[str, Any]
    input_items: list[Item]
    parent_id: str | None
    generate: bool
    status: str = QUEUED
    history: tuple[Item, ...] = ()
    writer: builders.ResponseEventWriter | None = None
    output: list[Item] = field(default_factory=list)
    end_reason: str | None = None
    steers: list[tuple[str, list[Item]]] = field(default_factory=list)
    successor_of: str | None = None


@dataclass(frozen=True)
class Send:
    event: dict[str, Any]


@dataclass(frozen=True)
class Accepted:
    """A create was accepted; the job waits in its lane until :class:`Start`."""

    job: Job


@dataclass(frozen=True)
class Start:
    job: Job


@dataclass(frozen=True)
class Dropped:
    """A queued job that will never start (its parent was gone when its turn came, or the connection expired)."""

    job: Job


@dataclass(frozen=True)
class Cancel:
    """The client asked to cancel ``job``; ``stop`` says whether the policy honours it."""

    job: Job
    stop: bool


@dataclass(frozen=True)
class Steer:
    job: Job


Action = Send | Accepted | Start | Dropped | Cancel | Steer


class ConnectionState:
    def __init__(
        self,
        *,
        store: ResponseStore,
        new_id: Callable[[str], str],
        cancel_policy: str = "error",
        model: str = "emulated",
        multiplexing: str = "lanes",
        stream_id_policy: str = "ignore",
    ) -> None:
        if cancel_policy not in CANCEL_POLICIES:
            raise ValueError(f"cancel_policy must be one of {sorted(CANCEL_POLICIES)}, not {cancel_policy!r}")
        if multiplexing not in MULTIPLEXING_MODES:
            raise ValueError(f"multiplexing must be one of {sorted(MULTIPLEXING_MODES)}, not {multiplexing!r}")
        if stream_id_policy not in STREAM_ID_POLICIES:
            raise ValueError(f"stream_id_policy must be one of {sorted(STREAM_ID_POLICIES)}, not {stream_id_policy!r}")
        self.cache = ConnectionCache(store)
        self.cancel_policy = cancel_policy
        self.lanes = multiplexing == "lanes"
        self.stream_id_policy = stream_id_policy
        self._model = model
        self._new_id = new_id
        self._lanes_seen: set[str] = set()
        self._pending: list[Job] = []
        self._running: dict[str, Job] = {}
        # Started jobs only: a queued job's id has not reached the client yet.
        self._started: dict[str, Job] = {}
        # None while the connection takes work; once expired, whether refusals echo the lane.
        self._expired_echo: bool | None = None

    @property
    def running(self) -> list[Job]:
        return list(self._running.values())

    @property
    def expired(self) -> bool:
        return self._expired_echo is not None

    def expire(self, job: Job, *, echo_lane: bool) -> list[Action]:
        """The connection reached its limit while ``job`` streamed: ``job`` ends here, without a terminal.

        ``echo_lane`` makes every refusal from now on carry the refused request's ``stream_id``
        when its lane is named; otherwise they are connection-level.
        """
        self._expired_echo = echo_lane
        self._running.pop(job.response_id, None)
        job.status = EXPIRED
        return [Send(self._expiry_error(job.lane)), *self._pump()]

    def handle(self, payload: dict[str, Any]) -> list[Action]:
        """The decisions for one client event (a JSON object already parsed from its frame)."""
        event_type = payload.get("type")
        if event_type == wire.RESPONSE_CREATE:
            return self._create(payload)
        if event_type == wire.RESPONSE_STEER:
            return self._steer(payload)
        if event_type == wire.RESPONSE_CANCEL:
            return self._cancel(payload)
        return [Send(unknown_type_error(event_type))]

    def finished(self, job: Job) -> list[Action]:
        """``job`` has sent its terminal event; its ``status``, ``output`` and ``end_reason`` are final."""
        self._running.pop(job.response_id, None)
        conversation = (*job.history, *job.input_items, *job.output)
        self.cache.finished(
            CachedResponse(job.response_id, job.lane, conversation),
            failed=job.status == "failed",
            stored=job.request.get("store", True) is not False,
            parent_id=job.parent_id,
        )
        actions: list[Action] = []
        if job.steers:
            actions += self._resolve_steers(job)
        return actions + self._pump()

    # -- response.create ------------------------------------------------------------------------

    def _create(self, payload: dict[str, Any]) -> list[Action]:
        unknown_stream_id = False
        if not self.lanes:
            # A server without lanes has no such parameter: it is gone before any check can read it.
            unknown_stream_id = "stream_id" in payload and self.stream_id_policy == "reject"
            payload = {key: value for key, value in payload.items() if key != "stream_id"}
        if self.expired:
            # Checked first: an expired connection refuses every create the same way, valid or not.
            lane = payload.get("stream_id")
            return [Send(self._expiry_error(lane if wire.is_valid_stream_id(lane) else None))]
        if unknown_stream_id:
            # Before the other checks, as a server validating its parameters' names first would.
            return [Send(unknown_parameter_error("stream_id"))]
        checked = check_create(payload, self._lanes_seen)
        if not isinstance(checked, CreateRequest):
            parent_id, lane = payload.get("previous_response_id"), payload.get("stream_id")
            if isinstance(parent_id, str) and (lane is None or wire.is_valid_stream_id(lane)):
                self.cache.evict(parent_id, lane)
            return [Send(checked)]
        if checked.lane is not None:
            self._lanes_seen.add(checked.lane)
        job = Job(
            self._new_id("resp"), checked.lane, checked.fields, checked.input_items, checked.parent_id, checked.generate
        )
        self._pending.append(job)
        return [Accepted(job), *self._pump()]

    def _expiry_error(self, lane: str | None) -> dict[str, Any]:
        return connection_limit_error(lane if self._expired_echo else None)

    def _pump(self) -> list[Action]:
        """Start every queued job whose lane is free, oldest first, while in-flight slots last."""
        actions: list[Action] = []
        if self.expired:
            # Nothing starts on an expired connection: each queued create is refused as a new one would be.
            for job in self._pending:
                actions += [Dropped(job), Send(self._expiry_error(job.lane))]
            self._pending.clear()
            return actions
        blocked = {job.lane for job in self._running.values()}
        for job in list(self._pending):
            if len(self._running) >= wire.MAX_IN_FLIGHT_RESPONSES:
                break
            if job.lane in blocked:
                continue
            self._pending.remove(job)
            parent = self.cache.lookup(job.parent_id) if job.parent_id is not None else None
            if job.parent_id is not None and parent is None:
                actions += [Dropped(job), Send(not_found_error(job.parent_id, job.lane))]
                continue
            job.history = parent.conversation if parent is not None else ()
            orphan = unanswerable_call_output(job.history, job.input_items)
            if orphan is not None:
                if job.parent_id is not None:
                    self.cache.evict(job.parent_id, job.lane)
                actions += [Dropped(job), Send(no_tool_call_error(orphan, job.lane))]
                continue
            model = job.request.get("model")
            job.writer = builders.ResponseEventWriter(
                job.response_id, model if isinstance(model, str) and model else self._model, job.lane, job.request
            )
            job.status = RUNNING
            self._running[job.response_id] = job
            self._started[job.response_id] = job
            blocked.add(job.lane)
            actions.append(Start(job))
        return actions

    # -- response.cancel ------------------------------------------------------------------------

    def _cancel(self, payload: dict[str, Any]) -> list[Action]:
        response_id = payload.get("response_id")
        job = self._started.get(response_id) if isinstance(response_id, str) else None
        if self.cancel_policy != "honor":
            actions: list[Action] = [Cancel(job, stop=False)] if job is not None else []
            if self.cancel_policy == "error":
                message = (
                    "Unknown event type 'response.cancel': response.cancel is not a supported event "
                    "of the Responses WebSocket API; the response continues."
                )
                actions.append(Send(builders.error_event(wire.UNKNOWN_EVENT, message, param="type")))
            return actions
        if response_id is None:
            job = next((j for j in self._running.values() if j.lane is None), None)
            return [Cancel(job, stop=True)] if job is not None else []
        if job is None:
            message = f"Response '{response_id}' was not started on this connection; nothing to cancel."
            return [Send(builders.error_event(wire.RESPONSE_NOT_FOUND, message, param="response_id"))]
        return [Cancel(job, stop=job.status == RUNNING)]

    # -- response.steer -------------------------------------------------------------------------

    def _steer(self, payload: dict[str, Any]) -> list[Action]:
        target_id = payload.get("previous_response_id")
        raw_input = payload.get("input")
        if not isinstance(target_id, str) or not target_id:
            message = "response.steer needs 'previous_response_id', the id of the response to steer."
            return [Send(builders.error_event(wire.INVALID_REQUEST, message, param="previous_response_id"))]
        items = steer_input_items(raw_input)
        echo = steer_echo(raw_input, items)
        job = self._started.get(target_id)

        def failed(code: str, message: str) -> list[Action]:
            if job is None or job.writer is None:
                return [Send(builders.steer_failed_event(code, message, target_id, echo))]
            return [Send(job.writer.steer_failed(code, message, echo))]

        if items is None:
            return failed(
                "invalid_input", "Steering input must be a non-empty string or a non-empty list of user messages."
            )
        if job is None or job.writer is None:
            return failed(wire.RESPONSE_NOT_FOUND, f"Response '{target_id}' is not active on this connection.")
        if job.status != RUNNING:
            if job.status == "completed":
                return failed("response_already_completed", f"Response '{target_id}' already completed.")
            return failed("response_not_active", f"Response '{target_id}' ended ({job.status}).")
        steer_id = self._new_id("steer")
        job.steers.append((steer_id, items))
        return [Send(job.writer.steer_accepted(steer_id)), Steer(job)]

    def _resolve_steers(self, job: Job) -> list[Action]:
        assert job.writer is not None, "a started job has a writer"
        if job.end_reason != "steered":
            message = f"Response '{job.response_id}' ended ({job.status}) before the steering input was applied."
            writer = job.writer
            return [Send(writer.steer_failed("response_not_active", message, items, sid)) for sid, items in job.steers]
        items = [item for _, steer_items in job.steers for item in steer_items]
        request = {**job.request, "input": items, "previous_response_id": job.response_id, "generate": True}
        successor = Job(self._new_id("resp"), job.lane, request, items, job.response_id, True)
        successor.successor_of = job.response_id
        # The successor takes over the lane before anything the client queued there.
        self._pending.insert(0, successor)
        return [Accepted(successor)]
