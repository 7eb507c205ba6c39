"""The `csms-sim` command: one scripted charger (`charger`), many (`fleet`), or an OCPI eMSP
that registers with a CPO, pulls its modules and prints what the CPO pushes (`emsp`).

Parses options and reports in one line per problem; the simulation itself lives elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from simulators.errors import SimulatorError
from simulators.events import Step, StepKind
from simulators.fleet import Fleet, FleetOptions
from simulators.options import REJECT_MODES, SUPPORTED_VERSIONS, ChargerOptions
from simulators.signed_meter import SIGNED_FAULTS
from simulators.versions import create_charger, ensure_simulated

if TYPE_CHECKING:
    from simulators.emsp import EmspSimulator, Sent

__all__ = ["main"]

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class _OneLineErrors(click.Group):
    """Usage and runtime errors end as one `csms-sim: ...` line on stderr, never a traceback."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            click.echo(f"csms-sim: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(result if isinstance(result, int) else 0)


class _Output:
    """Prints lines; when stdout goes away (`| head`) it stops the run like Ctrl-C does."""

    def __init__(self) -> None:
        self.main_task: asyncio.Task[Any] | None = None
        self.closed = False

    def out(self, line: str) -> None:
        self._write(line, err=False)

    def err(self, line: str) -> None:
        self._write(line, err=True)

    def step(self, step: Step) -> None:
        self._write(step.line, err=step.kind is StepKind.ERROR)

    def _write(self, line: str, *, err: bool) -> None:
        if self.closed and not err:
            return
        try:
            click.echo(line, err=err)
        except BrokenPipeError:
            self.closed = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, (sys.stderr if err else sys.stdout).fileno())
            if self.main_task is not None:
                self.main_task.cancel()


def _run(output: _Output, main_coro: Coroutine[Any, Any, int]) -> int:
    async def main_task() -> int:
        output.main_task = asyncio.current_task()
        return await main_coro

    try:
        return asyncio.run(main_task())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except asyncio.CancelledError:
        return EXIT_BROKEN_PIPE
    except SimulatorError as exc:
        output.err(f"csms-sim: {exc}")
        return EXIT_FAILED


