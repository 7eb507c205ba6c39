"""Charging sessions as partners see them (the OCPI 2.2.1 Session object, its CdrToken and
status), what a push of one carries, and when a session is pushed again.

Pure functions and values; loading transactions, prices and CDRs is csms.services.sessions'
job, delivering pushes ocpi_cpo's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from csms.core.authorization import AuthStatus
from csms.core.parties import Party
from csms.core.tariffs import ocpi_datetime
from csms.core.transactions import BillingState, Transaction

# OCPI CiString(36): the longest uid and contract_id a CdrToken may carry.
TOKEN_MAX = 36
# Stand-in for a session without an id token (a 2.0.1 transaction started before one was
# presented): CdrToken.uid is required.
NO_TOKEN = "UNKNOWN"  # noqa: S105 - not a secret


class SessionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"
    RESERVATION = "RESERVATION"


class TokenType(StrEnum):
    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    OTHER = "OTHER"
    RFID = "RFID"


class AuthMethod(StrEnum):
    AUTH_REQUEST = "AUTH_REQUEST"
    COMMAND = "COMMAND"
    WHITELIST = "WHITELIST"


# OCPP id token types (1.6 has none: its tags are RFID cards; 2.0.1 IdTokenEnumType) -> OCPI.
_TOKEN_TYPES = {
    "ISO14443": TokenType.RFID,
    "ISO15693": TokenType.RFID,
    "Local": TokenType.RFID,  # a CSMS-local id, in practice printed on a card
    "Central": TokenType.APP_USER,  # made up by a server, e.g. an app's remote start
    "NoAuthorization": TokenType.AD_HOC_USER,  # free charging: nobody identified
    "eMAID": TokenType.OTHER,  # an ISO 15118 contract (Plug & Charge)
    "KeyCode": TokenType.OTHER,
    "MacAddress": TokenType.OTHER,  # Autocharge
}


def token_type(ocpp_type: str | None) -> TokenType:
    """The OCPI TokenType of an OCPP id token type (None: a 1.6 tag, an RFID card)."""
    if ocpp_type is None:
        return TokenType.RFID
    return _TOKEN_TYPES.get(ocpp_type, TokenType.OTHER)


def cdr_token(
    owner: Party,
    uid: str | None,
    ocpp_type: str | None,
    contract_id: str | None = None,
) -> dict[str, Any]:
    """The CdrToken of a session: the owning party, the uid as the charger read it, its
    type and the contract id (the uid when no better one is known)."""
    shown = (uid or NO_TOKEN)[:TOKEN_MAX]
    return {
        "country_code": owner.country_code,
        "party_id": owner.party_id,
        "uid": shown,
        "type": token_type(ocpp_type).value,
        "contract_id": (contract_id or shown)[:TOKEN_MAX],
    }


def session_token(
    tx: Transaction, owner: Party, ocpp_type: str | None, contract_id: str | None = None
) -> dict[str, Any]:
    """The CdrToken of a transaction: the eMSP's token as it was authorized (another party's
    token decided by roaming or vouched for by a command), else as cdr_token makes it."""
    if tx.cdr_token:
        return dict(tx.cdr_token)
    return cdr_token(owner, tx.id_tag, ocpp_type, contract_id)


def auth_method(tx: Transaction, *, whitelisted: bool = False) -> AuthMethod:
    """How the token was authorized when roaming decided it (recorded on the transaction);
    else COMMAND when a remote start began the session; WHITELIST when it was authorized
    from a list without asking the token's owner (another party's token we hold a copy of);
    AUTH_REQUEST otherwise."""
    if tx.auth_method:
        return AuthMethod(tx.auth_method)
    if tx.remote_start_id is not None:
        return AuthMethod.COMMAND
    if whitelisted:
        return AuthMethod.WHITELIST
    return AuthMethod.AUTH_REQUEST


def session_status(tx: Transaction) -> SessionStatus:
    """INVALID when the token was refused or staff voided the session (it is not billed);
    PENDING while running before its token was accepted; ACTIVE while running; COMPLETED
    once ended."""
    refused = tx.auth_status not in (None, AuthStatus.ACCEPTED.value)
    if refused or tx.billing == BillingState.VOID.value:
        return SessionStatus.INVALID
    if tx.active:
        return SessionStatus.PENDING if tx.auth_status is None else SessionStatus.ACTIVE
    return SessionStatus.COMPLETED


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What a Session object is made of.

    `cost` holds OCPI cost fields as csms.core.cost.cost_to_ocpi writes them (or a CDR
    carries them): currency, charging_periods, total_cost and total_energy (kWh) are used.
    `last_updated` is when the object last changed (for a running session: now, its cost
    and energy move with time)."""

    tx: Transaction
    us: Party
    owner: Party
    token_type: str | None
    location_id: str
    evse_uid: str
    cost: Mapping[str, Any]
    last_updated: datetime
    whitelisted: bool = False
    meter_id: str | None = None
    contract_id: str | None = None
    # Given by the eMSP in a real-time authorization or a command (default: the one the
    # transaction recorded).
    authorization_reference: str | None = None


