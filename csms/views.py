"""The JSON shape of every object staff read: charge points, connectors, transactions,
tokens, locations, tariffs, CDRs, OCPI partners, audit log entries, smart-charging
sites and ad-hoc payments.

One place for both the CLI's `--json` and the operator API, so that the two cannot drift.
Pure functions from domain and service values to JSON-ready dicts (times as ISO 8601 UTC
strings); no I/O and no rules here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from csms.core.cost import cost_to_ocpi

if TYPE_CHECKING:  # types only: the CLI imports this module and must start fast
    from csms.core.authorization import Token
    from csms.core.charger import ChargePoint, ConnectorState
    from csms.core.commands import CommandRecord
    from csms.core.locations import Location
    from csms.core.maintenance import MaintenanceWindow
    from csms.core.overview import Overview, StationEvent
    from csms.core.partners import Partner
    from csms.core.payments import Payment, PaymentEvent
    from csms.core.sites import Cap, Link, Share
    from csms.core.statistics import Figures
    from csms.core.transactions import Transaction
    from csms.core.users import StaffUser
    from csms.services.billing import Priced
    from csms.services.locations import LocationView
    from csms.services.sites import NodeView, SiteView
    from csms.services.staff import ChargerDetail, TransactionDetail
    from csms.services.statistics import Heatmap, StatsReport, UptimeReport
    from csms.storage.cdrs import StoredCdr
    from csms.storage.tariffs import Assignment, StoredTariff


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC to the second, `2026-12-04T23:12:54Z` (None stays None)."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%SZ")  # %Y is not padded below 1000


# --- charge points ------------------------------------------------------------------------


def charger_json(cp: ChargePoint) -> dict[str, Any]:
    return {
        "id": cp.id,
        "registration": cp.registration.value,
        "ocpp_version": cp.ocpp_version,
        "connected": cp.connected,
        # The node (csms serve process) that recorded its latest connection: while it is
        # connected, the one holding its socket.
        "node_id": cp.node_id,
        "vendor": cp.vendor,
        "model": cp.model,
        "serial_number": cp.serial_number,
        "charge_box_serial": cp.charge_box_serial,
        "firmware_version": cp.firmware_version,
        "iccid": cp.iccid,
        "imsi": cp.imsi,
        "meter_type": cp.meter_type,
        "meter_serial": cp.meter_serial,
        "validation": cp.validation,
        "password_set": cp.password_hash is not None,
        "security_profile": cp.security_profile,
        "last_boot_at": iso(cp.last_boot_at),
        "last_heartbeat_at": iso(cp.last_heartbeat_at),
        "last_seen_at": iso(cp.last_seen_at),
        "connected_at": iso(cp.connected_at),
        "disconnected_at": iso(cp.disconnected_at),
        "firmware_status": cp.firmware_status,
        "firmware_status_at": iso(cp.firmware_status_at),
        "diagnostics_status": cp.diagnostics_status,
        "diagnostics_status_at": iso(cp.diagnostics_status_at),
        "auto_registered": cp.auto_registered,
    }


def connector_json(c: ConnectorState) -> dict[str, Any]:
    return {
        "evse_id": c.evse_id,
        "connector_id": c.connector_id,
        "status": c.status.value,
        "status_group": c.status.base.value,
        "error_code": c.error_code,
        "info": c.info,
        "vendor_id": c.vendor_id,
        "vendor_error_code": c.vendor_error_code,
        "status_at": iso(c.status_at),
    }


def charger_overview_json(cp: ChargePoint, connectors: Iterable[ConnectorState]) -> dict[str, Any]:
    """A charger in a list: itself and the status of each connector."""
    return {**charger_json(cp), "connectors": [connector_json(c) for c in connectors]}


def charger_detail_json(detail: ChargerDetail) -> dict[str, Any]:
    """Everything known about one charger (`csms chargers show --json`)."""
    return {
        **charger_overview_json(detail.charger, detail.connectors),
        "status_history": [
            {
                "evse_id": r.evse_id,
                "connector_id": r.connector_id,
                "status": r.status.value,
                "error_code": r.error_code,
                "info": r.info,
                "status_at": iso(r.timestamp),
                "received_at": iso(received),
            }
            for r, received in detail.history
        ],
        "active_transactions": [t.id for t in detail.active_transactions],
        "meter_public_keys": [
            {
                "evse_id": k.evse_id,
                "public_key": k.public_key,
                "source": k.source,
                "meter_serial": k.meter_serial,
                "updated_at": iso(k.updated_at),
            }
            for k in detail.meter_keys
        ],
        "events": [
            {"action": e.action, "payload": e.payload, "received_at": iso(e.received_at)}
            for e in detail.events
        ],
        "unmatched_messages": [unmatched_json(u) for u in detail.unmatched],
        "reservations": [
            {
                "id": r.id,
                "evse_id": r.evse_id,
                "id_tag": r.id_tag,
                "state": r.state.value,
                "expires_at": iso(r.expires_at),
            }
            for r in detail.reservations
        ],
        "charging_profiles": [
            {
                "id": p.profile.profile_id,
                "evse_id": p.profile.evse_id,
                "purpose": p.profile.purpose.value,
                "stack_level": p.profile.stack_level,
                "limit": p.profile.limit,
                "unit": p.profile.unit,
                "duration_s": p.profile.duration_s,
                "transaction_id": p.transaction_id,
            }
            for p in detail.profiles
        ],
        "local_list_version": detail.local_list.version if detail.local_list else None,
    }


def unmatched_json(u: dict[str, Any]) -> dict[str, Any]:
    """A stop or meter message that named a transaction the CSMS does not know."""
    return {**u, "received_at": iso(u["received_at"])}


# --- transactions -------------------------------------------------------------------------


def transaction_json(t: Transaction, now: datetime) -> dict[str, Any]:
    """A transaction; a running one's duration and energy are so far (`now`)."""
    end = t.stop_at or now
    return {
        "id": t.id,
        "charger": t.charge_point_id,
        "ocpp_version": t.ocpp_version,
        "ocpp_transaction_id": t.ocpp_transaction_id or str(t.id),
        "evse_id": t.evse_id,
        "connector_id": t.connector_id,
        "id_tag": t.id_tag,
        "auth_status": t.auth_status,
        "state": t.state.value,
        "start_at": iso(t.start_at),
        "stop_at": iso(t.stop_at),
        "duration_s": int((end - t.start_at).total_seconds()),
        "meter_start_wh": t.meter_start_wh,
        "meter_stop_wh": t.meter_stop_wh,
        "energy_wh": t.energy_wh if not t.active else t.live_energy_wh(),
        "stop_reason": t.stop_reason,
        "stop_id_tag": t.stop_id_tag,
        "flags": list(t.flags),
        "reservation_id": t.reservation_id,
        "remote_start_id": t.remote_start_id,
        "last_meter_wh": t.last_meter_wh,
        "last_meter_at": iso(t.last_meter_at),
        "billing": t.billing,
        "held_reason": t.held_reason,
        "billing_attempts": t.billing_attempts,
        "billing_error": t.billing_error,
        "billing_retry_at": iso(t.billing_retry_at),
        "signature_state": t.signature_state,
        "signature_problem": t.signature_problem,
    }


