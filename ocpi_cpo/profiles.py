"""A partner's profile (csms.core.partners.PartnerProfile) applied to what crosses the wire:
the shape of a push (`shape`), of an answer we serve (`served`), of a token it sends us
(`filled_token`), how we compare the ids it sends (`same_id`) and how large a page may be
(`page_limit`).

Pure functions on plain JSON values, no I/O: the push worker, the transport and the
token routes call them where a request leaves or an object arrives. Why each switch
exists (which hub asked for it) is in the README, "Connecting to a hub".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csms.core.partners import PartnerProfile

# eMI3 allows `*` (and in practice `-` and spaces) as optional separators in an EVSE id.
_SEPARATORS = re.compile(r"[^A-Za-z0-9]")
# What a hub that fills what is left empty puts there (e-clearing.net's choice).
FILLER = "-"
# Required string fields of an OCPI 2.2.1 Token a partner may leave empty or out; the
# party fields and uid are not among them: without them the token names no one.
TOKEN_REQUIRED_STRINGS = ("contract_id", "issuer")


@dataclass(frozen=True, slots=True)
class Shaped:
    """A push as the partner's profile wants it sent."""

    method: str
    url: str
    body: Any
    # Whether the OCPI-from/to-* routing headers go with it.
    routing: bool


def compact_evse_id(evse_id: str) -> str:
    """`DE*ABC*E123*1` -> `DEABCE1231`: separators out, upper case."""
    return _SEPARATORS.sub("", evse_id).upper()


def _compact_ids(value: Any) -> Any:
    """`value` with every `evse_id` string, at any depth, compacted (a new value; the
    given one is not changed)."""
    if isinstance(value, Mapping):
        return {
            k: compact_evse_id(v) if k == "evse_id" and isinstance(v, str) else _compact_ids(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_compact_ids(v) for v in value]
    return value


def shape(profile: PartnerProfile, module: str, method: str, url: str, body: Any) -> Shaped:
    """A push (an outbox entry's method, URL and body) as this partner is sent it.

    Session PATCHes are turned into PUTs where they are produced (csms.services.sessions
    has the whole session there); here only the body's ids and the headers change."""
    if profile.compact_evse_ids and body is not None:
        body = _compact_ids(body)
    return Shaped(method, url, body, profile.routing_headers)


def served(profile: PartnerProfile, data: Any) -> Any:
    """What we answer this partner (the `data` of an OCPI answer) as its profile wants it."""
    if profile.compact_evse_ids and data is not None:
        return _compact_ids(data)
    return data


def changes_served(profile: PartnerProfile) -> bool:
    """Whether `served` may change what this partner is answered (else answers built once
    for every partner, such as the cached location pages, can be sent as they are)."""
    return profile.compact_evse_ids


def same_id(profile: PartnerProfile, ours: str, theirs: str) -> bool:
    """Whether an id the partner sent names one of ours: OCPI ids are CiStrings (any case
    matches) unless the partner compares them as sent."""
    if profile.case_sensitive_ids:
        return ours == theirs
    return ours.upper() == theirs.upper()


def filled_token(profile: PartnerProfile, token: Any, *, patch: bool = False) -> Any:
    """A token the partner sent (pushed or pulled), with the required strings it left
    empty or out filled with "-" when its profile says so (in a PATCH only those it sent
    empty: one it left out keeps its stored value); anything else as it came."""
    if not profile.fill_empty or not isinstance(token, Mapping):
        return token
    filled = dict(token)
    for name in TOKEN_REQUIRED_STRINGS:
        if patch and name not in filled:
            continue
        value = filled.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            filled[name] = FILLER
    return filled


def page_limit(profile: PartnerProfile, ours: int) -> int:
    """The largest page for this partner: ours, or less when its profile caps it."""
    if profile.page_limit is None:
        return ours
    return max(1, min(ours, profile.page_limit))
