"""Configuration and variables: GetConfiguration / GetVariables and ChangeConfiguration /
SetVariables. Where the charger's version has a device model, a value it accepted is kept
with the device model (csms.storage.device_model).

The wire format is the version adapters'; this module sees csms.core commands only.
"""

from __future__ import annotations

from csms.core.clock import Clock
from csms.core.command_params import check_length
from csms.core.command_requests import ConfigGetRequest, ConfigSetRequest
from csms.core.commands import Answer, GetConfiguration, SetConfiguration, VariableKey
from csms.services.commands.base import Order, Prepared
from csms.storage import device_model as device_repo
from csms.storage.database import Database, WriteTx


class Configuration:
    """`config-get` and `config-set`."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def prepare(self, request: ConfigGetRequest | ConfigSetRequest, order: Order) -> Prepared:
        match request:
            case ConfigGetRequest():
                return Prepared(GetConfiguration(request.keys))
            case ConfigSetRequest():
                return self._set(request, order)

    def _set(self, request: ConfigSetRequest, order: Order) -> Prepared:
        cp_id, key, value = order.cp_id, request.key, request.value
        check_length("key", key, order.limits.config_key_max)
        command = SetConfiguration(key, value)
        if not order.limits.device_model:
            return Prepared(command)
        variable = VariableKey.parse(key)

        async def after(answer: Answer) -> None:
            if answer.ok:
                now = self._clock()

                async def unit(w: WriteTx) -> None:
                    await device_repo.set_value(
                        await w.connection(),
                        cp_id,
                        variable.component,
                        variable.instance,
                        variable.variable,
                        value,
                        now,
                    )

                await self._db.write(unit)

        return Prepared(command, after=after)
