"""`minirun-oci`: runc's command line (argparse, thin: parse, call oci/container.py, print).

Errors are one line on stderr, `minirun-oci: message`, and exit status 1, as runc; `run` exits
with the container's status. With --log, errors (and with --debug, each verb) also go to that
file, in text or JSON (--log-format), which is where containerd's shim looks for them.

Start-up is paid for every container podman or containerd runs, so this module imports only os
and sys: the verbs of the per-container contract (create, start, state, kill, delete, run), when
spelled as callers spell them, are parsed by `fast_parse` without argparse; anything else (help,
an unknown or abbreviated flag, a usage error) goes to the argparse parser, which answers as
before. Verbs that start a container first start the cgroup-lock warmer, so the kernel's grace
period passes while the rest is imported (runtime/cgroup_warm.py).
"""

from __future__ import annotations

import os
import sys

PROG = "minirun-oci"


def parser():
    import argparse

    from minirun import __version__
    from minirun.spec import OCI_VERSION

    p = argparse.ArgumentParser(prog=PROG, formatter_class=argparse.RawTextHelpFormatter,
                                description="minirun's runc-compatible command line "
                                "for OCI bundles (docs/oci.md)")
    p.add_argument("--root", default="/run/minirun-oci", help="state directory")
    p.add_argument("--log", help="also write errors (and --debug lines) to this file")
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="not supported (refused)")
    p.add_argument("--version", action="version",
                   version=f"{PROG} version {__version__}\nspec: {OCI_VERSION}")
    verbs = p.add_subparsers(dest="verb", metavar="COMMAND")

    def verb(name: str, help: str, bundle: bool = False) -> argparse.ArgumentParser:
        v = verbs.add_parser(name, help=help, description=help)
        if bundle:
            v.add_argument("--bundle", "-b", default=".", help="the bundle directory")
        return v

    for name, help in (("create", "create a container from a bundle; `start` runs its program"),
                       ("run", "create, start and wait for a container, then delete it")):
        v = verb(name, help, bundle=True)
        v.add_argument("--pid-file", help="write the container's pid (digits only) here")
        v.add_argument("--console-socket", help="send the pty master to this AF_UNIX socket")
        v.add_argument("--no-pivot", action="store_true", help="accepted; pivot_root is always used")
        v.add_argument("--preserve-fds", type=int, default=0, metavar="N",
                       help="pass fds 3 .. 3+N-1 on to the container")
        v.add_argument("id")
    verb("start", "run the program of a created container").add_argument("id")
    verb("state", "print the OCI state of a container as JSON").add_argument("id")
    v = verb("kill", "send a signal to the container's process (default SIGTERM)")
    v.add_argument("--all", "-a", action="store_true", help="every process in its cgroup")
    v.add_argument("id")
    v.add_argument("signal", nargs="?", default="SIGTERM")
    v = verb("delete", "remove a stopped container (--force: also a running one)")
    v.add_argument("--force", "-f", action="store_true")
    v.add_argument("id")
    v = verb("list", "list the containers")
    v.add_argument("--format", "-f", choices=["table", "json"], default="table")
    v.add_argument("--quiet", "-q", action="store_true", help="ids only")
    v = verb("exec", "run another process in a container (its namespaces, cgroup and limits)")
    v.add_argument("--process", "-p", help="an OCI process JSON file (instead of ARGS)")
    v.add_argument("--detach", "-d", action="store_true", help="do not wait for the process")
    v.add_argument("--tty", "-t", action="store_true", help="a pty (needs --console-socket)")
    v.add_argument("--console-socket", help="send the pty master to this AF_UNIX socket")
    v.add_argument("--pid-file", help="write the process's pid (digits only) here")
    v.add_argument("--cwd", help="working directory inside the container")
    v.add_argument("--env", "-e", action="append", default=[], metavar="KEY=VALUE")
    v.add_argument("--user", "-u", help="UID[:GID]")
    v.add_argument("--additional-gids", "-g", action="append", default=[], type=int, metavar="GID")
    v.add_argument("--cap", "-c", action="append", default=[], help="add a capability")
    v.add_argument("--no-new-privs", action="store_true", help="set no_new_privs")
    v.add_argument("id")
    v.add_argument("args", nargs=argparse.REMAINDER)
    verb("pause", "freeze every process of a container").add_argument("id")
    verb("resume", "thaw a paused container").add_argument("id")
    v = verb("ps", "the processes of a container")
    v.add_argument("--format", "-f", choices=["table", "json"], default="table")
    v.add_argument("id")
    v.add_argument("ps_args", nargs=argparse.REMAINDER, help="options for ps(1) (default -ef)")
    v = verb("update", "change a running container's limits")
    v.add_argument("--resources", "-r", metavar="FILE",
                   help="an OCI linux.resources JSON file, - for stdin")
    for flag, help in (("--memory", "memory limit in bytes"), ("--memory-reservation", "soft limit"),
                       ("--memory-swap", "memory + swap limit"), ("--cpu-shares", "relative weight"),
                       ("--cpu-quota", "µs per period"), ("--cpu-period", "µs"),
                       ("--pids-limit", "max processes")):
        v.add_argument(flag, type=int, help=help)
    v.add_argument("--cpuset-cpus", help="CPUs allowed")
    v.add_argument("--cpuset-mems", help="memory nodes allowed")
    v.add_argument("id")
    verb("spec", "write a default config.json (rootfs \"rootfs\", sh on a terminal)", bundle=True)
    verb("features", "print what this runtime supports, as JSON")
    return p


