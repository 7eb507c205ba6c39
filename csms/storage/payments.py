"""Repository of ad-hoc payments (payments), their stored changes (payment_events) and the
test payment provider's pre-authorisations (test_psp_intents).

Takes an AsyncConnection; returns csms.core.payments values and StoredIntent records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.ids import token_key
from csms.core.payments import Payment, PaymentEvent, PaymentState, StopReason
from csms.core.transactions import Transaction
from csms.storage import transactions as tx_repo
from csms.storage.models import PaymentEventRow, PaymentRow, TestPspIntentRow, TransactionRow

_p = cast(Table, PaymentRow.__table__)
_e = cast(Table, PaymentEventRow.__table__)
_i = cast(Table, TestPspIntentRow.__table__)
_tx = cast(Table, TransactionRow.__table__)

# The states the payment worker looks at (everything but the final ones and CAPTURED).
OPEN_STATES = (
    PaymentState.CREATED,
    PaymentState.AUTHORIZED,
    PaymentState.STARTING,
    PaymentState.CHARGING,
    PaymentState.STOPPING,
    PaymentState.ENDED,
)


def _to_payment(row: Any) -> Payment:
    return Payment(
        id=row.id,
        evse_uid=row.evse_uid,
        charge_point_id=row.charge_point_id,
        evse_id=row.evse_id,
        connector_id=row.connector_id,
        location_id=row.location_id,
        tariff_id=row.tariff_id,
        provider=row.provider,
        checkout_ref=row.checkout_ref,
        provider_ref=row.provider_ref,
        state=PaymentState(row.state),
        currency=row.currency,
        cap_minor=row.cap_minor,
        authorized_minor=row.authorized_minor,
        captured_minor=row.captured_minor,
        refunded_minor=row.refunded_minor,
        id_tag=row.id_tag,
        transaction_id=row.transaction_id,
        cdr_id=row.cdr_id,
        email=row.email,
        stop_reason=None if row.stop_reason is None else StopReason(row.stop_reason),
        attempts=row.attempts,
        next_try_at=row.next_try_at,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _values(payment: Payment) -> dict[str, Any]:
    values = asdict(payment)
    values["state"] = payment.state.value
    values["stop_reason"] = None if payment.stop_reason is None else payment.stop_reason.value
    return values


async def add(conn: AsyncConnection, payment: Payment) -> None:
    await conn.execute(insert(_p).values(_values(payment)))


async def save(conn: AsyncConnection, payment: Payment) -> None:
    """Write every field of a payment that exists."""
    values = _values(payment)
    del values["id"]
    await conn.execute(update(_p).where(_p.c.id == payment.id).values(values))


async def get(conn: AsyncConnection, payment_id: str) -> Payment | None:
    row = (await conn.execute(select(_p).where(_p.c.id == payment_id))).first()
    return None if row is None else _to_payment(row)


async def by_ref(
    conn: AsyncConnection, provider: str, checkout_ref: str | None, provider_ref: str | None
) -> Payment | None:
    """The payment a provider's checkout or pre-authorisation belongs to."""
    for column, ref in ((_p.c.checkout_ref, checkout_ref), (_p.c.provider_ref, provider_ref)):
        if ref is None:
            continue
        row = (
            await conn.execute(select(_p).where(_p.c.provider == provider, column == ref))
        ).first()
        if row is not None:
            return _to_payment(row)
    return None


async def by_tag(conn: AsyncConnection, tag: str) -> Payment | None:
    row = (await conn.execute(select(_p).where(_p.c.id_tag == tag))).first()
    return None if row is None else _to_payment(row)


async def open_payments(conn: AsyncConnection, limit: int = 500) -> list[Payment]:
    """The payments still under way (oldest first)."""
    rows = (
        await conn.execute(
            select(_p)
            .where(_p.c.state.in_([s.value for s in OPEN_STATES]))
            .order_by(_p.c.created_at, _p.c.id)
            .limit(limit)
        )
    ).all()
    return [_to_payment(r) for r in rows]


