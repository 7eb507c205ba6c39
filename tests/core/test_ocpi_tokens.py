"""Partners' Token objects: validation of a whole object, PATCH merging, the URL key and
whose party a partner may write for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from csms.core.ocpi_tokens import (
    InvalidToken,
    TokenKey,
    check_key,
    may_write,
    merge_patch,
    parse_key,
    parse_ocpi_datetime,
    parse_token,
)
from csms.core.parties import Party
from csms.core.partners import PartyRole, Role
from csms.core.roaming import Whitelist

US = Party("NL", "CSM")


def token(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "country_code": "de",
        "party_id": "ems",
        "uid": "012345678",
        "type": "RFID",
        "contract_id": "DE8ACC12E46L89",
        "visual_number": "DF000-2001-8999-1",
        "issuer": "TheNewMotion",
        "group_id": "DF000-2001-8999",
        "valid": True,
        "whitelist": "ALLOWED",
        "language": "IT",
        "default_profile_type": "GREEN",
        "energy_contract": {"supplier_name": "Greenpeace Energy eG", "contract_id": "0123456789"},
        "last_updated": "2018-12-10T17:25:10Z",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_a_full_token_is_kept_normalised() -> None:
    parsed = parse_token(token(extra="dropped"))
    assert (parsed.country_code, parsed.party_id, parsed.uid, parsed.type) == (
        "DE",
        "EMS",
        "012345678",
        "RFID",
    )
    assert parsed.contract_id == "DE8ACC12E46L89"
    assert parsed.whitelist is Whitelist.ALLOWED and parsed.valid is True
    assert parsed.last_updated == datetime(2018, 12, 10, 17, 25, 10, tzinfo=UTC)
    assert parsed.group_id == "DF000-2001-8999"
    assert parsed.data == {
        "country_code": "DE",
        "party_id": "EMS",
        "uid": "012345678",
        "type": "RFID",
        "contract_id": "DE8ACC12E46L89",
        "visual_number": "DF000-2001-8999-1",
        "issuer": "TheNewMotion",
        "group_id": "DF000-2001-8999",
        "valid": True,
        "whitelist": "ALLOWED",
        "language": "it",
        "default_profile_type": "GREEN",
        "energy_contract": {"supplier_name": "Greenpeace Energy eG", "contract_id": "0123456789"},
        "last_updated": "2018-12-10T17:25:10Z",
    }


def test_optional_fields_may_be_absent_null_or_empty() -> None:
    parsed = parse_token(
        token(
            visual_number="",
            group_id=None,
            language=...,
            default_profile_type=...,
            energy_contract=...,
        )
    )
    assert set(parsed.data) == {
        "country_code",
        "party_id",
        "uid",
        "type",
        "contract_id",
        "issuer",
        "valid",
        "whitelist",
        "last_updated",
    }
    assert parsed.group_id is None


@pytest.mark.parametrize(
    "field",
    [
        "country_code",
        "party_id",
        "uid",
        "type",
        "contract_id",
        "issuer",
        "valid",
        "whitelist",
        "last_updated",
    ],
)
def test_every_required_field_is_required(field: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        parse_token(token(**{field: ...}))
    assert caught.value.path == field and caught.value.message == "is required"
    with pytest.raises(InvalidToken, match=f"^{field}: is required$"):
        parse_token(token(**{field: None}))


@pytest.mark.parametrize(
    ("changes", "path", "text"),
    [
        ({"country_code": "DEU"}, "country_code", "2 letters"),
        ({"party_id": "EM"}, "party_id", "3 letters or digits"),
        ({"uid": "x" * 37}, "uid", "at most 36"),
        ({"uid": "caf\u00e9"}, "uid", "printable ASCII"),
        ({"uid": ""}, "uid", "must not be empty"),
        ({"type": "rfid"}, "type", "one of AD_HOC_USER, APP_USER, OTHER, RFID"),
        ({"contract_id": "c" * 37}, "contract_id", "at most 36"),
        ({"issuer": "i" * 65}, "issuer", "at most 64"),
        ({"issuer": "line\nbreak"}, "issuer", "control characters"),
        ({"visual_number": "v" * 65}, "visual_number", "at most 64"),
        ({"group_id": "g" * 37}, "group_id", "at most 36"),
        ({"valid": "true"}, "valid", "true or false"),
        ({"whitelist": "SOMETIMES"}, "whitelist", "ALWAYS, ALLOWED, ALLOWED_OFFLINE, NEVER"),
        ({"language": "ita"}, "language", "ISO 639-1"),
        ({"default_profile_type": "SLOW"}, "default_profile_type", "CHEAP, FAST"),
        ({"energy_contract": "Greenpeace"}, "energy_contract", "JSON object"),
        ({"energy_contract": {"contract_id": "1"}}, "energy_contract.supplier_name", "required"),
        ({"last_updated": "2018-12-10"}, "last_updated", "OCPI DateTime"),
        ({"last_updated": "2018-02-30T10:00:00Z"}, "last_updated", "OCPI DateTime"),
    ],
)
def test_invalid_fields_are_named(changes: dict[str, Any], path: str, text: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        parse_token(token(**changes))
    assert caught.value.path == path
    assert text in caught.value.message
    assert str(caught.value).startswith(f"{path}: ")


def test_not_an_object_and_the_where_prefix() -> None:
    with pytest.raises(InvalidToken, match="must be a JSON object"):
        parse_token([token()])
    with pytest.raises(InvalidToken) as caught:
        parse_token(token(valid=1), "data[3]")
    assert caught.value.path == "data[3].valid"


def test_datetimes_without_designator_or_with_an_offset_are_utc() -> None:
    assert parse_ocpi_datetime("2026-01-31T12:00:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_ocpi_datetime("2026-01-31T14:00:00.5+02:00") == datetime(
        2026, 1, 31, 12, 0, 0, 500000, tzinfo=UTC
    )
    parsed = parse_token(token(last_updated="2026-01-31T12:00:00.123456Z"))
    assert parsed.data["last_updated"] == "2026-01-31T12:00:00.123Z"


def test_a_patch_replaces_named_fields_and_keeps_the_others() -> None:
    current = parse_token(token())
    patched = merge_patch(
        current,
        {
            "valid": False,
            "whitelist": "NEVER",
            "group_id": None,
            "energy_contract": {"supplier_name": "Other"},
            "last_updated": "2019-06-19T09:00:00Z",
        },
    )
    assert patched.valid is False and patched.whitelist is Whitelist.NEVER
    assert patched.last_updated == datetime(2019, 6, 19, 9, tzinfo=UTC)
    assert "group_id" not in patched.data and patched.group_id is None
    assert patched.data["energy_contract"] == {"supplier_name": "Other"}
    assert patched.data["issuer"] == "TheNewMotion"
    assert patched.contract_id == current.contract_id
    assert current.valid is True  # the stored one is untouched


def test_a_patch_needs_last_updated_and_stays_valid() -> None:
    current = parse_token(token())
    with pytest.raises(InvalidToken, match=r"^last_updated: is required in a PATCH$"):
        merge_patch(current, {"valid": False})
    with pytest.raises(InvalidToken, match=r"^last_updated: is required in a PATCH$"):
        merge_patch(current, {"valid": False, "last_updated": None})
    with pytest.raises(InvalidToken, match=r"^issuer: is required$"):
        merge_patch(current, {"issuer": None, "last_updated": "2019-06-19T09:00:00Z"})
    with pytest.raises(InvalidToken, match=r"^whitelist: must be one of"):
        merge_patch(current, {"whitelist": "x", "last_updated": "2019-06-19T09:00:00Z"})
    with pytest.raises(InvalidToken, match="JSON object"):
        merge_patch(current, ["valid"])


def test_the_url_key_defaults_to_rfid() -> None:
    assert parse_key("de", "ems", "abc", None) == TokenKey(Party("DE", "EMS"), "abc", "RFID")
    assert parse_key("DE", "EMS", "abc", "APP_USER").type == "APP_USER"
    with pytest.raises(InvalidToken, match=r"^type \(URL\): must be one of"):
        parse_key("DE", "EMS", "abc", "CARD")
    with pytest.raises(InvalidToken, match=r"^country_code \(URL\)"):
        parse_key("D1", "EMS", "abc", None)
    with pytest.raises(InvalidToken, match=r"^uid \(URL\): must be at most 36"):
        parse_key("DE", "EMS", "u" * 37, None)


def test_a_token_must_match_its_url() -> None:
    parsed = parse_token(token(type="APP_USER"))
    check_key(parsed, TokenKey(Party("DE", "EMS"), "012345678", "APP_USER"))
    # The uid is a CiString.
    check_key(parse_token(token(uid="abc")), TokenKey(Party("DE", "EMS"), "ABC", "RFID"))
    with pytest.raises(InvalidToken, match=r"party DE\*EMS, the URL names DE\*OTH"):
        check_key(parsed, TokenKey(Party("DE", "OTH"), "012345678", "APP_USER"))
    with pytest.raises(InvalidToken, match=r"^uid: "):
        check_key(parsed, TokenKey(Party("DE", "EMS"), "999", "APP_USER"))
    with pytest.raises(InvalidToken) as caught:
        check_key(parsed, TokenKey(Party("DE", "EMS"), "012345678", "RFID"))
    assert caught.value.path == "type" and "the default; add ?type=" in caught.value.message


def test_a_partner_writes_for_its_parties_a_hub_for_all_but_us() -> None:
    emsp = [PartyRole(Role.EMSP, "DE", "EMS"), PartyRole(Role.EMSP, "DE", "EM2")]
    assert may_write(emsp, US, Party("DE", "EMS"))
    assert may_write(emsp, US, Party("DE", "EM2"))
    assert not may_write(emsp, US, Party("FR", "OTH"))
    hub = [PartyRole(Role.HUB, "BE", "HUB")]
    assert may_write(hub, US, Party("FR", "OTH"))
    assert not may_write(hub, US, US)
    assert not may_write([PartyRole(Role.EMSP, "NL", "CSM")], US, US)
    assert not may_write([], US, Party("DE", "EMS"))
