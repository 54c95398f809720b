"""Server-sent events, without I/O: the ``data`` of each event, from the stream's bytes as they arrive.

The parts of the WHATWG event-stream format the Responses API uses: ``data:`` lines (several
are joined with line breaks), a blank line ending the event, ``:`` comments (keep-alives).
``event:`` names are ignored, as each event's JSON carries its ``type``; an event the stream
ends in the middle of is dropped, as the format requires.

A line ends at CR, LF or CRLF and nowhere else. A general-purpose line splitter (``str.splitlines``,
the HTTP client's ``iter_lines``) also ends lines at U+2028, U+2029, U+0085 and a few control
characters, which JSON carries unescaped inside strings: it would cut a text delta in two,
losing that event and, when the stream then ends, the terminal one. So the stream is split as
bytes, before decoding: CR and LF never occur inside a multi-byte UTF-8 sequence, so each line
decodes whole however the chunks cut it, and a CR that ends one chunk makes the LF starting the
next one part of the same line break.
"""

from __future__ import annotations

import re

# The data of the event some servers send after the terminal one (the Open Responses
# specification, gateways that also serve Chat Completions); OpenAI's ends the body instead.
DONE = "[DONE]"

_LINE_END = re.compile(rb"\r\n?|\n")


def is_event_stream(content_type: str | None) -> bool:
    """Whether an answer with this ``Content-Type`` is read as events: ``text/event-stream``, as the
    format requires, or no type at all (a bare server); a web page or a JSON body never is."""
    if content_type is None:
        return True
    return content_type.partition(";")[0].strip().lower() == "text/event-stream"


class ServerSentEvents:
    """Fed the body's chunks in order; returns the data of every event each chunk completes."""

    __slots__ = ("_after_cr", "_data", "_partial")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._partial = bytearray()  # the start of a line whose end has not arrived yet
        self._after_cr = False  # the last chunk ended in CR: an LF starting the next one ends no line

    def feed(self, chunk: bytes) -> list[str]:
        if not chunk:
            return []
        start = 1 if self._after_cr and chunk[:1] == b"\n" else 0
        self._after_cr = False
        events: list[str] = []
        for match in _LINE_END.finditer(chunk, start):
            if self._partial:
                self._partial += chunk[start : match.start()]
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = chunk[start : match.start()]
            data = self._line(line.decode("utf-8", errors="replace"))
            if data is not None:
                events.append(data)
            start = match.end()
        if start < len(chunk):
            self._partial += chunk[start:]
        elif chunk.endswith(b"\r"):
            self._after_cr = True
        return events

    def _line(self, line: str) -> str | None:
        if not line:
            if not self._data:
                return None
            data = "\n".join(self._data)
            self._data = []
            return data
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        # Anything else is a comment, an event name, an id or a retry hint: nothing to act on.
        return None