class _Args:
    """What fast_parse found: the same attributes, with the same defaults, as argparse gives."""

    def __init__(self, **values):
        self.__dict__.update(values)


_GLOBAL_DEFAULTS = {"root": "/run/minirun-oci", "log": None, "log_format": "text", "debug": False,
                    "systemd_cgroup": False}
_GLOBAL_VALUE = {"--root": "root", "--log": "log", "--log-format": "log_format"}
_GLOBAL_FLAG = {"--debug": "debug", "--systemd-cgroup": "systemd_cgroup"}
_CREATE_VALUE = {"--bundle": "bundle", "-b": "bundle", "--pid-file": "pid_file",
                 "--console-socket": "console_socket", "--preserve-fds": "preserve_fds"}
# verb -> (options taking a value, flags, defaults, positionals (required, optional))
_FAST_VERBS = {
    "create": (_CREATE_VALUE, {"--no-pivot": "no_pivot"},
               {"bundle": ".", "pid_file": None, "console_socket": None, "no_pivot": False,
                "preserve_fds": 0}, (("id",), ())),
    "start": ({}, {}, {}, (("id",), ())),
    "state": ({}, {}, {}, (("id",), ())),
    "kill": ({}, {"--all": "all", "-a": "all"}, {"all": False, "signal": "SIGTERM"},
             (("id",), ("signal",))),
    "delete": ({}, {"--force": "force", "-f": "force"}, {"force": False}, (("id",), ())),
}
_FAST_VERBS["run"] = _FAST_VERBS["create"]


def _take_option(argv: list[str], i: int, flags: dict[str, str], takes_value: dict[str, str],
                 values: dict) -> int | None:
    """Read the option at argv[i] into `values` (a flag, or `--name value` / `--name=value`)
    and return the index after it; None when argparse must decide (unknown, or no value)."""
    name, eq, value = argv[i].partition("=")
    if name in flags and not eq:
        values[flags[name]] = True
        return i + 1
    if name not in takes_value:
        return None
    if not eq:
        if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
            return None
        i += 1
        value = argv[i]
    dest = takes_value[name]
    if dest == "preserve_fds":
        # argparse's type=int checks every occurrence, not only the last one that wins
        try:
            value = int(value)
        except ValueError:
            return None
    values[dest] = value
    return i + 1


def fast_parse(argv: list[str]) -> _Args | None:
    """The argv of the per-container verbs as runc's callers write them, parsed without
    argparse (~6 ms of imports); None for anything else, which argparse then handles (and
    reports) as it always did. Only exact option names are taken: an abbreviation, `--`, a
    value that looks like an option or a stray argument all go to argparse."""
    values = dict(_GLOBAL_DEFAULTS)
    i, n = 0, len(argv)
    while i < n and argv[i].startswith("-"):          # global options, before the verb
        i = _take_option(argv, i, _GLOBAL_FLAG, _GLOBAL_VALUE, values)
        if i is None:
            return None
    if i >= n or argv[i] not in _FAST_VERBS or values["log_format"] not in ("text", "json"):
        return None
    verb = argv[i]
    takes_value, flags, defaults, (required, optional) = _FAST_VERBS[verb]
    values.update(defaults, verb=verb)
    positionals = []
    after_option = False
    i += 1
    while i < n:
        arg = argv[i]
        if arg.startswith("-") and arg != "-":
            i = _take_option(argv, i, flags, takes_value, values)
            if i is None:
                return None                             # --help, -h, unknown, abbreviated
            after_option = True
        else:
            if positionals and after_option:
                # argparse fills the positionals from the first run of them, an optional one
                # (kill's SIGNAL) with nothing if that run is short: `kill ID --all SIG` leaves
                # SIG unrecognized there, so argparse must be the one to say so
                return None
            positionals.append(arg)
            after_option = False
            i += 1
    if not len(required) <= len(positionals) <= len(required) + len(optional):
        return None
    values.update(zip(required + optional, positionals, strict=False))
    return _Args(**values)


