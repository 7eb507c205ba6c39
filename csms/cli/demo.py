"""`csms demo`: the whole system in one process on a fresh database, with two locations, a
default tariff, simulated chargers of both OCPP versions charging in a loop, a simulated
eMSP registered over OCPI that prints what the CPO pushes to it, and one idle charger a
driver can pay for on the spot (ad-hoc payment with the test payment provider).

Seeding and orchestration only: the system is csms.app.CsmsApp as `csms serve` runs it, and
the chargers and the eMSP are the simulators, talking to it over their real protocols.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import shutil
import socket
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
from csms.core.locations import ConnectorSpec, Location
from csms.core.versions import OcppVersion
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
# Ad-hoc payment: the idle charger's EVSE, its tariff for drivers who pay on the spot
# (energy only, so that the cap is easy to follow), and the card that pays at the test
# provider.
PAY_CHARGER = "DEMO-PAY"
PAY_VERSION = OcppVersion.V16
AD_HOC_TARIFF_ID = "DEMO-AD-HOC"
AD_HOC_TARIFF = {
    "id": AD_HOC_TARIFF_ID,
    "currency": "EUR",
    "tariff_alt_text": [{"language": "en", "text": "0.49/kWh, paid by card on the spot"}],
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.49, "vat": 21.0, "step_size": 1}]}
    ],
}
TEST_CARD = "4242 4242 4242 4242"
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
    #: Days of past sessions the chargers send first (csms.cli.demo_history), 0: none.
    history_days: int = 0


@dataclass(frozen=True, slots=True)
class DemoCharger:
    id: str
    version: OcppVersion
    tag: str
    location_id: str


@dataclass(frozen=True, slots=True)
class DemoReport:
    seconds: float
    #: Transactions in the demo database (every one has ended by the report).
    sessions: int
    #: Of them, ended by the demo's stop rather than by their charger's script.
    ended_by_stop: int
    #: CDRs in the demo database (credit CDRs left out: the demo issues none).
    cdrs: int
    #: What the CPO pushed to the eMSP, by module (its pulls of the eMSP's tokens left out).
    pushes: Counter[str]
    database: Path


def demo_chargers(count: int) -> list[DemoCharger]:
    """They alternate between the locations, and every two of them between the versions:
    1.6 and 2.0.1 each meet both locations once there are four."""
    return [
        DemoCharger(
            id=f"DEMO-CP{n:02d}",
            version=(OcppVersion.V16, OcppVersion.V201)[(n - 1 + (n - 1) // 2) % 2],
            tag=f"DEMO-TAG-{n:02d}",
            location_id=LOCATIONS[(n - 1) % len(LOCATIONS)].id,
        )
        for n in range(1, count + 1)
    ]


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
    payments = config.payments
    if not payments.enabled:  # a configuration that enables payments keeps its provider
        payments = dataclasses.replace(payments, enabled=True, provider="test")
    return dataclasses.replace(config, database=database, api=api, ocpi=ocpi, payments=payments)


def pay_url(app: CsmsApp, config: Config) -> str:
    """The payable EVSE's page: what its QR label says (`csms locations qr`)."""
    from csms.core.locations import evse_uid
    from csms.core.pay_links import pay_url as url_of

    public = config.payments.public_url or str(app.ocpi_base_url)
    return url_of(public, evse_uid(PAY_CHARGER, 1))


def _host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - naming, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


async def seed(app: CsmsApp, chargers: Sequence[DemoCharger]) -> str:
    """Locations, the default and the ad-hoc tariff, the chargers placed (the payable one
    too), and the eMSP invited as an OCPI partner. Returns its token A. (The cards are the
    eMSP's: it sends them over OCPI.)"""
    from csms.services.locations import LocationService

    places = LocationService(app.db, app.clock)
    for location in LOCATIONS:
        await places.add(location)
    spec = ConnectorSpec(max_electric_power=22080)
    for charger in chargers:
        await places.link(charger.location_id, charger.id, spec)
    await places.link(LOCATIONS[0].id, PAY_CHARGER, spec)
    await app.billing.import_tariffs([TARIFF, AD_HOC_TARIFF])
    await app.billing.assign(TARIFF_ID, default=True)
    invitation = await app.partners.add(PARTNER_NAME)
    return invitation.token_a


