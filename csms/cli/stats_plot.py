"""`csms stats --plot`: the figures drawn with matplotlib (the optional `plot` extra),
without a display (the object API and the Agg/SVG backends, never pyplot's window).

- `csms stats`: energy and sessions per period (the groups summed), and utilisation by
  hour of day and weekday as a heat map.
- `csms stats uptime`: uptime per group (per EVSE by default) over the whole range, with
  the NEVI 97 % line.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from csms.services.statistics import Heatmap, StatsReport, UptimeReport

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# The NEVI minimum (23 CFR 680.116(b)): 97 % per port.
NEVI_UPTIME_PCT = 97.0


def plot_figures(report: StatsReport, heat: Heatmap, path: Path) -> None:
    energy: dict[datetime, float] = defaultdict(float)
    sessions: dict[datetime, int] = defaultdict(int)
    for row in report.rows:
        energy[row.start] += float(row.energy_kwh)
        sessions[row.start] += row.sessions
    starts = sorted(energy)
    figure = Figure(figsize=(11, 8), layout="constrained")
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 2])
    width = _bar_width(starts)
    top.bar(starts, [energy[s] for s in starts], width=width, color="#2b7bba", label="kWh")
    top.set_ylabel("energy (kWh)")
    top.set_title(
        f"{report.by} figures per {report.period}, "
        f"{report.start:%Y-%m-%d} to {report.end:%Y-%m-%d} UTC"
    )
    twin = top.twinx()
    twin.plot(starts, [sessions[s] for s in starts], color="#d95f02", marker=".", label="sessions")
    twin.set_ylabel("sessions")
    twin.set_ylim(bottom=0)
    top.tick_params(axis="x", labelrotation=30)
    handles = top.get_legend_handles_labels()
    twin_handles = twin.get_legend_handles_labels()
    top.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], loc="upper left")
    grid = [[0.0] * 24 for _ in range(7)]
    for cell in heat.cells:
        grid[cell.weekday][cell.hour] = cell.utilisation_pct
    image = bottom.imshow(grid, aspect="auto", cmap="viridis", vmin=0)
    bottom.set_yticks(range(7), WEEKDAYS)
    bottom.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    bottom.set_xlabel("hour of day (UTC)")
    bottom.set_title("utilisation % by weekday and hour")
    figure.colorbar(image, ax=bottom, label="%")
    figure.savefig(path)


def plot_uptime(report: UptimeReport, path: Path) -> None:
    period: dict[str, float] = defaultdict(float)
    down: dict[str, float] = defaultdict(float)
    for row in report.rows:
        period[row.group] += row.period_s
        down[row.group] += row.outage_s - row.excluded_s
    groups = sorted(period)
    values = [(period[g] - down[g]) / period[g] * 100 if period[g] > 0 else 100.0 for g in groups]
    figure = Figure(figsize=(11, max(3.0, 0.25 * len(groups) + 1.5)), layout="constrained")
    axes = figure.subplots()
    colours = ["#1a9850" if v >= NEVI_UPTIME_PCT else "#d73027" for v in values]
    axes.barh(groups, values, color=colours)
    axes.axvline(NEVI_UPTIME_PCT, color="black", linestyle="--", linewidth=1, label="97 %")
    axes.set_xlim(min([90.0, *values]) - 1, 100.5)
    axes.invert_yaxis()
    axes.set_xlabel("uptime %")
    axes.set_title(f"uptime by {report.by}, {report.start:%Y-%m-%d} to {report.end:%Y-%m-%d} UTC")
    axes.legend(loc="lower left")
    figure.savefig(path)


def _bar_width(starts: list[datetime]) -> float:
    """Bars as wide as 80 % of the gap between periods (matplotlib dates are in days)."""
    if len(starts) < 2:
        return 0.8
    gaps = [(b - a).total_seconds() / 86400 for a, b in pairwise(starts)]
    return min(gaps) * 0.8
