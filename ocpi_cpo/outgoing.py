"""Where an outbox entry becomes a request: the one place that decides, when a push is
sent, which URL it goes to, in which OCPI version its body is written and whether it
carries routing headers.

The outbox keeps what producers enqueued: a neutral OCPI 2.2.1 body and, for pushes under
a partner's endpoint, the part of the URL after it (`path`). Both are read against the
partner as it is *now*, not as it was when the push was enqueued, so a partner that
re-registers in another version or with other endpoints while pushes wait gets the rest
at its new endpoints and in its new version:

- the URL is the partner's current Receiver endpoint for the push's module plus `path`
  (an entry without a path, such as a command result to the partner's response_url, goes
  to its stored URL);
- a 2.2.1 partner gets the body as enqueued, with routing headers (a hub routes on them);
- a 2.1.1 partner gets the body written in 2.1.1 (ocpi_cpo.v211.objects) and no routing
  headers (2.1.1 has none). A session or CDR embeds its location in 2.1.1: it is read
  through `locations` at sending time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from csms.core.ocpi_pushes import under
from csms.core.outbox import OutboxEntry
from csms.core.parties import Party
from csms.core.partners import InterfaceRole, Partner
from ocpi_cpo.errors import Unsendable
from ocpi_cpo.v211 import objects as v211
from ocpi_cpo.versions import V211

# A Location (OCPI 2.2.1, as served; published or not) by its id; None: unknown.
LocationSource = Callable[[str], Awaitable[Mapping[str, Any] | None]]

Level = Literal["location", "evse", "connector"]
# How deep a push under the locations endpoint goes: CC/PID/LOCATION[/EVSE[/CONNECTOR]].
_LEVELS: dict[int, Level] = {3: "location", 4: "evse", 5: "connector"}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One request to a partner, as the pusher sends it. `routing`: add the OCPI-from/to
    headers (2.2.1); a 2.1.1 partner gets none."""

    method: str
    url: str
    body: dict[str, Any] | None
    routing: bool


async def _no_locations(_location_id: str) -> Mapping[str, Any] | None:
    return None


async def outgoing(
    entry: OutboxEntry,
    partner: Partner,
    us: Party,
    locations: LocationSource = _no_locations,
) -> Outgoing:
    """The request that delivers `entry` to `partner` now. Raises Unsendable when it cannot
    be had: the partner offers no Receiver endpoint for the module any more, or the object
    cannot be written validly in the partner's version."""
    url = _url(entry, partner)
    if partner.version != V211:
        return Outgoing(entry.method, url, entry.body, routing=True)
    body = None if entry.body is None else await _v211_body(entry, us, locations)
    return Outgoing(entry.method, url, body, routing=False)


def _url(entry: OutboxEntry, partner: Partner) -> str:
    if entry.path is None:
        return entry.url
    endpoint = partner.endpoint(entry.module, InterfaceRole.RECEIVER)
    if endpoint is None:
        raise Unsendable(
            f"partner {partner.name} offers no {entry.module} Receiver endpoint"
            f" (version {partner.version or '?'})"
        )
    return under(endpoint.url, entry.path)


async def _v211_body(entry: OutboxEntry, us: Party, locations: LocationSource) -> dict[str, Any]:
    """The entry's 2.2.1 body written in 2.1.1, by module and method."""
    body: Mapping[str, Any] = entry.body or {}
    module, method = entry.module, entry.method
    try:
        if module == "locations":
            level = _location_level(entry, us)
            if method == "PATCH":
                return v211.location_patch(level, body)
            if level == "location":
                return v211.location(body)
            if level == "evse":
                return v211.evse(body)
            return v211.connector(body)
        if module == "sessions":
            if method == "PATCH":
                return v211.session_patch(body)
            return v211.session(body, await _location(locations, body.get("location_id")))
        if module == "cdrs":
            where = body.get("cdr_location")
            location_id = where.get("id") if isinstance(where, Mapping) else None
            return v211.cdr(body, await _location(locations, location_id))
        if module == "tariffs":
            return v211.tariff(body)
        if module == "commands":
            return v211.command_result(body)
    except v211.V211Unrenderable as exc:
        raise Unsendable(f"{module} {method} cannot be written in OCPI 2.1.1: {exc}") from exc
    # A module 2.1.1 lacks (a charging profile result asked for in 2.2.1 before the partner
    # changed version): the response_url is the partner's own, so it gets what it asked.
    return dict(body)


def _location_level(entry: OutboxEntry, us: Party) -> Level:
    """Location, EVSE or connector: from the path (CC/PID/LOC[/EVSE[/CONNECTOR]]), or for
    an entry stored without one, from the segments of its URL after our party."""
    if entry.path is not None:
        segments = [s for s in entry.path.split("/") if s]
    else:
        parts = [unquote(s) for s in urlsplit(entry.url).path.split("/") if s]
        segments = []
        for i in range(len(parts) - 1, 0, -1):
            if parts[i - 1].upper() == us.country_code and parts[i].upper() == us.party_id:
                segments = parts[i - 1 :]
                break
    level = _LEVELS.get(len(segments))
    if level is None:
        raise Unsendable(f"a locations push to {entry.url} names no location, EVSE or connector")
    return level


async def _location(locations: LocationSource, location_id: Any) -> dict[str, Any] | None:
    """The published Location in 2.1.1 (None: no id, or unknown): what a session or CDR
    embeds."""
    if not isinstance(location_id, str) or not location_id:
        return None
    found = await locations(location_id)
    return None if found is None else v211.location(found)