def issue_cards(emsp: EmspSimulator, chargers: Sequence[DemoCharger]) -> None:
    """The drivers' cards are the eMSP's: it issues them (whitelist ALWAYS: the CPO may
    accept them without asking), offers them on its tokens endpoint and PUTs them to the
    CPO once registered."""
    for charger in chargers:
        emsp.add_token(charger.tag, "ALWAYS")


def banner(
    app: CsmsApp,
    config: Config,
    emsp: EmspSimulator,
    chargers: Sequence[DemoCharger],
    keep: bool = False,
) -> list[str]:
    ocpp = f"ws://{_host(config.ocpp.host)}:{app.ocpp.port}{config.ocpp.path}"
    token_where = "api.token" if config.api.token else config.api.token_file
    database = config.database.url.removeprefix("sqlite+aiosqlite:///")
    at = {loc.id: loc.city for loc in LOCATIONS}
    lines = [
        "csms demo: the whole system in one process, on a fresh database",
        f"  database  {database} "
        + ("(kept after the demo)" if keep else "(removed after the demo; --keep keeps it)"),
        f"  OCPP      {ocpp}/{{charge_point_id}}",
        f"  OCPI      {app.ocpi_base_url}/ocpi/versions "
        f"(CPO {config.ocpi.country_code}/{config.ocpi.party_id})",
        f"  API       http://{_host(config.api.host)}:{app.api_port}/api "
        f"(bearer token: {token_where})",
        f"  Dashboard http://{_host(config.api.host)}:{app.api_port}/dashboard "
        "(log in with that token)",
        f"  eMSP      {EMSP_COUNTRY}/{EMSP_PARTY} {EMSP_NAME!r} at {emsp.versions_url}, "
        f"its cards: {', '.join(c.tag for c in chargers)}",
    ]
    lines += [
        f"  charger   {c.id} OCPP {c.version} at {c.location_id} ({at[c.location_id]}), "
        f"card {c.tag}"
        for c in chargers
    ]
    lines.append(
        f"  pay       {pay_url(app, config)} (charger {PAY_CHARGER} OCPP {PAY_VERSION} at "
        f"{LOCATIONS[0].id}, idle until a driver pays: tariff {AD_HOC_TARIFF_ID}, "
        f"{config.payments.provider} provider"
        + (f", card {TEST_CARD})" if config.payments.provider == "test" else ")")
    )
    lines += [
        "The eMSP registers with the CPO and sends it its cards; each charger then charges "
        f"its card for a while at up to 22 kW, stops and starts again. Tariff {TARIFF_ID} "
        "applies everywhere.",
        "Below: what the chargers do and what the eMSP receives (EVSE status, sessions, CDRs).",
        "Ctrl-C stops.",
    ]
    return lines


