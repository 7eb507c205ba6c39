"""What the eMSP simulator holds of a CPO's objects (locations with their EVSEs and
connectors, sessions, CDRs, tariffs) and the OCPI Receiver rules for taking pushes (2.2.1, or
2.1.1 where it differs: no last_updated needed in a PATCH, a PATCH's charging_periods replace
the held ones, objects without country_code/party_id); beside them its own tokens
(simulators.emsp_tokens) and commands (simulators.emsp_commands).

Pure: JSON objects in and out, `PushRefused` for what a Receiver refuses; no HTTP here.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from simulators.emsp_commands import CommandBook
from simulators.emsp_tokens import TokenBook
from simulators.errors import PushRefused

__all__ = ["MODULES", "Key", "Stores", "key", "patch_fields", "summary"]

#: The modules the simulator receives pushes of (and may pull).
MODULES = ("locations", "sessions", "cdrs", "tariffs")

#: An object of a CPO: (country_code, party_id, id); the first two upper-cased (CiString).
Key = tuple[str, str, str]

Json = dict[str, Any]

INVALID = 2001  # invalid or missing parameters
UNKNOWN = 2000  # generic client error: here, no such object
UNKNOWN_LOCATION = 2003


def key(country_code: str, party_id: str, object_id: str) -> Key:
    return (country_code.upper(), party_id.upper(), object_id)


def _invalid(message: str) -> PushRefused:
    # The request reached the OCPI layer: HTTP 200 with the OCPI status.
    return PushRefused(200, INVALID, message)


def _unknown(what: str, code: int = UNKNOWN) -> PushRefused:
    return PushRefused(404, code, f"unknown {what}")


def _object(body: Any, what: str) -> Json:
    if not isinstance(body, dict):
        raise _invalid(f"the {what} must be a JSON object")
    return body


def _same_id(body: Json, field: str, expected: str, what: str, *, required: bool) -> None:
    value = body.get(field)
    if value is None:
        if required:
            raise _invalid(f"{what}: {field} is missing")
        return
    if str(value) != expected:
        raise _invalid(f"{what}: {field} {value!r} differs from the URL's {expected!r}")


def _same_owner(body: Json, k: Key, what: str) -> None:
    for field, expected in (("country_code", k[0]), ("party_id", k[1])):
        value = body.get(field)
        if value is not None and str(value).upper() != expected:
            raise _invalid(f"{what}: {field} {value!r} differs from the URL's {expected!r}")


def _needs_last_updated(body: Json, what: str) -> None:
    if not isinstance(body.get("last_updated"), str):
        raise _invalid(f"{what}: a PATCH must carry last_updated")


def _touch(parent: Json, child: Json) -> None:
    """A child changed: its parent takes the child's last_updated (spec: PUT and PATCH of an
    EVSE or connector update the parents' last_updated)."""
    if isinstance(child.get("last_updated"), str):
        parent["last_updated"] = child["last_updated"]


def _children(parent: Json, field: str) -> list[Json]:
    found = parent.get(field)
    if not isinstance(found, list):
        found = []
        parent[field] = found
    return found


def _find(items: Iterable[Any], field: str, value: str) -> Json | None:
    for item in items:
        if isinstance(item, dict) and str(item.get(field)) == value:
            return item
    return None


def _replace_or_add(items: list[Json], field: str, value: str, new: Json) -> bool:
    """Put `new` in place of the item whose `field` is `value`, or append it; True if new."""
    for i, item in enumerate(items):
        if isinstance(item, dict) and str(item.get(field)) == value:
            items[i] = new
            return False
    items.append(new)
    return True


