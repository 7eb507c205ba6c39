"""Command parameters as the operator API takes them: a reader that checks them one by one
(Params), and what each command takes, as the API documents it (PARAMETERS).

Pure checks, no I/O; every failure is a CommandRefused that names the parameter.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.core.bounds import INT32_MAX, OutOfBounds, bounded_int, bounded_int_text, bounded_time
from csms.core.commands import (
    MAX_PERIODS,
    CommandName,
    CommandRefused,
    ProfilePurpose,
    SchedulePeriod,
)

# The longest configuration value staff may send (either version).
CONFIG_VALUE_MAX = 1000


class Params:
    """A command's parameters as sent by the CLI or an API client, checked one by one."""

    def __init__(self, raw: Mapping[str, Any], allowed: frozenset[str]) -> None:
        unknown = sorted(set(raw) - allowed)
        if unknown:
            hint = f"; it takes: {', '.join(sorted(allowed))}" if allowed else ""
            raise CommandRefused(f"unknown parameter {unknown[0]!r}{hint}")
        self._raw = raw

    def given(self, name: str) -> bool:
        return self._raw.get(name) is not None

    def _get(self, name: str, required: bool) -> Any:
        value = self._raw.get(name)
        if value is None and required:
            raise CommandRefused(f"parameter {name!r} is required")
        return value

    def text(self, name: str, *, required: bool = False, max_len: int = 2000) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise CommandRefused(f"parameter {name!r} must be a non-empty string")
        check_length(name, value, max_len)
        return value

    def required_text(self, name: str, max_len: int = 2000) -> str:
        value = self.text(name, required=True, max_len=max_len)
        assert value is not None
        return value

    def integer(
        self, name: str, *, required: bool = False, minimum: int = 0, maximum: int = INT32_MAX
    ) -> int | None:
        """An integer (or its decimal text) in [minimum, maximum]: every integer a command
        takes goes on the wire as an OCPP integer (32 bits) or looks up one of our ids."""
        value = self._get(name, required)
        if value is None:
            return None
        what = f"parameter {name!r}"
        try:
            if isinstance(value, str):
                return bounded_int_text(value, what, minimum, maximum)
            if isinstance(value, bool) or not isinstance(value, int):
                raise OutOfBounds(f"{what} must be an integer, not {type(value).__name__}")
            return bounded_int(value, what, minimum, maximum)
        except OutOfBounds as exc:
            raise CommandRefused(str(exc)) from None

    def required_integer(self, name: str, minimum: int = 0) -> int:
        value = self.integer(name, required=True, minimum=minimum)
        assert value is not None
        return value

    def number(self, name: str) -> float:
        """A required finite number >= 0 (a limit: 0 pauses charging)."""
        self._get(name, True)
        value = self.rate(name)
        assert value is not None
        return value

    def rate(self, name: str) -> float | None:
        """An optional finite number >= 0 (a charging rate)."""
        value = self._raw.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise CommandRefused(f"parameter {name!r} must be a number") from None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise CommandRefused(f"parameter {name!r} must be a number >= 0")
        return float(value)

    def periods(self, name: str) -> tuple[SchedulePeriod, ...]:
        """Charging schedule periods written `START:LIMIT` (seconds into the schedule, the
        limit from then on), the first at 0 and in ascending order; () when not given."""
        value = self._raw.get(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_PERIODS:
            raise CommandRefused(
                f"parameter {name!r} must be a list of 1 to {MAX_PERIODS} START:LIMIT strings"
            )
        out: list[SchedulePeriod] = []
        for item in value:
            start, sep, limit = item.partition(":") if isinstance(item, str) else ("", "", "")
            try:
                period = SchedulePeriod(int(start), float(limit))
            except ValueError:
                period = None
            if (
                not sep
                or period is None
                or period.start_s < 0
                or not math.isfinite(period.limit)
                or period.limit < 0
            ):
                raise CommandRefused(
                    f"parameter {name!r}: {item!r} is not START:LIMIT (seconds >= 0, limit >= 0)"
                )
            out.append(period)
        if out[0].start_s != 0:
            raise CommandRefused(f"parameter {name!r}: the first period must start at 0")
        if any(later.start_s <= earlier.start_s for earlier, later in itertools.pairwise(out)):
            raise CommandRefused(f"parameter {name!r}: periods must start in ascending order")
        return tuple(out)

    def flag(self, name: str) -> bool:
        value = self._raw.get(name, False)
        if not isinstance(value, bool):
            raise CommandRefused(f"parameter {name!r} must be true or false")
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self._raw.get(name, default)
        if value is None:
            raise CommandRefused(f"parameter {name!r} is required: one of {', '.join(options)}")
        for option in options:
            if isinstance(value, str) and value.lower() == option.lower():
                return option
        raise CommandRefused(f"parameter {name!r} must be one of: {', '.join(options)}")

    def time(self, name: str, *, required: bool = False) -> datetime | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise CommandRefused(f"parameter {name!r} must be an ISO 8601 date/time string")
        try:
            return bounded_time(value, f"parameter {name!r}")
        except OutOfBounds as exc:
            raise CommandRefused(str(exc)) from None

    def texts(self, name: str) -> tuple[str, ...]:
        value = self._raw.get(name) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise CommandRefused(f"parameter {name!r} must be a list of strings")
        return tuple(value)

    def config_value(self, name: str) -> str:
        """A configuration value: text, a number or true/false (an empty string is a
        legitimate value)."""
        raw = self._get(name, True)
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if not isinstance(raw, str | int | float):
            raise CommandRefused(f"parameter {name!r} must be a string")
        text = str(raw)
        if len(text) > CONFIG_VALUE_MAX:
            raise CommandRefused(f"parameter {name!r} is longer than {CONFIG_VALUE_MAX} characters")
        return text


def check_length(name: str, value: str, max_len: int) -> None:
    """Refuse parameter `name` when `value` is longer than `max_len` characters."""
    if len(value) > max_len:
        raise CommandRefused(f"parameter {name!r} is longer than {max_len} characters")


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a command, as the API documents it."""

    type: str  # JSON schema type, or "date-time"
    help: str
    required: bool = False
    choices: tuple[str, ...] = ()


_EVSE = Param("integer", "EVSE id (1.6: connector id)")
PARAMETERS: dict[CommandName, dict[str, Param]] = {
    CommandName.START: {
        "tag": Param("string", "id tag to start for", True),
        "evse": Param("integer", "EVSE to start on (default: the charger picks)"),
    },
    CommandName.STOP: {"transaction": Param("integer", "our transaction id", True)},
    CommandName.RESET: {"hard": Param("boolean", "Hard (1.6) / Immediate (2.0.1) reset")},
    CommandName.UNLOCK: {"evse": Param("integer", "EVSE whose connector to unlock", True)},
    CommandName.AVAILABILITY: {
        "state": Param("string", "new availability", True, ("operative", "inoperative")),
        "evse": Param("integer", "EVSE (default: the whole charger)"),
    },
    CommandName.CONFIG_GET: {
        "keys": Param("array", "1.6 keys or 2.0.1 Component[.instance].Variable names")
    },
    CommandName.CONFIG_SET: {
        "key": Param("string", "1.6 key or 2.0.1 Component[.instance].Variable", True),
        "value": Param("string", "new value", True),
    },
    CommandName.TRIGGER: {
        "message": Param("string", "message to trigger (either version's name)", True),
        "evse": _EVSE,
    },
    CommandName.CLEAR_CACHE: {},
    CommandName.DATA_TRANSFER: {
        "vendor": Param("string", "vendorId", True),
        "message_id": Param("string", "messageId"),
        "data": Param("string", "data"),
    },
    CommandName.RESERVE: {
        "tag": Param("string", "id tag the reservation is for", True),
        "expires": Param("date-time", "when the reservation ends", True),
        "evse": Param("integer", "EVSE to hold (default: any)"),
    },
    CommandName.CANCEL_RESERVATION: {"reservation": Param("integer", "reservation id", True)},
    CommandName.LOCAL_LIST_SEND: {
        "mode": Param(
            "string", "full list or changes since the last one", False, ("full", "differential")
        ),
    },
    CommandName.LOCAL_LIST_VERSION: {},
    CommandName.FIRMWARE: {
        "location": Param("string", "URL of the firmware image", True),
        "retrieve": Param("date-time", "when to download (default: now)"),
    },
    CommandName.DIAGNOSTICS: {"location": Param("string", "URL to upload the log to", True)},
    CommandName.PROFILE_SET: {
        "evse": Param("integer", "EVSE (0: the whole charger)", True),
        "limit": Param("number", "the limit, in the unit (required unless periods are given)"),
        "periods": Param(
            "array", "instead of limit, a schedule: START:LIMIT each (seconds from its start)"
        ),
        "unit": Param("string", "W or A", True, ("W", "A")),
        "purpose": Param(
            "string",
            "profile purpose (default TxDefaultProfile)",
            False,
            tuple(p.value for p in ProfilePurpose),
        ),
        "stack": Param("integer", "stack level (default 0)"),
        "duration": Param("integer", "seconds the limit lasts (default: until cleared)"),
        "start": Param("date-time", "when the schedule starts (default: now)"),
        "relative": Param(
            "boolean", "the schedule counts from the start of charging (Tx/TxDefault profiles)"
        ),
        "min_rate": Param("number", "lowest rate the EV charges at, in the unit (a hint)"),
        "transaction": Param(
            "integer", "TxProfile: our transaction it is for (checked to run on the EVSE)"
        ),
    },
    CommandName.PROFILE_CLEAR: {
        "id": Param("integer", "profile id (default: all)"),
        "transaction": Param("integer", "instead of id: the TxProfiles of this transaction"),
    },
    CommandName.PROFILE_COMPOSITE: {
        "evse": Param("integer", "EVSE (0: the whole charger)", True),
        "duration": Param("integer", "seconds to look ahead", True),
        "unit": Param("string", "W or A", False, ("W", "A")),
    },
    CommandName.CERTIFICATES_INSTALL: {
        "certificate": Param("string", "the certificate (PEM)", True),
        "type": Param(
            "string",
            "what it is for (default csms-root)",
            False,
            ("csms-root", "manufacturer-root", "v2g-root", "mo-root"),
        ),
    },
    CommandName.CERTIFICATES_LIST: {
        "type": Param(
            "array",
            "kinds to list (default: every kind; 1.6: csms-root): csms-root, "
            "manufacturer-root, v2g-root, mo-root, v2g-chain",
        ),
    },
    CommandName.CERTIFICATES_DELETE: {
        "hash_data": Param(
            "string", "ALGORITHM:ISSUER_NAME_HASH:ISSUER_KEY_HASH:SERIAL (as listed)"
        ),
        "certificate": Param("string", "instead of hash_data: the certificate (PEM)"),
    },
    CommandName.CERTIFICATES_RENEW: {},
    CommandName.CERTIFICATE_SIGNED: {
        "chain": Param("string", "the signed chain (PEM)", True),
        "type": Param(
            "string",
            "the certificate's use",
            True,
            ("ChargingStationCertificate", "V2GCertificate"),
        ),
    },
}
# The parameters each command takes.
ALLOWED = {name: frozenset(params) for name, params in PARAMETERS.items()}
