"""`csms demo`: the whole system in one process on a fresh database, with two locations, a
default tariff, simulated chargers of both OCPP versions charging in a loop, and a simulated
eMSP registered over OCPI that prints what the CPO pushes to it.

Seeding and orchestration only: the system is csms.app.CsmsApp as `csms serve` runs it, and
the chargers and the eMSP are the simulators, talking to it over their real protocols.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from csms.cli.common import CliError, config_option, load
from csms.config import Config, OcpiConfig
from csms.core.authorization import Token, TokenStatus
from csms.core.locations import ConnectorSpec, Location
from csms.core.waiting import wait_event

if TYPE_CHECKING:
    from csms.app import CsmsApp
    from simulators.emsp import EmspSimulator, Push
    from simulators.events import Step
    from simulators.versions import Charger

Echo = Callable[[str], None]

PARTNER_NAME = "demo-emsp"
EMSP_COUNTRY, EMSP_PARTY, EMSP_NAME = "NL", "EMS", "Demo eMSP"
TARIFF_ID = "DEMO-STANDARD"
# A start fee, energy and charging time; VAT 21 %.
TARIFF = {
    "id": TARIFF_ID,
    "currency": "EUR",
    "type": "REGULAR",
    "tariff_alt_text": [{"language": "en", "text": "0.50 start, 0.39/kWh, 1.20/h charging"}],
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 0.50, "vat": 21.0, "step_size": 1},
                {"type": "ENERGY", "price": 0.39, "vat": 21.0, "step_size": 1},
                {"type": "TIME", "price": 1.20, "vat": 21.0, "step_size": 60},
            ]
        }
    ],
}
LOCATIONS = (
    Location(
        id="DEMO-AMS",
        name="Museumplein chargers",
        address="Museumplein 6",
        city="Amsterdam",
        postal_code="1071 DJ",
        country="NLD",
        latitude="52.357",
        longitude="4.881",
        time_zone="Europe/Amsterdam",
    ),
    Location(
        id="DEMO-UTR",
        name="Jaarbeurs P1",
        address="Jaarbeursplein 6",
        city="Utrecht",
        postal_code="3521 AL",
        country="NLD",
        latitude="52.088",
        longitude="5.109",
        time_zone="Europe/Amsterdam",
    ),
)
# Which step of a simulated charger the demo prints.
_SHOWN_STEPS = {"boot_accepted", "session_started", "session_completed", "session_refused", "error"}


@dataclass(frozen=True, slots=True)
class DemoOptions:
    chargers: int = 4
    #: Stop after this many seconds (None: when `stop` is set, e.g. by Ctrl-C).
    duration: float | None = None
    session_seconds: float = 30.0
    meter_interval: float = 5.0
    #: Seconds between the starts of two chargers, so that their sessions interleave.
    stagger_seconds: float = 3.0


@dataclass(frozen=True, slots=True)
class DemoCharger:
    id: str
    version: str
    tag: str
    location_id: str


@dataclass(frozen=True, slots=True)
class DemoReport:
    seconds: float
    sessions_completed: int
    cdrs: int
    pushes: Counter[str]
    database: Path


def demo_chargers(count: int) -> list[DemoCharger]:
    """They alternate between the locations, and every two of them between the versions:
    1.6 and 2.0.1 each meet both locations once there are four."""
    return [
        DemoCharger(
            id=f"DEMO-CP{n:02d}",
            version=("1.6", "2.0.1")[(n - 1 + (n - 1) // 2) % 2],
            tag=f"DEMO-TAG-{n:02d}",
            location_id=LOCATIONS[(n - 1) % len(LOCATIONS)].id,
        )
        for n in range(1, count + 1)
    ]


def owned_token(uid: str, owner: str) -> Token:
    """A driver's card issued by the eMSP `owner` (`CC*PID`, e.g. NL*EMS), as `csms tokens
    add UID --owner CC*PID` makes it: its sessions and CDRs are that eMSP's to see."""
    from csms.services.staff import token_owner

    return Token(uid=uid, status=TokenStatus.ACCEPTED, origin=token_owner(owner))


# Running sessions are PATCHed to the eMSP this often in the demo (default: every 60 s),
# so that a newcomer sees updates within a demo session.
DEMO_SESSION_UPDATES = 10.0


def demo_config(config: Config, workdir: Path) -> Config:
    """The configuration with a fresh database (and API token file) in `workdir`; an OCPI
    base URL left at its default follows the port actually bound; session updates pushed
    every DEMO_SESSION_UPDATES seconds unless the configuration asks for sooner."""
    api = config.api
    if not api.token:
        api = dataclasses.replace(api, token_file=str(workdir / "api-token"))
    ocpi = config.ocpi
    if ocpi.base_url == OcpiConfig().base_url:
        ocpi = dataclasses.replace(ocpi, base_url="")
    if ocpi.session_update_interval > DEMO_SESSION_UPDATES:
        ocpi = dataclasses.replace(ocpi, session_update_interval=DEMO_SESSION_UPDATES)
    database = dataclasses.replace(
        config.database, url=f"sqlite+aiosqlite:///{workdir / 'csms-demo.db'}"
    )
    return dataclasses.replace(config, database=database, api=api, ocpi=ocpi)


def _host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - naming, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


async def seed(app: CsmsApp, chargers: Sequence[DemoCharger]) -> str:
    """Locations, the default tariff, the chargers placed, the eMSP's cards, and the eMSP
    invited as an OCPI partner. Returns its token A."""
    from csms.services.locations import LocationService
    from csms.services.staff import StaffService

    places = LocationService(app.db, app.clock)
    for location in LOCATIONS:
        await places.add(location)
    for charger in chargers:
        await places.link(charger.location_id, charger.id, ConnectorSpec(max_electric_power=22080))
    await app.billing.import_tariffs(TARIFF)
    await app.billing.assign(TARIFF_ID, default=True)
    staff = StaffService(app.db, app.clock)
    for charger in chargers:
        await staff.add_token(owned_token(charger.tag, f"{EMSP_COUNTRY}*{EMSP_PARTY}"))
    invitation = await app.partners.add(PARTNER_NAME)
    return invitation.token_a


def banner(
    app: CsmsApp, config: Config, emsp: EmspSimulator, chargers: Sequence[DemoCharger]
) -> list[str]:
    ocpp = f"ws://{_host(config.ocpp.host)}:{app.ocpp.port}{config.ocpp.path}"
    token_where = "api.token" if config.api.token else config.api.token_file
    database = config.database.url.removeprefix("sqlite+aiosqlite:///")
    at = {loc.id: loc.city for loc in LOCATIONS}
    lines = [
        "csms demo: the whole system in one process, on a fresh database",
        f"  database  {database}",
        f"  OCPP      {ocpp}/{{charge_point_id}}",
        f"  OCPI      {app.ocpi_base_url}/ocpi/versions "
        f"(CPO {config.ocpi.country_code}/{config.ocpi.party_id})",
        f"  API       http://{_host(config.api.host)}:{app.api_port}/api "
        f"(bearer token: {token_where})",
        f"  eMSP      {EMSP_COUNTRY}/{EMSP_PARTY} {EMSP_NAME!r} at {emsp.versions_url}",
    ]
    lines += [
        f"  charger   {c.id} OCPP {c.version} at {c.location_id} ({at[c.location_id]}), "
        f"card {c.tag}"
        for c in chargers
    ]
    lines += [
        f"The eMSP registers with the CPO; each charger then charges its card for a while at "
        f"up to 22 kW, stops and starts again. Tariff {TARIFF_ID} applies everywhere.",
        "Below: what the chargers do and what the eMSP receives (EVSE status, sessions, CDRs).",
        "Ctrl-C stops.",
    ]
    return lines


async def run_demo(
    config: Config,
    options: DemoOptions,
    echo: Echo,
    stop: asyncio.Event | None = None,
) -> DemoReport:
    """Start everything on `config` (see demo_config), run until `options.duration` passes
    or `stop` is set, then end the sessions, bill them and shut down. Raises what
    CsmsApp.start raises (an OSError for a port in use) before anything is printed."""
    from csms.app import CsmsApp
    from simulators.emsp import EmspSimulator, Party

    stop = stop or asyncio.Event()
    started = time.monotonic()
    chargers = demo_chargers(options.chargers)
    app = CsmsApp(config)
    await app.start()
    received: list[Push] = []

    def pushed(push: Push) -> None:
        received.append(push)
        echo(f"emsp     {push.line}")

    emsp = EmspSimulator(Party(EMSP_COUNTRY, EMSP_PARTY, EMSP_NAME), on_push=pushed)
    tasks: list[asyncio.Task[None]] = []
    running: list[Charger] = []
    try:
        token_a = await seed(app, chargers)
        await emsp.start()
        for line in banner(app, config, emsp, chargers):
            echo(line)
        versions_url = f"{app.ocpi_base_url}/ocpi/versions"
        registration = await emsp.register(versions_url, token_a)
        echo(
            f"emsp     registered with CPO {'/'.join(registration.cpo)} at {versions_url} "
            f"as partner {PARTNER_NAME}"
        )
        url = f"ws://{_host(config.ocpp.host)}:{app.ocpp.port}{config.ocpp.path}"
        for i, charger in enumerate(chargers):
            sim = _charger(url, charger, options, echo)
            running.append(sim)
            tasks.append(asyncio.create_task(_run(sim, i * options.stagger_seconds, echo)))
        await wait_event(stop, options.duration)
        echo("stopping: ending the running sessions")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            if tasks:
                await app.billing.bill_pending()
                await _quiet(received)
            cdrs = len(await app.billing.cdrs())
        finally:
            await app.stop()
            await emsp.stop()
    completed = sum(c.tally.summary().sessions_completed for c in running)
    database = Path(config.database.url.removeprefix("sqlite+aiosqlite:///"))
    report = DemoReport(
        time.monotonic() - started, completed, cdrs, Counter(p.module for p in received), database
    )
    by_module = ", ".join(f"{m} {n}" for m, n in sorted(report.pushes.items())) or "none"
    echo(
        f"demo stopped after {report.seconds:.0f} s: {completed} session(s) completed, "
        f"{cdrs} CDR(s); the eMSP received {len(received)} push(es) ({by_module})"
    )
    echo(f"look around: CSMS_DATABASE_URL={config.database.url} csms cdrs list")
    return report


def _charger(url: str, charger: DemoCharger, options: DemoOptions, echo: Echo) -> Charger:
    from simulators.options import ChargerOptions
    from simulators.versions import create_charger

    def show(step: Step) -> None:
        if step.kind.value in _SHOWN_STEPS:
            echo(f"charger  {step.line}")

    return create_charger(
        ChargerOptions(
            url=url,
            charger_id=charger.id,
            version=charger.version,
            sessions=1_000_000,
            session_seconds=options.session_seconds,
            meter_interval=options.meter_interval,
            tag=charger.tag,
            vendor="CsmsDemo",
        ),
        sink=show,
    )


async def _run(charger: Charger, delay: float, echo: Echo) -> None:
    from simulators.errors import SimulatorError

    await asyncio.sleep(delay)
    try:
        await charger.run()
    except SimulatorError as exc:
        echo(f"charger  {charger.id} stopped: {exc}")


async def _quiet(received: list[Push], quiet: float = 1.0, limit: float = 5.0) -> None:
    """Wait until no push arrived for `quiet` seconds (at most `limit`): the last sessions'
    updates and CDRs reach the eMSP before the system stops."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    seen = -1
    while loop.time() < deadline and seen != len(received):
        seen = len(received)
        await asyncio.sleep(quiet)


@click.command()
@click.option(
    "--chargers", type=click.IntRange(1, 99), default=4, show_default=True, help="how many"
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: at Ctrl-C).",
)
@click.option(
    "--session-seconds",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="How long each charging session lasts.",
)
@config_option
def demo(
    chargers: int, duration: float | None, session_seconds: float, config_file: str | None
) -> None:
    """Run the whole system with simulated chargers and a simulated eMSP (fresh database in
    a temporary directory; ports from the configuration)."""
    from csms.app import describe_startup_error
    from csms.logconfig import configure_logging

    config = load(config_file)
    # The demo's own lines go to stdout; the system logs only warnings, on stderr.
    configure_logging("warning", config.log.format)
    workdir = Path(tempfile.mkdtemp(prefix="csms-demo-"))
    config = demo_config(config, workdir)
    options = DemoOptions(chargers=chargers, duration=duration, session_seconds=session_seconds)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def first(sig: signal.Signals) -> None:
            # A clean stop; a second Ctrl-C interrupts it.
            stop.set()
            loop.remove_signal_handler(sig)

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, first, sig)
        await run_demo(config, options, click.echo, stop)

    try:
        asyncio.run(main())
    except Exception as exc:
        message = describe_startup_error(exc, config)
        if message is None:
            raise
        raise CliError(message) from None
