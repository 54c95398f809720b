"""Which finished responses a ``previous_response_id`` can still reach.

Two places hold them:

- :class:`ResponseStore`, emulator-wide: every response created with ``store`` true (the API's
  default) that did not fail. It outlives connections, like the server's persistent storage.
- :class:`ConnectionCache`, per connection: one slot per lane holding that lane's latest
  finished response. **A lane's slot is replaced when the lane's next response finishes** (not
  when it is created), so a create queued behind a running response on the same lane finds the
  running one once it has ended, and a fork from a lane stays valid while that lane's next
  response is still streaming. Completed, incomplete (steered, truncated) and cancelled
  responses take their lane's slot; a failed one never does. A same-lane continuation that fails,
  or that is refused with an ``error`` (as the Open Responses specification requires of a
  continuation failing with a 4xx or 5xx), evicts its parent from the slot; a failed fork from
  another lane leaves that lane's slot alone.
  The whole cache goes with the connection. On a connection without lanes (multiplexing
  ``none``) every response is on the default lane, so the cache is one slot: the connection's
  most recent finished response, as Azure OpenAI documents.

A cached entry holds the full conversation (parent's conversation + input + output), so a chain
is read without walking it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .conversation import Item


@dataclass(frozen=True)
class CachedResponse:
    response_id: str
    lane: str | None
    conversation: tuple[Item, ...]


class ResponseStore:
    """Stored responses, reachable from any connection of the emulator."""

    def __init__(self) -> None:
        self._responses: dict[str, CachedResponse] = {}

    def put(self, response: CachedResponse) -> None:
        self._responses[response.response_id] = response

    def get(self, response_id: str) -> CachedResponse | None:
        return self._responses.get(response_id)

    def __len__(self) -> int:
        return len(self._responses)


class ConnectionCache:
    """The per-lane slots of one connection, backed by the emulator's store."""

    def __init__(self, store: ResponseStore) -> None:
        self._store = store
        self._slots: dict[str | None, CachedResponse] = {}

    def lookup(self, response_id: str) -> CachedResponse | None:
        for cached in self._slots.values():
            if cached.response_id == response_id:
                return cached
        return self._store.get(response_id)

    def slot(self, lane: str | None) -> CachedResponse | None:
        return self._slots.get(lane)

    def finished(self, response: CachedResponse, *, failed: bool, stored: bool, parent_id: str | None) -> None:
        """Apply the slot rules to a response that just sent its terminal event."""
        lane = response.lane
        if not failed:
            self._slots[lane] = response
            if stored:
                self._store.put(response)
        elif parent_id is not None:
            self.evict(parent_id, lane)

    def evict(self, parent_id: str, lane: str | None) -> None:
        """A continuation on ``lane`` failed or was refused: its parent leaves that lane's slot.

        Only that lane's: a failed fork from another lane leaves the other lane's slot alone. A
        stored parent is still found in the store.
        """
        current = self._slots.get(lane)
        if current is not None and current.response_id == parent_id:
            del self._slots[lane]
