"""CSMS commands as OCPP 2.0.1 CALLs, and the 2.0.1 answers as neutral csms.core Answers.

Pure translation, both ways; sending and waiting is the session's job.
"""

from __future__ import annotations

from typing import Any

from csms.core.authorization import AuthResult
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
    ProfilePurpose,
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
    VariableKey,
)

Payload = dict[str, Any]

_PURPOSES = {
    ProfilePurpose.TX_DEFAULT: "TxDefaultProfile",
    ProfilePurpose.TX: "TxProfile",
    ProfilePurpose.CHARGER_MAX: "ChargingStationMaxProfile",
}
_TOKEN_TYPES = frozenset(
    {
        "Central",
        "eMAID",
        "ISO14443",
        "ISO15693",
        "KeyCode",
        "Local",
        "MacAddress",
        "NoAuthorization",
    }
)


def id_token(uid: str, token_type: str) -> Payload:
    return {"idToken": uid, "type": token_type if token_type in _TOKEN_TYPES else "ISO14443"}


def _variable_ref(key: VariableKey) -> Payload:
    component: Payload = {"name": key.component}
    if key.instance:
        component["instance"] = key.instance
    return {"component": component, "variable": {"name": key.variable}}


def _id_token_info(auth: AuthResult) -> Payload:
    info: Payload = {"status": auth.status.value}
    if auth.expires_at is not None:
        info["cacheExpiryDateTime"] = format_timestamp(auth.expires_at)
    if auth.parent_uid is not None:
        info["groupIdToken"] = {"idToken": auth.parent_uid, "type": "Central"}
    return info


def _schedule(p: ChargingProfile) -> Payload:
    """A profile's `chargingSchedule` (one; its id is the profile's): its periods, and a start
    unless it is Relative."""
    schedule: Payload = {
        "id": p.profile_id,
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


def encode(command: Command) -> tuple[str, Payload]:
    """The 2.0.1 action and payload for a command."""
    match command:
        case RemoteStart(id_tag=tag, token_type=kind, evse_id=evse, remote_start_id=rid):
            payload: Payload = {"idToken": id_token(tag, kind), "remoteStartId": rid}
            if evse is not None:
                payload["evseId"] = evse
            return "RequestStartTransaction", payload
        case RemoteStop(ocpp_transaction_id=tx):
            return "RequestStopTransaction", {"transactionId": tx}
        case Reset(hard=hard):
            return "Reset", {"type": "Immediate" if hard else "OnIdle"}
        case Unlock(evse_id=evse):
            return "UnlockConnector", {"evseId": evse, "connectorId": 1}
        case ChangeAvailability(operative=operative, evse_id=evse):
            payload = {"operationalStatus": "Operative" if operative else "Inoperative"}
            if evse:
                payload["evse"] = {"id": evse}
            return "ChangeAvailability", payload
        case GetConfiguration(keys=keys):
            if not keys:
                raise CommandRefused(
                    "name the variables to read (Component.Variable ...); "
                    "`csms chargers variables CP` shows what the station reported"
                )
            return "GetVariables", {
                "getVariableData": [_variable_ref(VariableKey.parse(k)) for k in keys]
            }
        case SetConfiguration(key=key, value=value):
            item = _variable_ref(VariableKey.parse(key))
            item["attributeValue"] = value
            return "SetVariables", {"setVariableData": [item]}
        case Trigger(message=message, evse_id=evse):
            payload = {"requestedMessage": message}
            if evse is not None:
                payload["evse"] = {"id": evse}
                if message == "StatusNotification":
                    payload["evse"]["connectorId"] = 1
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
                "id": command.reservation_id,
                "expiryDateTime": format_timestamp(command.expires_at),
                "idToken": id_token(command.id_tag, command.token_type),
            }
            if command.evse_id is not None:
                payload["evseId"] = command.evse_id
            if command.parent_id_tag:
                payload["groupIdToken"] = {"idToken": command.parent_id_tag, "type": "Central"}
            return "ReserveNow", payload
        case CancelReservation(reservation_id=rid):
            return "CancelReservation", {"reservationId": rid}
        case SendLocalList(version=version, full=full, entries=entries):
            items = []
            for entry in entries:
                item = {"idToken": id_token(entry.uid, entry.token_type)}
                if entry.auth is not None:
                    item["idTokenInfo"] = _id_token_info(entry.auth)
                items.append(item)
            payload = {"versionNumber": version, "updateType": "Full" if full else "Differential"}
            if items:
                payload["localAuthorizationList"] = items
            return "SendLocalList", payload
        case GetLocalListVersion():
            return "GetLocalListVersion", {}
        case GetLocalListLimits():
            return "GetVariables", {
                "getVariableData": [
                    _variable_ref(VariableKey("LocalAuthListCtrlr", "ItemsPerMessage"))
                ]
            }
        case UpdateFirmware(request_id=rid, location=location, retrieve_at=at):
            return "UpdateFirmware", {
                "requestId": rid,
                "firmware": {"location": location, "retrieveDateTime": format_timestamp(at)},
            }
        case GetDiagnostics(request_id=rid, location=location):
            return "GetLog", {
                "logType": "DiagnosticsLog",
                "requestId": rid,
                "log": {"remoteLocation": location},
            }
        case SetChargingProfile(profile=p):
            profile: Payload = {
                "id": p.profile_id,
                "stackLevel": p.stack_level,
                "chargingProfilePurpose": _PURPOSES[p.purpose],
                "chargingProfileKind": "Relative" if p.relative else "Absolute",
                "chargingSchedule": [_schedule(p)],
            }
            if p.ocpp_transaction_id is not None:
                profile["transactionId"] = p.ocpp_transaction_id
            return "SetChargingProfile", {"evseId": p.evse_id, "chargingProfile": profile}
        case ClearChargingProfile(profile_id=pid, evse_id=evse, purpose=purpose):
            payload = {}
            if pid is not None:
                payload["chargingProfileId"] = pid
            criteria: Payload = {}
            if evse is not None:
                criteria["evseId"] = evse
            if purpose is not None:
                criteria["chargingProfilePurpose"] = _PURPOSES[purpose]
            if criteria:
                payload["chargingProfileCriteria"] = criteria
            return "ClearChargingProfile", payload
        case InstallCertificate(kind=kind, pem=pem):
            wire = _KINDS[CertificateKind(kind)]
            return "InstallCertificate", {"certificateType": wire, "certificate": pem}
        case GetInstalledCertificates(kinds=kinds):
            payload = {}
            if kinds:
                payload["certificateType"] = [_KINDS[CertificateKind(k)] for k in kinds]
            return "GetInstalledCertificateIds", payload
        case DeleteCertificate() as delete:
            return "DeleteCertificate", {"certificateHashData": wire_hash_data(delete)}
        case RequestCertificate():
            return "TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}
        case SendCertificate(chain_pem=chain, use=use):
            return "CertificateSigned", {"certificateChain": chain, "certificateType": use}
        case GetCompositeSchedule(evse_id=evse, duration_s=duration, unit=unit):
            payload = {"evseId": evse, "duration": duration}
            if unit is not None:
                payload["chargingRateUnit"] = unit
            return "GetCompositeSchedule", payload
    raise AssertionError(f"no 2.0.1 message for {command!r}")  # pragma: no cover


