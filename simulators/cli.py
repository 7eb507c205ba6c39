"""The `csms-sim` command: one scripted charger (`charger`) or many (`fleet`).

Parses options and reports in one line per problem; the simulation itself lives elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, NoReturn

import click

from simulators.errors import SimulatorError
from simulators.events import Step, StepKind
from simulators.fleet import Fleet, FleetOptions
from simulators.options import SUPPORTED_VERSIONS, ChargerOptions
from simulators.versions import create_charger, ensure_simulated

__all__ = ["main"]

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
