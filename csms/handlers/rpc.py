"""OCPP-J framing shared by both versions: parse frames, build replies, name RPC errors.

No business rules and no sockets here; the version adapters supply the error code names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import jsonschema_rs
import orjson

from csms.core.bounds import holds_nul

CALL = 2
CALLRESULT = 3
CALLERROR = 4

_ID_PREFIX = re.compile(r'^\s*\[\s*(\d+)\s*,\s*"((?:[^"\\]|\\.){1,64})"')

# How deep objects and arrays may nest in a payload. The deepest message the OCPP schemas
# allow nests 13 levels (2.0.1 ReportChargingProfiles); vendor data gets room to spare.
# Without a bound, JSON nested ~1,000 deep (orjson parses up to 1,024) breaks schema
# validation and cannot be stored (orjson writes at most 254 levels).
MAX_NESTING = 32


class ErrorKind(Enum):
    FORMAT = "format"
    TYPE = "type"
    PROPERTY = "property"
    OCCURRENCE = "occurrence"
    PROTOCOL = "protocol"
    NOT_IMPLEMENTED = "not_implemented"
    NOT_SUPPORTED = "not_supported"
    INTERNAL = "internal"
    SECURITY = "security"
    GENERIC = "generic"
    RPC_FRAMEWORK = "rpc_framework"
    MESSAGE_TYPE = "message_type"


class OcppCallError(Exception):
    """Raised by handlers and the parser; becomes a CALLERROR with the version's code."""

    def __init__(
        self, kind: ErrorKind, description: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.kind = kind
        self.description = description
        self.details = details or {}


class UnreadableFrame(Exception):
    """A frame whose message id cannot be read (not JSON, not an array, no id): answered
    with a CALLERROR carrying the id "-1" (ErrorKind.RPC_FRAMEWORK)."""


@dataclass(frozen=True, slots=True)
class Call:
    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    message_id: str
    code: str
    description: str
    details: dict[str, Any]


class FrameError(Exception):
    """A frame with a readable message id that is not a valid OCPP-J message."""

    def __init__(self, message_id: str, error: OcppCallError) -> None:
        super().__init__(error.description)
        self.message_id = message_id
        self.error = error


def parse_frame(text: str | bytes) -> Call | CallResult | CallError:
    """Parse one WebSocket text frame.

    Raises FrameError when the message id can be read (answer with a CALLERROR) and
    UnreadableFrame when it cannot (answer with the id "-1").
    """
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        message_id = _salvage_id(text)
        if message_id is None:
            raise UnreadableFrame("frame is not JSON") from None
        reason = "Frame is not valid JSON"
        if "depth limit" in str(exc):
            reason = f"Payload nests objects and arrays more than {MAX_NESTING} levels deep"
        raise FrameError(message_id, OcppCallError(ErrorKind.FORMAT, reason)) from None
    if not isinstance(msg, list) or not msg:
        raise UnreadableFrame("frame is not a JSON array")
    if len(msg) < 2 or not isinstance(msg[1], str) or not msg[1] or len(msg[1]) > 36 * 2:
        raise UnreadableFrame("frame has no readable message id")
    type_id, message_id = msg[0], msg[1]
    if _may_nest_deeper(text) and _nests_deeper(msg):
        raise FrameError(
            message_id,
            OcppCallError(
                ErrorKind.FORMAT,
                f"Payload nests objects and arrays more than {MAX_NESTING} levels deep",
            ),
        )
    if type_id == CALL:
        if len(msg) != 4:
            raise FrameError(
                message_id, OcppCallError(ErrorKind.PROTOCOL, "A CALL has exactly 4 elements")
            )
        action, payload = msg[2], msg[3]
        if not isinstance(action, str) or not action:
            raise FrameError(
                message_id, OcppCallError(ErrorKind.PROTOCOL, "Action must be a non-empty string")
            )
        if not isinstance(payload, dict):
            raise FrameError(
                message_id, OcppCallError(ErrorKind.FORMAT, "Payload must be a JSON object")
            )
        if holds_nul(text, payload):
            # No OCPP string may hold it (CiString is printable ASCII), and PostgreSQL's
            # text cannot store it: refused alike on both databases.
            raise FrameError(
                message_id,
                OcppCallError(ErrorKind.PROPERTY, "A string in the payload holds U+0000 (NUL)"),
            )
        return Call(message_id, action, payload)
    if type_id == CALLRESULT:
        if len(msg) != 3 or not isinstance(msg[2], dict):
            raise FrameError(
                message_id, OcppCallError(ErrorKind.PROTOCOL, "A CALLRESULT is [3, id, {payload}]")
            )
        return CallResult(message_id, msg[2])
    if type_id == CALLERROR:
        if len(msg) < 4:
            raise FrameError(
                message_id,
                OcppCallError(
                    ErrorKind.PROTOCOL, "A CALLERROR is [4, id, code, description, {details}]"
                ),
            )
        details = msg[4] if len(msg) > 4 and isinstance(msg[4], dict) else {}
        return CallError(message_id, str(msg[2]), str(msg[3]), details)
    raise FrameError(
        message_id,
        OcppCallError(ErrorKind.MESSAGE_TYPE, f"MessageTypeId {type_id!r} is not supported"),
    )


def _may_nest_deeper(text: str | bytes) -> bool:
    """Whether the frame has enough brackets to nest deeper than allowed (two scans in C:
    almost every frame has fewer brackets than the bound and is not walked)."""
    if isinstance(text, str):
        return text.count("{") + text.count("[") > MAX_NESTING + 1
    return text.count(b"{") + text.count(b"[") > MAX_NESTING + 1


def _depth_bound(levels: int) -> Callable[[Any], bool]:
    """Whether a value nests at most `levels` levels of objects and arrays: a schema of
    `levels` definitions, each allowing the one below inside it, checked in Rust (a third
    of the time a Python walk takes)."""
    definitions: dict[str, Any] = {"d0": {"type": ["string", "number", "boolean", "null"]}}
    for level in range(1, levels + 1):
        inner = {"$ref": f"#/definitions/d{level - 1}"}
        definitions[f"d{level}"] = {"items": inner, "additionalProperties": inner}
    schema = {"definitions": definitions, "$ref": f"#/definitions/d{levels}"}
    return jsonschema_rs.validator_for(schema).is_valid


# The frame's own array is one level more than its payload.
_WITHIN_NESTING = _depth_bound(MAX_NESTING + 1)


def _nests_deeper(frame: list[Any], limit: int = MAX_NESTING + 1) -> bool:
    """Whether containers nest more than `limit` levels (the frame's array is level 1)."""
    check = _WITHIN_NESTING if limit == MAX_NESTING + 1 else _depth_bound(limit)
    return not check(frame)


def _salvage_id(text: str | bytes) -> str | None:
    """Read the message id from the start of a frame that is not valid JSON as a whole."""
    if isinstance(text, bytes):
        text = text[:200].decode("utf-8", "replace")
    match = _ID_PREFIX.match(text[:200])
    if match is None or int(match.group(1)) not in (CALL, CALLRESULT, CALLERROR):
        return None
    return match.group(2)


def result_frame(message_id: str, payload: dict[str, Any]) -> str:
    return orjson.dumps([CALLRESULT, message_id, payload]).decode()


def error_frame(
    message_id: str, code: str, description: str, details: dict[str, Any] | None = None
) -> str:
    return orjson.dumps([CALLERROR, message_id, code, description[:255], details or {}]).decode()


def call_frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return orjson.dumps([CALL, message_id, action, payload]).decode()