def transaction_detail_json(
    detail: TransactionDetail, now: datetime, priced: Priced | None, cost_error: str | None
) -> dict[str, Any]:
    """One transaction with its cost (or why it cannot be computed), its OCPP 2.0.1 events
    and every meter sample (`csms transactions show --json`)."""
    return {
        **transaction_json(detail.transaction, now),
        "tariff_id": None if priced is None or priced.tariff is None else priced.tariff.id,
        "currency": None if priced is None else priced.cost.currency,
        "cost": None if priced is None else cost_to_ocpi(priced.cost),
        "cost_error": cost_error,
        "events": [
            {
                "seq_no": e.seq_no,
                "event_type": e.event_type,
                "trigger_reason": e.trigger_reason,
                "timestamp": iso(e.timestamp),
                "offline": e.offline,
            }
            for e in detail.events
        ],
        "samples": [
            {
                "timestamp": iso(s.timestamp),
                "measurand": s.measurand,
                "value": s.value,
                "unit": s.unit,
                "phase": s.phase,
                "location": s.location,
                "context": s.context,
                "signed": s.signed,
                "raw_value": s.raw_value,
            }
            for s in detail.samples
        ],
        "signed_values": [
            {
                "timestamp": iso(v.timestamp),
                "context": v.context,
                "measurand": v.measurand,
                "evse_id": v.evse_id,
                "meter_serial": v.meter_serial,
                "encoding_method": v.encoding_method,
                "signing_method": v.signing_method,
                "public_key": v.public_key,
                "data": v.data,
            }
            for v in detail.signed
        ],
    }