# Verbs that start a container process: warm the cgroup migration lock while we import.
_SPAWNING_VERBS = {"create", "run", "exec"}
# The launcher (c_ext/launch.c, installed as the minirun-oci command) forks a helper that starts
# the grace period before Python does, and names its pid here: reaped before we exit.
HELPER_ENV = "MINIRUN_OCI_HELPER"


def main(argv: list[str] | None = None) -> None:
    entry = argv is None
    argv = sys.argv[1:] if argv is None else argv
    helper = os.environ.pop(HELPER_ENV, None)    # popped: not for the container or the hooks
    try:
        status = _command(argv)
    finally:
        if helper is not None:
            _reap_helper(helper)
    if not entry:
        sys.stdout.flush()
        sys.exit(status or 0)
    # the process ends here: skip the interpreter's teardown (module cleanup, GC), a few ms
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    warm = sys.modules.get("minirun.runtime.cgroup_warm")
    if warm is not None:
        warm.pass_on()          # the next container of a burst joins without a grace period
    os._exit(status or 0)


def _command(argv: list[str]) -> int:
    """Parse and run one verb; its exit status (1 for an error, reported on stderr)."""
    if _SPAWNING_VERBS & set(argv[:8]):
        from minirun.runtime import cgroup_warm

        cgroup_warm.start()
    args = fast_parse(argv)
    if args is None:
        args = parser().parse_args(argv)
    if args.verb is None:
        parser().print_help()
        sys.exit(0)
    try:
        if args.systemd_cgroup:
            raise UserFault("--systemd-cgroup is not supported")
        _log(args, "debug", f"{args.verb} {getattr(args, 'id', '')}".strip())
        return VERBS[args.verb](args)
    except Exception as e:
        from minirun.errors import MinirunError

        if not isinstance(e, MinirunError | UserFault | OSError):
            raise
        message = str(e) if not isinstance(e, OSError) else _os_message(e)
        _log(args, "error", message)
        sys.stderr.write(f"{PROG}: {message}\n")
        return 1


def _reap_helper(pid: str) -> None:
    """Wait for the launcher's helper: it ends once its grace period has passed (by now, for a
    verb that started a container)."""
    from minirun import procfs

    if pid.isdigit():   # else not a pid (an inherited variable); a pid not our child: no-op
        procfs.reap(int(pid))


class UserFault(Exception):
    """A usage fault found here rather than by argparse."""


def _os_message(e: OSError) -> str:
    return f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e))


def _log(args, level: str, message: str) -> None:
    if not args.log or (level == "debug" and not args.debug):
        return
    import json
    import time

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = (json.dumps({"level": level, "msg": message, "time": stamp})
            if args.log_format == "json" else f'time="{stamp}" level={level} msg="{message}"')
    with open(args.log, "a") as f:
        f.write(line + "\n")


def _warn(args, problems: list[str]) -> None:
    """poststart/poststop hook failures (the spec makes them warnings, not errors) and settings
    create skipped as runc does (kernel memory limits on cgroup v2)."""
    for message in problems:
        sys.stderr.write(f"minirun-oci: warning: {message}\n")
        _log(args, "warning", message)


def _root(args) -> str:
    return args.root


# -- verbs: each parses nothing more, calls container.py, prints --------------------------------
def _create(args) -> int:
    from minirun.oci import container

    c = container.create(_root(args), args.id, args.bundle, pid_file=args.pid_file,
                         console_socket=args.console_socket, preserve_fds=args.preserve_fds)
    _warn(args, c.warnings)
    return 0


def _start(args) -> int:
    from minirun.oci import container

    _, problems = container.start(_root(args), args.id)
    _warn(args, problems)
    return 0


def _run(args) -> int:
    import _signal as signal  # not signal: its IntEnums import enum, ~3 ms of start-up

    from minirun.oci import container

    root = _root(args)
    c = container.create(root, args.id, args.bundle, pid_file=args.pid_file,
                                      console_socket=args.console_socket,
                                      preserve_fds=args.preserve_fds)
    _warn(args, c.warnings)
    try:
        # what we receive is for the container, as with runc run
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                    signal.SIGUSR2):
            signal.signal(sig, lambda n, _f: container._kill_pid(c, n))
        _warn(args, container.start(root, args.id)[1])
        return container.wait(c)
    finally:
        _warn(args, container.delete(root, args.id, force=True))


def _state(args) -> int:
    from minirun import lean
    from minirun.oci import container

    print(lean.dumps(container.load(_root(args), args.id).oci_state(), indent=2))
    return 0


def _kill(args) -> int:
    from minirun import procfs
    from minirun.oci import container

    container.kill(_root(args), args.id, procfs.signal_number(args.signal), all_processes=args.all)
    return 0


