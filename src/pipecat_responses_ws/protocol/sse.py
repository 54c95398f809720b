"""Server-sent events, without I/O: the ``data`` of each event from the stream's lines.

The parts of the WHATWG event-stream format the Responses API uses: ``data:`` lines (several
are joined with line breaks), a blank line ending the event, ``:`` comments (keep-alives).
``event:`` names are ignored, as each event's JSON carries its ``type``; an event the stream
ends in the middle of is dropped, as the format requires.
"""

from __future__ import annotations


class ServerSentEvents:
    """Fed one line at a time (without its line break); returns an event's data when it ends."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        if not line:
            if not self._data:
                return None
            data = "\n".join(self._data)
            self._data = []
            return data
        if line.startswith("data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)
        # Anything else is a comment, an event name, an id or a retry hint: nothing to act on.
        return None
