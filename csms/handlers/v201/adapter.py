"""OCPP 2.0.1 handlers, one `on_<action>` for every message a charging station may send.

Each converts 2.0.1 fields to version-neutral requests, awaits the service (which commits)
and builds the 2.0.1 answer; nothing here keeps state beyond the connection's session.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import structlog
from ocpp.exceptions import (
    FormatViolationError,
    GenericError,
    InternalError,
    NotSupportedError,
    OccurrenceConstraintViolationError,
    PropertyConstraintViolationError,
    ProtocolError,
    SecurityError,
    TypeConstraintViolationError,
)
from ocpp.exceptions import (
    NotImplementedError as OcppNotImplementedError,
)
from ocpp.v201.enums import Action

from csms.core.authorization import AuthResult
from csms.core.charger import BootInfo, RegistrationStatus, StatusReport
from csms.core.charger_certificates import CertificateUse
from csms.core.clock import format_timestamp, parse_timestamp
from csms.core.device_model import ACTUAL, ReportedVariable
from csms.core.errors import InvalidTimestamp, TimestampOutOfRange
from csms.core.metering import DEFAULT_MEASURAND, Sample, SignedMeterValue, make_sample
from csms.core.status import NO_ERROR, ConnectorStatus
from csms.core.transactions import ChargingState, TransactionEvent, TxEventType
from csms.core.versions import OcppVersion
from csms.handlers.rpc import ErrorKind, OcppCallError
from csms.handlers.schemas import SchemaSet
from csms.handlers.session import CallFailed, Handler, OcppSession
from csms.handlers.v201 import commands
from csms.handlers.v201.limits import LIMITS
from csms.services.authorization import AuthorizationService
from csms.services.charger_certificates import ChargerCertificates
from csms.services.load_management import LoadManager
from csms.services.stations import Progress, StationService
from csms.services.transactions import TransactionService
from csms.workers import TaskSet

VERSION = OcppVersion.V201

log = structlog.get_logger("csms.ocpp")

ERRORS: Mapping[ErrorKind, str] = {
    ErrorKind.FORMAT: FormatViolationError.code,
    ErrorKind.TYPE: TypeConstraintViolationError.code,
    ErrorKind.PROPERTY: PropertyConstraintViolationError.code,
    ErrorKind.OCCURRENCE: OccurrenceConstraintViolationError.code,
    ErrorKind.PROTOCOL: ProtocolError.code,
    ErrorKind.NOT_IMPLEMENTED: OcppNotImplementedError.code,
    ErrorKind.NOT_SUPPORTED: NotSupportedError.code,
    ErrorKind.INTERNAL: InternalError.code,
    ErrorKind.SECURITY: SecurityError.code,
    ErrorKind.GENERIC: GenericError.code,
    ErrorKind.RPC_FRAMEWORK: "RpcFrameworkError",
    ErrorKind.MESSAGE_TYPE: "MessageTypeNotSupported",
}

_CHARGING_STATES = {s.value: s for s in ChargingState}

# A DataTransfer over the station's quota of messages kept as sent.
_OVER_QUOTA = {"reasonCode": "RateLimitExceeded", "additionalInfo": "Quota of stored messages"}
# No certificate authority is configured: what 15118 / security-profile-3 requests get.
_NO_CA = {"reasonCode": "NoCertAuthority", "additionalInfo": "No certificate authority"}
# SignCertificate refusals as statusInfo reason codes (at most 20 characters); a CSR refused
# for what it holds is InvalidCSR.
_SIGN_REFUSALS = {
    "no_ca": "NoCertAuthority",
    "ca_expired": "NoCertAuthority",
    "ca_unusable": "NoCertAuthority",
    "v2g_not_issued": "UnsupportedCertType",
}


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


def id_token_info(auth: AuthResult) -> dict[str, Any]:
    info: dict[str, Any] = {"status": auth.status.value}
    if auth.expires_at is not None:
        info["cacheExpiryDateTime"] = format_timestamp(auth.expires_at)
    if auth.parent_uid is not None:
        info["groupIdToken"] = {"idToken": auth.parent_uid, "type": "Central"}
    return info


def samples_from(
    meter_values: list[dict[str, Any]], field: str
) -> tuple[tuple[Sample, ...], tuple[SignedMeterValue, ...]]:
    """2.0.1 meterValue[] -> normalised samples (numbers with unitOfMeasure and a
    power-of-ten multiplier), and the values the meter signed (`signedMeterValue`: its
    signedMeterData, signingMethod, encodingMethod and publicKey exactly as sent)."""
    out: list[Sample] = []
    signed: list[SignedMeterValue] = []
    for mv in meter_values:
        at = _timestamp(mv.get("timestamp"), f"{field}.timestamp")
        for sv in mv.get("sampledValue", ()):
            unit = sv.get("unitOfMeasure") or {}
            out.append(
                make_sample(
                    timestamp=at,
                    raw_value=sv.get("value", ""),
                    measurand=sv.get("measurand"),
                    unit=unit.get("unit"),
                    multiplier=int(unit.get("multiplier") or 0),
                    phase=sv.get("phase"),
                    location=sv.get("location"),
                    context=sv.get("context", "Sample.Periodic"),
                )
            )
            if "signedMeterValue" in sv:
                value = sv["signedMeterValue"]
                signed.append(
                    SignedMeterValue(
                        at,
                        sv.get("context", "Sample.Periodic"),
                        sv.get("measurand", DEFAULT_MEASURAND),
                        str(value.get("signedMeterData", "")),
                        value.get("encodingMethod") or None,
                        value.get("signingMethod") or None,
                        value.get("publicKey") or None,
                    )
                )
    return tuple(out), tuple(signed)


def reported_variables(report_data: list[dict[str, Any]]) -> list[ReportedVariable]:
    """NotifyReport reportData[] -> one value per variable attribute (a variable reported
    without attributes: its Actual one, without a value)."""
    out: list[ReportedVariable] = []
    for item in report_data:
        component = item.get("component") or {}
        variable = item.get("variable") or {}
        evse = component.get("evse") or {}
        characteristics = item.get("variableCharacteristics")
        for attribute in item.get("variableAttribute") or [{}]:
            out.append(
                ReportedVariable(
                    component=component.get("name", ""),
                    component_instance=component.get("instance") or "",
                    evse_id=evse.get("id"),
                    connector_id=evse.get("connectorId"),
                    variable=variable.get("name", ""),
                    variable_instance=variable.get("instance") or "",
                    attribute_type=attribute.get("type", ACTUAL),
                    value=attribute.get("value"),
                    mutability=attribute.get("mutability"),
                    persistent=attribute.get("persistent"),
                    constant=attribute.get("constant"),
                    characteristics=characteristics,
                )
            )
    return out


class V201Adapter:
    """OCPP 2.0.1 handlers bound to the charging services."""

    version = VERSION
    limits = LIMITS
    subprotocol = "ocpp2.0.1"
    errors = ERRORS
    actions = frozenset(a.value for a in Action)
    # Before it is Accepted a station may boot, and answer reports the CSMS asked for.
    before_acceptance = frozenset(
        {"BootNotification", "NotifyReport", "NotifyMonitoringReport", "SecurityEventNotification"}
    )

    encode_command = staticmethod(commands.encode)
    decode_answer = staticmethod(commands.decode)

    def __init__(
        self,
        stations: StationService,
        authorization: AuthorizationService,
        transactions: TransactionService,
        *,
        base_report: bool = False,
        call_timeout: float = 30.0,
        schemas: SchemaSet | None = None,
    ) -> None:
        self.stations = stations
        self.authorization = authorization
        self.transactions = transactions
        self.schemas = schemas or SchemaSet(VERSION)
        self.base_report = base_report
        self.call_timeout = call_timeout
        # Requests of our own that follow a charger's message (the base report): held until
        # they end, their failures logged.
        self._tasks = TaskSet("ocpp-2.0.1")
        # Our CA for SignCertificate (set by the composition root); None: Rejected.
        self.certificates: ChargerCertificates | None = None
        # The load manager, told of EVs' charging needs (set by the composition root).
        self.load: LoadManager | None = None
        self._request_ids = itertools.count(1)
        stored: dict[str, Literal["firmware", "diagnostics"] | None] = {
            "NotifyEvent": None,
            "NotifyMonitoringReport": None,
            "SecurityEventNotification": None,
            "PublishFirmwareStatusNotification": None,
            "NotifyChargingLimit": None,
            "ClearedChargingLimit": None,
            "ReportChargingProfiles": None,
            "NotifyCustomerInformation": None,
            "NotifyDisplayMessages": None,
            "FirmwareStatusNotification": "firmware",
            "LogStatusNotification": "diagnostics",
        }
        handlers: dict[str, Handler] = {
            action: self._stored(action, progress) for action, progress in stored.items()
        }
        handlers.update(
            {
                "BootNotification": self.on_boot_notification,
                "Heartbeat": self.on_heartbeat,
                "StatusNotification": self.on_status_notification,
                "Authorize": self.on_authorize,
                "TransactionEvent": self.on_transaction_event,
                "MeterValues": self.on_meter_values,
                "NotifyReport": self.on_notify_report,
                "DataTransfer": self.on_data_transfer,
                "NotifyEVChargingNeeds": self.on_notify_ev_charging_needs,
                "NotifyEVChargingSchedule": self.on_notify_ev_charging_schedule,
                "Get15118EVCertificate": self.on_get_15118_ev_certificate,
                "GetCertificateStatus": self.on_get_certificate_status,
                "SignCertificate": self.on_sign_certificate,
                "ReservationStatusUpdate": self.on_reservation_status_update,
            }
        )
        self.handlers: Mapping[str, Handler] = handlers

    # --- provisioning ----------------------------------------------------------------

    async def on_boot_notification(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        station = p["chargingStation"]
        modem = station.get("modem") or {}
        info = BootInfo(
            vendor=station["vendorName"],
            model=station["model"],
            serial_number=station.get("serialNumber"),
            firmware_version=station.get("firmwareVersion"),
            iccid=modem.get("iccid"),
            imsi=modem.get("imsi"),
            reason=p.get("reason"),
        )
        decision = await self.stations.boot(s.cp_id, VERSION, info, base_report=self.base_report)
        s.registration = decision.status
        answer: dict[str, Any] = {
            "currentTime": format_timestamp(decision.now),
            "interval": decision.interval,
            "status": decision.status.value,
        }
        if decision.status is not RegistrationStatus.ACCEPTED:
            answer["interval"] = min(decision.interval, 60)
        if decision.base_report:
            # Sent after this answer: a CALL from inside a handler would wait on itself.
            self._spawn(self._ask_base_report(s, info.firmware_version))
        return answer

    async def _ask_base_report(self, s: OcppSession, firmware: str | None) -> None:
        """Once per firmware version, never in a loop: some stations reboot when probed."""
        request_id = next(self._request_ids)
        try:
            answer = await s.call(
                "GetBaseReport",
                {"requestId": request_id, "reportBase": "FullInventory"},
                self.call_timeout,
            )
        except (TimeoutError, CallFailed, ConnectionError) as exc:
            log.warning("base_report_not_requested", charge_point_id=s.cp_id, reason=str(exc))
            return
        log.info(
            "base_report_requested",
            charge_point_id=s.cp_id,
            request_id=request_id,
            status=answer.get("status"),
            firmware=firmware,
        )

    def _spawn(self, coro: Any) -> None:
        self._tasks.spawn(coro)

    async def on_heartbeat(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        now = await self.stations.heartbeat(s.cp_id)
        return {"currentTime": format_timestamp(now)}

    async def on_status_notification(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        evse_id, connector_id = int(p["evseId"]), int(p["connectorId"])
        if evse_id < 0 or connector_id < 0:
            raise OcppCallError(ErrorKind.PROPERTY, "evseId and connectorId must not be negative")
        await self.stations.status(
            s.cp_id,
            StatusReport(
                evse_id=evse_id,
                connector_id=connector_id,
                status=ConnectorStatus(p["connectorStatus"]),
                error_code=NO_ERROR,
                timestamp=_timestamp(p["timestamp"], "timestamp"),
            ),
        )
        return {}

    async def on_notify_report(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        count = await self.stations.device_report(
            s.cp_id, reported_variables(p.get("reportData") or []), p
        )
        log.info(
            "device_report_received",
            request_id=p.get("requestId"),
            seq_no=p.get("seqNo"),
            variables=count,
            stored=count is not None,
            more=bool(p.get("tbc")),
        )
        return {}

    # --- authorization and transactions ----------------------------------------------

    async def on_authorize(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        token = p["idToken"]
        auth = await self.authorization.authorize(s.cp_id, str(token["idToken"]), token.get("type"))
        return {"idTokenInfo": id_token_info(auth)}

    async def on_transaction_event(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        info = p["transactionInfo"]
        evse = p.get("evse") or {}
        token = p.get("idToken")
        samples, signed = samples_from(p.get("meterValue") or [], "meterValue")
        event = TransactionEvent(
            ocpp_transaction_id=str(info["transactionId"]),
            event_type=TxEventType(p["eventType"]),
            seq_no=int(p["seqNo"]),
            timestamp=_timestamp(p["timestamp"], "timestamp"),
            trigger_reason=str(p["triggerReason"]),
            offline=bool(p.get("offline", False)),
            evse_id=evse.get("id"),
            connector_id=evse.get("connectorId"),
            id_token=None if token is None else str(token["idToken"]),
            token_type=None if token is None else token.get("type"),
            # Lenient mode lets other values through: they say nothing billing could use.
            charging_state=_CHARGING_STATES.get(info.get("chargingState")),
            stopped_reason=info.get("stoppedReason"),
            remote_start_id=info.get("remoteStartId"),
            reservation_id=p.get("reservationId"),
            samples=samples,
            signed=signed,
        )
        # Its readings are stored once, as meter values; the rest is kept as sent.
        rest = {k: v for k, v in p.items() if k != "meterValue"} if "meterValue" in p else p
        result = await self.transactions.transaction_event(s.cp_id, VERSION, event, rest)
        if result.auth is None:
            return {}
        return {"idTokenInfo": id_token_info(result.auth)}

    async def on_meter_values(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        evse_id = int(p["evseId"])
        if evse_id < 0:
            raise OcppCallError(ErrorKind.PROPERTY, "evseId must not be negative")
        samples, signed = samples_from(p["meterValue"], "meterValue")
        await self.transactions.station_meter_values(s.cp_id, evse_id, samples, signed)
        return {}

    # --- messages kept for staff, with the answer each deserves -------------------------

    def _stored(self, action: str, field: Literal["firmware", "diagnostics"] | None) -> Handler:
        async def handler(s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
            progress = None if field is None else Progress(field, p.get("status"))
            await self.stations.record_event(s.cp_id, action, p, progress=progress)
            return {}

        handler.__name__ = f"on_{action}"
        return handler

    async def on_reservation_status_update(
        self, s: OcppSession, p: dict[str, Any]
    ) -> dict[str, Any]:
        await self.stations.record_event(s.cp_id, "ReservationStatusUpdate", p)
        await self.stations.reservation_update(
            s.cp_id, int(p["reservationId"]), expired=p["reservationUpdateStatus"] == "Expired"
        )
        return {}

    async def on_data_transfer(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        if not await self.stations.record_event(s.cp_id, "DataTransfer", p):
            # Over the station's quota of messages kept as sent: not taken.
            return {"status": "Rejected", "statusInfo": _OVER_QUOTA}
        return {"status": "UnknownVendorId"}

    async def on_notify_ev_charging_needs(
        self, s: OcppSession, p: dict[str, Any]
    ) -> dict[str, Any]:
        await self.stations.record_event(s.cp_id, "NotifyEVChargingNeeds", p)
        needs = p.get("chargingNeeds") or {}
        energy = (needs.get("acChargingParameters") or {}).get("energyAmount")
        if energy is None:
            energy = (needs.get("dcChargingParameters") or {}).get("energyAmount")
        departure = None
        if needs.get("departureTime") is not None:
            departure = _timestamp(needs["departureTime"], "chargingNeeds.departureTime")
        if self.load is not None and await self.load.ev_needs(
            s.cp_id, int(p["evseId"]), departure, None if energy is None else float(energy)
        ):
            # A site's load manager plans the session: its share follows as TxProfiles.
            return {"status": "Accepted"}
        # No charging schedule follows from this CSMS for a charger on no site.
        return {"status": "Rejected", "statusInfo": {"reasonCode": "NoSchedule"}}

    async def on_notify_ev_charging_schedule(
        self, s: OcppSession, p: dict[str, Any]
    ) -> dict[str, Any]:
        await self.stations.record_event(s.cp_id, "NotifyEVChargingSchedule", p)
        return {"status": "Accepted"}

    async def on_get_15118_ev_certificate(
        self, s: OcppSession, p: dict[str, Any]
    ) -> dict[str, Any]:
        await self.stations.record_event(s.cp_id, "Get15118EVCertificate", p)
        return {"status": "Failed", "exiResponse": "", "statusInfo": _NO_CA}

    async def on_get_certificate_status(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        await self.stations.record_event(s.cp_id, "GetCertificateStatus", p)
        return {"status": "Failed", "statusInfo": _NO_CA}

    async def on_sign_certificate(self, s: OcppSession, p: dict[str, Any]) -> dict[str, Any]:
        await self.stations.record_event(s.cp_id, "SignCertificate", p)
        if self.certificates is None:
            return {"status": "Rejected", "statusInfo": _NO_CA}
        use = CertificateUse(p.get("certificateType") or CertificateUse.CHARGING_STATION.value)
        # Last: the signed chain (CertificateSigned) follows this answer.
        decision = await self.certificates.sign_request(s.cp_id, str(p["csr"]), use)
        if decision.accepted:
            return {"status": "Accepted"}
        info = {"reasonCode": _SIGN_REFUSALS.get(decision.reason or "", "InvalidCSR")}
        if decision.detail:
            info["additionalInfo"] = decision.detail[:512]
        return {"status": "Rejected", "statusInfo": info}
