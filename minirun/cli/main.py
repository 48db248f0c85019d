"""`minirun`: the entry point. Maps errors to exit statuses; imports the CLI only when called.

Start-up is paid by every command, so nothing is imported at module level: `main()` first starts
the cgroup-lock warmer for verbs that start containers (runtime/cgroup_warm.py), then imports
typer and the verbs while the kernel's grace period passes. `minirun run` skips typer when
cli/fastrun.py can read its command line exactly as click would.
"""

import os
import sys
import time

# Verbs that start a container process: warm the cgroup migration lock while we import.
_SPAWNING_VERBS = {"run", "start", "exec", "trace"}

# (CLOCK_MONOTONIC ns, CPU ns this process had used) when main() began: `minirun trace` starts
# its waterfall here and estimates the interpreter's own start from it (observe/trace.py)
ENTERED = (0, 0)


def main() -> None:
    global ENTERED
    ENTERED = time.monotonic_ns(), time.process_time_ns()
    if _SPAWNING_VERBS & set(sys.argv[1:4]):
        from minirun.runtime import cgroup_warm as warm

        warm.start()
    if "run" in sys.argv[1:4]:
        _fast_run()                # returns only when the command line needs typer
    import click

    from minirun.cli.app import build, verb_of
    from minirun.cli.errors import RUNTIME_ERROR, report

    try:
        status = build(verb_of(sys.argv[1:]))(standalone_mode=False)
    except click.exceptions.UsageError as e:
        message = e.format_message()
        if e.ctx is not None and (message == "" or (e.ctx.parent is None and message == "Missing command.")):
            # no verb at all (or a group without its verb): the help, as Docker does; click
            # printed it already when the message is empty
            if message:
                sys.stdout.write(e.ctx.get_help() + "\n")
            sys.stdout.flush()
            os._exit(0)
        where = e.ctx.command_path if e.ctx else "minirun"
        sys.stderr.write(f"{where}: {e.format_message()} (see '{where} --help')\n")
        status = RUNTIME_ERROR               # Docker exits 125 on a bad flag
    except click.exceptions.Abort:
        status = 130
    except click.ClickException as e:
        e.show()
        status = e.exit_code
    except KeyboardInterrupt:
        status = 130
    except Exception as e:  # noqa: BLE001 — report() re-raises anything unforeseen
        status = report(e)
    _exit(status if isinstance(status, int) else 0)


def _exit(status: int) -> None:
    """Skip the interpreter's teardown (module cleanup, GC): a few ms on every command."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(status)


def _fast_run() -> None:
    """`minirun run` without typer and click (~40 ms of imports) when cli/fastrun.py can read
    the command line exactly as click would; otherwise return and let typer parse it."""
    from minirun.cli import fastrun
    from minirun.cli.errors import report

    parsed = fastrun.parse(sys.argv[1:])
    if parsed is None:
        return
    try:
        status = fastrun.run_container(*parsed)
    except KeyboardInterrupt:
        status = 130
    except Exception as e:  # noqa: BLE001 — report() re-raises anything unforeseen
        status = report(e)
    _exit(status)