# --- tokens -------------------------------------------------------------------------------


def token_json(t: Token, claimed_by: Iterable[str] = ()) -> dict[str, Any]:
    """A token; when other parties' tokens claim its uid (`claimed_by`), also those parties
    (the key is absent otherwise: the shape scripts know stays as it was)."""
    out: dict[str, Any] = {
        "uid": t.uid,
        "type": t.type,
        "status": t.status.value,
        "expires_at": iso(t.expires_at),
        "parent": t.parent_uid,
        "origin": t.origin,
        "max_concurrent": t.max_concurrent,
        "priority": t.priority,
        "updated_at": iso(t.updated_at),
    }
    claims = sorted(set(claimed_by))
    if claims:
        out["also_claimed_by"] = claims
    return out


# --- locations ----------------------------------------------------------------------------


def location_json(loc: Location) -> dict[str, Any]:
    return {
        "id": loc.id,
        "name": loc.name,
        "address": loc.address,
        "city": loc.city,
        "postal_code": loc.postal_code,
        "state": loc.state,
        "country": loc.country,
        "coordinates": {"latitude": loc.latitude, "longitude": loc.longitude},
        "time_zone": loc.time_zone,
        "publish": loc.publish,
        "parking_type": loc.parking_type,
        "facilities": list(loc.facilities),
        "opening_times": loc.opening_hours,
        "last_updated": iso(loc.last_updated),
    }


def location_overview_json(loc: Location, chargers: Sequence[str]) -> dict[str, Any]:
    """A location in a list: itself and the ids of the chargers standing there."""
    return {**location_json(loc), "chargers": list(chargers)}


def location_view_json(view: LocationView) -> dict[str, Any]:
    """One location with its chargers and its EVSEs as published (`csms locations show
    --json`)."""
    return {
        **location_json(view.location),
        "chargers": [
            {
                "charger": link.charge_point_id,
                "connector": {
                    "standard": link.spec.standard,
                    "format": link.spec.format,
                    "power_type": link.spec.power_type,
                    "max_voltage": link.spec.max_voltage,
                    "max_amperage": link.spec.max_amperage,
                    "max_electric_power": link.spec.max_electric_power,
                },
                "evses": {str(n): {"evse_id": d.evse_code} for n, d in sorted(link.evses.items())},
            }
            for link in view.chargers
        ],
        "evses": [e.data for e in view.evses],
    }


# --- tariffs and CDRs ---------------------------------------------------------------------


def assignment_text(a: Assignment) -> str:
    """Where a tariff applies, for people: `default`, `location AMS-1`, `evse CP1*1`,
    `evse CP1*1 connector 2`; `... (ad hoc)` for drivers who pay on the spot."""
    if a.scope == "default":
        text = "default"
    elif a.scope == "connector":
        uid, _, connector = a.target.partition("#")
        text = f"evse {uid} connector {connector}"
    else:
        text = f"{a.scope} {a.target}"
    return f"{text} (ad hoc)" if a.ad_hoc else text


