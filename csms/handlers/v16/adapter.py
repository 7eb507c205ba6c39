"""OCPP 1.6J handlers, one `on_<action>` per message a charge point sends.

Each handler validates nothing itself (the session ran the schema), converts 1.6 fields to
version-neutral requests, awaits the service (which commits) and builds the 1.6 answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ocpp.exceptions import (
    FormationViolationError,
    GenericError,
    InternalError,
    NotSupportedError,
    OccurenceConstraintViolationError,
    PropertyConstraintViolationError,
    ProtocolError,
    SecurityError,
    TypeConstraintViolationError,
)
from ocpp.exceptions import (
    NotImplementedError as OcppNotImplementedError,
)
from ocpp.v16.enums import Action, ChargePointErrorCode, Reason

from csms.core.authorization import AuthResult, AuthStatus
from csms.core.charger import (
    INT_MAX,
    INT_MIN,
    BootInfo,
    RegistrationStatus,
    StatusReport,
    evse_of_v16_connector,
)
from csms.core.charger_certificates import CertificateUse
from csms.core.clock import format_timestamp, parse_timestamp
from csms.core.errors import InvalidTimestamp, TimestampOutOfRange
from csms.core.metering import Sample, make_sample
from csms.core.status import ConnectorStatus
from csms.core.versions import OcppVersion
from csms.handlers.rpc import ErrorKind, OcppCallError
from csms.handlers.schemas import SchemaSet
from csms.handlers.session import Handler, OcppSession
from csms.handlers.v16 import commands
from csms.handlers.v16.limits import LIMITS
from csms.services.authorization import AuthorizationService
from csms.services.charger_certificates import ChargerCertificates
from csms.services.stations import Progress, StationService
from csms.services.transactions import (
    MeterReport,
    StartRequest,
    StopRequest,
    TransactionService,
)

VERSION = OcppVersion.V16

ERRORS: Mapping[ErrorKind, str] = {
    ErrorKind.FORMAT: FormationViolationError.code,
    ErrorKind.TYPE: TypeConstraintViolationError.code,
    ErrorKind.PROPERTY: PropertyConstraintViolationError.code,
    ErrorKind.OCCURRENCE: OccurenceConstraintViolationError.code,
    ErrorKind.PROTOCOL: ProtocolError.code,
    ErrorKind.NOT_IMPLEMENTED: OcppNotImplementedError.code,
    ErrorKind.NOT_SUPPORTED: NotSupportedError.code,
    ErrorKind.INTERNAL: InternalError.code,
    ErrorKind.SECURITY: SecurityError.code,
    ErrorKind.GENERIC: GenericError.code,
    # 1.6 has no RpcFrameworkError: a frame whose id cannot be read is not a well-formed
    # message, answered with the id "-1" as in 2.0.1.
    ErrorKind.RPC_FRAMEWORK: FormationViolationError.code,
    ErrorKind.MESSAGE_TYPE: ProtocolError.code,
}

_ERROR_CODES = frozenset(e.value for e in ChargePointErrorCode)
_STOP_REASONS = frozenset(r.value for r in Reason)


def _timestamp(value: Any, field: str) -> datetime:
    text = str(value)
    try:
        return parse_timestamp(text)
    except TimestampOutOfRange:
        raise OcppCallError(
            ErrorKind.PROPERTY,
            f"{field}: {text[:64]!r} is outside the years 1 to 9999 once converted to UTC",
            {"field": field},
        ) from None
    except InvalidTimestamp:
        raise OcppCallError(
            ErrorKind.PROPERTY, f"{field} is not a valid date-time: {text[:64]!r}", {"field": field}
        ) from None


def _opt_timestamp(payload: Mapping[str, Any], field: str, default: datetime) -> datetime:
    value = payload.get(field)
    return default if value is None else _timestamp(value, field)


def _int(value: Any, field: str) -> int:
    """Integers; lenient chargers send 12.0 or "12". The schemas bound integer fields to
    64 bits; this holds for values that reach here another way too."""
    if isinstance(value, bool):
        raise OcppCallError(ErrorKind.TYPE, f"{field} must be an integer", {"field": field})
    if isinstance(value, int):
        number = value
    else:
        try:
            number = round(float(value))
        except (TypeError, ValueError, OverflowError):
            raise OcppCallError(
                ErrorKind.TYPE, f"{field} must be an integer", {"field": field}
            ) from None
    if not INT_MIN <= number <= INT_MAX:
        raise OcppCallError(
            ErrorKind.PROPERTY, f"{field} is out of range: {value!r}"[:160], {"field": field}
        )
    return number


def id_tag_info(auth: AuthResult) -> dict[str, Any]:
    # OCPP 1.6 has no "Unknown" or "NotAtThisTime": both are Invalid there.
    status = auth.status
    if status in (AuthStatus.UNKNOWN, AuthStatus.NOT_AT_THIS_TIME):
        status = AuthStatus.INVALID
    info: dict[str, Any] = {"status": status.value}
    if auth.expires_at is not None:
        info["expiryDate"] = format_timestamp(auth.expires_at)
    if auth.parent_uid is not None:
        info["parentIdTag"] = auth.parent_uid
    return info


def samples_from(meter_values: list[dict[str, Any]], field: str) -> tuple[Sample, ...]:
    """1.6 meterValue[] -> normalised samples. Defaults per the spec: measurand
    Energy.Active.Import.Register, unit Wh, context Sample.Periodic."""
    out: list[Sample] = []
    for mv in meter_values:
        at = _timestamp(mv.get("timestamp"), f"{field}.timestamp")
        for sv in mv.get("sampledValue", ()):
            out.append(
                make_sample(
                    timestamp=at,
                    raw_value=sv.get("value", ""),
                    measurand=sv.get("measurand"),
                    unit=sv.get("unit"),
                    phase=sv.get("phase"),
                    location=sv.get("location"),
                    context=sv.get("context", "Sample.Periodic"),
                    signed=sv.get("format") == "SignedData",
                )
            )
    return tuple(out)


class V16Adapter:
    """OCPP 1.6J handlers bound to the charging services."""

    version = VERSION
    limits = LIMITS
    subprotocol = "ocpp1.6"
    errors = ERRORS
    actions = frozenset(a.value for a in Action)
    before_acceptance = frozenset({"BootNotification"})

    encode_command = staticmethod(commands.encode)
    decode_answer = staticmethod(commands.decode)

    def __init__(
        self,
        stations: StationService,
        authorization: AuthorizationService,
        transactions: TransactionService,
        schemas: SchemaSet | None = None,
    ) -> None:
        self.stations = stations
        self.authorization = authorization
        self.transactions = transactions
        self.schemas = schemas or SchemaSet(VERSION)
        # Our CA for SignCertificate (set by the composition root); None: Rejected.
        self.certificates: ChargerCertificates | None = None
        self.handlers: Mapping[str, Handler] = {
            "BootNotification": self.on_boot_notification,
            "Heartbeat": self.on_heartbeat,
            "StatusNotification": self.on_status_notification,
            "Authorize": self.on_authorize,
            "StartTransaction": self.on_start_transaction,
            "StopTransaction": self.on_stop_transaction,
            "MeterValues": self.on_meter_values,
            "DataTransfer": self.on_data_transfer,
            "FirmwareStatusNotification": self.on_firmware_status_notification,
            "DiagnosticsStatusNotification": self.on_diagnostics_status_notification,
            # Security extension (OCPP 1.6 security whitepaper)
            "SecurityEventNotification": self.on_security_event_notification,
            "SignedFirmwareStatusNotification": self.on_signed_firmware_status_notification,
            "LogStatusNotification": self.on_log_status_notification,
            "SignCertificate": self.on_sign_certificate,
        }

    # --- core profile ----------------------------------------------------------------

    async def on_boot_notification(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        info = BootInfo(
            vendor=p["chargePointVendor"],
            model=p["chargePointModel"],
            serial_number=p.get("chargePointSerialNumber"),
            charge_box_serial=p.get("chargeBoxSerialNumber"),
            firmware_version=p.get("firmwareVersion"),
            iccid=p.get("iccid"),
            imsi=p.get("imsi"),
            meter_type=p.get("meterType"),
            meter_serial=p.get("meterSerialNumber"),
        )
        decision = await self.stations.boot(s.cp_id, VERSION, info)
        s.registration = decision.status
        interval = decision.interval
        if decision.status is not RegistrationStatus.ACCEPTED:
            # Pending/Rejected: when to retry the boot, not a heartbeat interval.
            interval = min(interval, 60)
        return {
            "status": decision.status.value,
            "currentTime": format_timestamp(decision.now),
            "interval": interval,
        }

    async def on_heartbeat(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        now = await self.stations.heartbeat(s.cp_id)
        return {"currentTime": format_timestamp(now)}

    async def on_status_notification(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        connector = _int(p["connectorId"], "connectorId")
        if connector < 0:
            raise OcppCallError(ErrorKind.PROPERTY, "connectorId must not be negative")
        evse_id, connector_id = evse_of_v16_connector(connector)
        error_code = str(p["errorCode"])
        vendor_error = p.get("vendorErrorCode")
        if error_code not in _ERROR_CODES:  # lenient mode let it through
            vendor_error = vendor_error or error_code
            error_code = ChargePointErrorCode.other_error.value
        now = self.stations.now()
        report = StatusReport(
            evse_id=evse_id,
            connector_id=connector_id,
            status=ConnectorStatus(p["status"]),
            error_code=error_code,
            timestamp=_opt_timestamp(p, "timestamp", now),
            info=p.get("info"),
            vendor_id=p.get("vendorId"),
            vendor_error_code=vendor_error,
        )
        await self.stations.status(s.cp_id, report)
        return {}

    async def on_authorize(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        auth = await self.authorization.authorize(s.cp_id, str(p["idTag"]))
        return {"idTagInfo": id_tag_info(auth)}

    async def on_start_transaction(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        connector = _int(p["connectorId"], "connectorId")
        if connector <= 0:
            raise OcppCallError(ErrorKind.PROPERTY, "connectorId of a transaction must be > 0")
        evse_id, connector_id = evse_of_v16_connector(connector)
        reservation = p.get("reservationId")
        result = await self.transactions.start_transaction(
            s.cp_id,
            VERSION,
            StartRequest(
                evse_id=evse_id,
                connector_id=connector_id,
                id_tag=str(p["idTag"]),
                meter_start_wh=_int(p["meterStart"], "meterStart"),
                timestamp=_timestamp(p["timestamp"], "timestamp"),
                reservation_id=None if reservation is None else _int(reservation, "reservationId"),
            ),
        )
        return {"transactionId": result.transaction_id, "idTagInfo": id_tag_info(result.auth)}

    async def on_stop_transaction(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        reason = p.get("reason")
        if reason is not None and reason not in _STOP_REASONS:
            reason = Reason.other.value
        id_tag = p.get("idTag")
        result = await self.transactions.stop_transaction(
            s.cp_id,
            StopRequest(
                transaction_id=_int(p["transactionId"], "transactionId"),
                meter_stop_wh=_int(p["meterStop"], "meterStop"),
                timestamp=_timestamp(p["timestamp"], "timestamp"),
                id_tag=None if id_tag is None else str(id_tag),
                reason=reason,
                samples=samples_from(p.get("transactionData") or [], "transactionData"),
                raw=p,
            ),
        )
        if result.auth is None:
            return {}
        return {"idTagInfo": id_tag_info(result.auth)}

    async def on_meter_values(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        connector = _int(p["connectorId"], "connectorId")
        if connector < 0:
            raise OcppCallError(ErrorKind.PROPERTY, "connectorId must not be negative")
        evse_id, connector_id = evse_of_v16_connector(connector)
        tx = p.get("transactionId")
        await self.transactions.meter_values(
            s.cp_id,
            MeterReport(
                evse_id=evse_id,
                connector_id=connector_id,
                transaction_id=None if tx is None else _int(tx, "transactionId"),
                samples=samples_from(p["meterValue"], "meterValue"),
                raw=p,
            ),
        )
        return {}

    async def on_data_transfer(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        if not await self.stations.record_event(s.cp_id, "DataTransfer", p):
            # Over the charger's quota of messages kept as sent: not taken.
            return {"status": "Rejected"}
        # No vendor extensions are registered with this CSMS.
        return {"status": "UnknownVendorId"}

    async def on_firmware_status_notification(
        self, s: OcppSession, p: dict[str, Any]
    ) -> dict[str, Any]:
        await self.stations.record_event(
            s.cp_id, "FirmwareStatusNotification", p, progress=Progress("firmware", p.get("status"))
        )
        return {}

    async def on_diagnostics_status_notification(
        self, s: OcppSession, p: dict[str, Any]
    ) -> dict[str, Any]:
        await self.stations.record_event(
            s.cp_id,
            "DiagnosticsStatusNotification",
            p,
            progress=Progress("diagnostics", p.get("status")),
        )
        return {}

    # --- security extension ----------------------------------------------------------

    async def on_security_event_notification(
        self, s: OcppSession, p: dict[str, Any]
    ) -> dict[str, Any]:
        await self.stations.record_event(s.cp_id, "SecurityEventNotification", p)
        return {}

    async def on_signed_firmware_status_notification(
        self, s: OcppSession, p: dict[str, Any]
    ) -> dict[str, Any]:
        await self.stations.record_event(
            s.cp_id,
            "SignedFirmwareStatusNotification",
            p,
            progress=Progress("firmware", p.get("status")),
        )
        return {}

    async def on_log_status_notification(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        await self.stations.record_event(
            s.cp_id, "LogStatusNotification", p, progress=Progress("diagnostics", p.get("status"))
        )
        return {}

    async def on_sign_certificate(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        await self.stations.record_event(s.cp_id, "SignCertificate", p)
        if self.certificates is None:
            # No certificate authority is configured: the request cannot be honoured.
            return {"status": "Rejected"}
        # Last: the signed chain (CertificateSigned) follows this answer.
        decision = await self.certificates.sign_request(
            s.cp_id, str(p["csr"]), CertificateUse.CHARGING_STATION
        )
        return {"status": "Accepted" if decision.accepted else "Rejected"}
