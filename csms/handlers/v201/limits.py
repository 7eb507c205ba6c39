"""What an OCPP 2.0.1 message can carry, as the commands and the OCPI bridge need to know it
(csms.core.versions.ProtocolLimits); exposed as V201Adapter.limits.
"""

from __future__ import annotations

from csms.core.versions import OcppVersion, ProtocolLimits

LIMITS = ProtocolLimits(
    version=OcppVersion.V201,
    # IdTokenType.idToken is identifierString(36).
    id_token_max=36,
    # Component[.instance].Variable as staff write it (each name is string(50)).
    config_key_max=500,
    # SetVariables/GetVariables on the device model; NotifyReport says what is switched off.
    device_model=True,
    # TransactionEvent carries remoteStartId.
    start_carries_remote_start_id=True,
)
