"""What an OCPP 1.6J message can carry, as the commands and the OCPI bridge need to know it
(csms.core.versions.ProtocolLimits); exposed as V16Adapter.limits.
"""

from __future__ import annotations

from csms.core.versions import OcppVersion, ProtocolLimits

LIMITS = ProtocolLimits(
    version=OcppVersion.V16,
    # idTag is CiString20Type.
    id_token_max=20,
    # ChangeConfiguration.key is CiString50Type.
    config_key_max=50,
    # GetConfiguration/ChangeConfiguration keys, no device model.
    device_model=False,
    # StartTransaction has no remoteStartId: the CSMS matches it to the remote start.
    start_carries_remote_start_id=False,
)
