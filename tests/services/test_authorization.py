"""Authorization rules of the service, without a database: token status and expiry, the
parent token, the limit of concurrent transactions and other parties' tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.core.authorization import AuthStatus, Token, TokenStatus
from csms.core.ocpi_sessions import AuthMethod
from csms.core.roaming import Grant
from csms.services.authorization import GRANT_TTL_S, AuthorizationService
from csms.services.holdings import Holdings, Place
from tests.services.fakes import Clock, Holders, Roaming, Tokens

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
GRANT = Grant(AuthStatus.ACCEPTED, AuthMethod.AUTH_REQUEST, {"uid": "EMSP1"}, "REF-1")


def service(
    *tokens: Token,
    held: dict[str, dict[int, Place]] | None = None,
    roaming: Roaming | None = None,
    allow_unknown_tags: bool = False,
) -> tuple[AuthorizationService, Tokens, Clock]:
    store = Tokens(*tokens)
    clock = Clock(NOW)
    auth = AuthorizationService(
        store,
        clock,
        Holdings(Holders(held)),
        allow_unknown_tags=allow_unknown_tags,
        roaming=roaming,
    )
    return auth, store, clock


async def test_the_token_status_decides() -> None:
    auth, _, _ = service(
        Token("OK", TokenStatus.ACCEPTED),
        Token("STOLEN", TokenStatus.BLOCKED),
        Token("OLD", TokenStatus.EXPIRED),
        Token("BAD", TokenStatus.INVALID),
    )
    assert (await auth.authorize("CP1", "OK")).status is AuthStatus.ACCEPTED
    assert (await auth.authorize("CP1", "ok")).status is AuthStatus.ACCEPTED  # case-blind
    assert (await auth.authorize("CP1", "STOLEN")).status is AuthStatus.BLOCKED
    assert (await auth.authorize("CP1", "OLD")).status is AuthStatus.EXPIRED
    assert (await auth.authorize("CP1", "BAD")).status is AuthStatus.INVALID
    assert (await auth.authorize("CP1", "NOBODY")).status is AuthStatus.UNKNOWN


async def test_an_expiry_date_passed_makes_the_token_expired() -> None:
    until = NOW + timedelta(hours=1)
    auth, _, clock = service(Token("CARD", TokenStatus.ACCEPTED, expires_at=until))
    result = await auth.authorize("CP1", "CARD")
    assert (result.status, result.expires_at) == (AuthStatus.ACCEPTED, until)
    clock.now = until
    assert (await auth.authorize("CP1", "CARD")).status is AuthStatus.EXPIRED


async def test_the_parent_token_comes_with_the_answer() -> None:
    auth, _, _ = service(Token("CHILD", TokenStatus.ACCEPTED, parent_uid="FLEET"))
    assert (await auth.authorize("CP1", "CHILD")).parent_uid == "FLEET"


async def test_no_authorization_is_accepted_without_a_token() -> None:
    auth, _, _ = service()
    result = await auth.authorize("CP1", "", "NoAuthorization")
    assert result.status is AuthStatus.ACCEPTED


async def test_a_token_at_its_limit_elsewhere_is_concurrent_but_not_at_the_same_charger() -> None:
    card = Token("CARD", TokenStatus.ACCEPTED, max_concurrent=1)
    auth, _, _ = service(card, held={"CARD": {10: ("CP1", 1)}})
    assert (await auth.authorize("CP2", "CARD")).status is AuthStatus.CONCURRENT_TX
    # A 1.6 charger authorizes the card again for its own transaction.
    assert (await auth.authorize("CP1", "CARD")).status is AuthStatus.ACCEPTED


async def test_a_start_on_the_evse_of_its_running_transaction_replaces_it() -> None:
    card = Token("CARD", TokenStatus.ACCEPTED, max_concurrent=1)
    auth, _, _ = service(card, held={"CARD": {10: ("CP1", 1)}})
    same = await auth.decide_start("CP1", 1, "CARD", card, None, NOW)
    other = await auth.decide_start("CP1", 2, "CARD", card, None, NOW)
    assert (same.status, other.status) == (AuthStatus.ACCEPTED, AuthStatus.CONCURRENT_TX)


async def test_limits_count_held_transactions_and_none_means_any_number() -> None:
    two = Token("TWO", TokenStatus.ACCEPTED, max_concurrent=2)
    fleet = Token("FLEET", TokenStatus.ACCEPTED, max_concurrent=None)
    held = {"TWO": {1: ("CP1", 1)}, "FLEET": {i: (f"CP{i}", 1) for i in range(5)}}
    auth, _, _ = service(two, fleet, held=held)
    assert (await auth.decide_start("CP9", 1, "TWO", two, None, NOW)).accepted
    auth.holdings.add("TWO", 2, ("CP9", 1))
    assert not (await auth.decide_start("CP8", 1, "TWO", two, None, NOW)).accepted
    assert (await auth.decide_start("CP9", 2, "FLEET", fleet, None, NOW)).accepted
    auth.holdings.remove("TWO", 1)
    assert (await auth.decide_start("CP8", 1, "TWO", two, None, NOW)).accepted


async def test_shared_holdings_follow_other_nodes_and_keep_this_node_s_own_changes() -> None:
    """Several nodes on one database: a transaction another node started counts, one it
    ended (a charger that moved there) no longer does, and this node's own start counts
    before the database shows it."""
    card = Token("CARD", TokenStatus.ACCEPTED, max_concurrent=1)
    database = Holders({"CARD": {10: ("CP1", 1)}})
    ticks = [1000.0]
    auth = AuthorizationService(
        Tokens(card), Clock(NOW), Holdings(database, shared=True, monotonic=lambda: ticks[0])
    )
    assert not (await auth.decide_start("CP2", 1, "CARD", card, None, NOW)).accepted
    database.held["CARD"] = {}  # another node ended it
    assert (await auth.decide_start("CP2", 1, "CARD", card, None, NOW)).accepted
    auth.holdings.add("CARD", 11, ("CP2", 1))  # this node's start, not committed yet
    assert not (await auth.decide_start("CP3", 1, "CARD", card, None, NOW)).accepted
    database.held["CARD"] = {11: ("CP2", 1)}
    auth.holdings.committed("CARD", 11)
    assert not (await auth.decide_start("CP3", 1, "CARD", card, None, NOW)).accepted
    database.held["CARD"] = {}  # the charger moved; another node ended it
    assert (await auth.decide_start("CP3", 1, "CARD", card, None, NOW)).accepted
    auth.holdings.add("CARD", 12, ("CP3", 1))
    # A start whose write never said how it went counts for a minute at most.
    ticks[0] += 61
    assert (await auth.decide_start("CP4", 1, "CARD", card, None, NOW)).accepted


async def test_inside_its_own_transaction_a_token_is_not_busy() -> None:
    card = Token("CARD", TokenStatus.ACCEPTED, max_concurrent=1)
    auth, _, _ = service(card, held={"CARD": {10: ("CP1", 1)}})
    own = await auth.decide_in_transaction("CP1", 2, "CARD", "ISO14443", 10, card, None, NOW)
    other = await auth.decide_in_transaction("CP2", 1, "CARD", "ISO14443", 11, card, None, NOW)
    assert (own.status, other.status) == (AuthStatus.ACCEPTED, AuthStatus.CONCURRENT_TX)


async def test_unknown_tags_start_transactions_only_when_allowed() -> None:
    strict, _, _ = service()
    free, _, _ = service(allow_unknown_tags=True)
    assert (await strict.decide_start("CP1", 1, "ANY", None, None, NOW)).status is (
        AuthStatus.UNKNOWN
    )
    assert (await free.decide_start("CP1", 1, "ANY", None, None, NOW)).accepted
    assert (await free.decide_in_transaction("CP1", 1, "ANY", None, 1, None, None, NOW)).accepted
    # Authorize itself still says what it knows.
    assert (await free.authorize("CP1", "ANY")).status is AuthStatus.UNKNOWN


async def test_a_partners_token_is_decided_by_roaming_and_the_decision_stands() -> None:
    theirs = Token("EMSP1", TokenStatus.ACCEPTED, whitelist="ALLOWED", origin="NL-EMS")
    roaming = Roaming(GRANT)
    auth, store, clock = service(theirs, roaming=roaming)
    assert (await auth.authorize("CP1", "EMSP1", "ISO14443", 1)).accepted
    assert roaming.asked == [("CP1", 1, "EMSP1")]
    standing = store.standings[("CP1", "EMSP1")]
    assert standing.until == NOW + timedelta(seconds=GRANT_TTL_S)
    # The transaction that follows takes the same decision without asking again.
    assert await auth.grant_for("CP1", "EMSP1", "ISO14443", 1, theirs) is GRANT
    assert len(roaming.asked) == 1
    await auth.grant_used("CP1", "EMSP1", GRANT)
    assert store.standings == {}
    clock.now += timedelta(minutes=1)
    await auth.grant_for("CP1", "EMSP1", "ISO14443", 1, theirs)
    assert len(roaming.asked) == 2


async def test_a_refused_roaming_decision_is_answered_and_not_kept() -> None:
    theirs = Token("EMSP1", TokenStatus.ACCEPTED, whitelist="NEVER", origin="NL-EMS")
    blocked = Grant(AuthStatus.BLOCKED, AuthMethod.AUTH_REQUEST, {"uid": "EMSP1"})
    auth, store, _ = service(theirs, roaming=Roaming(blocked))
    assert (await auth.authorize("CP1", "EMSP1")).status is AuthStatus.BLOCKED
    assert store.standings == {}


async def test_an_accepted_grant_for_a_token_at_its_limit_is_concurrent() -> None:
    theirs = Token("EMSP1", TokenStatus.ACCEPTED, whitelist="ALWAYS", max_concurrent=1)
    auth, _, _ = service(theirs, held={"EMSP1": {3: ("CP2", 1)}}, roaming=Roaming(GRANT))
    assert (await auth.authorize("CP1", "EMSP1")).status is AuthStatus.CONCURRENT_TX


async def test_our_own_tokens_never_ask_roaming() -> None:
    roaming = Roaming(GRANT)
    auth, _, _ = service(Token("OURS", TokenStatus.BLOCKED), roaming=roaming)
    assert (await auth.authorize("CP1", "OURS")).status is AuthStatus.BLOCKED
    assert roaming.asked == []


async def test_a_command_vouches_for_a_token_at_one_evse_until_it_expires() -> None:
    theirs = Token("EMSP1", TokenStatus.ACCEPTED, whitelist="NEVER", origin="NL-EMS")
    roaming = Roaming(None)
    auth, store, clock = service(theirs, roaming=roaming)
    await auth.expect_start("CP1", "EMSP1", 2, GRANT, ttl_s=60)
    assert store.standings[("CP1", "EMSP1")].evse_id == 2
    assert await auth.grant_for("CP1", "EMSP1", None, 2, theirs) is GRANT
    assert await auth.grant_for("CP1", "EMSP1", None, None, theirs) is GRANT
    # Another EVSE, or too late: roaming decides (here: no answer, the local rule applies).
    assert await auth.grant_for("CP1", "EMSP1", None, 1, theirs) is None
    clock.now += timedelta(seconds=61)
    assert await auth.grant_for("CP1", "EMSP1", None, 2, theirs) is None
    assert len(roaming.asked) == 2


async def test_a_decision_stored_before_a_restart_is_found() -> None:
    theirs = Token("EMSP1", TokenStatus.ACCEPTED, whitelist="ALLOWED", origin="NL-EMS")
    roaming = Roaming(None)
    before, store, _ = service(theirs, roaming=roaming)
    await before.expect_start("CP1", "EMSP1", None, GRANT)
    after = AuthorizationService(store, Clock(NOW), Holdings(Holders()), roaming=roaming)
    assert (await after.authorize("CP1", "EMSP1")).accepted
    assert store.reads == 1
    assert roaming.asked == []
