"""Charging station certificates through OCPP: a charger's signing request (SignCertificate,
both versions) decided with our CA, and the signed chain sent back after the answer
(CertificateSigned) through the command service, audited as the CSMS's own command.

No OCPP field names here (the adapters translate); X.509 signing is csms.services.pki's.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from csms.core.certificates import Issued, IssuedCertificate, Refused
from csms.core.charger_certificates import CertificateUse, SignDecision
from csms.core.command_requests import CertificateSignedRequest
from csms.services.commands import CommandService, Requester
from csms.services.pki import CertificateAuthority
from csms.workers import TaskSet

log = structlog.get_logger("csms.charger_certificates")

# Who sends a CertificateSigned: the CSMS itself, in the audit log as csms:system.
SYSTEM = Requester("csms", "system")
# Why a request for a V2G certificate is refused (ISO 15118 certificates come from a V2G
# PKI, not from our charging station CA).
V2G_NOT_ISSUED = "v2g_not_issued"


class ChargerCertificates:
    """Answers chargers' signing requests with our CA and delivers what it signed."""

    def __init__(self, ca: CertificateAuthority, commands: CommandService) -> None:
        self._ca = ca
        self._commands = commands
        # CertificateSigned deliveries, each started after the charger got its answer.
        self._deliveries = TaskSet("certificates")

    async def sign_request(self, cp_id: str, csr_pem: str, use: CertificateUse) -> SignDecision:
        """Decide a charger's SignCertificate: Accepted when our CA signed its CSR (the chain
        follows in a CertificateSigned, sent once the caller has answered: call this last
        in the handler), else refused with the reason, which is logged."""
        if use is CertificateUse.V2G:
            detail = "V2G certificates are not issued by this CSMS (they come from a V2G PKI)"
            log.info(
                "certificate_refused", charge_point_id=cp_id, reason=V2G_NOT_ISSUED, detail=detail
            )
            return SignDecision(False, V2G_NOT_ISSUED, detail)
        result = await self._ca.issue(cp_id, csr_pem)  # logs a refusal with its reason
        if isinstance(result, Refused):
            return SignDecision(False, result.reason.value, result.detail)
        # Nothing awaits between here and the answer going out, so the CALL follows it.
        self._deliveries.spawn(self._deliver(cp_id, result, use), name=f"certificate-{cp_id}")
        return SignDecision(True)

    async def _deliver(self, cp_id: str, issued: Issued, use: CertificateUse) -> None:
        result = await self._commands.execute(
            cp_id, CertificateSignedRequest(issued.chain_pem, use), SYSTEM
        )
        serial = issued.certificate.serial
        if result.outcome.ok:
            log.info("certificate_delivered", charge_point_id=cp_id, serial=serial)
        else:
            log.warning(
                "certificate_not_installed",
                charge_point_id=cp_id,
                serial=serial,
                outcome=result.outcome.value,
                status=result.status,
                detail=result.message,
                command_id=result.id,
            )

    async def close(self) -> None:
        await self._deliveries.close()


async def expiring_chargers(ca: CertificateAuthority, within: timedelta) -> list[IssuedCertificate]:
    """The chargers whose latest certificate from our CA is still valid and expires within
    `within`, by that certificate, soonest first (a charger given a newer certificate since
    is not among them)."""
    found: list[IssuedCertificate] = []
    seen: set[str] = set()
    for cert in await ca.expiring(within):
        if cert.charge_point_id in seen:
            continue
        seen.add(cert.charge_point_id)
        latest = await ca.certificates(charge_point_id=cert.charge_point_id, limit=1)
        if latest.items and latest.items[0].serial == cert.serial:
            found.append(cert)
    return found
