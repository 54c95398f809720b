"""Start tools early, answer the model once: the release rule for function call results.

Each call starts at its ``output_item.done``, while the response may still announce more calls.
Pipecat's assistant aggregator runs the LLM again when the last *known* call of a group has a
result, so a fast first tool could trigger a follow-up before its sibling was even announced.
The gate holds a response's results until its terminal event has been read (the group is then
complete), and from then on lets each through with ``run_llm=False`` except the one that settles
the group. The model sees every output in one follow-up request, never a half group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Group:
    pending: set[str] = field(default_factory=set)  # calls whose final result has not been released
    held: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    quiet: bool = False  # abandoned or failed: record results, never trigger a follow-up


@dataclass
class ToolResultGate:
    """Decides, per ``FunctionCallResultFrame``, whether to release it now and with which ``run_llm``."""

    _groups: dict[str, _Group] = field(default_factory=dict)  # response key -> group
    _group_of: dict[str, str] = field(default_factory=dict)  # call id -> response key

    def add_call(self, response_key: str, call_id: str) -> None:
        """A call of this response started; its final result is owed before the follow-up."""
        self._groups.setdefault(response_key, _Group()).pending.add(call_id)
        self._group_of[call_id] = response_key

    def on_result(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        """A final result: the results to broadcast now (possibly none, possibly adjusted)."""
        key = self._group_of.get(str(result.get("tool_call_id")))
        group = self._groups.get(key) if key is not None else None
        if group is None:
            return [result]
        if not group.closed:
            group.held.append(result)
            return []
        return self._release(key, [result])  # type: ignore[arg-type]

    def close(self, response_key: str, *, run_llm: bool = True) -> list[dict[str, Any]]:
        """The response's terminal event was read (or it was abandoned): release what was held.

        ``run_llm=False`` (abandoned, failed) records this group's results, now and later,
        without asking for a follow-up.
        """
        group = self._groups.get(response_key)
        if group is None:
            return []
        group.closed = True
        group.quiet = group.quiet or not run_llm
        held, group.held = group.held, []
        return self._release(response_key, held)

    def _release(self, key: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        group = self._groups[key]
        for result in results:
            call_id = str(result.get("tool_call_id"))
            group.pending.discard(call_id)
            self._group_of.pop(call_id, None)
            if group.pending or group.quiet:
                # A sibling is still running (the last one triggers), or nobody wants a follow-up.
                result["run_llm"] = False
        if not group.pending:
            del self._groups[key]
        return results

    def cancel_call(self, call_id: str) -> None:
        """A call was cancelled (interruption): nothing more is owed for it."""
        key = self._group_of.pop(call_id, None)
        group = self._groups.get(key) if key is not None else None
        if group is not None:
            group.pending.discard(call_id)
            if group.closed and not group.pending and not group.held:
                del self._groups[key]  # type: ignore[arg-type]
