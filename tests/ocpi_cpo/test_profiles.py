"""ocpi_cpo.profiles: what a partner's profile changes in pushes, answers, tokens, id
comparison and page sizes (pure functions, no server)."""

from __future__ import annotations

from typing import Any

from csms.core.partners import PROFILES, PartnerProfile
from ocpi_cpo import profiles

DEFAULT = PROFILES["default"]
ECL = PROFILES["e-clearing"]
GIREVE = PROFILES["gireve"]


def test_evse_ids_lose_their_separators_and_case() -> None:
    assert profiles.compact_evse_id("NL*CSM*E1*2") == "NLCSME12"
    assert profiles.compact_evse_id("de-abc-e123 4") == "DEABCE1234"


def test_a_push_is_shaped_by_the_profile_at_any_depth_without_changing_the_entry() -> None:
    body: dict[str, Any] = {
        "id": "LOC1",
        "evses": [{"uid": "CP*1", "evse_id": "NL*CSM*ECP*1", "connectors": []}],
        "location": {"evses": [{"evse_id": "nl*csm*ecp*2"}]},
    }
    shaped = profiles.shape(ECL, "locations", "PUT", "http://x/LOC1", body)
    assert shaped.body["evses"][0]["evse_id"] == "NLCSMECP1"
    assert shaped.body["evses"][0]["uid"] == "CP*1"  # uids are ours: untouched
    assert shaped.body["location"]["evses"][0]["evse_id"] == "NLCSMECP2"
    assert body["evses"][0]["evse_id"] == "NL*CSM*ECP*1"  # the outbox keeps its body
    assert (shaped.method, shaped.url, shaped.routing) == ("PUT", "http://x/LOC1", True)
    plain = profiles.shape(DEFAULT, "locations", "PUT", "http://x/LOC1", body)
    assert plain.body is body and plain.routing
    assert profiles.shape(GIREVE, "sessions", "PATCH", "u", {"kwh": 1}).routing is False
    assert profiles.shape(ECL, "tariffs", "DELETE", "u", None).body is None


def test_answers_are_shaped_only_when_the_profile_changes_them() -> None:
    data = [{"evse_id": "NL*CSM*E1"}]
    assert profiles.served(ECL, data) == [{"evse_id": "NLCSME1"}]
    assert profiles.served(GIREVE, data) is data
    assert profiles.changes_served(ECL) and not profiles.changes_served(GIREVE)


def test_ids_compare_in_any_case_unless_the_profile_says() -> None:
    assert profiles.same_id(DEFAULT, "LOC-1", "loc-1")
    assert not profiles.same_id(ECL, "LOC-1", "loc-1")
    assert profiles.same_id(ECL, "LOC-1", "LOC-1")


def test_empty_required_token_strings_are_filled_for_a_partner_that_leaves_them() -> None:
    token = {"uid": "A", "issuer": " ", "contract_id": None}
    assert profiles.filled_token(ECL, token) == {"uid": "A", "issuer": "-", "contract_id": "-"}
    assert profiles.filled_token(ECL, {"uid": "A"}) == {
        "uid": "A",
        "issuer": "-",
        "contract_id": "-",
    }
    # A PATCH: only what it sent empty; what it left out keeps its stored value.
    assert profiles.filled_token(ECL, {"issuer": ""}, patch=True) == {"issuer": "-"}
    assert profiles.filled_token(DEFAULT, token) is token
    assert profiles.filled_token(ECL, ["not", "a", "token"]) == ["not", "a", "token"]


def test_page_sizes_are_capped_by_the_profile() -> None:
    assert profiles.page_limit(DEFAULT, 100) == 100
    capped = PartnerProfile().with_switches({"page_limit": 10})
    assert profiles.page_limit(capped, 100) == 10
    assert profiles.page_limit(capped, 5) == 5