def published_tariff(t: StoredTariff, assigned: Iterable[Assignment]) -> dict[str, Any]:
    """The OCPI Tariff object as partners are given it: of type AD_HOC_PAYMENT when it is
    assigned only for drivers who pay on the spot (`assigned`: all its assignments)."""
    from csms.core.tariffs import as_published

    found = list(assigned)
    return as_published(t.data, ad_hoc_only=bool(found) and all(a.ad_hoc for a in found))


def tariff_json(t: StoredTariff, assigned: Iterable[Assignment]) -> dict[str, Any]:
    """The OCPI Tariff object as partners are given it, with where it applies
    (`assigned_to`)."""
    found = list(assigned)
    return {**published_tariff(t, found), "assigned_to": [assignment_text(a) for a in found]}


def cdr_json(c: StoredCdr) -> dict[str, Any]:
    """The OCPI 2.2.1 CDR object, as stored (a CDR never changes)."""
    return c.data


# --- OCPI partners ------------------------------------------------------------------------


def partner_json(p: Partner) -> dict[str, Any]:
    """A partner: status, roles, endpoints and dates (never its tokens)."""
    return {
        "name": p.name,
        "status": p.status.value,
        "direction": None if p.direction is None else p.direction.value,
        "version": p.version,
        "versions_url": p.versions_url,
        "token_encoding": p.token_encoding.value,
        "roles": [
            {
                "role": r.role.value,
                "country_code": r.country_code,
                "party_id": r.party_id,
                "business_details": r.business_details,
            }
            for r in p.roles
        ],
        "endpoints": [
            {"identifier": e.identifier, "role": e.role.value, "url": e.url} for e in p.endpoints
        ],
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "registered_at": iso(p.registered_at),
        "profile": {
            "name": p.profile.name,
            **p.profile.switches(),
            "custom": sorted(p.profile.custom),
        },
        "health": partner_health_json(p),
    }


def partner_health_json(p: Partner, now: datetime | None = None) -> dict[str, Any]:
    """How pushes to a partner fare: last success and error, backlog, oldest push's age
    (backlog and age are null where they were not read)."""
    health = p.health
    now = now or datetime.now(UTC)
    age = None if health is None else health.oldest_age(now)
    return {
        "last_success_at": iso(p.last_success_at),
        "last_error_at": iso(p.last_error_at),
        "last_error": p.last_error,
        "backlog": None if health is None else health.backlog,
        "oldest_push_at": None if health is None else iso(health.oldest_push_at),
        "oldest_push_age_s": None if age is None else round(age, 1),
    }


# --- the audit log ------------------------------------------------------------------------


def command_record_json(record: CommandRecord) -> dict[str, Any]:
    """One audit log entry: who asked what of which charger, and what it answered."""
    return {
        "id": record.id,
        "charger": record.charge_point_id,
        "command": record.command,
        "action": record.action,
        "params": record.params,
        "source": record.source,
        "requested_by": record.requested_by,
        "outcome": record.outcome,
        "status": record.status,
        "message": record.message,
        "answer": record.answer,
        "created_at": iso(record.created_at),
        "finished_at": iso(record.finished_at),
    }


def staff_user_json(user: StaffUser) -> dict[str, Any]:
    """A staff user of the operator API (never its token)."""
    return {
        "name": user.name,
        "role": user.role.value,
        "enabled": user.enabled,
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
        "token_issued_at": iso(user.token_issued_at),
    }


# --- smart-charging sites -----------------------------------------------------------------

_PHASES = ("L1", "L2", "L3")


def _phases(indexes: Iterable[int]) -> list[str]:
    return [_PHASES[i] for i in indexes]


def cap_json(cap: Cap, now: datetime, cancelled_at: datetime | None = None) -> dict[str, Any]:
    """A cap on a site: its limit over all the site's phases, its window, who set it."""
    return {
        "id": cap.id,
        "site": cap.site_id,
        "limit_kw": cap.limit_w / 1000,
        "from": iso(cap.start_at),
        "until": iso(cap.end_at),
        "active": cancelled_at is None and cap.active(now),
        "cancelled_at": iso(cancelled_at),
        "source": cap.source,
        "reference": cap.reference,
        "requested_by": cap.requested_by,
        "reason": cap.reason,
    }


