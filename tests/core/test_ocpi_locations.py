"""The OCPP -> OCPI status mapping, EVSE stamping (last_updated only on real changes) and
the staff input forms of csms.core.ocpi_locations, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.core.errors import InvalidLocation
from csms.core.locations import ConnectorSpec
from csms.core.ocpi_locations import (
    Change,
    ConnectorFacts,
    EvseFacts,
    EvseStatus,
    Presence,
    default_evse_code,
    evse_code,
    evse_status,
    facilities_from,
    opening_hours_from,
    render_evse,
    stamp,
)
from csms.core.status import ConnectorStatus as S

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)
ONLINE = Presence(removed=False, installed=True, connected=True, disconnected_at=None)


@pytest.mark.parametrize(
    ("ocpp", "ocpi"),
    [
        (S.AVAILABLE, EvseStatus.AVAILABLE),
        (S.PREPARING, EvseStatus.CHARGING),
        (S.CHARGING, EvseStatus.CHARGING),
        (S.SUSPENDED_EV, EvseStatus.CHARGING),
        (S.SUSPENDED_EVSE, EvseStatus.CHARGING),
        (S.FINISHING, EvseStatus.CHARGING),
        (S.OCCUPIED, EvseStatus.CHARGING),
        (S.RESERVED, EvseStatus.RESERVED),
        (S.UNAVAILABLE, EvseStatus.INOPERATIVE),
        (S.FAULTED, EvseStatus.OUTOFORDER),
    ],
)
def test_design_table(ocpp: S, ocpi: EvseStatus) -> None:
    assert evse_status([ocpp], None, ONLINE, NOW, GRACE) is ocpi


def test_presence_comes_first() -> None:
    removed = Presence(removed=True, installed=True, connected=True, disconnected_at=None)
    assert evse_status([S.CHARGING], None, removed, NOW, GRACE) is EvseStatus.REMOVED
    planned = Presence(removed=False, installed=False, connected=False, disconnected_at=None)
    assert evse_status([], None, planned, NOW, GRACE) is EvseStatus.PLANNED
    # Offline within the grace period: the last status stands; at the grace: UNKNOWN.
    away = Presence(False, True, False, NOW - GRACE + timedelta(seconds=1))
    assert evse_status([S.AVAILABLE], None, away, NOW, GRACE) is EvseStatus.AVAILABLE
    gone = Presence(False, True, False, NOW - GRACE)
    assert evse_status([S.AVAILABLE], None, gone, NOW, GRACE) is EvseStatus.UNKNOWN
    # Connected but nothing reported for this EVSE yet.
    assert evse_status([], None, ONLINE, NOW, GRACE) is EvseStatus.UNKNOWN


def test_several_connectors_and_the_charger_level_status() -> None:
    assert evse_status([S.FAULTED, S.AVAILABLE], None, ONLINE, NOW, GRACE) is EvseStatus.AVAILABLE
    assert evse_status([S.AVAILABLE, S.OCCUPIED], None, ONLINE, NOW, GRACE) is EvseStatus.CHARGING
    assert evse_status([S.AVAILABLE, S.RESERVED], None, ONLINE, NOW, GRACE) is EvseStatus.RESERVED
    both_off = [S.UNAVAILABLE, S.FAULTED]
    assert evse_status(both_off, None, ONLINE, NOW, GRACE) is EvseStatus.INOPERATIVE
    # Charger-level (1.6 connector 0) Unavailable/Faulted covers EVSEs not in use.
    assert evse_status([S.AVAILABLE], S.UNAVAILABLE, ONLINE, NOW, GRACE) is EvseStatus.INOPERATIVE
    assert evse_status([S.AVAILABLE], S.FAULTED, ONLINE, NOW, GRACE) is EvseStatus.OUTOFORDER
    assert evse_status([S.CHARGING], S.UNAVAILABLE, ONLINE, NOW, GRACE) is EvseStatus.CHARGING
    assert evse_status([S.AVAILABLE], S.AVAILABLE, ONLINE, NOW, GRACE) is EvseStatus.AVAILABLE


def evse(status: EvseStatus, power: int = 22000) -> dict[str, object]:
    spec = ConnectorSpec(max_electric_power=power)
    return render_evse(
        EvseFacts("CP*1", "NL*CSM*ECP*1", status, (), (ConnectorFacts(1, spec, ("T1",)),))
    )


def test_stamp_moves_last_updated_only_on_real_changes() -> None:
    first, change = stamp(evse(EvseStatus.AVAILABLE), None, NOW)
    assert change is Change.OBJECT and first["last_updated"] == "2026-11-23T12:00:00Z"
    assert first["connectors"][0]["last_updated"] == "2026-11-23T12:00:00Z"
    later = NOW + timedelta(minutes=1, milliseconds=250)
    same, change = stamp(evse(EvseStatus.AVAILABLE), first, later)
    assert change is Change.NONE and same == first
    charging, change = stamp(evse(EvseStatus.CHARGING), first, later)
    assert change is Change.STATUS
    assert charging["last_updated"] == "2026-11-23T12:01:00.250Z"
    # The connector did not change: it keeps its own last_updated.
    assert charging["connectors"][0]["last_updated"] == "2026-11-23T12:00:00Z"
    bigger, change = stamp(evse(EvseStatus.AVAILABLE, power=11000), first, later)
    assert change is Change.OBJECT
    assert bigger["connectors"][0]["last_updated"] == "2026-11-23T12:01:00.250Z"


def test_staff_input_forms() -> None:
    assert evse_code("nl*abc*e0001") == "NL*ABC*E0001"
    assert evse_code("NLABCE0001") == "NLABCE0001"
    for bad in ("NL*ABC*0001", "N*ABC*E1", "NL*ABC*E" + "1" * 31, "NL-ABC-E1"):
        with pytest.raises(InvalidLocation, match="eMI3"):
            evse_code(bad)
    assert default_evse_code("NL", "CSM", "cp-7.a", 2) == "NL*CSM*ECP7A*2"
    long = default_evse_code("NL", "CSM", "X" * 60, 1)
    assert evse_code(long) == long
    assert facilities_from("wifi, cafe,WIFI") == ("WIFI", "CAFE")
    with pytest.raises(InvalidLocation, match="facility must be one of"):
        facilities_from("SAUNA")
    assert opening_hours_from("24/7") == {"twentyfourseven": True}
    assert opening_hours_from("") is None
    hours = opening_hours_from("Mo-Fr 08:00-18:00; Sa,Su 10:00-24:00")
    assert hours is not None and hours["twentyfourseven"] is False
    regular = hours["regular_hours"]
    assert len(regular) == 7
    assert regular[0] == {"weekday": 1, "period_begin": "08:00", "period_end": "18:00"}
    assert regular[-1] == {"weekday": 7, "period_begin": "10:00", "period_end": "24:00"}
    for bad in ("Mo-Fr", "Xx 08:00-10:00", "Mo 10:00-09:00", "Fr-Mo 08:00-09:00", "Mo 8-9"):
        with pytest.raises(InvalidLocation):
            opening_hours_from(bad)