async def run_demo(
    config: Config,
    options: DemoOptions,
    echo: Echo,
    stop: asyncio.Event | None = None,
    *,
    keep: bool = True,
) -> DemoReport:
    """Start everything on `config` (see demo_config), run until `options.duration` passes
    or `stop` is set, then end the sessions, bill them and shut down. Raises what
    CsmsApp.start raises (an OSError for a port in use) before anything is printed.
    `keep`: whether the database stays afterwards (the banner says; the caller removes
    it)."""
    from csms.app import CsmsApp
    from csms.workers import TaskSet
    from simulators.emsp import EmspSimulator, Party

    stop = stop or asyncio.Event()
    started = time.monotonic()
    history = 0
    chargers = demo_chargers(options.chargers)
    app = CsmsApp(config)
    await app.start()
    received: list[Push] = []

    def pushed(push: Push) -> None:
        received.append(push)
        echo(f"emsp     {push.line}")

    emsp = EmspSimulator(Party(EMSP_COUNTRY, EMSP_PARTY, EMSP_NAME), on_push=pushed)
    # The simulated chargers, each run as a task held until it ends (a failure is logged).
    tasks = TaskSet("demo-chargers")
    running: list[Charger] = []
    try:
        token_a = await seed(app, chargers)
        url = f"ws://{_host(config.ocpp.host)}:{app.ocpp.port}{config.ocpp.path}"
        issue_cards(emsp, chargers)
        await emsp.start()
        for line in banner(app, config, emsp, chargers, keep):
            echo(line)
        if options.history_days:
            # Before the eMSP registers: the past is the CPO's own, not pushed to it.
            from csms.cli.demo_history import fill_history

            past = [(c.id, c.version) for c in chargers]
            history = await fill_history(app, url, past, options.history_days, echo)
        versions_url = f"{app.ocpi_base_url}/ocpi/versions"
        registration = await emsp.register(versions_url, token_a)
        echo(
            f"emsp     registered with CPO {'/'.join(registration.cpo)} at {versions_url} "
            f"as partner {PARTNER_NAME}"
        )
        for sent in await emsp.push_tokens():
            echo(f"emsp     sent its card: {sent.line}")
        pay = _charger(
            url, DemoCharger(PAY_CHARGER, PAY_VERSION, "", LOCATIONS[0].id), options, echo
        )
        running.append(pay)
        tasks.spawn(_run(pay, 0, echo), name=f"demo-{PAY_CHARGER}")
        await _make_payable(app, echo)
        for i, charger in enumerate(chargers):
            sim = _charger(url, charger, options, echo)
            running.append(sim)
            tasks.spawn(_run(sim, i * options.stagger_seconds, echo), name=f"demo-{charger.id}")
        await wait_event(stop, options.duration)
        echo("stopping: ending the running sessions")
    finally:
        await tasks.close()
        try:
            if running:  # chargers ran
                await app.billing.bill_pending()
                await _quiet(received)
            sessions, cdrs = await _counts(app)
        finally:
            await app.stop()
            await emsp.stop()
    completed = sum(c.tally.summary().sessions_completed for c in running)
    pushes = Counter(p.module for p in received if p.method != "GET")
    database = Path(config.database.url.removeprefix("sqlite+aiosqlite:///"))
    report = DemoReport(
        time.monotonic() - started,
        sessions,
        max(sessions - history - completed, 0),
        cdrs,
        pushes,
        database,
    )
    echo(summary(report))
    return report