def _node_json(node: NodeView) -> dict[str, Any]:
    return {
        "node": node.node,
        "parent": node.parent,
        "phases": _phases(node.phases),
        "max_current_a": node.max_current_a,
        "max_power_kw": None if node.max_power_w is None else node.max_power_w / 1000,
        "limit_a": node.limit_a,
        "effective_a": node.effective_a,
        "allocated_a": list(node.allocated_a),
        "chargers": list(node.chargers),
    }


def _link_json(link: Link) -> dict[str, Any]:
    return {
        "charger": link.charge_point_id,
        "circuit": link.circuit,
        "phase": None if link.phase is None else _PHASES[link.phase],
        "max_current_a": link.max_current_a,
        "profile_mode": link.profile_mode.value,
        "managed": link.managed,
        "unmanaged_reason": link.unmanaged_reason,
    }


def _share_json(share: Share) -> dict[str, Any]:
    return {
        "transaction_id": share.transaction_id,
        "charger": share.charge_point_id,
        "evse_id": share.evse_id,
        "node": share.node,
        "phases": _phases(share.phases),
        "granted_a": share.granted_a,
        "paused": share.paused,
        "measured_a": share.measured_a,
        "reason": share.reason,
        "sent_a": share.sent_a,
        "profile_id": share.profile_id,
    }


def _site_head(view: SiteView) -> dict[str, Any]:
    site, root = view.site, view.nodes[0]
    return {
        "id": site.id,
        "location": site.location_id,
        "phases": site.phases,
        "voltage_v": site.voltage_v,
        "max_current_a": site.max_current_a,
        "max_power_kw": None if site.max_power_w is None else site.max_power_w / 1000,
        "limit_a": root.limit_a,
        "effective_a": root.effective_a,
        "allocated_a": list(root.allocated_a),
    }


def site_overview_json(view: SiteView) -> dict[str, Any]:
    """A site in a list: its limits, what is allocated, its chargers and caps in force."""
    return {
        **_site_head(view),
        "circuits": [n.node for n in view.nodes[1:]],
        "chargers": [link.charge_point_id for link in view.tree.links],
        "unmanaged": [link.charge_point_id for link in view.tree.links if not link.managed],
        "sessions": len(view.shares),
        "active_caps": [cap_json(c, view.now) for c in view.active_caps],
    }


def site_view_json(view: SiteView) -> dict[str, Any]:
    """One site: the tree with each node's limit, its effective limit under its ancestors
    and the caps in force, the current allocated below it per phase (L1, L2, L3), the
    linked chargers (unmanaged ones with the reason), each session's share, the caps in
    force or ahead, and the prices (per kWh, exact, as text)."""
    site = view.site
    return {
        **_site_head(view),
        "at": iso(view.now),
        "nodes": [_node_json(n) for n in view.nodes],
        "chargers": [_link_json(link) for link in view.tree.links],
        "unmanaged": [
            {"charger": link.charge_point_id, "reason": link.unmanaged_reason}
            for link in view.tree.links
            if not link.managed
        ],
        "sessions": [_share_json(s) for s in view.shares],
        "caps": [cap_json(c, view.now) for c in view.caps],
        "prices": {
            "timezone": site.timezone,
            "daily": [{"from": at, "price": str(price)} for at, price in site.daily_prices],
            "slots": [
                {"start": iso(start), "end": iso(end), "price": str(price)}
                for start, end, price in view.slots
            ],
        },
    }


def overview_json(o: Overview) -> dict[str, Any]:
    """The network at a glance (`GET /api/overview`)."""
    return {
        "chargers": {
            "total": o.chargers,
            "connected": o.connected,
            "by_status": o.chargers_by_status,
        },
        "evses": {"total": o.evses, "by_status": o.evses_by_status},
        "sessions_running": o.sessions_running,
        "power_w": o.power_w,
        "at": iso(o.at),
    }


