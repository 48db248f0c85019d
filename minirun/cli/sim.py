"""`minirun sim SCENARIO --seed S`: the scheduler's decisions on a virtual clock (sched/sim.py)."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(help="Simulate a cluster: placement, failures and recovery on a virtual clock.",
                  context_settings={"allow_interspersed_args": True})


@app.callback(invoke_without_command=True)
def sim(
    scenario: str = typer.Argument(None, help="A built-in scenario (see --list) or a JSON file."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same output."),
    list_: bool = typer.Option(False, "--list", help="List the built-in scenarios."),
    timeline: bool = typer.Option(True, "--timeline/--no-timeline", help="Print the timeline before the summary."),
    timing: bool = typer.Option(False, "--timing", help="Also print placement decisions per second (wall clock: varies)."),
    png: str = typer.Option(None, "--png", help="Draw tasks running per service over time into this PNG file."),
) -> None:
    """Simulate a cluster: placement, failures and recovery on a virtual clock."""
    from minirun.errors import UsageError
    from minirun.sched import sim as simulator

    if list_:
        for name, sc in simulator.BUILTIN.items():
            sys.stdout.write(f"{name:12} {sc['description']}\n")
        return
    if scenario is None:
        raise UsageError("give a scenario (minirun sim --list shows the built-in ones)")
    s = simulator.simulate(scenario, seed)
    if timeline:
        sys.stdout.write("\n".join(s.timeline) + "\n")
    sys.stdout.write("\n".join(s.summary()) + "\n")
    if png:
        from minirun.sched.chart import COLOUR_NAMES

        with open(png, "wb") as f:
            f.write(s.png())
        colours = ", ".join(f"{name} {COLOUR_NAMES[i % len(COLOUR_NAMES)]}" for i, name in enumerate(s.services))
        sys.stdout.write(f"  chart: {png} (tasks running per service: {colours}; red: workers killed)\n")
    if timing and s.place_seconds:
        sys.stdout.write(f"  placement: {s.decisions / s.place_seconds:,.0f} decisions/s (wall clock)\n")