class Stores:
    """One dict per module, `Key` -> the object as the simulator holds it now; the
    simulator's own tokens, and the commands it sent with the results posted back.
    `v211`: the objects are OCPI 2.1.1 ones, taken by 2.1.1's rules."""

    def __init__(self, *, v211: bool = False, commands: CommandBook | None = None) -> None:
        self.v211 = v211
        self.locations: dict[Key, Json] = {}
        self.sessions: dict[Key, Json] = {}
        self.cdrs: dict[Key, Json] = {}
        # CDRs the CPO POSTed (a CDR only pulled so far may still come as a push).
        self._cdrs_posted: set[Key] = set()
        self.tariffs: dict[Key, Json] = {}
        self.tokens = TokenBook()
        self.commands = commands or CommandBook()

    def of(self, module: str) -> dict[Key, Json]:
        stores = {
            "locations": self.locations,
            "sessions": self.sessions,
            "cdrs": self.cdrs,
            "tariffs": self.tariffs,
        }
        return stores[module]

    def absorb(
        self, module: str, objects: Iterable[Any], owner: tuple[str, str] | None = None
    ) -> int:
        """Keep pulled objects (2.2.1 ones carry their own country_code, party_id and id;
        2.1.1 ones are the `owner`'s, the CPO they were pulled from); returns how many were
        kept."""
        store = self.of(module)
        kept = 0
        for obj in objects:
            if not isinstance(obj, dict):
                continue
            cc, pid, oid = obj.get("country_code"), obj.get("party_id"), obj.get("id")
            if owner is not None and cc is None and pid is None:
                cc, pid = owner
            if isinstance(cc, str) and isinstance(pid, str) and isinstance(oid, str):
                store[key(cc, pid, oid)] = copy.deepcopy(obj)
                kept += 1
        return kept

    # --- locations ---------------------------------------------------------------------

    def location_part(
        self, k: Key, evse_uid: str | None = None, connector_id: str | None = None
    ) -> Json:
        """The Location, one of its EVSEs, or one connector of that EVSE."""
        location = self.locations.get(k)
        if location is None:
            raise _unknown(f"location {k[2]}", UNKNOWN_LOCATION)
        if evse_uid is None:
            return location
        evse = _find(_children(location, "evses"), "uid", evse_uid)
        if evse is None:
            raise _unknown(f"EVSE {evse_uid} at location {k[2]}")
        if connector_id is None:
            return evse
        connector = _find(_children(evse, "connectors"), "id", connector_id)
        if connector is None:
            raise _unknown(f"connector {connector_id} of EVSE {evse_uid}")
        return connector

    def put_location(
        self, k: Key, evse_uid: str | None, connector_id: str | None, body: Any
    ) -> bool:
        """PUT of a Location, an EVSE or a connector (by the URL); True if it is new."""
        if evse_uid is None:
            location = _object(body, "Location")
            _same_id(location, "id", k[2], "Location", required=True)
            _same_owner(location, k, "Location")
            created = k not in self.locations
            self.locations[k] = copy.deepcopy(location)
            return created
        parent = self.location_part(k)
        if connector_id is None:
            evse = _object(body, "EVSE")
            _same_id(evse, "uid", evse_uid, "EVSE", required=True)
            created = _replace_or_add(
                _children(parent, "evses"), "uid", evse_uid, copy.deepcopy(evse)
            )
            _touch(parent, evse)
            return created
        evse_held = self.location_part(k, evse_uid)
        connector = _object(body, "Connector")
        _same_id(connector, "id", connector_id, "Connector", required=True)
        created = _replace_or_add(
            _children(evse_held, "connectors"), "id", connector_id, copy.deepcopy(connector)
        )
        _touch(evse_held, connector)
        _touch(parent, connector)
        return created

    def patch_location(
        self, k: Key, evse_uid: str | None, connector_id: str | None, body: Any
    ) -> Json:
        """PATCH of a Location, an EVSE or a connector: the fields given replace the held
        ones, the parents take the new last_updated. Returns the patched object."""
        what = "Location" if evse_uid is None else "EVSE" if connector_id is None else "Connector"
        patch = _object(body, what)
        if not self.v211:
            _needs_last_updated(patch, what)
        target = self.location_part(k, evse_uid, connector_id)
        if evse_uid is None:
            _same_id(patch, "id", k[2], what, required=False)
            _same_owner(patch, k, what)
        elif connector_id is None:
            _same_id(patch, "uid", evse_uid, what, required=False)
        else:
            _same_id(patch, "id", connector_id, what, required=False)
        target.update(copy.deepcopy(patch))
        if evse_uid is not None:
            _touch(self.location_part(k), patch)
            if connector_id is not None:
                _touch(self.location_part(k, evse_uid), patch)
        return target

    # --- sessions ----------------------------------------------------------------------

    def session(self, k: Key) -> Json:
        found = self.sessions.get(k)
        if found is None:
            raise _unknown(f"session {k[2]}")
        return found

    def put_session(self, k: Key, body: Any) -> bool:
        """PUT replaces the whole Session, its charging_periods included (none given:
        none kept). True if it is new."""
        session = copy.deepcopy(_object(body, "Session"))
        _same_id(session, "id", k[2], "Session", required=True)
        _same_owner(session, k, "Session")
        if not isinstance(session.get("charging_periods"), list):
            session["charging_periods"] = []
        created = k not in self.sessions
        self.sessions[k] = session
        return created

    def patch_session(self, k: Key, body: Any) -> int:
        """PATCH: the fields given replace the held ones, except charging_periods, which
        are added to the held list (2.2.1). In 2.1.1 every field given replaces the held
        one, charging_periods too: that version has no rule of its own for them. Returns how
        many periods were added."""
        patch = _object(body, "Session")
        if not self.v211:
            _needs_last_updated(patch, "Session")
        session = self.session(k)
        _same_id(patch, "id", k[2], "Session", required=False)
        _same_owner(patch, k, "Session")
        periods = patch.get("charging_periods")
        if periods is not None and not isinstance(periods, list):
            raise _invalid("Session: charging_periods must be a list")
        if self.v211:
            session.update(copy.deepcopy(patch))
            return len(periods or [])
        for field, value in patch.items():
            if field != "charging_periods":
                session[field] = copy.deepcopy(value)
        added = copy.deepcopy(periods or [])
        _children(session, "charging_periods").extend(added)
        return len(added)

    # --- CDRs --------------------------------------------------------------------------

    def cdr(self, k: Key) -> Json:
        found = self.cdrs.get(k)
        if found is None:
            raise _unknown(f"CDR {k[2]}")
        return found

    @staticmethod
    def cdr_key(body: Any, owner: tuple[str, str] | None = None) -> Key:
        """The key of a pushed CDR (it comes in the body, not the URL; a 2.1.1 CDR has only
        its id: its party is the `owner`, the CPO that pushed it)."""
        cdr = _object(body, "CDR")
        fields = [cdr.get("country_code"), cdr.get("party_id"), cdr.get("id")]
        if owner is not None and fields[0] is None and fields[1] is None:
            fields[:2] = owner
        if not all(isinstance(f, str) and f for f in fields):
            raise _invalid("CDR: country_code, party_id and id are required")
        return key(str(fields[0]), str(fields[1]), str(fields[2]))

    def post_cdr(self, body: Any, owner: tuple[str, str] | None = None) -> tuple[Key, bool]:
        """POST of a new CDR; the same CDR again is taken (a retried push), a different one
        under a held id is refused (CDRs are never replaced). A CDR held only from a pull is
        the CPO's copy, not a push: its POST is taken as new. Returns its key and whether it
        is new."""
        k = self.cdr_key(body, owner)
        cdr = _object(body, "CDR")
        held = self.cdrs.get(k) if k in self._cdrs_posted else None
        if held is not None:
            if held == cdr:
                return k, False
            raise _invalid(f"CDR {k[2]} exists and differs: CDRs cannot be replaced")
        self.cdrs[k] = copy.deepcopy(cdr)
        self._cdrs_posted.add(k)
        return k, True

    # --- tariffs -----------------------------------------------------------------------

    def tariff(self, k: Key) -> Json:
        found = self.tariffs.get(k)
        if found is None:
            raise _unknown(f"tariff {k[2]}")
        return found

    def put_tariff(self, k: Key, body: Any) -> bool:
        tariff = _object(body, "Tariff")
        _same_id(tariff, "id", k[2], "Tariff", required=True)
        _same_owner(tariff, k, "Tariff")
        created = k not in self.tariffs
        self.tariffs[k] = copy.deepcopy(tariff)
        return created

    def delete_tariff(self, k: Key) -> Json:
        self.tariff(k)
        return self.tariffs.pop(k)


