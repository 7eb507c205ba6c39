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
from collections.abc import Awaitable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from simulators.errors import SimulatorError
from simulators.events import Step, StepKind
from simulators.fleet import Fleet, FleetOptions
from simulators.options import SUPPORTED_VERSIONS, ChargerOptions
from simulators.versions import create_charger, ensure_simulated

if TYPE_CHECKING:
    from simulators.emsp import EmspSimulator

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
            click.option("--seed", type=int, default=None, help="make meter readings repeatable"),
            click.option("--exit-when-done", is_flag=True, help="exit after the sessions"),
        ]
    ):
        f = option(f)
    return f


@click.group(cls=_OneLineErrors)
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
@_script_options
def charger(**kwargs: Any) -> int:
    """Run one charger: boot, sessions, then heartbeats until Ctrl-C."""
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
    "--pull",
    "pull_modules",
    default="",
    metavar="MODULES",
    help="after registering, pull these modules (comma list: locations,tariffs,sessions,cdrs)",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="page size of pulls")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.option("--unregister", is_flag=True, help="unregister from the CPO on exit")
def emsp(
    versions_url: str,
    token_a: str,
    host: str,
    port: int,
    public_url: str | None,
    country_code: str,
    party_id: str,
    name: str,
    pull_modules: str,
    limit: int | None,
    as_json: bool,
    unregister: bool,
) -> int:
    """Be an eMSP: register with a CPO over OCPI 2.2.1, pull, print pushes until Ctrl-C."""
    from simulators.emsp import EmspSimulator, Party, Push

    modules = [m.strip() for m in pull_modules.split(",") if m.strip()]
    try:
        party = Party(country_code, party_id, name)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    output = _Output()

    def say(text: str, **event: Any) -> None:
        output.out(json.dumps(event) if as_json else text)

    def pushed(push: Push) -> None:
        output.out(json.dumps(push.as_json()) if as_json else push.line)

    sim = EmspSimulator(party, host=host, port=port, public_url=public_url, on_push=pushed)

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