def station_event_json(event: StationEvent) -> tuple[str, dict[str, Any]]:
    """A live change as (event name, data) of the `GET /api/events` stream."""
    from csms.core.overview import StatusChanged  # here: see TYPE_CHECKING above

    if isinstance(event, StatusChanged):
        return "status", {
            "charge_point_id": event.charge_point_id,
            "evse_id": event.evse_id,
            "connector_id": event.connector_id,
            "status": event.status.value,
            "status_group": event.status.base.value,
            "error_code": event.error_code,
            "at": iso(event.at),
        }
    return "connection", {
        "charge_point_id": event.charge_point_id,
        "connected": event.connected,
        "at": iso(event.at),
    }


def maintenance_window_json(window: MaintenanceWindow) -> dict[str, Any]:
    """A maintenance window: the charger (and EVSE; null: the whole charger) it takes out
    of the uptime figures, when, whether planned or excluded after the fact, and why."""
    return {
        "id": window.id,
        "charger": window.charge_point_id,
        "evse": window.evse_id,
        "kind": window.kind.value,
        "from": iso(window.starts_at),
        "until": iso(window.ends_at),
        "reason": window.reason,
        "created_by": window.created_by,
        "created_at": iso(window.created_at),
    }


# --- statistics -----------------------------------------------------------------------------

# The origins every statistics row names (zero when none), in this order.
ORIGINS = ("local", "roaming", "remote")


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def money(amount: Decimal) -> str:
    """A sum of money to the cent, half up (CDR totals are kept as priced, to the fraction
    of a cent: 110.03603 + ... shows as 110.04; 6.0000 + 3.0 as 9.00)."""
    return f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"


def figures_json(row: Figures) -> dict[str, Any]:
    """One group in one period: counts, kWh and money as exact decimal strings, times in
    seconds."""
    return {
        "group": row.group,
        "start": iso(row.start),
        "end": iso(row.end),
        "evses": row.evses,
        "sessions": row.sessions,
        "energy_kwh": str(row.energy_kwh),
        "revenue": [
            {"currency": currency, "excl_vat": money(excl), "incl_vat": money(incl)}
            for currency, (excl, incl) in sorted(row.revenue.items())
        ],
        "charging_s": _seconds(row.charging_s),
        "occupied_s": _seconds(row.occupied_s),
        "idle_s": _seconds(row.idle_s),
        "utilisation_pct": row.utilisation_pct,
        "unique_tokens": row.unique_tokens,
        "avg_session_s": _seconds(row.avg_session_s),
        "avg_energy_kwh": None if row.avg_energy_kwh is None else str(row.avg_energy_kwh),
        "by_origin": {origin: row.by_origin.get(origin, 0) for origin in ORIGINS},
    }


def _range_json(report: StatsReport | UptimeReport | Heatmap) -> dict[str, Any]:
    return {"from": iso(report.start), "to": iso(report.end), "scope": report.scope.as_query()}


def stats_json(report: StatsReport) -> dict[str, Any]:
    return {
        "by": report.by,
        "period": report.period,
        **_range_json(report),
        "rows": [figures_json(row) for row in report.rows],
    }


def uptime_json(report: UptimeReport) -> dict[str, Any]:
    return {
        "by": report.by,
        "period": report.period,
        **_range_json(report),
        "grace_s": report.grace_s,
        "rows": [
            {
                "group": row.group,
                "start": iso(row.start),
                "end": iso(row.end),
                "evses": row.evses,
                "period_s": _seconds(row.period_s),
                "outage_s": _seconds(row.outage_s),
                "excluded_s": _seconds(row.excluded_s),
                "uptime_pct": row.uptime_pct,
            }
            for row in report.rows
        ],
    }


def heatmap_json(heatmap: Heatmap) -> dict[str, Any]:
    return {
        **_range_json(heatmap),
        "rows": [
            {"weekday": c.weekday, "hour": c.hour, "utilisation_pct": c.utilisation_pct}
            for c in heatmap.cells
        ],
    }