async def listing(
    conn: AsyncConnection, state: PaymentState | None = None, limit: int = 100
) -> list[Payment]:
    """The newest payments first."""
    stmt = select(_p).order_by(_p.c.created_at.desc(), _p.c.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(_p.c.state == state.value)
    return [_to_payment(r) for r in (await conn.execute(stmt)).all()]


async def by_transactions(conn: AsyncConnection, tx_ids: Sequence[int]) -> dict[int, Payment]:
    if not tx_ids:
        return {}
    rows = (await conn.execute(select(_p).where(_p.c.transaction_id.in_(list(tx_ids))))).all()
    return {r.transaction_id: _to_payment(r) for r in rows}


# --- events ---------------------------------------------------------------------------


async def add_event(conn: AsyncConnection, event: PaymentEvent) -> None:
    await conn.execute(
        insert(_e).values(
            payment_id=event.payment_id,
            at=event.at,
            from_state=None if event.from_state is None else event.from_state.value,
            to_state=None if event.to_state is None else event.to_state.value,
            what=event.what[:64],
            actor=event.actor[:255],
            detail=event.detail,
            provider_event_id=event.provider_event_id,
        )
    )


async def event_seen(conn: AsyncConnection, provider_event_id: str) -> bool:
    row = (
        await conn.execute(select(_e.c.id).where(_e.c.provider_event_id == provider_event_id))
    ).first()
    return row is not None


async def events_of(conn: AsyncConnection, payment_id: str) -> list[PaymentEvent]:
    rows = (
        await conn.execute(select(_e).where(_e.c.payment_id == payment_id).order_by(_e.c.id))
    ).all()
    return [
        PaymentEvent(
            payment_id=r.payment_id,
            at=r.at,
            from_state=None if r.from_state is None else PaymentState(r.from_state),
            to_state=None if r.to_state is None else PaymentState(r.to_state),
            what=r.what,
            actor=r.actor,
            detail=r.detail,
            provider_event_id=r.provider_event_id,
        )
        for r in rows
    ]


# --- the transaction of a payment's one-time token ---------------------------------------


async def transaction_of_tag(conn: AsyncConnection, cp_id: str, tag: str) -> Transaction | None:
    """The newest transaction started at the charger with this token (a one-time token
    starts one at most)."""
    row = (
        await conn.execute(
            select(_tx.c.id)
            .where(_tx.c.id_tag_key == token_key(tag), _tx.c.charge_point_id == cp_id)
            .order_by(_tx.c.id.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else await tx_repo.get_with_meter(conn, int(row[0]))


# --- the test provider's pre-authorisations ----------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredIntent:
    """A pre-authorisation of the test provider (`state` a csms.core.payments.ProviderState
    value); `answers` the idempotency keys it answered, with their answers."""

    checkout_ref: str
    payment_id: str
    amount_minor: int
    currency: str
    description: str
    state: str
    return_url: str
    cancel_url: str
    authorized_minor: int | None
    captured_minor: int | None
    refunded_minor: int
    answers: dict[str, Any]
    reason: str | None
    created_at: datetime
    updated_at: datetime


def _to_intent(row: Any) -> StoredIntent:
    return StoredIntent(
        checkout_ref=row.checkout_ref,
        payment_id=row.payment_id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        description=row.description,
        state=row.state,
        return_url=row.return_url,
        cancel_url=row.cancel_url,
        authorized_minor=row.authorized_minor,
        captured_minor=row.captured_minor,
        refunded_minor=row.refunded_minor,
        answers=dict(row.answers or {}),
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def add_intent(conn: AsyncConnection, intent: StoredIntent) -> None:
    await conn.execute(insert(_i).values(asdict(intent)))


async def save_intent(conn: AsyncConnection, intent: StoredIntent) -> None:
    values = asdict(intent)
    del values["checkout_ref"]
    await conn.execute(update(_i).where(_i.c.checkout_ref == intent.checkout_ref).values(values))


async def get_intent(conn: AsyncConnection, checkout_ref: str) -> StoredIntent | None:
    row = (await conn.execute(select(_i).where(_i.c.checkout_ref == checkout_ref))).first()
    return None if row is None else _to_intent(row)


async def intent_of_payment(conn: AsyncConnection, payment_id: str) -> StoredIntent | None:
    row = (await conn.execute(select(_i).where(_i.c.payment_id == payment_id))).first()
    return None if row is None else _to_intent(row)
