"""The Open Responses specification's own schemas, for checking what the emulator sends.

The OpenAPI document is vendored beside this module (``openresponses/``), so the check needs no
network and no checkout of the specification. Validation is by :mod:`jsonschema` against the
document's components, not by field lists of our own: a field the specification requires and the
emulator leaves out, or sends with the wrong type, fails here.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT = Path(__file__).parent / "openresponses" / "openapi.json"
DOCUMENT_URI = "urn:openresponses:openapi"

# Events of WebSocket mode that the specification does not define (PROTOCOL.md §2.3): not checked here.
OUTSIDE_THE_SPEC = frozenset({"response.steer.accepted", "response.steer.failed", "response.steer.pending"})


@cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return document


@cache
def _validator(component: str) -> Draft202012Validator:
    resource = Resource.from_contents(_document(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    schema = {"$ref": f"{DOCUMENT_URI}#/components/schemas/{component}"}
    return Draft202012Validator(schema, registry=registry)


@cache
def _stream_event_components() -> dict[str, str]:
    """Each event type of an HTTP stream, mapped to its component, read from ``POST /responses``."""
    answers = _document()["paths"]["/responses"]["post"]["responses"]["200"]["content"]
    components: dict[str, str] = {}
    for reference in answers["text/event-stream"]["schema"]["oneOf"]:
        name = reference["$ref"].rsplit("/", 1)[-1]
        event_type = _document()["components"]["schemas"][name]["properties"]["type"]["enum"][0]
        components[event_type] = name
    return components


def check(instance: Any, component: str) -> None:
    """``instance`` must be valid against the component schema ``component``; the assertion names the worst error."""
    error = best_match(_validator(component).iter_errors(instance))
    if error is not None:
        where = "/".join(str(step) for step in error.absolute_path) or "(root)"
        raise AssertionError(f"not a valid {component} at {where}: {error.message}\n{json.dumps(instance)[:2000]}")


def check_response(response: Any) -> None:
    """A ``Response`` object, as a JSON answer or inside a lifecycle event."""
    check(response, "ResponseResource")


def check_compaction(answer: Any) -> None:
    """The answer of ``POST /responses/compact``."""
    check(answer, "CompactResource")


def check_event(event: dict[str, Any], *, websocket: bool) -> None:
    """A streamed event; an ``error`` on a WebSocket is the specification's WebSocket envelope."""
    event_type = event.get("type")
    if event_type in OUTSIDE_THE_SPEC:
        return
    if event_type == "error":
        if websocket:
            check(event, "WebSocketErrorEvent")
        # An HTTP stream's error keeps the flat form of the SDK's ResponseErrorEvent (checked
        # against the SDK instead): the specification's nested ``error`` makes the SDK raise
        # APIError on the event rather than yield it.
        return
    component = _stream_event_components().get(str(event_type))
    assert component is not None, f"the specification defines no event {event_type!r}: {event}"
    check(event, component)
