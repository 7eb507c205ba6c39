"""The OCPP versions the CSMS speaks and what each one's wire allows (ProtocolLimits): the
values live with each version's adapter (csms.handlers.v16, csms.handlers.v201).

Values only, no OCPP field names: the composition root hands the adapters' limits to the
services and the OCPI bridge as a mapping OcppVersion -> ProtocolLimits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class OcppVersion(StrEnum):
    """An OCPP version, by the name stored with chargers and transactions and used in the
    configuration (`ocpp.preferred_version`)."""

    V16 = "1.6"
    V201 = "2.0.1"

    @classmethod
    def of(cls, text: str | None) -> OcppVersion | None:
        """The version a stored name stands for; None when none is stored (or it names
        no version we speak)."""
        if text is None:
            return None
        try:
            return cls(text)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class ProtocolLimits:
    """What one OCPP version's messages can carry, as the commands and the OCPI bridge
    need to know it before anything is sent."""

    version: OcppVersion
    # Characters of an id token (the token a charger is told to start or reserve for, and
    # its parent).
    id_token_max: int
    # Characters of a configuration key as staff write it (a key, or a device model
    # variable `Component[.instance].Variable`).
    config_key_max: int
    # Configuration is a device model of component variables: config-set names a
    # `Component[.instance].Variable`, and the charger reports which controllers it has
    # switched off. Otherwise configuration keys are flat names.
    device_model: bool
    # The transaction a remote start leads to carries the remote start's id. Otherwise the
    # CSMS notes the remote start to recognise the transaction when it begins.
    start_carries_remote_start_id: bool

    def fits_id_token(self, uid: str) -> bool:
        """Whether `uid` can be sent to a charger of this version as its id token."""
        return len(uid) <= self.id_token_max


# Each version's limits, as the composition root collects them from the adapters.
Limits = Mapping[OcppVersion, ProtocolLimits]
