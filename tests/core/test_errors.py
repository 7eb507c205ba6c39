"""The domain's error tree: what its docstring draws is what it is, no error of it is a
ValueError, and core functions refuse bad input with its errors. Errors in one line: type
and message, whitespace collapsed, cut to a length; a driver's error rather than its
wrapper's."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.core import errors, ocpi_tokens
from csms.core.authorization import parse_limit
from csms.core.bounds import bounded_time
from csms.core.certificates import parse_days
from csms.core.clock import TimeWindow, parse_timestamp
from csms.core.errors import one_line
from csms.core.locations import Location, validate_location
from csms.core.ocpi_commands import CommandType, parse_command
from csms.core.ocpi_locations import evse_code, facilities_from, opening_hours_from
from csms.core.ocpi_profiles import parse_charging_profile
from csms.core.parties import Party, check_origin, parse_party
from csms.core.tariffs import parse_tariff

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Wrapper(Exception):
    def __init__(self, message: str, orig: BaseException) -> None:
        super().__init__(message)
        self.orig = orig


def test_type_and_message_on_one_line() -> None:
    assert one_line(ValueError("bad\n  value\tthere")) == "ValueError: bad value there"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(ValueError("x" * 500), limit=20) == "ValueError: xxxxxxxx"


def test_a_drivers_error_without_the_statement() -> None:
    wrapped = Wrapper("(IntegrityError) refused [SQL: UPDATE ...]", RuntimeError("refused"))
    assert one_line(wrapped) == "RuntimeError: refused"


# --- the tree -------------------------------------------------------------------------------


def drawn_tree() -> dict[str, str]:
    """Each class drawn in csms.core.errors' docstring, with the class drawn above it."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    doc = errors.__doc__ or ""
    drawing = doc[doc.index("\nCsmsError\n") :].split("\n\n")[0]
    for line in drawing.splitlines():
        match = re.match(r"^([ │├└─]*?)([├└]── )?([A-Z]\w+)(\s|$)", line)
        if match is None or (match[2] is None and match[1]):
            continue
        depth = len(match[1]) + (len(match[2]) if match[2] else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match[3]] = stack[-1][1] if stack else ""
        stack.append((depth, match[3]))
    return parents


def test_the_tree_is_the_one_drawn() -> None:
    drawn = drawn_tree()
    assert drawn["CsmsError"] == ""
    assert drawn["TimestampOutOfRange"] == "InvalidTimestamp"
    assert drawn["InvalidTimestamp"] == "InvalidInput"
    assert drawn["UnknownPartner"] == "NotFound"
    assert drawn["PartnerExists"] == "AlreadyExists"
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    assert set(drawn) == defined  # every class is drawn, and nothing else
    for name, parent in drawn.items():
        cls = getattr(errors, name)
        if parent:
            assert cls.__bases__[0] is getattr(errors, parent), name
            assert cls.__doc__, f"{name} says who raises it and what to do"


def test_no_domain_error_is_a_value_error() -> None:
    # An `except ValueError` meant for bad input must not be needed, and a ValueError from
    # a bug must never be shown as if the input were wrong.
    for name in drawn_tree():
        assert not issubclass(getattr(errors, name), ValueError), name
    assert issubclass(errors.ChargerBusy, TimeoutError)  # it ends a command as timed_out


def test_the_old_homes_name_the_same_classes() -> None:
    from csms.core import (
        bounds,
        clock,
        commands,
        cost,
        ocpi_commands,
        ocpi_fields,
        ocpi_profiles,
        ocpi_tokens,
        tariffs,
    )
    from csms.services import billing, partners, pki, reads, staff

    assert clock.TimestampOutOfRange is errors.TimestampOutOfRange
    assert bounds.OutOfBounds is errors.OutOfBounds
    assert commands.CommandRefused is errors.CommandRefused
    assert commands.ChargerCallError is errors.ChargerCallError
    assert commands.ChargerBusy is errors.ChargerBusy
    assert ocpi_commands.InvalidCommand is errors.InvalidCommand
    assert ocpi_profiles.BadProfileRequest is errors.BadProfileRequest
    assert ocpi_fields.FieldError is ocpi_tokens.InvalidToken is errors.FieldError
    assert tariffs.TariffError is errors.TariffError
    assert cost.TooManyPeriods is errors.TooManyPeriods
    assert reads.NotFound is errors.NotFound
    assert staff.UnknownToken is errors.UnknownToken
    assert staff.AlreadyExists is errors.AlreadyExists
    assert billing.UnknownCdr is errors.UnknownCdr
    assert billing.CdrTooLarge is errors.CdrTooLarge
    assert partners.UnknownPartner is errors.UnknownPartner
    assert partners.StateChanged is errors.StateChanged
    assert not hasattr(partners, "PartnerError")  # the one PartnerError is ocpi_cpo's
    assert pki.PkiError is errors.PkiError and pki.UnknownCa is errors.UnknownCa


