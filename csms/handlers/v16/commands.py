"""CSMS commands as OCPP 1.6J CALLs, and the 1.6 answers as neutral csms.core Answers.

Pure translation, both ways; sending and waiting is the session's job.
"""

from __future__ import annotations

from typing import Any

from csms.core.authorization import AuthResult, AuthStatus
from csms.core.charger_certificates import (
    CertificateKind,
    reported_hash_data,
    wire_hash_data,
)
from csms.core.clock import format_timestamp
from csms.core.commands import (
    Answer,
    CancelReservation,
    ChangeAvailability,
    ChargingProfile,
    ClearCache,
    ClearChargingProfile,
    Command,
    CommandRefused,
    DataTransfer,
    DeleteCertificate,
    GetCompositeSchedule,
    GetConfiguration,
    GetDiagnostics,
    GetInstalledCertificates,
    GetLocalListLimits,
    GetLocalListVersion,
    InstallCertificate,
    RemoteStart,
    RemoteStop,
    RequestCertificate,
    Reserve,
    Reset,
    SendCertificate,
    SendLocalList,
    SetChargingProfile,
    SetConfiguration,
    Trigger,
    Unlock,
    UpdateFirmware,
)

Payload = dict[str, Any]


def encode(command: Command) -> tuple[str, Payload]:
    """The 1.6 action and payload for a command."""
    match command:
        case RemoteStart(id_tag=tag, evse_id=evse):
            payload: Payload = {"idTag": tag}
            if evse is not None:
                payload["connectorId"] = evse
            return "RemoteStartTransaction", payload
        case RemoteStop(transaction_id=tx):
            return "RemoteStopTransaction", {"transactionId": tx}
        case Reset(hard=hard):
            return "Reset", {"type": "Hard" if hard else "Soft"}
        case Unlock(evse_id=evse):
            return "UnlockConnector", {"connectorId": evse}
        case ChangeAvailability(operative=operative, evse_id=evse):
            kind = "Operative" if operative else "Inoperative"
            return "ChangeAvailability", {"connectorId": evse or 0, "type": kind}
        case GetConfiguration(keys=keys):
            return "GetConfiguration", ({"key": list(keys)} if keys else {})
        case SetConfiguration(key=key, value=value):
            return "ChangeConfiguration", {"key": key, "value": value}
        case Trigger(message=message, evse_id=evse):
            payload = {"requestedMessage": message}
            if evse is not None:
                payload["connectorId"] = evse
            return "TriggerMessage", payload
        case ClearCache():
            return "ClearCache", {}
        case DataTransfer(vendor_id=vendor, message_id=message_id, data=data):
            payload = {"vendorId": vendor}
            if message_id is not None:
                payload["messageId"] = message_id
            if data is not None:
                payload["data"] = data
            return "DataTransfer", payload
        case Reserve():
            payload = {
                "connectorId": command.evse_id or 0,
                "expiryDate": format_timestamp(command.expires_at),
                "idTag": command.id_tag,
                "reservationId": command.reservation_id,
            }
            if command.parent_id_tag:
                payload["parentIdTag"] = command.parent_id_tag
            return "ReserveNow", payload
        case CancelReservation(reservation_id=rid):
            return "CancelReservation", {"reservationId": rid}
        case SendLocalList(version=version, full=full, entries=entries):
            items = []
            for entry in entries:
                item: Payload = {"idTag": entry.uid}
                if entry.auth is not None:
                    item["idTagInfo"] = _id_tag_info(entry.auth)
                items.append(item)
            return "SendLocalList", {
                "listVersion": version,
                "updateType": "Full" if full else "Differential",
                "localAuthorizationList": items,
            }
        case GetLocalListVersion():
            return "GetLocalListVersion", {}
        case GetLocalListLimits():
            return "GetConfiguration", {"key": list(_LIST_KEYS)}
        case UpdateFirmware(location=location, retrieve_at=at):
            return "UpdateFirmware", {"location": location, "retrieveDate": format_timestamp(at)}
        case GetDiagnostics(location=location):
            return "GetDiagnostics", {"location": location}
        case SetChargingProfile(profile=p):
            profile: Payload = {
                "chargingProfileId": p.profile_id,
                "stackLevel": p.stack_level,
                "chargingProfilePurpose": p.purpose.value,
                "chargingProfileKind": "Relative" if p.relative else "Absolute",
                "chargingSchedule": _schedule(p),
            }
            if p.ocpp_transaction_id is not None:
                profile["transactionId"] = int(p.ocpp_transaction_id)
            return "SetChargingProfile", {"connectorId": p.evse_id, "csChargingProfiles": profile}
        case ClearChargingProfile(profile_id=pid, evse_id=evse, purpose=purpose):
            payload = {}
            if pid is not None:
                payload["id"] = pid
            if evse is not None:
                payload["connectorId"] = evse
            if purpose is not None:
                payload["chargingProfilePurpose"] = purpose.value
            return "ClearChargingProfile", payload
        case InstallCertificate(kind=kind, pem=pem):
            return "InstallCertificate", {"certificateType": _kind(kind), "certificate": pem}
        case GetInstalledCertificates(kinds=kinds):
            if len(kinds) > 1:
                raise CommandRefused(
                    "an OCPP 1.6 charger lists one type at a time: give one --type"
                )
            kind = kinds[0] if kinds else CertificateKind.CSMS_ROOT
            return "GetInstalledCertificateIds", {"certificateType": _kind(kind)}
        case DeleteCertificate() as delete:
            return "DeleteCertificate", {"certificateHashData": wire_hash_data(delete)}
        case RequestCertificate():
            return "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}
        case SendCertificate(chain_pem=chain):
            return "CertificateSigned", {"certificateChain": chain}
        case GetCompositeSchedule(evse_id=evse, duration_s=duration, unit=unit):
            payload = {"connectorId": evse, "duration": duration}
            if unit is not None:
                payload["chargingRateUnit"] = unit
            return "GetCompositeSchedule", payload
    raise AssertionError(f"no 1.6 message for {command!r}")  # pragma: no cover