async def _make_payable(app: CsmsApp, echo: Echo, wait: float = 15.0) -> None:
    """Once the payable charger told its EVSE (a tariff is assigned to a known EVSE), its
    ad-hoc tariff goes there."""
    from csms.core.locations import evse_uid
    from csms.storage import charge_points as cp_repo

    uid = evse_uid(PAY_CHARGER, 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    assigned = False
    reason = f"{PAY_CHARGER} did not report its EVSE"
    while loop.time() < deadline:
        if not assigned:
            async with app.db.read() as conn:
                known = await cp_repo.connectors_of(conn, [PAY_CHARGER])
            if any(c.evse_id == 1 for c in known):
                await app.billing.assign(AD_HOC_TARIFF_ID, evse=uid, ad_hoc=True)
                assigned = True
        if assigned:
            # As the driver's page will see it (the charger's status may still be coming).
            page = await app.payments.page(uid)
            if page.payable:
                echo(f"pay      {uid} is payable on the spot (tariff {AD_HOC_TARIFF_ID}, ad hoc)")
                return
            reason = page.reason or "not payable"
        await asyncio.sleep(0.1)
    echo(f"pay      {uid} is not payable after {wait:.0f} s: {reason}")


async def _counts(app: CsmsApp) -> tuple[int, int]:
    """Sessions (transactions) and CDRs in the demo database."""
    from csms.services.staff import StaffService

    transactions = await StaffService(app.db, app.clock).transactions()
    cdrs = [c for c in await app.billing.cdrs() if not c.credit]
    return len(transactions), len(cdrs)


def summary(report: DemoReport) -> str:
    """The closing line: what happened, counted in the database."""
    sessions = f"{report.sessions} session(s)"
    if report.ended_by_stop:
        sessions += f" ({report.ended_by_stop} ended by the stop)"
    missing = report.sessions - report.cdrs
    cdrs = f"{report.cdrs} CDR(s)"
    if missing > 0:
        cdrs += f" ({missing} session(s) without one: `csms transactions list` says why)"
    total = sum(report.pushes.values())
    by_module = ", ".join(f"{m} {n}" for m, n in sorted(report.pushes.items())) or "none"
    return (
        f"demo stopped after {report.seconds:.0f} s: {sessions}, {cdrs}; "
        f"the eMSP received {total} push(es) ({by_module})"
    )


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
            version=charger.version.value,
            # The payable charger (no card of its own) charges only when a driver paid.
            sessions=1_000_000 if charger.tag else 0,
            session_seconds=options.session_seconds,
            meter_interval=options.meter_interval,
            tag=charger.tag or "DEMO-IDLE",
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
@click.option(
    "--history-days",
    type=click.IntRange(0, 90),
    default=21,
    show_default=True,
    help="Days of past sessions the chargers send first (csms stats and the dashboard "
    "have something to show); 0: none.",
)
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the demo database (in a new temporary folder) to look at it afterwards.",
)
@config_option
def demo(
    chargers: int,
    duration: float | None,
    session_seconds: float,
    history_days: int,
    keep: bool,
    config_file: str | None,
) -> None:
    """Run the whole system with simulated chargers and a simulated eMSP (fresh database in
    a temporary folder, removed afterwards unless --keep; ports from the configuration)."""
    from csms.logconfig import configure_logging
    from csms.signals import stop_on_signals
    from csms.storage.opening import describe_startup_error

    config = load(config_file)
    # The demo's own lines go to stdout; the system logs only warnings, on stderr.
    configure_logging("warning", config.log.format)
    workdir = Path(tempfile.mkdtemp(prefix="csms-demo-"))
    config = demo_config(config, workdir)
    options = DemoOptions(
        chargers=chargers,
        duration=duration,
        session_seconds=session_seconds,
        history_days=history_days,
    )

    async def main() -> None:
        # A clean stop; a second Ctrl-C interrupts it.
        stop = stop_on_signals(once=True)
        await run_demo(config, options, click.echo, stop, keep=keep)

    ran = False
    try:
        asyncio.run(main())
        ran = True
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise CliError(describe_startup_error(exc, config) or str(exc)) from None
        raise CliError(asyncio.run(ports_in_use(config))) from None
    except Exception as exc:
        message = describe_startup_error(exc, config)
        if message is None:
            raise
        raise CliError(message) from None
    finally:
        if not (keep and ran):
            shutil.rmtree(workdir, ignore_errors=True)
    if keep:
        click.echo(
            f"the demo database stays in {workdir} (remove the folder when done); look around: "
            f"CSMS_DATABASE_URL={config.database.url} csms cdrs list"
        )
    else:
        click.echo(f"removed the demo's folder {workdir} (--keep keeps it to look around)")


async def ports_in_use(config: Config) -> str:
    """One line for a demo that could not bind its ports: which are taken, whether by a
    running `csms serve` (its API's /health answers as ours does), and what to do."""
    ports = [
        (f"{name}.port", section.host, section.port)
        for name, section in (("ocpp", config.ocpp), ("ocpi", config.ocpi), ("api", config.api))
        if section.port
    ]
    taken = [(key, port) for key, host, port in ports if _taken(host, port)]
    listed = [f"{port} ({key})" for key, port in taken or [(k, p) for k, _, p in ports]]
    what = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
    verb = "is" if len(listed) == 1 else "are"
    health = f"http://{_host(config.api.host)}:{config.api.port}/health"
    if config.api.port and await _is_csms(health):
        who = f"by a running `csms serve` (it answers at {health}): stop it first"
    else:
        who = "by another program (a `csms serve`?): stop it first"
    return (
        f"the demo cannot start: port {what} {verb} already in use {who}, or run the demo on "
        "other ports, e.g. any free ones: CSMS_OCPP_PORT=0 CSMS_OCPI_PORT=0 CSMS_API_PORT=0 "
        "csms demo"
    )


def _taken(host: str, port: int) -> bool:
    """Whether binding host:port fails because something holds it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host or "0.0.0.0", port))  # noqa: S104 - a probe, closed at once
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


async def _is_csms(health_url: str) -> bool:
    """Whether a csms API answers `health_url` (its /health names chargers_connected)."""
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(health_url) as answer,
        ):
            body = await answer.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False
    return isinstance(body, dict) and "chargers_connected" in body
