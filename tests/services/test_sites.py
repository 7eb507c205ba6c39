"""The sites service's pure rules, without a database: reading a price CSV (slots, line
numbers in errors), daily prices, the whole-tree check (phases, cycles, warnings), and
what `show` computes (limits under caps and ancestors, current allocated per phase)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from csms.core.errors import InvalidInput
from csms.core.sites import ROOT, Cap, Circuit, Link, Share, Site, SiteTree
from csms.services.sites import (
    check_whole,
    parse_daily_price,
    site_view,
)

T0 = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_daily_price() -> None:
    assert parse_daily_price("07:30=0.35") == ("07:30", Decimal("0.35"))
    for bad in ("7:30=0.3", "24:00=1", "07:30", "07:30=x"):
        with pytest.raises(InvalidInput):
            parse_daily_price(bad)


SITE = Site("S", 32.0, 3)


def test_the_whole_tree_is_checked() -> None:
    a = Circuit("S", "a", 40.0, 3)
    b = Circuit("S", "b", 16.0, 1, "a", None, 1)
    tree = SiteTree(SITE, (a, b), (Link("CP1", "S", "b"), Link("CP2", "S", None, 2)))
    assert check_whole(tree) == [
        "circuit 'a' allows 40 A, more than the site (32 A): the lower limit applies"
    ]
    assert check_whole(tree, {"b"}) == []
    with pytest.raises(InvalidInput, match="circuit 'c' is 3-phase but circuit 'b' has only L2"):
        check_whole(SiteTree(SITE, (a, b, Circuit("S", "c", 10.0, 3, "b"))))
    with pytest.raises(InvalidInput, match="charger 'CP3' is on L1 but circuit 'b' has only L2"):
        check_whole(SiteTree(SITE, (a, b), (Link("CP3", "S", "b", 0),)))
    with pytest.raises(InvalidInput, match="is its own ancestor"):
        check_whole(
            SiteTree(SITE, (Circuit("S", "a", 16.0, 3, "b"), Circuit("S", "b", 16.0, 3, "a")))
        )
    with pytest.raises(InvalidInput, match="say which phase"):
        check_whole(SiteTree(SITE, (Circuit("S", "a", 16.0, 1),)))
    # Under a 1-phase site a 1-phase circuit needs no phase named.
    assert check_whole(SiteTree(Site("H", 32.0, 1), (Circuit("H", "a", 16.0, 1),))) == []


def test_show_sums_shares_up_the_tree_under_caps() -> None:
    a = Circuit("S", "a", 20.0, 3)
    b = Circuit("S", "b", 10.0, 1, "a", None, 1)
    tree = SiteTree(SITE, (b, a), (Link("CP1", "S", "b"), Link("CP2", "S")))
    shares = [
        Share(1, "S", "b", "CP1", 1, (1,), 8.0, False),
        Share(2, "S", ROOT, "CP2", 1, (0, 1, 2), 12.0, False),
        Share(3, "S", ROOT, "CP2", 2, (0, 1, 2), 6.0, True),  # paused: 0 A
    ]
    caps = [
        Cap(1, "S", 6900.0, T0 - HOUR, T0 + HOUR, "staff", "a"),  # 10 A per phase now
        Cap(2, "S", 100.0, T0 + HOUR, T0 + 2 * HOUR, "staff", "a"),  # ahead: not yet
    ]
    view = site_view(tree, caps, shares, [], T0)
    assert [(n.node, n.parent) for n in view.nodes] == [(ROOT, None), ("a", ROOT), ("b", "a")]
    root, node_a, node_b = view.nodes
    assert (root.limit_a, root.effective_a) == (32.0, 10.0)
    assert (node_a.limit_a, node_a.effective_a) == (20.0, 10.0)
    assert (node_b.limit_a, node_b.effective_a) == (10.0, 10.0)
    assert root.allocated_a == (12.0, 20.0, 12.0)
    assert node_a.allocated_a == (0.0, 8.0, 0.0) == node_b.allocated_a
    assert root.chargers == ("CP2",) and node_b.chargers == ("CP1",)
    assert view.active_caps == (caps[0],)
    later = site_view(tree, caps, shares, [], T0 + HOUR)
    assert later.nodes[0].effective_a == round(100 / 690, 2)