def stats_csv_rows(report: StatsReport) -> tuple[list[str], list[list[Any]]]:
    """The figures as a CSV header and rows, the JSON's fields flattened: revenue as two
    columns per currency found, origins as one column each."""
    currencies = sorted({c for row in report.rows for c in row.revenue})
    header = [
        "group",
        "start",
        "end",
        "evses",
        "sessions",
        "energy_kwh",
        *(f"revenue_{kind}_vat_{c}" for c in currencies for kind in ("excl", "incl")),
        "charging_s",
        "occupied_s",
        "idle_s",
        "utilisation_pct",
        "unique_tokens",
        "avg_session_s",
        "avg_energy_kwh",
        *(f"sessions_{origin}" for origin in ORIGINS),
    ]
    rows: list[list[Any]] = []
    for row in report.rows:
        shown = figures_json(row)
        money = {r["currency"]: r for r in shown["revenue"]}
        rows.append(
            [
                shown["group"],
                shown["start"],
                shown["end"],
                shown["evses"],
                shown["sessions"],
                shown["energy_kwh"],
                *(
                    money[c][f"{kind}_vat"] if c in money else "0"
                    for c in currencies
                    for kind in ("excl", "incl")
                ),
                shown["charging_s"],
                shown["occupied_s"],
                shown["idle_s"],
                shown["utilisation_pct"],
                shown["unique_tokens"],
                shown["avg_session_s"],
                shown["avg_energy_kwh"],
                *(shown["by_origin"][origin] for origin in ORIGINS),
            ]
        )
    return header, rows


def uptime_csv_rows(report: UptimeReport) -> tuple[list[str], list[list[Any]]]:
    shown = uptime_json(report)["rows"]
    header = [
        "group",
        "start",
        "end",
        "evses",
        "period_s",
        "outage_s",
        "excluded_s",
        "uptime_pct",
    ]
    return header, [[row[key] for key in header] for row in shown]


# --- ad-hoc payments ----------------------------------------------------------------------


def _amount(minor: int | None, currency: str) -> str | None:
    """Minor units as the exact decimal string of the currency (`3000` EUR -> "30.00")."""
    from csms.core.payments import from_minor

    return None if minor is None else f"{from_minor(minor, currency):f}"


def payment_json(p: Payment) -> dict[str, Any]:
    """A payment as staff read it (`csms payments show --json`): amounts as exact decimal
    strings in its currency; `id_tag` is the one-time token its session ran under."""
    return {
        "id": p.id,
        "state": p.state.value,
        "evse_uid": p.evse_uid,
        "charge_point_id": p.charge_point_id,
        "evse_id": p.evse_id,
        "connector_id": p.connector_id,
        "location_id": p.location_id,
        "tariff_id": p.tariff_id,
        "provider": p.provider,
        "checkout_ref": p.checkout_ref,
        "provider_ref": p.provider_ref,
        "currency": p.currency,
        "cap": _amount(p.cap_minor, p.currency),
        "authorized": _amount(p.authorized_minor, p.currency),
        "captured": _amount(p.captured_minor, p.currency),
        "refunded": _amount(p.refunded_minor, p.currency),
        "id_tag": p.id_tag,
        "transaction_id": p.transaction_id,
        "cdr_id": p.cdr_id,
        "email": p.email,
        "stop_reason": None if p.stop_reason is None else p.stop_reason.value,
        "attempts": p.attempts,
        "next_try_at": iso(p.next_try_at),
        "last_error": p.last_error,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
    }


def payment_event_json(e: PaymentEvent) -> dict[str, Any]:
    return {
        "at": iso(e.at),
        "from_state": None if e.from_state is None else e.from_state.value,
        "to_state": None if e.to_state is None else e.to_state.value,
        "what": e.what,
        "actor": e.actor,
        "detail": e.detail,
        "provider_event_id": e.provider_event_id,
    }
