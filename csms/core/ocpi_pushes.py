"""What we push to partners' Receiver endpoints for sessions, CDRs and tariffs: the URL,
method, body and the outbox object key that orders pushes of one object.

Pure functions; enqueuing is csms.storage.outbox's job (in the write that makes the change).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from csms.core.errors import InvalidParty
from csms.core.outbox import Push
from csms.core.parties import Party


def object_path(us: Party, object_id: str) -> str:
    """`{country_code}/{party_id}/{object_id}`: where a client-owned object of ours lives
    under a Receiver endpoint (the id escaped as one path segment)."""
    return f"{us.country_code}/{us.party_id}/{quote(object_id, safe='')}"


def under(endpoint: str, path: str) -> str:
    """The URL of `path` under `endpoint` (an empty path: the endpoint itself)."""
    return f"{endpoint.rstrip('/')}/{path}" if path else endpoint


def session_key(session_id: str) -> str:
    """Pushes of one session, and of its CDRs, are delivered in order under this key: a CDR
    never overtakes the final session it bills."""
    return f"sessions/{session_id}"


def token_party(obj: Mapping[str, Any]) -> Party | None:
    """The eMSP party of a session's or CDR's `cdr_token`: whom a hub routes its pushes to
    (None when the token names no valid party)."""
    token = obj.get("cdr_token")
    if not isinstance(token, Mapping):
        return None
    try:
        return Party(str(token.get("country_code", "")), str(token.get("party_id", "")))
    except InvalidParty:
        return None


def session_put(endpoint: str, us: Party, session: Mapping[str, Any]) -> Push:
    session_id = str(session["id"])
    path = object_path(us, session_id)
    return Push(
        "sessions",
        "PUT",
        under(endpoint, path),
        dict(session),
        session_key(session_id),
        to=token_party(session),
        path=path,
    )


def session_patch(
    endpoint: str, us: Party, session: Mapping[str, Any], body: Mapping[str, Any]
) -> Push:
    """A PATCH of `session` (the whole object: it names the token's party) with `body`."""
    session_id = str(session["id"])
    path = object_path(us, session_id)
    return Push(
        "sessions",
        "PATCH",
        under(endpoint, path),
        dict(body),
        session_key(session_id),
        to=token_party(session),
        path=path,
    )


def cdr_post(endpoint: str, cdr: Mapping[str, Any]) -> Push:
    """A new CDR (credit CDRs too) POSTed to the eMSP's cdrs endpoint itself, queued behind
    the pushes of its session."""
    session_id = str(cdr.get("session_id") or cdr["id"])
    return Push(
        "cdrs",
        "POST",
        endpoint,
        dict(cdr),
        session_key(session_id),
        to=token_party(cdr),
        path="",
    )


def tariff_key(tariff_id: str) -> str:
    return f"tariffs/{tariff_id}"


def tariff_put(endpoint: str, us: Party, tariff: Mapping[str, Any]) -> Push:
    tariff_id = str(tariff["id"])
    path = object_path(us, tariff_id)
    return Push(
        "tariffs",
        "PUT",
        under(endpoint, path),
        dict(tariff),
        tariff_key(tariff_id),
        path=path,
    )


def tariff_delete(endpoint: str, us: Party, tariff_id: str) -> Push:
    path = object_path(us, tariff_id)
    return Push("tariffs", "DELETE", under(endpoint, path), None, tariff_key(tariff_id), path=path)
