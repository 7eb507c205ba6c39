"""`[payments]` and `[payments.stripe]`: defaults, amounts kept exact, the Stripe secrets
from the environment, and the settings refused with the reason."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from csms.config import ConfigError, build_config, environment_variables


def test_defaults_and_amounts_kept_exact() -> None:
    payments = build_config({}, {}).payments
    assert (payments.enabled, payments.provider, payments.public_url) == (False, "test", "")
    assert (payments.default_cap, payments.min_cap, payments.max_cap) == (
        Decimal(30),
        Decimal(5),
        Decimal(150),
    )
    assert payments.stop_margin == Decimal("0.5")
    assert (payments.stripe.secret_key, payments.stripe.api_base) == ("", "")
    raw = {"payments": {"default_cap": 25.1, "min_cap": "2.50", "stop_margin": 0.1}}
    payments = build_config(raw, {}).payments
    assert payments.default_cap == Decimal("25.1") and payments.min_cap == Decimal("2.50")
    assert payments.stop_margin == Decimal("0.1")  # not 0.1000000000000000055...


def test_stripe_keys_from_the_file_or_the_environment() -> None:
    raw = {"payments": {"provider": "stripe", "stripe": {"api_base": "http://127.0.0.1:1"}}}
    env = {"CSMS_STRIPE_SECRET_KEY": "sk_test_1", "CSMS_STRIPE_WEBHOOK_SECRET": "whsec_1"}
    stripe = build_config(raw, env).payments.stripe
    assert (stripe.secret_key, stripe.webhook_secret) == ("sk_test_1", "whsec_1")
    assert stripe.api_base == "http://127.0.0.1:1"
    named = {"CSMS_PAYMENTS_STRIPE_SECRET_KEY": "sk_test_2", "CSMS_PAYMENTS_MAX_CAP": "99.5"}
    config = build_config({}, named)
    assert config.payments.stripe.secret_key == "sk_test_2"
    assert config.payments.max_cap == Decimal("99.5")
    # The file's key stays when the variable is empty; known variables are not warned of.
    kept = build_config(
        {"payments": {"stripe": {"secret_key": "sk_file"}}}, {"CSMS_STRIPE_SECRET_KEY": ""}
    )
    assert kept.payments.stripe.secret_key == "sk_file"
    known = environment_variables()
    assert "CSMS_PAYMENTS_STRIPE_WEBHOOK_SECRET" in known and "CSMS_PAYMENTS_STRIPE" not in known


@pytest.mark.parametrize(
    ("payments", "message"),
    [
        ({"provider": "paypal"}, "payments.provider must be one of"),
        ({"public_url": "pay.example"}, "payments.public_url must be an http(s) URL"),
        ({"min_cap": 40}, "min_cap <= default_cap <= max_cap"),
        ({"max_cap": 10}, "min_cap <= default_cap <= max_cap"),
        ({"min_cap": 0}, "caps must be positive"),
        ({"default_cap": "lots"}, "payments.default_cap must be an amount"),
        ({"default_cap": "inf"}, "payments.default_cap must be a finite amount"),
        ({"stop_margin": -1}, "payments.stop_margin must not be negative"),
        ({"stop_margin": 5}, "payments.stop_margin must be below payments.min_cap"),
        ({"start_timeout": 0}, "payments.start_timeout must be positive"),
        ({"stop_lookahead": -1}, "payments.stop_lookahead must not be negative"),
        ({"smtp_port": 0}, "payments.smtp_port must be between 1 and 65535"),
        ({"smtp_host": "mail"}, "payments.smtp_host is set but payments.smtp_from is not"),
        ({"stripe": {"api_base": "x"}}, "payments.stripe.api_base must be an http(s) URL"),
        ({"stripe": {"secret": "x"}}, "unknown config key payments.stripe.secret"),
        ({"stripe": "x"}, "[payments.stripe] must be a table"),
        ({"enabeld": True}, "did you mean payments.enabled?"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(payments: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"payments": payments}, {})
    assert message in str(info.value)
