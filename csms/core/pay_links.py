"""Where a driver pays for an EVSE: the public address its QR label points to.

Only the address arithmetic lives here (no configuration reading, no rendering): the label
printer, the payment pages and the demo all build the address with `pay_url`.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["PAY_PATH", "pay_url"]

# The payment pages' prefix on the public (OCPI) listener.
PAY_PATH = "/pay"


def pay_url(public_url: str, evse_uid: str) -> str:
    """`{public_url}/pay/{evse_uid}`: the EVSE's payment page. The uid is one path segment
    (a charger id may hold `|`, `+`, `@` or `:`; `*` stays as it is, so the usual
    `CP1*1` reads as itself on the label)."""
    base = public_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"the public URL must be an http(s) URL, not {public_url!r}")
    return f"{base}{PAY_PATH}/{quote(evse_uid, safe='*-._~')}"
