"""csms.core.partners: partner profiles (presets, switches set apart, what a row keeps) and
the roles a hub profile makes a partner act with."""

from __future__ import annotations

from typing import Any

import pytest

from csms.core.partners import (
    PROFILES,
    PartnerProfile,
    PartyRole,
    Role,
    acting_roles,
)


def test_the_presets_set_their_switches() -> None:
    assert PROFILES["default"] == PartnerProfile()
    gireve = PROFILES["gireve"]
    assert (gireve.session_put, gireve.routing_headers, gireve.hub) == (True, False, True)
    assert not gireve.compact_evse_ids and not gireve.case_sensitive_ids
    ecl = PROFILES["e-clearing"]
    assert (ecl.compact_evse_ids, ecl.case_sensitive_ids, ecl.fill_empty, ecl.hub) == (
        True,
        True,
        True,
        True,
    )
    assert not ecl.session_put and ecl.routing_headers and ecl.page_limit is None


def test_a_switch_set_apart_is_kept_with_the_preset_name() -> None:
    profile = PROFILES["gireve"].with_switches({"session_put": False, "page_limit": 50})
    assert profile.name == "gireve" and profile.custom == {"session_put", "page_limit"}
    stored = profile.stored()
    assert stored == {"name": "gireve", "page_limit": 50, "session_put": False}
    assert PartnerProfile.from_stored(stored) == profile
    # Only what was set apart is kept: the preset's own switches come from the preset.
    assert PartnerProfile.from_stored({"name": "gireve"}) == PROFILES["gireve"]


@pytest.mark.parametrize("stored", [None, {}, {"name": "no-such-hub"}])
def test_nothing_or_an_unknown_preset_reads_as_the_default(stored: dict[str, Any] | None) -> None:
    assert PartnerProfile.from_stored(stored) == PROFILES["default"]


def test_an_unknown_switch_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile switch 'teleport'"):
        PartnerProfile().with_switches({"teleport": True})


def test_a_hub_profile_makes_the_first_role_a_hub_unless_one_is() -> None:
    one = (PartyRole(Role.EMSP, "FR", "GIR"),)
    assert acting_roles(one, PROFILES["default"]) == one
    assert acting_roles(one, PROFILES["gireve"]) == (PartyRole(Role.HUB, "FR", "GIR"),)
    already = (PartyRole(Role.EMSP, "DE", "AAA"), PartyRole(Role.HUB, "DE", "HUB"))
    assert acting_roles(already, PROFILES["gireve"]) == already
    assert acting_roles((), PROFILES["gireve"]) == ()
