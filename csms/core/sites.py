"""The site tree of smart charging, as staff describe it: a site (grid connection) with
its circuits and the chargers linked under them, temporary caps (demand response) and
what a session needs by when.

Plain values: the CLI and the API make them through csms.services.sites, the load manager
(csms.services.load_management) turns them into csms.core.allocation's nodes and demands.
Limits are amperes per phase; a limit given in watts is turned into amperes with the
node's phases and the site's voltage (`effective_a`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from csms.core.errors import InvalidInput

__all__ = [
    "MIN_CURRENT_A",
    "PHASE_NAMES",
    "ROOT",
    "Cap",
    "ChargingNeed",
    "Circuit",
    "Link",
    "ProfileMode",
    "Share",
    "Site",
    "SiteTree",
    "effective_a",
    "parse_phase",
    "phase_name",
]

PHASE_NAMES = ("L1", "L2", "L3")
DEFAULT_VOLTAGE_V = 230.0
# The lowest current a session charges at (IEC 61851): below it, it is paused at 0 A.
MIN_CURRENT_A = 6.0


def parse_phase(text: str) -> int:
    """L1, L2 or L3 (any case) as 0, 1 or 2."""
    name = text.strip().upper()
    if name not in PHASE_NAMES:
        raise InvalidInput(f"phase must be L1, L2 or L3, not {text!r}")
    return PHASE_NAMES.index(name)


def phase_name(index: int) -> str:
    return PHASE_NAMES[index]


def effective_a(
    max_current_a: float, max_power_w: float | None, phases: int, voltage_v: float
) -> float:
    """The limit per phase: the current limit, lowered by a power limit spread over the
    node's phases."""
    if max_power_w is None:
        return max_current_a
    return min(max_current_a, max_power_w / (phases * voltage_v))


class ProfileMode(StrEnum):
    """How the load manager tells a charger its share: `auto` sends TxProfiles and falls
    back to a station maximum when the charger refuses them; `tx` and `max` only those."""

    AUTO = "auto"
    TX = "tx"
    MAX = "max"


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    max_current_a: float
    phases: int  # 1 or 3
    voltage_v: float = DEFAULT_VOLTAGE_V
    max_power_w: float | None = None
    location_id: str | None = None
    # Time-of-day prices per kWh from each time on ("07:00", price), in `timezone`.
    daily_prices: tuple[tuple[str, Decimal], ...] = ()
    timezone: str | None = None

    @property
    def phase_indexes(self) -> tuple[int, ...]:
        return (0, 1, 2) if self.phases == 3 else (0,)

    @property
    def limit_a(self) -> float:
        return effective_a(self.max_current_a, self.max_power_w, self.phases, self.voltage_v)


@dataclass(frozen=True, slots=True)
class Circuit:
    site_id: str
    name: str
    max_current_a: float
    phases: int  # 1 or 3
    parent: str | None = None  # None: directly under the site
    max_power_w: float | None = None
    phase: int | None = None  # a 1-phase circuit: the site phase it is wired to

    @property
    def phase_indexes(self) -> tuple[int, ...]:
        if self.phases == 3:
            return (0, 1, 2)
        return (self.phase if self.phase is not None else 0,)


@dataclass(frozen=True, slots=True)
class Link:
    """A charger under a site, directly or under `circuit`."""

    charge_point_id: str
    site_id: str
    circuit: str | None = None
    phase: int | None = None  # wired to one phase only
    max_current_a: float | None = None  # each EVSE's rated maximum per phase
    profile_mode: ProfileMode = ProfileMode.AUTO
    managed: bool = True
    unmanaged_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Cap:
    """A temporary limit on a whole site, in watts over all its phases."""

    id: int
    site_id: str
    limit_w: float
    start_at: datetime
    end_at: datetime
    source: str  # staff, openadr
    requested_by: str
    reference: str | None = None
    reason: str | None = None

    def active(self, at: datetime) -> bool:
        return self.start_at <= at < self.end_at


@dataclass(frozen=True, slots=True)
class ChargingNeed:
    """What a session needs by when, and its priority (the EV or staff said so)."""

    transaction_id: int
    departure_at: datetime | None = None
    energy_wh: float | None = None
    priority: int | None = None
    source: str = "staff"


@dataclass(frozen=True, slots=True)
class SiteTree:
    site: Site
    circuits: tuple[Circuit, ...] = ()
    links: tuple[Link, ...] = ()

    def node_of(self, link: Link) -> str:
        """The allocation node a charger hangs under: its circuit, or the site itself."""
        return link.circuit if link.circuit is not None else ROOT

    def node_phases(self, node: str) -> tuple[int, ...]:
        if node == ROOT:
            return self.site.phase_indexes
        for circuit in self.circuits:
            if circuit.name == node:
                return circuit.phase_indexes
        raise KeyError(node)


# The allocation node id of a site's grid connection (circuit names are 1-64 letters,
# digits, '.', '_' or '-': never this).
ROOT = "/"


def check_tree(site: Site, circuits: Sequence[Circuit]) -> None:
    """InvalidInput when circuits name an unknown parent or form a cycle."""
    names = {c.name for c in circuits}
    parents = {c.name: c.parent for c in circuits}
    for circuit in circuits:
        if circuit.parent is not None and circuit.parent not in names:
            raise InvalidInput(f"circuit {circuit.name!r}: no circuit {circuit.parent!r}")
        seen = {circuit.name}
        parent = circuit.parent
        while parent is not None:
            if parent in seen:
                raise InvalidInput(f"circuit {circuit.name!r} is its own ancestor")
            seen.add(parent)
            parent = parents.get(parent)


@dataclass(frozen=True, slots=True)
class Share:
    """The load manager's share for one running session, as stored for staff to read."""

    transaction_id: int
    site_id: str
    node: str  # ROOT or a circuit name
    charge_point_id: str
    evse_id: int
    phases: tuple[int, ...]
    granted_a: float
    paused: bool
    measured_a: float | None = None
    # Why it gets what it gets: share, rotation, price, cap, unmanaged.
    reason: str | None = None
    # The limit the charger accepted last, and that profile's id.
    sent_a: float | None = None
    profile_id: int | None = None