def _schedule(p: ChargingProfile) -> Payload:
    """A profile's `chargingSchedule`: its periods, and a start unless it is Relative."""
    schedule: Payload = {
        "chargingRateUnit": p.unit,
        "chargingSchedulePeriod": [
            {"startPeriod": period.start_s, "limit": period.limit} for period in p.schedule
        ],
    }
    if not p.relative:
        schedule["startSchedule"] = format_timestamp(p.start_at)
    if p.duration_s is not None:
        schedule["duration"] = p.duration_s
    if p.min_rate is not None:
        schedule["minChargingRate"] = p.min_rate
    return schedule


def _id_tag_info(auth: AuthResult) -> Payload:
    # 1.6 knows no "Unknown" or "NotAtThisTime".
    status = auth.status
    if status in (AuthStatus.UNKNOWN, AuthStatus.NOT_AT_THIS_TIME):
        status = AuthStatus.INVALID
    info: Payload = {"status": status.value}
    if auth.expires_at is not None:
        info["expiryDate"] = format_timestamp(auth.expires_at)
    if auth.parent_uid is not None:
        info["parentIdTag"] = auth.parent_uid
    return info


_YES = frozenset({"Accepted", "Unlocked", "Scheduled", "RebootRequired"})
# A certificate listing that found none is still an answer.
_LISTED = frozenset({"Accepted", "NotFound"})
_LIST_KEYS = ("SendLocalListMaxLength", "LocalAuthListMaxLength")


def _count(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


# Installed certificate kinds an OCPP 1.6 (security extension) charger knows.
_KINDS = {
    CertificateKind.CSMS_ROOT: "CentralSystemRootCertificate",
    CertificateKind.MANUFACTURER_ROOT: "ManufacturerRootCertificate",
}
_KIND_OF = {wire: kind for kind, wire in _KINDS.items()}


def _kind(kind: str) -> str:
    wire = _KINDS.get(CertificateKind(kind))
    if wire is None:
        known = ", ".join(k.value for k in _KINDS)
        raise CommandRefused(f"an OCPP 1.6 charger holds no {kind} certificates; only {known}")
    return wire


def _certificates(answer: Payload, command: GetInstalledCertificates) -> list[Payload]:
    kind = command.kinds[0] if command.kinds else CertificateKind.CSMS_ROOT.value
    return [
        {"type": kind, **reported_hash_data(item).json()}
        for item in answer.get("certificateHashData") or []
    ]


def decode(command: Command, answer: Payload) -> Answer:
    """The neutral answer to `command` from the 1.6 reply payload."""
    match command:
        case GetInstalledCertificates():
            status = str(answer.get("status"))
            certificates = _certificates(answer, command)
            return Answer(status, status in _LISTED, data={"certificates": certificates})
        case GetConfiguration():
            keys = [
                {
                    "key": entry.get("key"),
                    "value": entry.get("value"),
                    "readonly": bool(entry.get("readonly", False)),
                }
                for entry in answer.get("configurationKey") or []
            ]
            unknown = list(answer.get("unknownKey") or [])
            return Answer("Accepted", True, data={"keys": keys, "unknown": unknown})
        case GetLocalListLimits():
            values = {
                entry.get("key"): entry.get("value")
                for entry in answer.get("configurationKey") or []
            }
            return Answer(
                "Accepted",
                True,
                data={
                    "per_message": _count(values.get(_LIST_KEYS[0])),
                    "max_entries": _count(values.get(_LIST_KEYS[1])),
                },
            )
        case GetLocalListVersion():
            version = int(answer.get("listVersion", 0))
            return Answer("Accepted", True, data={"list_version": version})
        case UpdateFirmware():
            return Answer("Accepted", True)  # 1.6 answers an empty object
        case GetDiagnostics():
            name = answer.get("fileName")
            if name is None:
                return Answer("NoDiagnostics", True, "the charger has no diagnostics to upload")
            return Answer("Accepted", True, data={"file_name": name})
        case DataTransfer():
            status = str(answer.get("status"))
            data = {"data": answer["data"]} if "data" in answer else {}
            return Answer(status, status == "Accepted", data=data)
        case GetCompositeSchedule():
            status = str(answer.get("status"))
            data = {}
            if "chargingSchedule" in answer:
                schedule = answer["chargingSchedule"]
                data = {
                    "evse_id": answer.get("connectorId"),
                    "start": answer.get("scheduleStart") or schedule.get("startSchedule"),
                    "duration_s": schedule.get("duration"),
                    "unit": schedule.get("chargingRateUnit"),
                    "periods": [
                        {
                            "start_s": period.get("startPeriod"),
                            "limit": period.get("limit"),
                            "phases": period.get("numberPhases"),
                        }
                        for period in schedule.get("chargingSchedulePeriod") or []
                    ],
                }
            return Answer(status, status == "Accepted", data=data)
    status = str(answer.get("status", ""))
    return Answer(status, status in _YES)
