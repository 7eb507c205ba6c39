"""Example answers of the read endpoints for the OpenAPI description and the docs page,
rendered from sample domain objects by the same csms.views functions the endpoints use
(so that an example cannot show a shape the API does not have).

Sample data only; no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from csms.api.params import encode_cursor
from csms.core.authorization import Token, TokenStatus
from csms.core.charger import ChargePoint, ConnectorState, RegistrationStatus, StatusReport
from csms.core.commands import CommandRecord
from csms.core.cost import Reading, Usage, price_session
from csms.core.locations import ConnectorSpec, Location
from csms.core.metering import Sample
from csms.core.partners import (
    Direction,
    Endpoint,
    InterfaceRole,
    Partner,
    PartnerStatus,
    PartyRole,
    Role,
    TokenEncoding,
)
from csms.core.sites import ROOT, Cap, Circuit, Link, Share, Site, SiteTree
from csms.core.statistics import Figures
from csms.core.status import ConnectorStatus
from csms.core.tariffs import parse_tariff
from csms.core.transactions import Transaction, TransactionState
from csms.services.billing import Priced
from csms.services.locations import LocationView
from csms.services.sites import SiteView, site_view
from csms.services.staff import ChargerDetail, TransactionDetail
from csms.services.statistics import (
    HeatCell,
    Heatmap,
    Scope,
    StatsReport,
    UptimeReport,
    UptimeRow,
)
from csms.storage.events import ChargerEvent
from csms.storage.locations import ChargerLink
from csms.storage.ocpi_evses import PublishedEvse
from csms.storage.tariffs import Assignment, StoredTariff
from csms.views import (
    charger_detail_json,
    charger_overview_json,
    command_record_json,
    connector_json,
    heatmap_json,
    location_overview_json,
    location_view_json,
    partner_json,
    site_overview_json,
    site_view_json,
    stats_json,
    tariff_json,
    token_json,
    transaction_detail_json,
    transaction_json,
    uptime_json,
)

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
CHARGER = ChargePoint(
    id="CP-1",
    registration=RegistrationStatus.ACCEPTED,
    ocpp_version="1.6",
    vendor="Acme",
    model="AC22",
    serial_number="SN-0001",
    firmware_version="1.4.2",
    connected=True,
    last_boot_at=T0 - timedelta(days=2),
    last_heartbeat_at=T0 + timedelta(minutes=44),
    last_seen_at=T0 + timedelta(minutes=45),
    connected_at=T0 - timedelta(days=2),
)
CONNECTORS = (
    ConnectorState("CP-1", 1, 1, ConnectorStatus.CHARGING, "NoError", None, None, None, T0, T0),
    ConnectorState("CP-1", 2, 1, ConnectorStatus.AVAILABLE, "NoError", None, None, None, T0, T0),
)
FINISHED = Transaction(
    id=41,
    charge_point_id="CP-1",
    evse_id=2,
    connector_id=1,
    id_tag="CARD1",
    auth_status="Accepted",
    start_at=T0 - timedelta(hours=3),
    meter_start_wh=1_674_412,
    state=TransactionState.COMPLETED,
    stop_at=T0 - timedelta(hours=2),
    meter_stop_wh=1_685_412,
    energy_wh=11_000,
    stop_reason="Local",
    last_meter_wh=1_685_412,
    last_meter_at=T0 - timedelta(hours=2),
    ocpp_version="1.6",
    billing="billed",
)
RUNNING = Transaction(
    id=42,
    charge_point_id="CP-1",
    evse_id=1,
    connector_id=1,
    id_tag="CARD1",
    auth_status="Accepted",
    start_at=T0,
    meter_start_wh=1_685_412,
    state=TransactionState.ACTIVE,
    last_meter_wh=1_687_093,
    last_meter_at=T0 + timedelta(minutes=10),
    ocpp_version="1.6",
)
NOW = T0 + timedelta(minutes=10)
TARIFF_DATA: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "CSM",
    "id": "T1",
    "currency": "EUR",
    "type": "REGULAR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.25, "vat": 21.0, "step_size": 1}]}
    ],
    "last_updated": "2026-01-01T00:00:00Z",
}
TOKEN = Token(
    uid="CARD1",
    status=TokenStatus.ACCEPTED,
    expires_at=datetime(2027, 1, 1, tzinfo=UTC),
    updated_at=T0 - timedelta(days=30),
)
LOCATION = Location(
    id="AMS-1",
    name="Depot",
    address="Kade 1",
    city="Amsterdam",
    postal_code="1011AA",
    country="NLD",
    latitude="52.3702",
    longitude="4.8952",
    time_zone="Europe/Amsterdam",
    facilities=("WIFI",),
    opening_hours={"twentyfourseven": True},
    last_updated=T0,
)
PARTNER = Partner(
    id=1,
    name="emsp",
    status=PartnerStatus.REGISTERED,
    direction=Direction.INBOUND,
    token_encoding=TokenEncoding.BASE64,
    roles=(PartyRole(Role.EMSP, "NL", "EMS", {"name": "Example eMSP"}),),
    endpoints=(Endpoint("tokens", InterfaceRole.SENDER, "https://emsp.example/ocpi/tokens"),),
    versions_url="https://emsp.example/ocpi/versions",
    version="2.2.1",
    created_at=T0 - timedelta(days=60),
    updated_at=T0 - timedelta(days=60),
    registered_at=T0 - timedelta(days=60),
)
COMMAND = CommandRecord(
    id=7,
    charge_point_id="CP-1",
    command="reset",
    action="Reset",
    params={"hard": False},
    source="cli",
    requested_by="alice",
    outcome="accepted",
    status="Accepted",
    message="Reset accepted",
    answer={"status": "Accepted"},
    created_at=T0,
    finished_at=T0 + timedelta(seconds=1),
)
# An OCPI 2.2.1 EVSE as published (abridged).
EVSE: dict[str, Any] = {
    "uid": "CP-1*1",
    "evse_id": "NL*CSM*E1",
    "status": "CHARGING",
    "connectors": [
        {
            "id": "1",
            "standard": "IEC_62196_T2",
            "format": "SOCKET",
            "power_type": "AC_3_PHASE",
            "max_voltage": 230,
            "max_amperage": 32,
            "last_updated": "2026-01-05T09:30:00Z",
        }
    ],
    "last_updated": "2026-01-05T09:30:00Z",
}
# An OCPI 2.2.1 CDR as the CSMS stores and serves it (abridged: charging_periods and
# the location's other fields are left out here).
CDR: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "CSM",
    "id": "NLCSM0000000001",
    "start_date_time": "2026-01-05T06:30:00Z",
    "end_date_time": "2026-01-05T07:30:00Z",
    "cdr_token": {
        "country_code": "NL",
        "party_id": "CSM",
        "uid": "CARD1",
        "type": "RFID",
        "contract_id": "CARD1",
    },
    "auth_method": "WHITELIST",
    "cdr_location": {"id": "AMS-1", "evse_uid": "CP-1*2", "connector_id": "1"},
    "currency": "EUR",
    "tariffs": [TARIFF_DATA],
    "total_cost": {"excl_vat": 2.75, "incl_vat": 3.3275},
    "total_energy": 11.0,
    "total_time": 1.0,
    "last_updated": "2026-01-05T07:30:05Z",
}


def _site() -> SiteView:
    """A 32 A 3-phase depot with a 16 A circuit, a charger sharing it, a charger that
    refused profiles (its rating reserved) and a cap in force."""
    tree = SiteTree(
        Site("DEPOT", 32.0, 3, location_id="AMS-1", timezone="Europe/Amsterdam"),
        (Circuit("DEPOT", "row-a", 16.0, 3),),
        (
            Link("CP-1", "DEPOT", "row-a", max_current_a=32.0),
            Link(
                "CP-2",
                "DEPOT",
                max_current_a=16.0,
                managed=False,
                unmanaged_reason="rejected SetChargingProfile 3 times",
            ),
        ),
    )
    cap = Cap(3, "DEPOT", 11_000.0, T0, T0 + timedelta(minutes=15), "staff", "alice")
    shares = [
        Share(42, "DEPOT", "row-a", "CP-1", 1, (0, 1, 2), 16.0, False, 15.4, "share", 16.0, 7),
        Share(43, "DEPOT", ROOT, "CP-2", 1, (0, 1, 2), 16.0, False, 15.9, "unmanaged"),
    ]
    slots = [(T0, T0 + timedelta(hours=1), Decimal("0.21"))]
    return site_view(tree, [cap], shares, slots, NOW)


def _priced() -> Priced:
    tariff = parse_tariff(TARIFF_DATA, country_code="NL", party_id="CSM", now=T0)
    usage = Usage(
        start=RUNNING.start_at,
        end=NOW,
        readings=(
            Reading(RUNNING.start_at, 1_685_412, 11_000, None),
            Reading(NOW, 1_687_093, 11_000, None),
        ),
    )
    return Priced(price_session(tariff, usage, ZoneInfo("Europe/Amsterdam")), tariff, None, None)


def page(items: list[Any], total: int, cursor: str | None = None, path: str = "") -> dict[str, Any]:
    return {
        "items": items,
        "total": total,
        "limit": 2 if cursor else 100,
        "next_cursor": cursor,
        "next": None if cursor is None else f"{path}?limit=2&cursor={cursor}",
    }


@cache
def examples() -> dict[str, Any]:
    """Example answer by route path (the OpenAPI path)."""
    charger = {**charger_overview_json(CHARGER, CONNECTORS), "connected_here": True}
    detail = ChargerDetail(
        CHARGER,
        CONNECTORS,
        ((StatusReport(1, 1, ConnectorStatus.CHARGING, "NoError", T0), T0),),
        (RUNNING,),
        (ChargerEvent(1, "CP-1", "Heartbeat", {}, T0 + timedelta(minutes=44)),),
        (),
    )
    samples = (
        Sample(NOW, "Energy.Active.Import.Register", 1_687_093.0, "Wh", "1687093"),
        Sample(NOW, "Power.Active.Import", 11_000.0, "W", "11000"),
    )
    tariff = StoredTariff("T1", TARIFF_DATA, T0, T0)
    assigned = [Assignment("T1", "location", "AMS-1")]
    return {
        "/api/chargers": page([charger], 1),
        "/api/chargers/{charger}": {
            **charger_detail_json(detail),
            "connected_here": True,
        },
        "/api/chargers/{charger}/evses": {
            "charger": "CP-1",
            "items": [
                {**connector_json(CONNECTORS[0]), "transaction_id": RUNNING.id},
                {**connector_json(CONNECTORS[1]), "transaction_id": None},
            ],
            "total": 2,
        },
        "/api/transactions": page(
            [transaction_json(RUNNING, NOW), transaction_json(FINISHED, NOW)],
            57,
            encode_cursor("transactions", FINISHED.id),
            "/api/transactions",
        ),
        "/api/transactions/{transaction}": transaction_detail_json(
            TransactionDetail(RUNNING, samples), NOW, _priced(), None
        ),
        "/api/cdrs": page([CDR], 1),
        "/api/cdrs/{cdr}": CDR,
        "/api/tokens": page([token_json(TOKEN)], 1),
        "/api/tokens/{uid}": token_json(TOKEN),
        "/api/locations": page([location_overview_json(LOCATION, ["CP-1"])], 1),
        "/api/locations/{location}": location_view_json(
            LocationView(
                LOCATION,
                [ChargerLink("CP-1", "AMS-1", ConnectorSpec(), {}, T0)],
                [PublishedEvse("CP-1", 1, "CP-1*1", "AMS-1", "CHARGING", "", EVSE, T0)],
            )
        ),
        "/api/tariffs": page([tariff_json(tariff, assigned)], 1),
        "/api/tariffs/{tariff}": tariff_json(tariff, assigned),
        "/api/sites": page([site_overview_json(_site())], 1),
        "/api/sites/{site}": site_view_json(_site()),
        "/api/partners": page([partner_json(PARTNER)], 1),
        "/api/partners/{name}": partner_json(PARTNER),
        "/api/audit": page([command_record_json(COMMAND)], 1),
        "/api/audit/{entry}": command_record_json(COMMAND),
        **_stats_examples(),
    }


def _stats_examples() -> dict[str, Any]:
    day = datetime(2026, 11, 2, tzinfo=UTC)
    end = day + timedelta(days=1)
    scope = Scope(chargers=("CP-1",))
    figures = Figures(
        "CP-1",
        day,
        end,
        2,
        3,
        Decimal("41.250"),
        {"EUR": (Decimal("17.81"), Decimal("21.55"))},
        9000.0,
        12600.0,
        3600.0,
        7.29,
        2,
        4200.0,
        Decimal("13.750"),
        {"local": 2, "roaming": 1},
    )
    uptime = UptimeRow("CP-1/1", day, end, 1, 86400.0, 1800.0, 900.0, 98.96)
    return {
        "/api/stats": stats_json(StatsReport("charger", "day", day, end, scope, [figures])),
        "/api/stats/uptime": uptime_json(
            UptimeReport("evse", "day", day, end, scope, 900.0, [uptime])
        ),
        "/api/stats/heatmap": heatmap_json(
            Heatmap(day, end, scope, [HeatCell(0, 18, 37.5), HeatCell(0, 19, 12.5)])
        ),
    }