def _options(**kwargs: Any) -> ChargerOptions:
    try:
        return ChargerOptions(**kwargs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _as_int(ctx: click.Context, param: click.Parameter, value: str) -> int:
    return int(value)


def _url(f: Any) -> Any:
    return click.option(
        "--url", required=True, help="CSMS websocket url, e.g. ws://host:9000/ocpp"
    )(f)


def _script_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--version",
                "version",
                type=click.Choice(SUPPORTED_VERSIONS),
                default="1.6",
                show_default=True,
                help="OCPP version to speak",
            ),
            click.option("--sessions", type=click.IntRange(min=0), default=1, show_default=True),
            click.option(
                "--session-seconds",
                type=click.FloatRange(min=0, min_open=True),
                default=30.0,
                show_default=True,
            ),
            click.option(
                "--meter-interval",
                type=click.FloatRange(min=0, min_open=True),
                default=5.0,
                show_default=True,
                help="seconds between MeterValues",
            ),
            click.option(
                "--password",
                default=None,
                envvar="CSMS_SIM_PASSWORD",
                help="HTTP Basic auth password (or env CSMS_SIM_PASSWORD)",
            ),
            click.option(
                "--ca",
                "ca_file",
                type=click.Path(exists=True, dir_okay=False),
                default=None,
                help="wss://: trust this CA bundle (PEM) instead of the system's",
            ),
            click.option(
                "--cert",
                "cert_file",
                type=click.Path(exists=True, dir_okay=False),
                default=None,
                help="wss://: client certificate (PEM) for security profile 3",
            ),
            click.option(
                "--key",
                "key_file",
                type=click.Path(exists=True, dir_okay=False),
                default=None,
                help="the client certificate's private key (PEM)",
            ),
            click.option(
                "--phases",
                type=click.Choice(["1", "3"]),
                default="3",
                show_default=True,
                callback=_as_int,
                help="how the charger is wired",
            ),
            click.option(
                "--ev-phases",
                type=click.Choice(["1", "3"]),
                default="3",
                show_default=True,
                callback=_as_int,
                help="phases the EVs charge on (1: an EV with a single-phase onboard charger)",
            ),
            click.option(
                "--ev-max-current",
                "ev_max_current_a",
                type=click.IntRange(6, 80),
                default=None,
                metavar="A",
                help="the EVs' onboard charger current per phase (default: 16 or 32 A at random)",
            ),
            click.option(
                "--reject-profiles",
                type=click.Choice(REJECT_MODES),
                default="none",
                show_default=True,
                help="answer SetChargingProfile Rejected: all, tx (TxProfile and "
                "TxDefaultProfile; a station maximum is taken) or none",
            ),
            click.option(
                "--reject-zero", is_flag=True, help="reject any charging profile that limits to 0"
            ),
            click.option(
                "--departure",
                "departure_s",
                type=click.FloatRange(min=0, min_open=True),
                default=None,
                metavar="SECONDS",
                help="2.0.1: after a transaction starts, send NotifyEVChargingNeeds with a "
                "departure this many seconds later (with --energy-need)",
            ),
            click.option(
                "--energy-need",
                "energy_need_wh",
                type=click.IntRange(min=1),
                default=None,
                metavar="WH",
                help="2.0.1: the energy (Wh) the EV asks for in NotifyEVChargingNeeds "
                "(with --departure)",
            ),
            click.option(
                "--signed-meter",
                is_flag=True,
                help="Eichrecht: the meter signs OCMF records (P-256) of the energy register "
                "at begin, while charging and at end; 1.6 publishes its key by DataTransfer "
                "generalConfiguration/setMeterConfiguration and as MeterPublicKey",
            ),
            click.option(
                "--meter-key",
                "meter_key_file",
                type=click.Path(dir_okay=False),
                default=None,
                metavar="FILE",
                help="the meter's private key (PEM, P-256); made there when missing "
                "(default: a new key each run)",
            ),
            click.option(
                "--signed-fault",
                type=click.Choice(SIGNED_FAULTS),
                default=None,
                help="a faulty signing meter: tamper (end value changed after signing), "
                "wrong-key (signs with a key it does not publish), no-end (no signed end "
                "record), gap (pagination skips one)",
            ),
            click.option("--seed", type=int, default=None, help="make meter readings repeatable"),
            click.option(
                "--exit-when-done",
                is_flag=True,
                help="exit after the sessions (default: stay connected until Ctrl-C)",
            ),
        ]
    ):
        f = option(f)
    return f


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Log every OCPP frame to stderr.")
def main(debug: bool) -> None:
    """Simulated OCPP charge points for exercising a CSMS."""
    logging.basicConfig(
        level=logging.INFO if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        logging.getLogger("ocpp").setLevel(logging.CRITICAL)


@main.command()
@_url
@click.option("--id", "charger_id", required=True, help="charge point identity")
@click.option("--connectors", type=click.IntRange(1, 99), default=1, show_default=True)
@click.option("--tag", default="SIMTAG01", show_default=True, help="idTag for the sessions")
@click.option(
    "--csr",
    is_flag=True,
    help="once booted, send SignCertificate with a new key's CSR (CN = the id)",
)
@click.option(
    "--cert-dir",
    "cert_dir",
    metavar="DIR",
    help="keep the signed certificate and its key in DIR (charger.crt, charger.key)",
)
@_script_options
def charger(**kwargs: Any) -> int:
    """Run one charger: boot, sessions, then stay connected until Ctrl-C (or exit:
    --exit-when-done)."""
    options = _options(**kwargs)
    output = _Output()
    try:
        sim = create_charger(options, sink=output.step)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc

    async def go() -> int:
        try:
            await sim.run()
        finally:
            summary = sim.tally.summary()
            if summary.connections:
                output.out(
                    f"{options.charger_id} done: sessions_completed="
                    f"{summary.sessions_completed}/{options.sessions} errors={summary.errors}"
                )
        return EXIT_FAILED if summary.errors else 0

    return _run(output, go())


@main.command()
@_url
@click.option("--chargers", type=click.IntRange(min=1), required=True, help="how many")
@click.option("--prefix", default="SIM", show_default=True, help="ids are PREFIX00001...")
@click.option("--tag-prefix", default="TAG", show_default=True, help="tags are TAG00001...")
@click.option(
    "--ramp",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="spread charger starts over this many seconds",
)
@click.option("--connectors", type=click.IntRange(1, 99), default=1, show_default=True)
@click.option("--progress", type=click.FloatRange(min=0), default=10.0, show_default=True)
@click.option("--verbose", is_flag=True, help="print every step of every charger")
@_script_options
def fleet(
    chargers: int,
    prefix: str,
    tag_prefix: str,
    ramp: float,
    progress: float,
    verbose: bool,
    **kwargs: Any,
) -> int:
    """Run many chargers in this process and print a summary at the end (or on Ctrl-C)."""
    template = _options(charger_id=f"{prefix}00000", **kwargs)
    try:
        options = FleetOptions(
            template=template,
            chargers=chargers,
            prefix=prefix,
            tag_prefix=tag_prefix,
            ramp_seconds=ramp,
            verbose=verbose,
            progress_seconds=progress,
        )
        ensure_simulated(template.version)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    output = _Output()
    sim = Fleet(options, out=output.out, err=output.err)

    async def go() -> int:
        try:
            report = await sim.run()
        finally:
            output.out(sim.report().line)
        return EXIT_FAILED if report.totals.errors else 0

    return _run(output, go())


@main.command()
@click.option("--versions-url", required=True, help="the CPO's OCPI versions URL")
@click.option(
    "--token-a",
    required=True,
    envvar="CSMS_SIM_TOKEN_A",
    help="the registration token the CPO handed out (or env CSMS_SIM_TOKEN_A)",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to serve on")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0: any free port"
)
@click.option("--public-url", default=None, help="base URL the CPO reaches us at")
@click.option("--country-code", default="NL", show_default=True)
@click.option("--party-id", default="EMS", show_default=True)
@click.option("--name", default="Demo eMSP", show_default=True, help="business name")
@click.option(
    "--version",
    "ocpi_version",
    type=click.Choice(["2.2.1", "2.1.1"]),
    default="2.2.1",
    show_default=True,
    help="OCPI version to register and speak in",
)
@click.option(
    "--pull",
    "pull_modules",
    default="",
    metavar="MODULES",
    help="after registering, pull these modules (comma list: locations,tariffs,sessions,cdrs)",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="page size of pulls")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.option("--unregister", is_flag=True, help="unregister from the CPO on exit")
@click.option(
    "--token",
    "token_specs",
    multiple=True,
    metavar="UID[:WHITELIST]",
    help="issue this RFID token; WHITELIST is ALWAYS (default), ALLOWED, ALLOWED_OFFLINE or "
    "NEVER. Repeatable. The first one is the token of --command",
)
@click.option(
    "--tokens",
    "token_count",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="issue N tokens PID0001..., one of each whitelist type in turn",
)
@click.option(
    "--no-push",
    is_flag=True,
    help="do not PUT the tokens to the CPO after registering (it may still pull them)",
)
@click.option(
    "--authorize",
    "authorize_mode",
    default="accept",
    show_default=True,
    metavar="MODE",
    help="answer real-time authorization: accept, deny[:NOT_ALLOWED|BLOCKED|EXPIRED|NO_CREDIT], "
    "slow[:SECONDS] (accept late, default 10 s) or down (HTTP 503)",
)
@click.option(
    "--command",
    type=click.Choice(
        ["START_SESSION", "STOP_SESSION", "RESERVE_NOW", "CANCEL_RESERVATION", "UNLOCK_CONNECTOR"]
    ),
    default=None,
    metavar="COMMAND",
    help="after registering, send this command (START_SESSION, STOP_SESSION, RESERVE_NOW, "
    "CANCEL_RESERVATION, UNLOCK_CONNECTOR), print the CPO's answer and then its result",
)
@click.option("--location", "location_id", default=None, help="location id of --command")
@click.option("--evse", "evse_uid", default=None, help="EVSE uid of --command")
@click.option("--connector", "connector_id", default=None, help="connector id of --command")
@click.option("--session", "session_id", default=None, help="session id of STOP_SESSION")
@click.option(
    "--reservation",
    "reservation_id",
    default=None,
    help="reservation id of RESERVE_NOW and CANCEL_RESERVATION",
)
@click.option(
    "--expiry",
    "expiry_minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="RESERVE_NOW: minutes until the reservation ends",
)
@click.option(
    "--authorization-reference",
    default=None,
    help="START_SESSION/RESERVE_NOW authorization_reference (START_SESSION: a fresh one if none)",
)
@click.option(
    "--command-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="seconds to wait for the command's result (default: the CPO's timeout)",
)
def emsp(
    versions_url: str,
    token_a: str,
    host: str,
    port: int,
    public_url: str | None,
    country_code: str,
    party_id: str,
    name: str,
    ocpi_version: str,
    pull_modules: str,
    limit: int | None,
    as_json: bool,
    unregister: bool,
    token_specs: tuple[str, ...],
    token_count: int,
    no_push: bool,
    authorize_mode: str,
    command: str | None,
    location_id: str | None,
    evse_uid: str | None,
    connector_id: str | None,
    session_id: str | None,
    reservation_id: str | None,
    expiry_minutes: float,
    authorization_reference: str | None,
    command_timeout: float | None,
) -> int:
    """Be an eMSP: register with a CPO over OCPI 2.2.1 (or 2.1.1), push tokens, pull, answer
    real-time authorization, send a command; print what the CPO sends until Ctrl-C."""
    from simulators.emsp import EmspSimulator, Party, Push
    from simulators.emsp_tokens import parse_mode, parse_token_spec

    modules = [m.strip() for m in pull_modules.split(",") if m.strip()]
    try:
        party = Party(country_code, party_id, name)
        mode = parse_mode(authorize_mode)
        specs = [parse_token_spec(spec) for spec in token_specs]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    output = _Output()

    def say(text: str, **event: Any) -> None:
        output.out(json.dumps(event) if as_json else text)

    def pushed(push: Push) -> None:
        output.out(json.dumps(push.as_json()) if as_json else push.line)

    sim = EmspSimulator(
        party,
        host=host,
        port=port,
        public_url=public_url,
        on_push=pushed,
        authorize=mode,
        version=ocpi_version,
    )
    try:
        issued = [sim.add_token(uid, whitelist) for uid, whitelist in specs]
        issued += sim.add_tokens(token_count)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    send = _command(
        sim,
        command,
        issued[0]["uid"] if issued else None,
        location_id=location_id,
        evse_uid=evse_uid,
        connector_id=connector_id,
        session_id=session_id,
        reservation_id=reservation_id,
        expiry_minutes=expiry_minutes,
        authorization_reference=authorization_reference,
    )

    async def go() -> int:
        stop = _stop_on_signals()
        try:
            await sim.start()
        except OSError as exc:
            raise SimulatorError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
        registered = False
        try:
            say(
                f"eMSP {party.country_code}/{party.party_id} listening at {sim.versions_url}",
                event="listening",
                versions_url=sim.versions_url,
            )
            done = await _unless_stopped(sim.register(versions_url, token_a), stop)
            if done is None:
                return 0
            registered = True
            cpo = "/".join(done.cpo)
            say(
                f'registered with CPO {cpo} "{done.name}" at {versions_url} '
                f"({len(done.endpoints)} endpoints)",
                event="registered",
                cpo=cpo,
                name=done.name,
                endpoints=[{"identifier": i, "role": r, "url": u} for i, r, u in done.endpoints],
            )
            for module in modules:
                pulled = await _unless_stopped(_pull(sim, module, limit), stop)
                if pulled is None:
                    return 0
                objects, pages = pulled
                say(
                    f"pulled {len(objects)} {module} in {pages} page(s)",
                    event="pulled",
                    module=module,
                    count=len(objects),
                    pages=pages,
                    objects=objects,
                )
            if issued and no_push:
                say(
                    f"offering {len(issued)} token(s) for the CPO to pull",
                    event="tokens",
                    count=len(issued),
                )
            elif issued:
                pushed_tokens = await _unless_stopped(sim.push_tokens(), stop)
                if pushed_tokens is None:
                    return 0
                for t in pushed_tokens:
                    say(
                        t.line,
                        event="token_pushed",
                        method=t.method,
                        uid=t.uid,
                        type=t.type,
                        whitelist=t.body.get("whitelist"),
                        http_status=t.http_status,
                    )
            if send is not None:
                sent = await _unless_stopped(send(), stop)
                if sent is None:
                    return 0
                output.out(json.dumps(sent.as_json()) if as_json else sent.line)
                if sent.response is not None and sent.response.accepted:
                    # The result is printed by the hook as it comes in.
                    waited = _result_or_late(sim, sent.id, command_timeout, output)
                    if await _unless_stopped(waited, stop) is None:
                        return 0
            await stop.wait()
            return 0
        finally:
            if unregister and sim.registration is not None:
                with contextlib.suppress(SimulatorError):
                    await sim.unregister()
            await sim.stop()
            if registered:
                say(
                    f"eMSP stopped: {len(sim.received)} push(es) received",
                    event="stopped",
                    pushes=len(sim.received),
                )

    return _run(output, go())


