"""Staff users: roles and what they allow, names, tokens and their digests."""

from __future__ import annotations

import pytest

from csms.core.errors import InvalidInput
from csms.core.users import (
    LOCAL,
    TOKEN_PREFIX,
    Role,
    new_token,
    parse_role,
    token_digest,
    user_name_problem,
)


def test_each_role_may_do_what_the_ones_before_it_may() -> None:
    assert Role.VIEWER.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR)
    assert Role.OPERATOR.allows(Role.VIEWER) and Role.OPERATOR.allows(Role.OPERATOR)
    assert not Role.OPERATOR.allows(Role.ADMIN)
    assert all(Role.ADMIN.allows(r) for r in Role)
    assert LOCAL.role is Role.ADMIN and LOCAL.local


def test_roles_parse_in_any_case_and_name_the_choices_when_wrong() -> None:
    assert parse_role(" Operator ") is Role.OPERATOR
    with pytest.raises(InvalidInput, match="must be one of viewer, operator or admin, not 'boss'"):
        parse_role("boss")


@pytest.mark.parametrize("name", ["alice", "a", "ops.team-1", "bob@example.com", "x" * 64])
def test_good_names(name: str) -> None:
    assert user_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "1 to 64"),
        ("x" * 65, "1 to 64"),
        ("-alice", "starting with"),
        ("al ice", "letters, digits"),
        ("LOCAL", "the API's own token"),
    ],
)
def test_bad_names(name: str, why: str) -> None:
    problem = user_name_problem(name)
    assert problem is not None and why in problem


def test_tokens_are_random_and_stored_as_a_keyed_digest() -> None:
    first, second = new_token(), new_token()
    assert first != second
    assert first.startswith(TOKEN_PREFIX) and len(first) == len(TOKEN_PREFIX) + 43
    digest = token_digest(first)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest == token_digest(first)
    assert digest != token_digest(second)
    assert first not in digest
