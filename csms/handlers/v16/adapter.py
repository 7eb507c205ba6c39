"""OCPP 1.6J handlers, one `on_<action>` per message a charge point sends.

Each handler validates nothing itself (the session ran the schema), converts 1.6 fields to
version-neutral requests, awaits the service (which commits) and builds the 1.6 answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
import structlog
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
from csms.core.metering import DEFAULT_MEASURAND, Sample, SignedMeterValue, make_sample
from csms.core.status import ConnectorStatus
from csms.core.versions import OcppVersion
from csms.handlers.rpc import ErrorKind, OcppCallError
from csms.handlers.schemas import SchemaSet
from csms.handlers.session import CallFailed, Handler, OcppSession
from csms.handlers.v16 import commands
from csms.handlers.v16.limits import LIMITS
from csms.services.authorization import AuthorizationService
from csms.services.charger_certificates import ChargerCertificates
from csms.services.meter_keys import KeySource, MeterKeys, ReportedKey
from csms.services.stations import Progress, StationService
from csms.services.transactions import (
    MeterReport,
    StartRequest,
    StopRequest,
    TransactionService,
)
from csms.workers import TaskSet

VERSION = OcppVersion.V16

log = structlog.get_logger("csms.ocpp")

# The OCA's "OCPP 1.6 Eichrecht" DataTransfer that publishes the meters' public keys.
METER_CONFIGURATION = ("generalConfiguration", "setMeterConfiguration")

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


def samples_from(
    meter_values: list[dict[str, Any]], field: str
) -> tuple[tuple[Sample, ...], tuple[SignedMeterValue, ...]]:
    """1.6 meterValue[] -> normalised samples, and the values the meter signed (format
    SignedData: their `value` kept exactly as sent, never read as a number). Defaults per
    the spec: measurand Energy.Active.Import.Register, unit Wh, context Sample.Periodic."""
    out: list[Sample] = []
    signed: list[SignedMeterValue] = []
    for mv in meter_values:
        at = _timestamp(mv.get("timestamp"), f"{field}.timestamp")
        for sv in mv.get("sampledValue", ()):
            if sv.get("format") == "SignedData":
                signed.append(
                    _signed_value(
                        at,
                        sv.get("context", "Sample.Periodic"),
                        sv.get("measurand", DEFAULT_MEASURAND),
                        str(sv.get("value", "")),
                    )
                )
                continue
            out.append(
                make_sample(
                    timestamp=at,
                    raw_value=sv.get("value", ""),
                    measurand=sv.get("measurand"),
                    unit=sv.get("unit"),
                    phase=sv.get("phase"),
                    location=sv.get("location"),
                    context=sv.get("context", "Sample.Periodic"),
                )
            )
    return tuple(out), tuple(signed)


def _signed_value(at: datetime, context: str, measurand: str, value: str) -> SignedMeterValue:
    """A 1.6 SignedData value: the signed text as sent, or, where a charger wraps it the
    2.0.1 way (`{"signedMeterValue": "...", "encodingMethod": "OCMF", "publicKey": "..."}`,
    as some backends ask for), the signed text of the wrapper with its method and key."""
    if value.startswith("{"):
        try:
            wrapped = orjson.loads(value)
        except orjson.JSONDecodeError:
            wrapped = None
        if isinstance(wrapped, dict):
            data = wrapped.get("signedMeterValue", wrapped.get("signedMeterData"))
            if isinstance(data, str):

                def text(name: str) -> str | None:
                    item = wrapped.get(name)
                    return item if isinstance(item, str) and item else None

                return SignedMeterValue(
                    at,
                    context,
                    measurand,
                    data,
                    text("encodingMethod"),
                    text("signingMethod"),
                    text("publicKey"),
                )
    return SignedMeterValue(at, context, measurand, value)


def meter_keys_from(data: Any) -> list[ReportedKey]:
    """The keys of a setMeterConfiguration DataTransfer (`data`: a JSON text
    `{"meters": [{"connectorId": 1, "meterSerial": "...", "type": "SIGNATURE",
    "publicKey": "..."}]}`): connector N is EVSE N, 0 the whole charger."""
    try:
        parsed = orjson.loads(data) if isinstance(data, str | bytes) else data
    except orjson.JSONDecodeError:
        return []
    meters = parsed.get("meters") if isinstance(parsed, dict) else None
    keys: list[ReportedKey] = []
    for meter in meters if isinstance(meters, list) else ():
        if not isinstance(meter, dict):
            continue
        key, connector = meter.get("publicKey"), meter.get("connectorId", 0)
        kind = meter.get("type", "SIGNATURE")
        if not isinstance(key, str) or not key or kind != "SIGNATURE":
            continue
        if isinstance(connector, bool) or not isinstance(connector, int) or connector < 0:
            continue
        serial = meter.get("meterSerial")
        keys.append(ReportedKey(connector, key, serial if isinstance(serial, str) else None))
    return keys


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
        # The meters' public keys (set by the composition root); None: not taken.
        self.meter_keys: MeterKeys | None = None
        self.call_timeout = 30.0
        # Requests of our own that follow a charger's message (its meter key): held until
        # they end, their failures logged.
        self._tasks = TaskSet("ocpp-1.6")
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
        keys = self.meter_keys
        if decision.status is RegistrationStatus.ACCEPTED and keys is not None:
            keys.forget(s.cp_id)
            if KeySource.CONFIG_KEY.value in keys.sources_of(info.vendor):
                # Sent after this answer: a CALL from inside a handler would wait on itself.
                self._tasks.spawn(self._read_meter_key(s, keys, keys.config_key_of(info.vendor)))
        interval = decision.interval
        if decision.status is not RegistrationStatus.ACCEPTED:
            # Pending/Rejected: when to retry the boot, not a heartbeat interval.
            interval = min(interval, 60)
        return {
            "status": decision.status.value,
            "currentTime": format_timestamp(decision.now),
            "interval": interval,
        }

    async def _read_meter_key(self, s: OcppSession, keys: MeterKeys, name: str) -> None:
        """Ask the charger for the configuration key holding its meter's public key."""
        try:
            answer = await s.call("GetConfiguration", {"key": [name]}, self.call_timeout)
        except (TimeoutError, CallFailed, ConnectionError) as exc:
            log.warning("meter_key_not_read", charge_point_id=s.cp_id, key=name, reason=str(exc))
            return
        for item in answer.get("configurationKey") or ():
            value = item.get("value")
            if item.get("key") == name and isinstance(value, str) and value.strip():
                await keys.reported(s.cp_id, [ReportedKey(0, value.strip())], KeySource.CONFIG_KEY)
                return
        log.info("meter_key_not_configured", charge_point_id=s.cp_id, key=name)

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
        samples, signed = samples_from(p.get("transactionData") or [], "transactionData")
        result = await self.transactions.stop_transaction(
            s.cp_id,
            StopRequest(
                transaction_id=_int(p["transactionId"], "transactionId"),
                meter_stop_wh=_int(p["meterStop"], "meterStop"),
                timestamp=_timestamp(p["timestamp"], "timestamp"),
                id_tag=None if id_tag is None else str(id_tag),
                reason=reason,
                samples=samples,
                signed=signed,
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
        samples, signed = samples_from(p["meterValue"], "meterValue")
        await self.transactions.meter_values(
            s.cp_id,
            MeterReport(
                evse_id=evse_id,
                connector_id=connector_id,
                transaction_id=None if tx is None else _int(tx, "transactionId"),
                samples=samples,
                signed=signed,
                raw=p,
            ),
        )
        return {}

    async def on_data_transfer(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        if not await self.stations.record_event(s.cp_id, "DataTransfer", p):
            # Over the charger's quota of messages kept as sent: not taken.
            return {"status": "Rejected"}
        keys = self.meter_keys
        if (p.get("vendorId"), p.get("messageId")) == METER_CONFIGURATION and keys is not None:
            vendor = await keys.vendor_of(s.cp_id)
            if KeySource.DATA_TRANSFER.value not in keys.sources_of(vendor):
                log.warning("meter_key_source_not_trusted", charge_point_id=s.cp_id, vendor=vendor)
                return {"status": "Rejected"}
            reported = meter_keys_from(p.get("data"))
            taken = await keys.reported(s.cp_id, reported, KeySource.DATA_TRANSFER)
            return {"status": "Accepted" if reported and taken == len(reported) else "Rejected"}
        # No other vendor extensions are registered with this CSMS.
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
