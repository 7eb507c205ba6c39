"""OCPI parties (country code + party id) as owners of id tokens, and which sessions and CDRs
a partner may see: those of tokens owned by one of its parties (a hub: by anyone but us).

Pure values and rules; partners and tokens are stored by csms.storage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from csms.core.errors import InvalidParty
from csms.core.partners import PartyRole, Role

# Id token origin of our own customers' tokens (the CPO is their eMSP too).
LOCAL = "local"

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_PARTY = re.compile(r"^[A-Z0-9]{3}$")


@dataclass(frozen=True, slots=True, order=True)
class Party:
    """An OCPI party: ISO 3166-1 alpha-2 country code and 3-character party id, upper case.
    Written `NL*EMS` (the separator of eMA and EVSE ids)."""

    country_code: str
    party_id: str

    def __post_init__(self) -> None:
        if not _COUNTRY.match(self.country_code) or not _PARTY.match(self.party_id):
            raise InvalidParty(
                f"not an OCPI party: {self.country_code!r} {self.party_id!r} (a 2-letter "
                "country code and a 3-character party id, letters and digits, upper case)"
            )

    def __str__(self) -> str:
        return f"{self.country_code}*{self.party_id}"


# How a party is written, for messages.
PARTY_FORMAT = (
    "COUNTRY*PARTY, a 2-letter country code and a 3-character party id (letters and digits), "
    "e.g. NL*EMS"
)


def parse_party(text: str) -> Party:
    """`NL*EMS` (any case) as a Party; InvalidParty says what is wrong."""
    country, star, party = text.strip().partition("*")
    country, party = country.strip().upper(), party.strip().upper()
    if not star or not _COUNTRY.match(country) or not _PARTY.match(party):
        raise InvalidParty(f"owner must be {PARTY_FORMAT}, not {text!r}")
    return Party(country, party)


def owner_of(origin: str | None) -> Party | None:
    """The party owning a token of this origin; None for our own tokens (`local`), for no
    token at all and for an origin that names no party."""
    if origin is None or origin == LOCAL:
        return None
    try:
        return parse_party(origin)
    except InvalidParty:
        return None


def origin_of(owner: Party | None) -> str:
    """What a token's origin column holds for this owner (None: ours)."""
    return LOCAL if owner is None else str(owner)


def check_origin(origin: str) -> str:
    """A token origin as stored: `local` or a party in canonical form (ValueError if
    neither)."""
    if origin.strip().lower() == LOCAL:
        return LOCAL
    return str(parse_party(origin))


@dataclass(frozen=True, slots=True)
class Audience:
    """Whose sessions and CDRs one partner may see: tokens owned by one of `parties`, or
    with `hub`, by any party but us. Our own tokens' sessions are never anyone's."""

    us: Party
    parties: frozenset[Party] = frozenset()
    hub: bool = False

    @property
    def empty(self) -> bool:
        return not self.hub and not self.parties

    def sees(self, owner: Party | None) -> bool:
        if owner is None or owner == self.us:
            return False
        return self.hub or owner in self.parties


def destination(roles: Sequence[PartyRole], to: Party | None) -> tuple[str, str] | None:
    """The party a request to a partner is addressed to (its OCPI-to-* headers) when it is
    meant for `to` (None: for the partner as a whole, e.g. our locations and tariffs).

    A hub gets `to` and routes the request on; for the partner as a whole it gets the hub's
    own party (a broadcast push). Any other partner gets `to` when that is one of its
    parties, else its first one. None: the partner named no party."""
    hub = next((r for r in roles if r.role is Role.HUB), None)
    if to is not None and (
        hub is not None
        or any(
            (r.country_code.upper(), r.party_id.upper()) == (to.country_code, to.party_id)
            for r in roles
        )
    ):
        return to.country_code, to.party_id
    chosen = hub if hub is not None else (roles[0] if roles else None)
    return None if chosen is None else (chosen.country_code, chosen.party_id)


def audience(roles: Iterable[PartyRole], us: Party) -> Audience:
    """What a partner with these credentials roles may see."""
    parties: set[Party] = set()
    hub = False
    for role in roles:
        hub = hub or role.role is Role.HUB
        try:
            party = Party(role.country_code.upper(), role.party_id.upper())
        except InvalidParty:
            continue
        if party != us:
            parties.add(party)
    return Audience(us, frozenset(parties), hub)