def test_errors_keep_their_messages_and_fields() -> None:
    call = errors.ChargerCallError("NotSupported", "no such thing", {"a": 1})
    assert str(call) == "NotSupported: no such thing"
    assert (call.code, call.description, call.details) == (
        "NotSupported",
        "no such thing",
        {"a": 1},
    )
    field = errors.FieldError("token.uid", "is required")
    assert str(field) == "token.uid: is required" and field.path == "token.uid"
    assert str(errors.FieldError("", "must be a JSON object")) == "must be a JSON object"
    tariff = errors.TariffError("must be a number", "elements[0].price", "T1")
    assert str(tariff) == 'tariff "T1": elements[0].price: must be a number'
    assert one_line(tariff) == 'TariffError: tariff "T1": elements[0].price: must be a number'


# --- core functions raise the tree's errors ----------------------------------------------


def _location(**changes: Any) -> Location:
    fields: dict[str, Any] = {
        "id": "LOC1",
        "name": None,
        "address": "Main St 1",
        "city": "Utrecht",
        "postal_code": None,
        "country": "NLD",
        "latitude": "52.1",
        "longitude": "5.1",
        "time_zone": "Europe/Amsterdam",
    }
    return Location(**{**fields, **changes})


@pytest.mark.parametrize(
    ("call", "expected", "message"),
    [
        (lambda: parse_timestamp("yesterday"), errors.InvalidTimestamp, "Invalid isoformat"),
        (
            lambda: parse_timestamp("9999-12-31T23:59:59-05:00"),
            errors.TimestampOutOfRange,
            "outside the years 1 to 9999",
        ),
        (lambda: bounded_time("soon", "from"), errors.OutOfBounds, "from is not an ISO 8601"),
        (lambda: parse_party("NLEMS"), errors.InvalidParty, "owner must be COUNTRY"),
        (lambda: Party("nl", "EMS"), errors.InvalidParty, "not an OCPI party"),
        (lambda: check_origin("somebody"), errors.InvalidParty, "owner must be"),
        (lambda: parse_limit("0"), errors.InvalidInput, "at least 1 or 'unlimited'"),
        (lambda: evse_code("NL-ABC-E1"), errors.InvalidLocation, "eMI3"),
        (lambda: facilities_from("SAUNA"), errors.InvalidLocation, "facility must be one of"),
        (lambda: opening_hours_from("Mo 10:00-09:00"), errors.InvalidLocation, "end after"),
        (lambda: opening_hours_from("Fr-Mo 08:00-09:00"), errors.InvalidLocation, "backwards"),
        (lambda: validate_location(_location(country="NL")), errors.InvalidLocation, "alpha-3"),
        (
            lambda: validate_location(_location(time_zone="Mars/Olympus")),
            errors.InvalidLocation,
            "unknown time zone",
        ),
        (lambda: validate_location(_location(latitude="north")), errors.InvalidLocation, "number"),
        (
            lambda: parse_tariff({}, country_code="NL", party_id="CSM", now=NOW),
            errors.TariffError,
            "must be a list",
        ),
        (
            lambda: parse_command(CommandType.STOP_SESSION, []),
            errors.InvalidCommand,
            "must be a JSON object",
        ),
        (lambda: parse_charging_profile({}), errors.BadProfileRequest, "charging_rate_unit"),
        (lambda: parse_days("a month"), errors.InvalidInput, "not a number of days"),
        (lambda: ocpi_tokens.parse_token({}, ""), errors.FieldError, "is required"),
    ],
)
def test_invalid_input_raises_the_trees_error(
    call: Callable[[], object], expected: type[Exception], message: str
) -> None:
    with pytest.raises(expected, match=message) as caught:
        call()
    assert isinstance(caught.value, errors.InvalidInput)
    assert not isinstance(caught.value, ValueError)


def test_a_broken_precondition_stays_a_value_error() -> None:
    # A naive datetime is the caller's bug, not bad input: it is not an InvalidInput.
    with pytest.raises(ValueError, match="timezone-aware") as caught:
        TimeWindow(datetime(2020, 1, 1), timedelta(0))  # noqa: DTZ001 - the point
    assert not isinstance(caught.value, errors.CsmsError)
