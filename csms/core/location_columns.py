"""The CSV columns of `csms locations import` (one EVSE per line): kept apart so that the
CLI can print them in `--help` without loading the import machinery."""

from __future__ import annotations

# (column, required in the header, meaning) — shown by `--help` and in the README.
CSV_COLUMNS: tuple[tuple[str, bool, str], ...] = (
    ("location_id", True, "location id (rows with the same id form one location)"),
    ("name", False, "location name"),
    ("address", True, "street and number"),
    ("city", True, "city"),
    ("postal_code", False, "postal code"),
    ("state", False, "state or province"),
    ("country", True, "ISO 3166-1 alpha-3, e.g. NLD"),
    ("latitude", True, "e.g. 52.3702"),
    ("longitude", True, "e.g. 4.8952"),
    ("time_zone", True, "IANA, e.g. Europe/Amsterdam"),
    ("publish", False, "yes/no (default yes)"),
    ("parking_type", False, "ON_STREET, PARKING_LOT, ..."),
    ("facilities", False, "comma list, e.g. WIFI,CAFE"),
    ("opening_hours", False, "'24/7' or e.g. 'Mo-Fr 08:00-18:00'"),
    ("charger_id", False, "charger at the location (empty: the location only)"),
    ("evse", False, "EVSE number of the charger, from 1 (empty: the charger only)"),
    ("evse_id", False, "eMI3 EVSE id, e.g. NL*ABC*E0001"),
    ("connector_standard", False, "OCPI ConnectorType (default IEC_62196_T2)"),
    ("connector_format", False, "SOCKET or CABLE (default SOCKET)"),
    ("power_type", False, "AC_1_PHASE, AC_3_PHASE, DC, ... (default AC_3_PHASE)"),
    ("max_voltage", False, "volts (default 230)"),
    ("max_amperage", False, "amperes (default 32)"),
    ("max_power", False, "watts"),
)


def csv_help() -> str:
    """The columns as `--help` and the README list them."""
    return "\n".join(
        f"{name}{' (required)' if required else ''}: {meaning}"
        for name, required, meaning in CSV_COLUMNS
    )