def session_object(facts: SessionFacts) -> dict[str, Any]:
    """The OCPI 2.2.1 Session object, JSON-ready (datetimes as OCPI DateTime text, numbers
    as JSON numbers)."""
    tx = facts.tx
    cost = facts.cost
    out: dict[str, Any] = {
        "country_code": facts.us.country_code,
        "party_id": facts.us.party_id,
        "id": str(tx.id),
        "start_date_time": ocpi_datetime(tx.start_at),
    }
    if not tx.active and tx.stop_at is not None:
        out["end_date_time"] = ocpi_datetime(max(tx.stop_at, tx.start_at))
    out["kwh"] = cost.get("total_energy", 0)
    out["cdr_token"] = session_token(tx, facts.owner, facts.token_type, facts.contract_id)
    out["auth_method"] = auth_method(tx, whitelisted=facts.whitelisted).value
    reference = facts.authorization_reference or tx.authorization_reference
    if reference:
        out["authorization_reference"] = reference[:TOKEN_MAX]
    out["location_id"] = facts.location_id
    out["evse_uid"] = facts.evse_uid
    out["connector_id"] = str(tx.connector_id)
    if facts.meter_id:
        out["meter_id"] = facts.meter_id[:255]
    out["currency"] = cost["currency"]
    out["charging_periods"] = list(cost.get("charging_periods") or [])
    if "total_cost" in cost:
        out["total_cost"] = cost["total_cost"]
    out["status"] = session_status(tx).value
    out["last_updated"] = ocpi_datetime(facts.last_updated)
    return out


# --- pushing sessions ------------------------------------------------------------------------


def closed_periods(session: Mapping[str, Any], *, active: bool) -> list[Any]:
    """The charging periods that will not change any more: all of an ended session, all but
    the last (still growing) of a running one."""
    periods = list(session.get("charging_periods") or [])
    return periods[:-1] if active else periods


def pushed_session(session: Mapping[str, Any], *, active: bool) -> dict[str, Any]:
    """The Session as PUT to a partner: a running session carries its closed periods only,
    so that the periods PATCHed later append to them without overlap."""
    return {**session, "charging_periods": closed_periods(session, active=active)}


def session_patch(session: Mapping[str, Any], periods_sent: int) -> tuple[dict[str, Any], int]:
    """A PATCH of a running session that already has `periods_sent` closed periods at the
    partner: what moved (last_updated, kwh, total_cost, status) and the periods closed since
    (PATCH appends them). Returns the body and the new count of periods sent."""
    closed = closed_periods(session, active=True)
    body: dict[str, Any] = {
        "last_updated": session["last_updated"],
        "kwh": session["kwh"],
        "status": session["status"],
    }
    if "total_cost" in session:
        body["total_cost"] = session["total_cost"]
    new = closed[periods_sent:]
    if new:
        body["charging_periods"] = new
    return body, max(periods_sent, len(closed))


class PushAction(StrEnum):
    NONE = "none"
    PUT = "put"  # first sight of a running session: the whole object
    PATCH = "patch"  # a running session's regular update
    FINAL = "final"  # the ended session, whole (replaces the partner's periods)
    CLOSE = "close"  # stop following it for this partner, nothing sent


@dataclass(frozen=True, slots=True)
class PushState:
    """How far one session has been pushed to one partner."""

    periods_sent: int
    completed: bool
    pushed_at: datetime


def final_ready(tx: Transaction, changed_at: datetime, now: datetime, grace: timedelta) -> bool:
    """Whether an ended session may be pushed as final: once billing settled it (its CDR
    exists, so the final numbers are the CDR's) or, if billing is late, after `grace`."""
    if tx.active:
        return False
    if tx.billing != BillingState.PENDING.value:
        return True
    return now - changed_at >= grace


def next_push(
    state: PushState | None,
    *,
    entitled: bool,
    active: bool,
    ready: bool,
    changed_at: datetime,
    now: datetime,
    interval: timedelta,
) -> PushAction:
    """What to push of one session to one partner now.

    `entitled`: the partner may see it; `active`: the transaction runs; `ready`: ended and
    final_ready; `changed_at`: the transaction's last change; `interval`: between PATCHes.
    A final session that changed after it was pushed (voided, credited and re-billed) is
    pushed again whole."""
    if not entitled:
        return PushAction.CLOSE if state is not None and not state.completed else PushAction.NONE
    if state is None or (state.completed and active):
        if active:
            return PushAction.PUT
        return PushAction.FINAL if ready else PushAction.NONE
    if not state.completed:
        if active:
            due = now - state.pushed_at >= interval
            return PushAction.PATCH if due else PushAction.NONE
        return PushAction.FINAL if ready else PushAction.NONE
    if ready and changed_at > state.pushed_at:
        return PushAction.FINAL
    return PushAction.NONE
