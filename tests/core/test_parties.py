"""Token owners (OCPI parties) and which partner may see whose sessions."""

from __future__ import annotations

import pytest

from csms.core.errors import InvalidParty
from csms.core.parties import (
    LOCAL,
    Audience,
    Party,
    audience,
    check_origin,
    destination,
    origin_of,
    owner_of,
    parse_party,
)
from csms.core.partners import PartyRole, Role

US = Party("NL", "CSM")
EMS = Party("NL", "EMS")


def test_a_party_is_written_and_read_as_country_star_party() -> None:
    assert str(EMS) == "NL*EMS"
    assert parse_party("NL*EMS") == EMS
    assert parse_party(" de*ab1 ") == Party("DE", "AB1")  # case and spaces forgiven
    assert origin_of(EMS) == "NL*EMS" and origin_of(None) == LOCAL


@pytest.mark.parametrize("text", ["NLEMS", "N*EMS", "NL*EM", "NL*EMSP", "1L*EMS", "NL*E-S", ""])
def test_bad_owners_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(InvalidParty, match=r"COUNTRY\*PARTY.*e\.g\. NL\*EMS"):
        parse_party(text)


def test_party_values_are_checked() -> None:
    with pytest.raises(InvalidParty, match="not an OCPI party"):
        Party("nl", "EMS")


def test_owner_of_an_origin() -> None:
    assert owner_of("local") is None
    assert owner_of(None) is None
    assert owner_of("garbage") is None  # never anyone's but ours
    assert owner_of("NL*EMS") == EMS
    assert check_origin("LOCAL") == LOCAL
    assert check_origin("nl*ems") == "NL*EMS"
    with pytest.raises(InvalidParty, match="owner must be"):
        check_origin("somebody")


def role(kind: Role, country: str, party: str) -> PartyRole:
    return PartyRole(kind, country, party)


def test_an_emsp_sees_the_sessions_of_its_own_tokens_only() -> None:
    seen = audience([role(Role.EMSP, "NL", "EMS"), role(Role.EMSP, "be", "xyz")], US)
    assert seen.parties == {EMS, Party("BE", "XYZ")} and not seen.hub
    assert seen.sees(EMS) and seen.sees(Party("BE", "XYZ"))
    assert not seen.sees(Party("DE", "EMS"))
    assert not seen.sees(None)  # our own customers' sessions are nobody else's


def test_a_hub_sees_every_party_but_us() -> None:
    seen = audience([role(Role.HUB, "DE", "HUB")], US)
    assert seen.hub
    assert seen.sees(EMS) and seen.sees(Party("FR", "ABC"))
    assert not seen.sees(None) and not seen.sees(US)


def test_a_partner_claiming_our_party_gets_nothing_of_ours() -> None:
    seen = audience([role(Role.EMSP, "NL", "CSM")], US)
    assert seen.empty and not seen.sees(US)
    assert Audience(US).empty


def test_the_party_a_request_is_addressed_to() -> None:
    emsp = (PartyRole(Role.EMSP, "NL", "EMS"), PartyRole(Role.EMSP, "BE", "EMS"))
    hub = (PartyRole(Role.CPO, "BE", "HBC"), PartyRole(Role.HUB, "BE", "HUB"))
    other = Party("FR", "X2E")
    # A hub routes anything on: it gets the party behind it, or is addressed itself.
    assert destination(hub, other) == ("FR", "X2E")
    assert destination(hub, None) == ("BE", "HUB")
    # Anyone else is addressed as one of its own parties: the one meant, else its first.
    assert destination(emsp, Party("BE", "EMS")) == ("BE", "EMS")
    assert destination(emsp, other) == ("NL", "EMS")
    assert destination(emsp, None) == ("NL", "EMS")
    assert destination((), other) is None