def _delete(args) -> int:
    from minirun.errors import ContainerNotFound
    from minirun.oci import container

    try:
        _warn(args, container.delete(_root(args), args.id, force=args.force))
    except ContainerNotFound:
        if not args.force:          # runc: delete --force of a missing container succeeds
            raise
    return 0


def _list(args) -> int:
    import json

    from minirun.oci import container

    states = [c.oci_state() for c in container.list_all(_root(args))]
    if args.quiet:
        print("\n".join(s["id"] for s in states))
    elif args.format == "json":
        print(json.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"]) for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _exec(args) -> int:
    import json
    import signal

    from minirun.oci import container

    root = _root(args)
    if args.process:
        if args.args:
            raise UserFault("give either --process FILE or ARGS, not both")
        try:
            with open(args.process) as f:
                process = json.load(f)
        except ValueError as e:
            raise UserFault(f"{args.process}: invalid JSON: {e}") from None
    else:
        if not args.args:
            raise UserFault("exec needs ARGS or --process FILE")
        process = container.exec_defaults(root, args.id)
        process["args"] = args.args
        process["terminal"] = args.tty
        process.pop("consoleSize", None)
        if args.env:
            from minirun.spec import merge_env

            process["env"] = merge_env(process.get("env", []), args.env)
        if args.cwd:
            process["cwd"] = args.cwd
        if args.user:
            uid, _, gid = args.user.partition(":")
            if not uid.isdigit() or (gid and not gid.isdigit()):
                raise UserFault(f"--user {args.user}: expected UID[:GID] (numbers)")
            process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        if args.additional_gids:
            process.setdefault("user", {})["additionalGids"] = args.additional_gids
        if args.cap:
            caps = process.setdefault("capabilities", {})
            for kind in ("bounding", "effective", "permitted"):
                caps[kind] = sorted(set(caps.get(kind, [])) | {c.upper() for c in args.cap})
        if args.no_new_privs:
            process["noNewPrivileges"] = True
    pid = container.exec_process(root, args.id, process, console_socket=args.console_socket,
                                 pid_file=args.pid_file)
    if args.detach:
        return 0
    # what we receive is for the process, as with runc exec
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                signal.SIGUSR2):
        signal.signal(sig, lambda n, _f: os.kill(pid, n))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _pause(args) -> int:
    from minirun.oci import container

    container.pause(_root(args), args.id)
    return 0


def _resume(args) -> int:
    from minirun.oci import container

    container.resume(_root(args), args.id)
    return 0


def _ps(args) -> int:
    """runc's ps: JSON is the pid list; a table is ps(1)'s own output cut to the container."""
    import json
    import subprocess

    from minirun.oci import container

    pids = set(container.pids(_root(args), args.id))
    if args.format == "json":
        print(json.dumps(sorted(pids)))
        return 0
    ps_args = args.ps_args or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    if out.returncode != 0:
        raise UserFault(f"ps {' '.join(ps_args)}: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise UserFault(f"ps {' '.join(ps_args)}: no PID column in its output")
    column = header.index("PID")
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            print(line)
    return 0


def _update(args) -> int:
    import json

    from minirun.oci import container

    resources: dict = {}
    if args.resources:
        try:
            if args.resources == "-":
                resources = json.load(sys.stdin)
            else:
                with open(args.resources) as f:
                    resources = json.load(f)
        except ValueError as e:
            raise UserFault(f"{args.resources}: invalid JSON: {e}") from None
    flags = {("memory", "limit"): args.memory, ("memory", "reservation"): args.memory_reservation,
             ("memory", "swap"): args.memory_swap, ("cpu", "shares"): args.cpu_shares,
             ("cpu", "quota"): args.cpu_quota, ("cpu", "period"): args.cpu_period,
             ("cpu", "cpus"): args.cpuset_cpus, ("cpu", "mems"): args.cpuset_mems,
             ("pids", "limit"): args.pids_limit}
    for (group, name), value in flags.items():
        if value is not None:
            resources.setdefault(group, {})[name] = value
    if not resources:
        raise UserFault("update needs --resources FILE or a limit flag (--memory, --cpu-quota, ...)")
    container.update(_root(args), args.id, resources)
    return 0


def _spec(args) -> int:
    import json

    from minirun.oci import container

    path = os.path.join(args.bundle, "config.json")
    if os.path.exists(path):
        raise UserFault(f"{path} exists: remove it first")
    with open(path, "x") as f:
        json.dump(container.default_config(), f, indent=2)
        f.write("\n")
    return 0


def _features(args) -> int:
    import json

    from minirun.oci import container

    print(json.dumps(container.features(), indent=2))
    return 0


VERBS = {"create": _create, "start": _start, "run": _run, "state": _state, "kill": _kill,
         "delete": _delete, "list": _list, "exec": _exec, "pause": _pause, "resume": _resume,
         "ps": _ps, "update": _update, "spec": _spec, "features": _features}
