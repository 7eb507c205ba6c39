"""Repository of the device model stations report (csms.core.device_model values).

Keys are component (+instance, EVSE, connector), variable (+instance) and attribute type;
takes connections or write transactions, returns plain records. No OCPP message parsing here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.device_model import ReportedVariable
from csms.storage.database import BulkStatement, WriteTx
from csms.storage.models import DeviceVariableRow

_dv = cast(Table, DeviceVariableRow.__table__)

_KEY = (
    "charge_point_id",
    "component",
    "component_instance",
    "evse_id",
    "connector_id",
    "variable",
    "variable_instance",
    "attribute_type",
)
# The stored EVSE or connector of a component that belongs to none.
_NONE = -1
_VALUES = ("value", "mutability", "persistent", "constant", "characteristics", "updated_at")


@dataclass(frozen=True, slots=True)
class DeviceVariable:
    component: str
    component_instance: str
    evse_id: int | None
    connector_id: int | None
    variable: str
    variable_instance: str
    attribute_type: str
    value: str | None
    mutability: str | None
    persistent: bool | None
    constant: bool | None
    characteristics: dict[str, Any] | None
    updated_at: datetime

    @property
    def key(self) -> str:
        """Component[.instance][@evse[/connector]].Variable[.instance]."""
        comp = self.component + (f".{self.component_instance}" if self.component_instance else "")
        if self.evse_id is not None:
            comp += f"@{self.evse_id}" + (
                f"/{self.connector_id}" if self.connector_id is not None else ""
            )
        var = self.variable + (f".{self.variable_instance}" if self.variable_instance else "")
        return f"{comp}.{var}"


def _upsert(dialect: str) -> BulkStatement:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(_dv).values({name: bindparam(name) for name in (*_KEY, *_VALUES)})
    return BulkStatement(
        stmt.on_conflict_do_update(
            index_elements=[_dv.c[name] for name in _KEY],
            set_={name: stmt.excluded[name] for name in _VALUES},
        )
    )


_UPSERT = {d: _upsert(d) for d in ("sqlite", "postgresql")}


def store_report_later(
    tx: WriteTx, cp_id: str, variables: Sequence[ReportedVariable], now: datetime
) -> int:
    """Upsert every variable attribute of a report; returns how many. No `touches` key:
    the only deferred statement on the device model (its rows keep their order in it)."""
    at = tx.db_time(now)
    statement = _UPSERT[tx.dialect]
    for v in variables:
        characteristics = v.characteristics
        tx.defer_bulk(
            statement,
            {
                "charge_point_id": cp_id,
                "component": v.component,
                "component_instance": v.component_instance,
                "evse_id": _NONE if v.evse_id is None else v.evse_id,
                "connector_id": _NONE if v.connector_id is None else v.connector_id,
                "variable": v.variable,
                "variable_instance": v.variable_instance,
                "attribute_type": v.attribute_type,
                "value": v.value,
                "mutability": v.mutability,
                "persistent": v.persistent,
                "constant": v.constant,
                "characteristics": None
                if characteristics is None
                else orjson.dumps(characteristics).decode(),
                "updated_at": at,
            },
        )
    return len(variables)


async def variables_of(conn: AsyncConnection, cp_id: str) -> list[DeviceVariable]:
    rows = (
        await conn.execute(
            select(_dv)
            .where(_dv.c.charge_point_id == cp_id)
            .order_by(
                _dv.c.component,
                _dv.c.component_instance,
                _dv.c.evse_id,
                _dv.c.connector_id,
                _dv.c.variable,
                _dv.c.variable_instance,
                _dv.c.attribute_type,
            )
        )
    ).all()
    return [
        DeviceVariable(
            component=r.component,
            component_instance=r.component_instance,
            evse_id=None if r.evse_id < 0 else r.evse_id,
            connector_id=None if r.connector_id < 0 else r.connector_id,
            variable=r.variable,
            variable_instance=r.variable_instance,
            attribute_type=r.attribute_type,
            value=r.value,
            mutability=r.mutability,
            persistent=r.persistent,
            constant=r.constant,
            characteristics=r.characteristics,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


async def set_value(
    conn: AsyncConnection,
    cp_id: str,
    component: str,
    component_instance: str | None,
    variable: str,
    value: str,
    now: datetime,
) -> bool:
    """A SetVariables the station accepted: the reported Actual value changes too."""
    result = await conn.execute(
        update(_dv)
        .where(
            _dv.c.charge_point_id == cp_id,
            _dv.c.component == component,
            _dv.c.component_instance == (component_instance or ""),
            _dv.c.variable == variable,
            _dv.c.variable_instance == "",
            _dv.c.attribute_type == "Actual",
        )
        .values(value=value, updated_at=now)
    )
    return bool(result.rowcount)


async def disabled_components(
    conn: AsyncConnection, cp_ids: Sequence[str], components: Sequence[str]
) -> dict[str, set[str]]:
    """Per charger, which of `components` report `Enabled` (or `Available`) false at
    charger level (OCPP 2.0.1 controllers, e.g. ReservationCtrlr)."""
    if not cp_ids:
        return {}
    stmt = select(_dv.c.charge_point_id, _dv.c.component).where(
        _dv.c.charge_point_id.in_(list(cp_ids)),
        _dv.c.component.in_(list(components)),
        _dv.c.variable.in_(["Enabled", "Available"]),
        _dv.c.attribute_type == "Actual",
        _dv.c.evse_id < 0,
        _dv.c.value.in_(["false", "False", "FALSE", "0"]),
    )
    out: dict[str, set[str]] = {}
    for cp_id, component in (await conn.execute(stmt)).all():
        out.setdefault(cp_id, set()).add(component)
    return out
