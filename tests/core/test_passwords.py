"""Charger password verification: an unknown id (no stored hash) is checked against a
dummy hash of the same kind, so that it takes as long as a known id's wrong password."""

from __future__ import annotations

import time

from csms.core.passwords import DUMMY_HASH, hash_password, verify_or_dummy, verify_password


def test_verify_or_dummy_answers_like_verify_password() -> None:
    stored = hash_password("right-pass")
    assert verify_or_dummy("right-pass", stored)
    assert not verify_or_dummy("wrong-pass", stored)
    assert not verify_or_dummy("right-pass", None)
    assert not verify_or_dummy("", None)


def test_dummy_hash_is_of_the_same_kind_as_stored_ones() -> None:
    kind = hash_password("x").split("$")[:2]
    assert DUMMY_HASH.split("$")[:2] == kind
    assert not verify_password("csms", DUMMY_HASH)


def _best_of(runs: int, password: str, stored: str | None) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        verify_or_dummy(password, stored)
        best = min(best, time.perf_counter() - start)
    return best


def test_an_unknown_id_costs_about_as_much_as_a_known_one() -> None:
    stored = hash_password("right-pass")
    known = _best_of(5, "wrong-pass", stored)
    unknown = _best_of(5, "wrong-pass", None)
    # Rough: the same PBKDF2 work; a shortcut would be a hundred times faster.
    assert 0.5 < unknown / known < 2.0, (known, unknown)