# --- one-line descriptions of what was received -------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _price(value: Any, currency: Any) -> str | None:
    excl = _number(value.get("excl_vat")) if isinstance(value, dict) else _number(value)
    if excl is None:
        return None
    return f"{excl:.2f} {currency if isinstance(currency, str) else '?'}"


def patch_fields(patch: Json) -> str:
    """`status=CHARGING` for the scalar fields of a PATCH (last_updated left out), and the
    names of the others."""
    parts = []
    for field, value in patch.items():
        if field == "last_updated":
            continue
        if isinstance(value, str | int | float | bool) or value is None:
            parts.append(f"{field}={value}")
        else:
            parts.append(field)
    return " ".join(parts)


def summary(module: str, obj: Json) -> str:
    """What a held object amounts to, for a person: a session's status and energy, a
    CDR's energy and cost, a location's name and EVSEs, an EVSE's status."""
    if module == "sessions":
        text = f"{obj.get('status', '?')} {_number(obj.get('kwh')) or 0.0:.3f} kWh"
        cost = _price(obj.get("total_cost"), obj.get("currency"))
        return text if cost is None else f"{text} {cost}"
    if module == "cdrs":
        energy = _number(obj.get("total_energy")) or 0.0
        cost = _price(obj.get("total_cost"), obj.get("currency")) or "no cost"
        credit = " credit" if obj.get("credit") else ""
        return f"{energy:.3f} kWh {cost}{credit}"
    if module == "tariffs":
        elements = obj.get("elements")
        count = len(elements) if isinstance(elements, list) else 0
        return f"{obj.get('currency', '?')} {count} element(s)"
    if module == "locations":
        if "uid" in obj:  # an EVSE
            return f"status={obj.get('status', '?')}"
        if "standard" in obj:  # a connector
            return f"{obj.get('standard')} {obj.get('power_type', '')}".rstrip()
        evses = obj.get("evses")
        count = len(evses) if isinstance(evses, list) else 0
        where = obj.get("city") or obj.get("name") or ""
        return f"{where} {count} EVSE(s)".strip()
    return ""
