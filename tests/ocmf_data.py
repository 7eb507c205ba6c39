"""OCMF records for tests: payloads written the way meters write them, signed by a function
the test hands in (a real ECDSA key in service and CLI tests, a toy digest in core tests)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Signer = Callable[[bytes], bytes]  # payload bytes -> DER signature


def toy_sign(payload: bytes) -> bytes:
    """Not a signature: the SHA-256 of the payload, which `toy_verify` checks. Lets the pure
    rules be tested without cryptography while a changed byte still fails."""
    return hashlib.sha256(payload).digest()


@dataclass
class Meter:
    """A meter that writes one transaction's records: begin, intermediates, end."""

    sign: Signer = toy_sign
    serial: str = "BQ27400330016"
    counter: int = 12
    algorithm: str | None = None
    encoding: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(
        self,
        kwh: str,
        tx: str,
        *,
        at: str = "2018-07-24T13:22:04,000+0200 S",
        pagination: str | None = None,
        status: str = "G",
        serial: str | None = None,
    ) -> str:
        # RV is written as a JSON number with the digits given (json.dumps cannot do that
        # for Decimal, so the number is put in by hand).
        reading = (
            f'{{"TM":"{at}","TX":"{tx}","RV":{kwh},"RI":"1-b:1.8.0","RU":"kWh",'
            f'"RT":"AC","EF":"","ST":"{status}"}}'
        )
        head = {
            "FV": "1.0",
            "GI": "SIM",
            "GS": "GW-1",
            "GV": "1.0",
            "PG": pagination or f"T{self.counter}",
            "MV": "Sim Metering",
            "MM": "SM-1",
            "MS": serial or self.serial,
            "MF": "1.0",
            "IS": True,
            "IL": "TRUSTED",
            "IF": ["OCPP_AUTH"],
            "IT": "ISO14443",
            "ID": "1F2D3A4F5506C7",
            **self.extra,
        }
        if pagination is None:
            self.counter += 1
        return json.dumps(head, separators=(",", ":"))[:-1] + f',"RD":[{reading}]}}'

    def record(self, kwh: str, tx: str, **kwargs: Any) -> str:
        return self.sign_payload(self.payload(kwh, tx, **kwargs))

    def sign_payload(self, payload: str) -> str:
        signature = self.sign(payload.encode("utf-8"))
        sig: dict[str, str] = {}
        if self.algorithm is not None:
            sig["SA"] = self.algorithm
        if self.encoding == "base64":
            import base64

            sig["SE"] = "base64"
            sig["SD"] = base64.b64encode(signature).decode("ascii")
        else:
            sig["SD"] = signature.hex().upper()
        return f"OCMF|{payload}|{json.dumps(sig, separators=(',', ':'))}"

    def session(self, begin: str, *values: str, at_hour: int = 13) -> list[str]:
        """Begin, intermediate (C) and end records, one minute apart."""
        texts = [self.record(begin, "B", at=_at(at_hour, 0))]
        for minute, value in enumerate(values[:-1], 1):
            texts.append(self.record(value, "C", at=_at(at_hour, minute)))
        texts.append(self.record(values[-1], "E", at=_at(at_hour, len(values))))
        return texts


def _at(hour: int, minute: int) -> str:
    return f"2018-07-24T{hour:02d}:{minute:02d}:04,000+0200 S"


def tamper(text: str, old: str, new: str) -> str:
    """A record with one value changed after signing (the signature left as it was)."""
    payload_end = text.rindex("|")
    changed = text[:payload_end].replace(old, new, 1)
    assert changed != text[:payload_end], f"{old!r} not in the payload"
    return changed + text[payload_end:]
