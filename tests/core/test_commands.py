"""Pure rules of commands and reservations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.core.commands import CommandRefused, ProfilePurpose, VariableKey, trigger_name
from csms.core.reservations import Reservation, ReservationState, check_start
from csms.core.versions import OcppVersion

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_variable_keys() -> None:
    assert VariableKey.parse("OCPPCommCtrlr.HeartbeatInterval") == VariableKey(
        "OCPPCommCtrlr", "HeartbeatInterval"
    )
    key = VariableKey.parse("EVSE.2.Power")
    assert (key.component, key.instance, key.variable) == ("EVSE", "2", "Power")
    assert str(key) == "EVSE.2.Power"
    for bad in ("Heartbeat", "a..b", "a.b.c.d", ".x"):
        with pytest.raises(CommandRefused):
            VariableKey.parse(bad)


def test_trigger_names_per_version() -> None:
    assert trigger_name("heartbeat", OcppVersion.V16) == "Heartbeat"
    assert trigger_name("LogStatusNotification", OcppVersion.V16) == "DiagnosticsStatusNotification"
    assert (
        trigger_name("DiagnosticsStatusNotification", OcppVersion.V201) == "LogStatusNotification"
    )
    assert trigger_name("TransactionEvent", OcppVersion.V201) == "TransactionEvent"
    with pytest.raises(CommandRefused, match="choose one of"):
        trigger_name("TransactionEvent", OcppVersion.V16)


def test_profile_purposes() -> None:
    assert ProfilePurpose.parse("txprofile") is ProfilePurpose.TX
    assert ProfilePurpose.parse("ChargingStationMaxProfile") is ProfilePurpose.CHARGER_MAX
    with pytest.raises(CommandRefused):
        ProfilePurpose.parse("Fast")


def _res(
    rid: int,
    evse: int | None,
    tag: str = "OWNER",
    state: ReservationState = ReservationState.ACTIVE,
    minutes: int = 10,
    parent: str | None = None,
) -> Reservation:
    return Reservation(rid, "CP", evse, tag, parent, state, NOW + timedelta(minutes=minutes))


def test_a_reserved_evse_only_starts_for_its_tag() -> None:
    held = [_res(1, 1)]
    assert check_start(held, 1, "owner", None, NOW).used == held[0]  # case-insensitive
    blocked = check_start(held, 1, "STRANGER", None, NOW)
    assert blocked.used is None and blocked.blocked_by == held[0]
    assert check_start(held, 2, "STRANGER", None, NOW).blocked_by is None
    # The same group (parent id tag) may use it.
    grouped = [_res(2, 1, parent="FLEET")]
    assert check_start(grouped, 1, "DRIVER", "FLEET", NOW).used == grouped[0]


def test_expired_used_and_cancelled_reservations_hold_nothing() -> None:
    for reservation in (
        _res(1, 1, minutes=-1),
        _res(2, 1, state=ReservationState.USED),
        _res(3, 1, state=ReservationState.CANCELLED),
        _res(4, 1, state=ReservationState.REJECTED),
    ):
        check = check_start([reservation], 1, "STRANGER", None, NOW)
        assert check == check.__class__(None, None)


def test_named_reservation_and_any_evse() -> None:
    anywhere = [_res(7, None)]
    assert check_start(anywhere, 2, "OWNER", None, NOW).used == anywhere[0]
    assert check_start(anywhere, 2, "X", None, NOW, reservation_id=7).used == anywhere[0]
    # "Any EVSE" blocks a stranger only when the last free EVSE would go.
    assert check_start(anywhere, 1, "X", None, NOW, evse_count=2).blocked_by is None
    assert check_start(anywhere, 1, "X", None, NOW, evse_count=1).blocked_by == anywhere[0]
    # No token yet: only a reservation named on the wire is used.
    assert check_start([_res(8, 1)], 1, None, None, NOW, reservation_id=8).used is not None
    assert check_start([_res(8, 1)], 1, None, None, NOW).used is None
