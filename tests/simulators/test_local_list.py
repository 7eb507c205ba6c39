"""Unit tests of the local authorization list both simulators keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulators.local_list import ListEntry, LocalList, UpdateStatus

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_full_replaces_and_differential_updates_with_newer_versions() -> None:
    local = LocalList(max_length=3)
    assert local.version == 0
    status = local.update(
        5, True, [("A", ListEntry("A", "Accepted")), ("B", ListEntry("B", "Blocked"))]
    )
    assert status is UpdateStatus.ACCEPTED
    assert local.version == 5 and len(local) == 2
    assert local.update(5, False, []) is UpdateStatus.VERSION_MISMATCH
    assert local.update(4, False, []) is UpdateStatus.VERSION_MISMATCH
    status = local.update(6, False, [("b", None), ("C", ListEntry("C", "Accepted"))])
    assert status is UpdateStatus.ACCEPTED
    assert [e.id_tag for e in local.entries()] == ["A", "C"]
    found = local.lookup("a")
    assert found is not None and found.status == "Accepted"
    assert local.update(2, True, [("Z", ListEntry("Z", "Accepted"))]) is UpdateStatus.ACCEPTED
    assert local.version == 2  # a full list may start over with any version


def test_failures_change_nothing() -> None:
    local = LocalList(max_length=2)
    local.update(1, True, [("A", ListEntry("A", "Accepted"))])
    too_long = [(t, ListEntry(t, "Accepted")) for t in ("B", "C")]
    assert local.update(2, False, too_long) is UpdateStatus.FAILED
    twice = [("B", ListEntry("B", "Accepted")), ("b", None)]
    assert local.update(2, False, twice) is UpdateStatus.FAILED
    assert local.update(2, True, [("B", None)]) is UpdateStatus.FAILED
    assert local.version == 1
    assert [e.id_tag for e in local.entries()] == ["A"]


def test_accepted_entries_expire() -> None:
    entry = ListEntry("A", "Accepted", expires_at=T0)
    assert entry.status_at(T0 - timedelta(seconds=1)) == "Accepted"
    assert entry.status_at(T0) == "Expired"
    assert ListEntry("B", "Blocked", expires_at=T0).status_at(T0) == "Blocked"