def _command(
    sim: EmspSimulator,
    command: str | None,
    token: str | None,
    *,
    location_id: str | None,
    evse_uid: str | None,
    connector_id: str | None,
    session_id: str | None,
    reservation_id: str | None,
    expiry_minutes: float,
    authorization_reference: str | None,
) -> Callable[[], Awaitable[Sent]] | None:
    """What sends `--command` once registered; UsageError naming an option it lacks."""
    if command is None:
        return None
    needs = {
        "START_SESSION": [("--location", location_id), ("--token", token)],
        "STOP_SESSION": [("--session", session_id)],
        "RESERVE_NOW": [
            ("--location", location_id),
            ("--reservation", reservation_id),
            ("--token", token),
        ],
        "CANCEL_RESERVATION": [("--reservation", reservation_id)],
        "UNLOCK_CONNECTOR": [
            ("--location", location_id),
            ("--evse", evse_uid),
            ("--connector", connector_id),
        ],
    }[command]
    missing = [option for option, value in needs if not value]
    if missing:
        raise click.UsageError(f"--command {command} needs {' and '.join(missing)}")
    if command == "START_SESSION" and connector_id and not evse_uid:
        raise click.UsageError("--connector needs --evse")
    if sim.v211 and command == "CANCEL_RESERVATION":
        raise click.UsageError("OCPI 2.1.1 has no CANCEL_RESERVATION")
    if sim.v211 and command == "START_SESSION" and (connector_id or authorization_reference):
        raise click.UsageError("a 2.1.1 START_SESSION takes no --connector or reference")
    # Past the check: every option the command needs is given.
    loc, evse, uid = location_id or "", evse_uid or "", token or ""
    session, reservation = session_id or "", reservation_id or ""

    def send() -> Awaitable[Sent]:
        match command:
            case "START_SESSION":
                return sim.start_session(uid, loc, evse_uid, connector_id, authorization_reference)
            case "STOP_SESSION":
                return sim.stop_session(session)
            case "RESERVE_NOW":
                return sim.reserve_now(
                    uid,
                    loc,
                    reservation,
                    evse_uid=evse_uid,
                    expiry_date=sim.clock() + timedelta(minutes=expiry_minutes),
                    authorization_reference=authorization_reference,
                )
            case "CANCEL_RESERVATION":
                return sim.cancel_reservation(reservation)
            case _:
                return sim.unlock_connector(loc, evse, connector_id or "")

    return send


async def _result_or_late(
    sim: EmspSimulator, command_id: str, seconds: float | None, output: _Output
) -> bool:
    """Wait for the command's first result; a line on stderr when none comes in time."""
    try:
        await sim.command_result(command_id, seconds)
    except SimulatorError as exc:
        output.err(f"csms-sim: {exc}")
    return True


async def _pull(sim: EmspSimulator, module: str, limit: int | None) -> tuple[list[Any], int]:
    """Every object of `module` and the number of pages it took."""
    objects: list[Any] = []
    pages = 0
    async for page in sim.pages(module, limit):
        pages += 1
        objects.extend(page.objects)
    return objects, pages


def _stop_on_signals() -> asyncio.Event:
    """An event SIGINT and SIGTERM set (instead of interrupting), for a clean exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def first(sig: signal.Signals) -> None:
        # A clean stop; a second signal interrupts it.
        stop.set()
        loop.remove_signal_handler(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, first, sig)
    return stop


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """The result of `work`, or None when `stop` is set first (`work` is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
