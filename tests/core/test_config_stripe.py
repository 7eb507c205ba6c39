"""[payments.stripe]: the Stripe keys, from the file or the environment, and refused when
Stripe is the provider of enabled payments without them."""

from __future__ import annotations

import pytest

from csms.config import ConfigError, build_config

SECRETS = {"secret_key": "sk_test_1", "webhook_secret": "whsec_1"}


def test_stripe_keys_from_the_file() -> None:
    config = build_config(
        {
            "payments": {
                "enabled": True,
                "provider": "stripe",
                "stripe": {**SECRETS, "api_base": "http://127.0.0.1:9999"},
            }
        },
        {},
    )

    stripe = config.payments.stripe
    assert (stripe.secret_key, stripe.webhook_secret, stripe.api_base) == (
        "sk_test_1",
        "whsec_1",
        "http://127.0.0.1:9999",
    )


def test_stripe_keys_from_the_environment() -> None:
    env = {"CSMS_STRIPE_SECRET_KEY": "sk_live_2", "CSMS_STRIPE_WEBHOOK_SECRET": "whsec_2"}

    config = build_config({"payments": {"enabled": True, "provider": "stripe"}}, env)

    assert config.payments.stripe.secret_key == "sk_live_2"
    assert config.payments.stripe.webhook_secret == "whsec_2"


@pytest.mark.parametrize("missing", ["secret_key", "webhook_secret"])
def test_stripe_needs_both_keys(missing: str) -> None:
    keys = {k: v for k, v in SECRETS.items() if k != missing}
    raw = {"payments": {"enabled": True, "provider": "stripe", "stripe": keys}}

    with pytest.raises(ConfigError, match=f"payments.stripe.{missing} is not set"):
        build_config(raw, {})

    # Not needed while payments are off, or with the test provider.
    build_config({"payments": {"provider": "stripe", "stripe": keys}}, {})
    build_config({"payments": {"enabled": True, "stripe": keys}}, {})
