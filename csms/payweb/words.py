"""What the payment pages say: a payment's state, an EVSE's status and its connectors in
words for a driver, and figures (money, kWh, time) as the pages and their JSON show them.

Pure: no HTML (csms.payweb.render) and no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from csms.core.cost import display_amount
from csms.core.payments import PaymentState, StopReason

__all__ = [
    "StateWords",
    "connector_words",
    "duration_text",
    "energy_text",
    "money_text",
    "settled",
    "state_words",
    "status_words",
    "time_text",
]

NOT_YET = "\u2013"  # a figure not known yet


@dataclass(frozen=True, slots=True)
class StateWords:
    headline: str
    explanation: str


_STATES: dict[PaymentState, StateWords] = {
    PaymentState.CREATED: StateWords(
        "Waiting for your payment",
        "Finish the payment with the payment provider; this page follows when it is done.",
    ),
    PaymentState.AUTHORIZED: StateWords(
        "Payment authorised", "The charger is being told to start."
    ),
    PaymentState.STARTING: StateWords(
        "Starting",
        "The charger has been told to start: plug in your car if you have not yet.",
    ),
    PaymentState.CHARGING: StateWords(
        "Charging",
        "Charging stops by itself before the amount held is reached, when you press Stop "
        "or when you unplug.",
    ),
    PaymentState.STOPPING: StateWords("Stopping", "The charger has been told to stop."),
    PaymentState.ENDED: StateWords(
        "Session ended",
        "The final amount is being worked out from the session's record; the receipt appears here.",
    ),
    PaymentState.CAPTURED: StateWords(
        "Paid", "Thank you. Your receipt is below; the rest of the amount held is released."
    ),
    PaymentState.REFUNDED: StateWords(
        "Refunded", "What you paid for this session was refunded to your card."
    ),
    PaymentState.VOIDED: StateWords(
        "Nothing charged",
        "No session took place: the amount held on your card is released.",
    ),
    PaymentState.FAILED: StateWords(
        "Payment not completed", "The payment did not go through; nothing was charged."
    ),
}

_STOPS = {
    StopReason.CAP: "Charging was stopped because the amount held was nearly reached.",
    StopReason.DRIVER: "You stopped charging.",
    StopReason.CHARGER: "The charger ended the session.",
}

# The states after which nothing on the driver's page changes by itself any more.
_SETTLED = frozenset(
    {PaymentState.CAPTURED, PaymentState.REFUNDED, PaymentState.VOIDED, PaymentState.FAILED}
)


def state_words(state: PaymentState, stop_reason: StopReason | None = None) -> StateWords:
    """The page's headline and the sentence under it; once the session is over, why it
    stopped too."""
    words = _STATES[state]
    if stop_reason is not None and state in (
        PaymentState.STOPPING,
        PaymentState.ENDED,
        PaymentState.CAPTURED,
    ):
        return StateWords(words.headline, f"{_STOPS[stop_reason]} {words.explanation}")
    return words


def settled(state: PaymentState) -> bool:
    """Whether the page can stop polling: the payment will not move without staff."""
    return state in _SETTLED


# OCPI EVSE status -> (words, style class).
_STATUSES = {
    "AVAILABLE": ("Available", "available"),
    "CHARGING": ("In use", "busy"),
    "RESERVED": ("Reserved", "busy"),
    "BLOCKED": ("Blocked", "busy"),
    "INOPERATIVE": ("Out of service", "down"),
    "OUTOFORDER": ("Out of order", "down"),
    "PLANNED": ("Not in service yet", "down"),
    "REMOVED": ("Removed", "down"),
    "UNKNOWN": ("Offline", "down"),
}


def status_words(status: str) -> tuple[str, str]:
    """An EVSE's OCPI status in words, and the class the page styles it with."""
    return _STATUSES.get(status.upper(), (status.capitalize(), "down"))


_STANDARDS = {
    "IEC_62196_T1": "Type 1",
    "IEC_62196_T1_COMBO": "CCS (Combo 1)",
    "IEC_62196_T2": "Type 2",
    "IEC_62196_T2_COMBO": "CCS (Combo 2)",
    "IEC_62196_T3A": "Type 3A",
    "IEC_62196_T3C": "Type 3C",
    "CHADEMO": "CHAdeMO",
    "CHAOJI": "ChaoJi",
    "DOMESTIC_F": "Schuko",
    "DOMESTIC_E": "Type E socket",
    "DOMESTIC_G": "Type G socket",
    "GBT_AC": "GB/T AC",
    "GBT_DC": "GB/T DC",
    "TESLA_R": "Tesla Roadster",
    "TESLA_S": "Tesla",
    "NEMA_5_20": "NEMA 5-20",
    "NEMA_14_50": "NEMA 14-50",
    "IEC_60309_2_single_16": "CEE blue (16 A)",
    "IEC_60309_2_three_16": "CEE red (16 A)",
    "IEC_60309_2_three_32": "CEE red (32 A)",
    "IEC_60309_2_three_64": "CEE red (63 A)",
}


def connector_words(connector_id: int, standard: str, max_kw: Decimal | None) -> str:
    """ "Connector 1: Type 2, up to 22 kW"."""
    name = _STANDARDS.get(standard, standard.replace("_", " "))
    power = "" if max_kw is None else f", up to {_decimals(max_kw, 0, 1)} kW"
    return f"Connector {connector_id}: {name}{power}"


def money_text(amount: Decimal | None, currency: str) -> str:
    return NOT_YET if amount is None else display_amount(amount, currency)


def energy_text(kwh: Decimal | None) -> str:
    """ "12.34 kWh": two decimals, three when the third is not 0 (a CDR's own figure)."""
    return NOT_YET if kwh is None else f"{_decimals(kwh, 2, 3)} kWh"


def duration_text(seconds: int | None) -> str:
    """ "0:05:07", "12:00:00"."""
    if seconds is None:
        return NOT_YET
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def time_text(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _decimals(value: Decimal, least: int, most: int) -> str:
    """`value` rounded half up to `most` decimals, trailing zeros dropped down to `least`."""
    text = f"{value.quantize(Decimal(1).scaleb(-most), rounding=ROUND_HALF_UP):f}"
    if "." not in text:
        return text
    whole, decimals = text.split(".")
    decimals = decimals.rstrip("0").ljust(least, "0")
    return f"{whole}.{decimals}" if decimals else whole
