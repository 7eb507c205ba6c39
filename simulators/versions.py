"""Which simulator class plays which OCPP version; the CLI and the fleet ask here.

No protocol code lives here, only the choice and the shape every charger class shares.
"""

from __future__ import annotations

from typing import Protocol

from simulators.errors import OptionsError
from simulators.events import Sink, Summary, Tally, discard
from simulators.options import ChargerOptions

__all__ = ["SIMULATED_VERSIONS", "Charger", "create_charger", "ensure_simulated"]

#: Versions with a charger class today.
SIMULATED_VERSIONS = ("1.6", "2.0.1")


class Charger(Protocol):
    """What the CLI and the fleet need from a simulated charger of any version."""

    id: str
    tally: Tally

    @property
    def online(self) -> bool: ...

    async def run(self) -> Summary: ...

    async def close(self) -> None: ...


def ensure_simulated(version: str) -> None:
    """Raise `OptionsError` for a version that has no simulator class yet."""
    if version not in SIMULATED_VERSIONS:
        raise OptionsError(f"OCPP {version} simulation is not available yet")


def create_charger(options: ChargerOptions, *, sink: Sink = discard) -> Charger:
    """The charger class of `options.version`, built with these options."""
    ensure_simulated(options.version)
    from simulators.v16 import V16Charger
    from simulators.v201 import V201Charger

    classes: dict[str, type[V16Charger | V201Charger]] = {
        "1.6": V16Charger,
        "2.0.1": V201Charger,
    }
    return classes[options.version](options, sink=sink)
