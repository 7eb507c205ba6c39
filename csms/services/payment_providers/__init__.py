"""The payment service providers (csms.core.payments.PaymentProvider implementations) and
the factory that builds the configured one: `test` (inside the CSMS, for demos) and
`stripe`.

Each provider module knows one provider's API; none knows the payment service.
"""

from __future__ import annotations

from collections.abc import Callable

from csms.config import PaymentsConfig
from csms.core.clock import Clock
from csms.core.payments import PaymentProvider
from csms.services.payment_providers.test import TestProvider
from csms.storage.database import Database

__all__ = ["TestProvider", "providers"]


def providers(
    config: PaymentsConfig, *, db: Database, clock: Clock, base_url: Callable[[], str]
) -> dict[str, PaymentProvider]:
    """The configured provider by its name (the name of its webhook route). `base_url()`:
    the public URL the pay app is reached at, known once the listener is bound."""
    found: dict[str, PaymentProvider] = {}
    if config.provider == "test":
        found["test"] = TestProvider(db, clock, base_url)
    return found
