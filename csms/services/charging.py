"""The services of chargers reporting to the CSMS, built together: stations (presence,
boot, status, device model), authorization (tokens, roaming grants) and transactions.

They share the token holdings and the input checks; csms.app builds one set per process.
"""

from __future__ import annotations

from dataclasses import dataclass

from csms.core.clock import Clock
from csms.metrics import Metrics
from csms.services.authorization import AuthorizationService, DatabaseTokens, Roaming
from csms.services.charger_input import ChargingSettings, InputChecks
from csms.services.holdings import Holdings, Place
from csms.services.quotas import Quotas
from csms.services.stations import DatabaseStations, StationService
from csms.services.transactions import TransactionService
from csms.storage import transactions as tx_repo
from csms.storage.database import BatchLoader, Database


@dataclass(frozen=True, slots=True)
class Charging:
    stations: StationService
    authorization: AuthorizationService
    transactions: TransactionService
    checks: InputChecks

    @classmethod
    def build(
        cls,
        db: Database,
        clock: Clock,
        settings: ChargingSettings,
        metrics: Metrics | None = None,
        roaming: Roaming | None = None,
        node_id: str = "local",
        shared: bool = False,
    ) -> Charging:
        """`shared`: other nodes serve chargers on the same database (PostgreSQL)."""
        checks = InputChecks(settings.window)
        quotas = Quotas(db, clock, settings.quotas, metrics)
        holders: BatchLoader[str, dict[int, Place]] = BatchLoader(db, tx_repo.holders)
        stations = StationService(DatabaseStations(db, node_id), clock, settings, checks, quotas)
        authorization = AuthorizationService(
            DatabaseTokens(db),
            clock,
            Holdings(holders, shared=shared),
            allow_unknown_tags=settings.allow_unknown_tags,
            roaming=roaming,
            shared=shared,
        )
        transactions = TransactionService(db, clock, authorization, checks)
        return cls(stations, authorization, transactions, checks)