_YES = frozenset({"Accepted", "Unlocked", "Scheduled", "RebootRequired"})
# A certificate listing that found none is still an answer.
_LISTED = frozenset({"Accepted", "NotFound"})


def _reason(answer: Payload) -> str | None:
    info = answer.get("statusInfo") or answer.get("attributeStatusInfo")
    if not info:
        return None
    extra = info.get("additionalInfo")
    return f"{info.get('reasonCode')}: {extra}" if extra else str(info.get("reasonCode"))


def _key_of(result: Payload) -> str:
    component = result.get("component") or {}
    variable = result.get("variable") or {}
    return str(
        VariableKey(
            str(component.get("name")), str(variable.get("name")), component.get("instance")
        )
    )


# Installed certificate kinds by their 2.0.1 names.
_KINDS = {
    CertificateKind.CSMS_ROOT: "CSMSRootCertificate",
    CertificateKind.MANUFACTURER_ROOT: "ManufacturerRootCertificate",
    CertificateKind.V2G_ROOT: "V2GRootCertificate",
    CertificateKind.MO_ROOT: "MORootCertificate",
    CertificateKind.V2G_CHAIN: "V2GCertificateChain",
}
_KIND_OF = {wire: kind.value for kind, wire in _KINDS.items()}


def _certificates(answer: Payload) -> list[Payload]:
    out = []
    for item in answer.get("certificateHashDataChain") or []:
        wire = str(item.get("certificateType"))
        data = reported_hash_data(item.get("certificateHashData") or {})
        out.append({"type": _KIND_OF.get(wire, wire), **data.json()})
    return out


def decode(command: Command, answer: Payload) -> Answer:
    """The neutral answer to `command` from the 2.0.1 reply payload."""
    match command:
        case GetInstalledCertificates():
            status = str(answer.get("status"))
            data = {"certificates": _certificates(answer)}
            return Answer(status, status in _LISTED, _reason(answer), data)
        case GetConfiguration():
            keys, unknown = [], []
            for result in answer.get("getVariableResult") or []:
                key = _key_of(result)
                if result.get("attributeStatus") == "Accepted":
                    keys.append({"key": key, "value": result.get("attributeValue")})
                else:
                    unknown.append(key)
                    keys.append(
                        {"key": key, "value": None, "status": result.get("attributeStatus")}
                    )
            return Answer("Accepted", True, data={"keys": keys, "unknown": unknown})
        case SetConfiguration():
            results = answer.get("setVariableResult") or [{}]
            result = results[0]
            status = str(result.get("attributeStatus"))
            return Answer(status, status in _YES, _reason(result))
        case GetLocalListLimits():
            per_message = None
            for result in answer.get("getVariableResult") or []:
                if result.get("attributeStatus") == "Accepted":
                    try:
                        per_message = int(str(result.get("attributeValue")))
                    except ValueError:
                        per_message = None
            if per_message is not None and per_message <= 0:
                per_message = None
            return Answer("Accepted", True, data={"per_message": per_message, "max_entries": None})
        case GetLocalListVersion():
            version = int(answer.get("versionNumber", 0))
            return Answer("Accepted", True, data={"list_version": version})
        case GetDiagnostics():
            status = str(answer.get("status"))
            data = {"file_name": answer["filename"]} if "filename" in answer else {}
            return Answer(status, status in {"Accepted", "AcceptedCanceled"}, _reason(answer), data)
        case DataTransfer():
            status = str(answer.get("status"))
            data = {"data": answer["data"]} if "data" in answer else {}
            return Answer(status, status == "Accepted", _reason(answer), data)
        case RemoteStart():
            status = str(answer.get("status"))
            data = {}
            if answer.get("transactionId"):
                data["ocpp_transaction_id"] = answer["transactionId"]
            return Answer(status, status == "Accepted", _reason(answer), data)
        case GetCompositeSchedule():
            status = str(answer.get("status"))
            schedule = answer.get("schedule")
            data = {}
            if schedule:
                data = {
                    "evse_id": schedule.get("evseId"),
                    "start": schedule.get("scheduleStart"),
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
            return Answer(status, status == "Accepted", _reason(answer), data)
    status = str(answer.get("status", ""))
    return Answer(status, status in _YES, _reason(answer))
