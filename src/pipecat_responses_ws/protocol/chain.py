"""Incremental input: which cached response can the next request continue from?

With ``store: false`` the server keeps, per connection, the latest response of each lane. We
track explicitly what each of those responses holds (the conversation as segments of item
keys) instead of hashing the context, and continue from whichever one is the longest prefix of
the context Pipecat hands us. That handles the cases where a hash-based match falls back to
the full context:

- parallel tool calls: the context interleaves ``[call1, out1, call2, out2]`` while the server
  holds ``[call1, call2]``; outputs of a response's calls may appear anywhere inside its group;
- barge-in: the context holds the spoken prefix, not the generated text, so the interrupted
  response is never a parent; its predecessor (still cached on another lane) is;
- reconnect: a new connection knows nothing, so the first request sends the full context
  instead of paying for a ``previous_response_not_found`` round trip.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from .items import ConversationKeys, ItemKey, call_id_of, is_function_call_output, item_key


@dataclass(frozen=True)
class Segment:
    """Items the server holds in order (request input) or as a group (one response's output)."""

    keys: tuple[ItemKey, ...]
    ordered: bool


@dataclass(frozen=True)
class KnownResponse:
    """A response the server holds in its connection-local cache, and the conversation it ends."""

    response_id: str
    lane: str | None
    segments: tuple[Segment, ...]
    serial: int
    # Every segment's keys in the order they came: the common case is one comparison with these.
    keys: tuple[ItemKey, ...]


@dataclass(frozen=True)
class InputPlan:
    """What to send: the parent to continue from (if any) and the items the server lacks."""

    previous_response_id: str | None
    input: list[dict[str, Any]]
    parent: KnownResponse | None
    # The keys of ``input`` as it was sent: a completed response is recorded with them, as what the
    # server holds, even if an item is edited in place afterwards.
    input_keys: tuple[ItemKey, ...]

    @classmethod
    def whole(cls, full_input: list[dict[str, Any]]) -> InputPlan:
        """All of ``full_input``, continuing nothing."""
        return cls(None, list(full_input), None, tuple(map(item_key, full_input)))

    @property
    def incremental(self) -> bool:
        return self.previous_response_id is not None


def _match(segments: tuple[Segment, ...], items: list[dict[str, Any]], keys: list[ItemKey]) -> list[int] | None:
    """Indices of ``items`` the server does not hold yet, or None when the chain is no prefix."""
    position = 0
    moved: list[tuple[int, ItemKey]] = []  # outputs found inside a response's group, sent after it
    for segment in segments:
        if segment.ordered:
            if not moved:
                # The common case, compared at C speed: a long call's history is hundreds of items.
                end = position + len(segment.keys)
                if tuple(keys[position:end]) != segment.keys:
                    return None
                position = end
                continue
            for key in segment.keys:
                held = next((n for n, (_, k) in enumerate(moved) if k == key), None)
                if held is not None:
                    del moved[held]
                elif position < len(keys) and keys[position] == key:
                    position += 1
                else:
                    return None
            continue
        end = position + len(segment.keys)
        if tuple(keys[position:end]) == segment.keys:
            # The common case: the context holds the response's output in the order it came.
            position = end
            continue
        remaining = Counter(segment.keys)
        calls = {call_id_of(key) for key in segment.keys if key[0] == "function_call"}
        left = len(segment.keys)
        while left:
            if position >= len(keys):
                return None
            key = keys[position]
            if remaining[key]:
                remaining[key] -= 1
                left -= 1
            elif is_function_call_output(key) and call_id_of(key) in calls:
                moved.append((position, key))
            else:
                return None
            position += 1
    return [index for index, _ in moved] + list(range(position, len(items)))


@dataclass
class ServerChains:
    """What the server of one connection holds, one entry per lane. Pure bookkeeping."""

    _by_lane: dict[str | None, KnownResponse] = field(default_factory=dict)
    _serial: int = 0
    _history: ConversationKeys = field(default_factory=ConversationKeys)

    def plan(self, full_input: list[dict[str, Any]]) -> InputPlan:
        """Continue from the cached response that covers the longest prefix of ``full_input``."""
        keys = self._history.of(full_input)
        best: tuple[int, int, KnownResponse, list[int]] | None = None
        for known in self._by_lane.values():
            held = known.keys
            if tuple(keys[: len(held)]) == held:
                # The context holds the conversation in the order the server took and gave it.
                missing: list[int] | None = list(range(len(held), len(full_input)))
            else:
                missing = _match(known.segments, full_input, keys)
            if missing is None:
                continue
            rank = (len(full_input) - len(missing), known.serial)
            if best is None or rank > best[:2]:
                best = (*rank, known, missing)
        if best is None:
            return InputPlan(None, list(full_input), None, tuple(keys))
        known, missing = best[2], best[3]
        return InputPlan(
            known.response_id, [full_input[i] for i in missing], known, tuple(map(keys.__getitem__, missing))
        )

    def claim_lane(self, lane: str | None) -> None:
        """A request is about to run on ``lane``: whatever that lane cached will be replaced."""
        self._by_lane.pop(lane, None)

    def record(
        self,
        response_id: str,
        lane: str | None,
        plan: InputPlan,
        output: list[dict[str, Any]],
    ) -> KnownResponse:
        """A response completed: the server now holds its conversation (``plan``'s parent, its
        input, then ``output``) as the lane's entry."""
        parent = plan.parent
        segments, keys = (parent.segments, parent.keys) if parent is not None else ((), ())
        for segment_keys, ordered in ((plan.input_keys, True), (tuple(map(item_key, output)), False)):
            if segment_keys:
                segments += (Segment(segment_keys, ordered=ordered),)
                keys += segment_keys
        self._serial += 1
        known = KnownResponse(response_id, lane, segments, self._serial, keys)
        self._by_lane[lane] = known
        return known

    def forget(self, response_id: str) -> None:
        """The server no longer holds ``response_id`` (a miss, or a failed continuation)."""
        for lane, known in list(self._by_lane.items()):
            if known.response_id == response_id:
                del self._by_lane[lane]

    def keep_latest(self) -> None:
        """The server keeps one response per connection (no lanes): only the newest can be a parent."""
        if self._by_lane:
            latest = max(self._by_lane.values(), key=lambda known: known.serial)
            self._by_lane = {None: replace(latest, lane=None)}

    def clear(self) -> None:
        self._by_lane.clear()

    def staleness(self, lane: str | None) -> int:
        """How recently ``lane``'s entry was made (0 = nothing cached): reuse stale lanes first."""
        known = self._by_lane.get(lane)
        return known.serial if known is not None else 0

    def __len__(self) -> int:
        return len(self._by_lane)
