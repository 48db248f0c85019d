"""`minirun build`: a Containerfile (Dockerfile) to an image, one cached step at a time.

Each instruction makes a new image from the previous one (ImageStore.derive): RUN runs the
command in a minirun container made from the previous image and commits its upper directory as
a layer; COPY and ADD write a layer from the build context; ENV, ARG, WORKDIR, USER, CMD,
ENTRYPOINT, EXPOSE and LABEL only change the config. The supported subset: one FROM (a local
image or `scratch`), no --from, no ADD from a URL, no heredocs, no ONBUILD/HEALTHCHECK/SHELL.

Cache: a step's key is the sha256 of (the previous image id, the instruction after variable
substitution, the build args in effect, and for COPY/ADD the content of every source file:
names, types, modes, bytes). A key seen before names the image that step made, so an unchanged
rebuild makes no container and writes nothing. Intermediate images are kept (hidden from `image
ls`) as long as a named image descends from them; `image prune` removes the rest.

The builder sits above the runtime beside the other adapters (cli, oci, sched): its RUN steps are
containers (Runtime.run), and the image store below never imports the runtime.

The context is untrusted like any archive: a source that leaves it (`../x`, an absolute path,
or a symlink pointing out) is refused, and the sources' own symlinks are copied as symlinks.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shlex
import stat
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from minirun.errors import BuildError, ImageNotFound, MinirunError, UsageError
from minirun.runtime import userns

INSTRUCTIONS = {"FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "CMD",
                "ENTRYPOINT", "EXPOSE", "LABEL", "STOPSIGNAL"}
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass
class Instruction:
    line: int
    cmd: str  # upper case
    args: str  # the rest, continuations joined
    original: str

    def json_args(self) -> list[str] | None:
        """The exec form (`["a", "b"]`), or None for the shell form."""
        text = self.args.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                return None
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        return None


def parse(text: str, what: str = "Containerfile") -> list[Instruction]:
    out: list[Instruction] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [line]
        while parts[-1].rstrip().endswith("\\") and i < len(lines):
            parts[-1] = parts[-1].rstrip()[:-1]
            while i < len(lines) and lines[i].lstrip().startswith("#"):
                i += 1  # a comment inside a continued instruction is dropped
            if i < len(lines):
                parts.append(lines[i])
                i += 1
        full = " ".join(p.strip() for p in parts if p.strip())
        cmd, _, args = full.partition(" ")
        cmd = cmd.upper()
        if cmd not in INSTRUCTIONS:
            hint = " (not supported by minirun build)" if cmd in (
                "ONBUILD", "HEALTHCHECK", "SHELL", "VOLUME", "MAINTAINER") else ""
            raise BuildError(f"{what}:{start + 1}: unknown instruction {cmd!r}{hint}")
        if "<<" in args and cmd in ("RUN", "COPY"):
            raise BuildError(f"{what}:{start + 1}: heredocs are not supported")
        out.append(Instruction(start + 1, cmd, args.strip(), full))
    if not out or out[0].cmd not in ("FROM", "ARG") or not any(x.cmd == "FROM" for x in out):
        raise BuildError(f"{what}: the first instruction must be FROM (ARG may precede it)")
    return out


def substitute(text: str, env: dict[str, str]) -> str:
    """$VAR, ${VAR}, ${VAR:-default}, ${VAR:+alt} (a Dockerfile's expansion, without escapes)."""
    return _VAR.sub(lambda m: _expand(m, env), text)


def _expand(m: re.Match, env: dict[str, str]) -> str:
    name = m.group(1) or m.group(4)
    value = env.get(name, "")
    if m.group(2) == "-":
        return value or m.group(3)
    if m.group(2) == "+":
        return m.group(3) if value else ""
    return value


def _pairs(args: str, cmd: str, where: str) -> list[tuple[str, str]]:
    """ENV/LABEL/ARG: `k=v k2="v 2"`, or the old `ENV k v w` form."""
    try:
        words = shlex.split(args)
    except ValueError as e:
        raise BuildError(f"{where}: {cmd}: {e}") from None
    if cmd == "ENV" and words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    out = []
    for w in words:
        k, eq, v = w.partition("=")
        if not k or (not eq and cmd != "ARG"):
            raise BuildError(f"{where}: {cmd} needs KEY=value, not {w!r}")
        out.append((k, v if eq else None))
    return out


@dataclass
class _State:
    image: object  # store.Image or None (scratch)
    config: dict
    args: dict[str, str] = field(default_factory=dict)  # ARGs in effect (not kept in the image)


class Builder:
    """Runs one build. `progress(event, **info)` gets ("step", text=, index=, total=) and
    ("output", text=) for what RUN prints."""

    def __init__(self, runtime, context: Path, containerfile: Path, *,
                 build_args: dict[str, str] | None = None, progress=None, no_cache: bool = False):
        self.rt = runtime
        self.store = runtime.images
        self.context = Path(os.path.realpath(context))
        if not self.context.is_dir():
            raise UsageError(f"build context {context} is not a directory")
        self.file = containerfile
        self.build_args = dict(build_args or {})
        self.progress = progress or (lambda *a, **k: None)
        self.no_cache = no_cache
        self.ignore = Ignore.load(self.context)

    def say(self, text: str, **info) -> None:
        self.progress("step", text=text, **info)

    def build(self, names: list[str]) -> object:
        try:
            text = self.file.read_text()
        except OSError as e:
            raise UsageError(f"cannot read {self.file}: {os.strerror(e.errno or 5)}") from None
        steps = parse(text, str(self.file))
        if sum(1 for s in steps if s.cmd == "FROM") > 1:
            raise BuildError(f"{self.file}: multi-stage builds (several FROM) are not supported")
        for n in names:
            from minirun.images.reference import parse_reference

            parse_reference(n)
        state = _State(None, {})
        pre_from: dict[str, str] = {}
        for i, ins in enumerate(steps):
            where = f"{self.file}:{ins.line}"
            self.say(f"STEP {i + 1}/{len(steps)}: {ins.original}", index=i, total=len(steps))
            try:
                if ins.cmd == "ARG" and state.image is None and not state.config:
                    for k, v in _pairs(ins.args, "ARG", where):
                        pre_from[k] = self.build_args.get(k, v or "")
                    continue
                if ins.cmd == "FROM":
                    state = self._from(ins, pre_from, where)
                    continue
                state = self._step(state, ins, where)
            except BuildError:
                raise
            except MinirunError as e:
                raise BuildError(f"{where}: {ins.cmd}: {e}") from None
        if state.image is None:
            raise BuildError(f"{self.file}: FROM scratch with no other step makes no image")
        for n in names:
            self.store.tag(state.image.id, n)
        self.say(f"--> {state.image.id[:12]}" + (f" {', '.join(names)}" if names else ""),
                 index=len(steps), total=len(steps))
        return self.store.get(state.image.id)

    # --- steps ----------------------------------------------------------------------------

    def _from(self, ins: Instruction, pre_from: dict[str, str], where: str) -> _State:
        words = substitute(ins.args, pre_from).split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
            raise BuildError(f"{where}: FROM takes an image (and optionally AS name)")
        if words[0].startswith("--"):
            raise BuildError(f"{where}: FROM {words[0]} is not supported")
        if words[0] == "scratch":
            return _State(None, {"Env": []})
        try:
            base = self.store.get(words[0])
        except ImageNotFound:
            raise BuildError(f"{where}: no local image {words[0]} (minirun build does not pull: "
                             "load or import it first)") from None
        return _State(base, json.loads(json.dumps(base.config)))

    def _env(self, state: _State) -> dict[str, str]:
        env = dict(state.args)
        for item in state.config.get("Env") or []:
            k, _, v = item.partition("=")
            env[k] = v
        return env

    def _step(self, state: _State, ins: Instruction, where: str) -> _State:
        cfg = json.loads(json.dumps(state.config))
        env = self._env(state)
        cmd, args = ins.cmd, ins.args
        if cmd == "ARG":
            for k, v in _pairs(args, "ARG", where):
                state.args[k] = self.build_args.get(k, substitute(v or "", env))
            return state
        if cmd in ("ENV", "LABEL"):
            for k, v in _pairs(args, cmd, where):
                v = substitute(v, env)
                if cmd == "ENV":
                    cfg["Env"] = [e for e in cfg.get("Env") or [] if e.partition("=")[0] != k]
                    cfg["Env"].append(f"{k}={v}")
                    env[k] = v
                else:
                    cfg.setdefault("Labels", {})[k] = v
            return self._config_step(state, cfg, ins, args)
        if cmd in ("CMD", "ENTRYPOINT"):
            form = ins.json_args()
            cfg["Cmd" if cmd == "CMD" else "Entrypoint"] = form if form is not None else [
                "/bin/sh", "-c", args]
            if cmd == "ENTRYPOINT":
                cfg.pop("Cmd", None)  # as Docker: a new ENTRYPOINT resets CMD
            return self._config_step(state, cfg, ins, args)
        if cmd == "USER":
            cfg["User"] = substitute(args, env)
            return self._config_step(state, cfg, ins, args)
        if cmd == "STOPSIGNAL":
            cfg["StopSignal"] = substitute(args, env)
            return self._config_step(state, cfg, ins, args)
        if cmd == "EXPOSE":
            for port in substitute(args, env).split():
                p, _, proto = port.partition("/")
                if not p.isdigit():
                    raise BuildError(f"{where}: EXPOSE {port!r}: not a port")
                cfg.setdefault("ExposedPorts", {})[f"{p}/{proto or 'tcp'}"] = {}
            return self._config_step(state, cfg, ins, args)
        if cmd == "WORKDIR":
            path = substitute(args, env)
            cfg["WorkingDir"] = os.path.normpath(os.path.join(cfg.get("WorkingDir") or "/", path))
            return self._workdir(state, cfg, ins)
        if cmd == "RUN":
            return self._run(state, cfg, ins, env, where)
        return self._copy(state, cfg, ins, env, where)

    def _key(self, state: _State, *parts) -> str:
        doc = [state.image.id if state.image else "scratch", sorted(state.args.items()),
               state.config, *parts]
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def _cached(self, key: str, state: _State, make) -> _State:
        if not self.no_cache:
            hit = self.store.cache_get(key)
            if hit is not None:
                self.say(f"--> Using cache {hit.id[:12]}")
                return _State(hit, json.loads(json.dumps(hit.config)), state.args)
        img = make()
        self.store.cache_put(key, img.id)
        self.say(f"--> {img.id[:12]}")
        return _State(img, json.loads(json.dumps(img.config)), state.args)

    def _config_step(self, state, cfg, ins, args) -> _State:
        key = self._key(state, ins.cmd, cfg)
        return self._cached(key, state, lambda: self.store.derive(
            state.image, config=cfg, history={"created_by": ins.original},
            extra={"intermediate": True}))

    def _layers_top_first(self, state: _State) -> list[Path]:
        return list(reversed(state.image.layers)) if state.image else []

    def _workdir(self, state, cfg, ins) -> _State:
        rel = cfg["WorkingDir"].lstrip("/")
        exists = rel == "" or _lookup(self._layers_top_first(state), rel) is not None
        key = self._key(state, "WORKDIR", cfg)

        def make():
            writer = None
            if not exists:
                def writer(out):
                    w = _LayerWriter(out, self._layers_top_first(state))
                    w.parents(rel + "/x")
                    w.close()
            return self.store.derive(state.image, config=cfg, history={
                "created_by": ins.original}, write_layer=writer, extra={"intermediate": True})

        return self._cached(key, state, make)

    def _run(self, state, cfg, ins, env, where) -> _State:
        if state.image is None:
            raise BuildError(f"{where}: RUN needs a base image (FROM scratch has no shell)")
        form = ins.json_args()
        argv = form if form is not None else ["/bin/sh", "-c", ins.args]
        key = self._key(state, "RUN", argv)

        def make():
            from minirun import faults
            from minirun.images import tree
            from minirun.runtime import logs
            from minirun.runtime.options import RunOptions
            from minirun.runtime.state import owner

            # owned by this build: if it dies, gc removes the step's container
            opts = RunOptions(image=state.image.id, command=argv, entrypoint="",
                              env=[f"{k}={v}" for k, v in state.args.items()],
                              workdir=cfg.get("WorkingDir") or None,
                              user=cfg.get("User") or None, detach=True, owner=owner("build"))
            started = self.rt.run(opts)
            record = started.record
            faults.point("build:step-running")
            try:
                for entry in logs.read(record.dir / "container.log", follow=True,
                                       running=record.is_running):
                    self.progress("output", text=entry.text.decode("utf-8", "replace")
                                  + ("" if entry.partial else "\n"))
                code = self.rt.wait(record)
                if code != 0:
                    raise BuildError(f"{where}: RUN {' '.join(argv)!s}: exited with status {code}")
                return self.store.derive(
                    state.image, config=cfg, history={"created_by": ins.original},
                    write_layer=lambda out: tree.write_layer(out, record.dir / "upper",
                                                             userns.id_mapper(record.spec())),
                    extra={"intermediate": True})
            finally:
                self.rt.remove(record, force=True)

        return self._cached(key, state, make)

    def _copy(self, state, cfg, ins, env, where) -> _State:
        try:
            words = shlex.split(ins.args) if ins.json_args() is None else ins.json_args()
        except ValueError as e:
            raise BuildError(f"{where}: {ins.cmd}: {e}") from None
        chown = None
        while words and words[0].startswith("--"):
            flag = words.pop(0)
            if flag.startswith("--chown="):
                chown = substitute(flag.split("=", 1)[1], env)
            elif flag.startswith("--from"):
                raise BuildError(f"{where}: COPY --from (multi-stage) is not supported")
            else:
                raise BuildError(f"{where}: {ins.cmd} {flag} is not supported")
        if len(words) < 2:
            raise BuildError(f"{where}: {ins.cmd} needs a source and a destination")
        *srcs, dest = [substitute(w, env) for w in words]
        if ins.cmd == "ADD" and any(re.match(r"[a-z]+://", s) for s in srcs):
            raise BuildError(f"{where}: ADD from a URL is not supported (download it first)")
        sources = []
        for s in srcs:
            sources += self._sources(s, where)
        if not dest.startswith("/"):
            dest = os.path.join(cfg.get("WorkingDir") or "/", dest)
        owner = (0, 0)
        if chown:
            from minirun.runtime.options import resolve_user

            u = resolve_user(chown, self._layers_top_first(state))
            owner = (u["uid"], u["gid"])
        digest = _hash_sources(sources, self.context, self.ignore)
        key = self._key(state, ins.cmd, srcs, dest, chown, digest)

        def write(out):
            w = _LayerWriter(out, self._layers_top_first(state), owner,
                             lambda p: self.ignore(os.path.relpath(p, self.context)))
            into_dir = dest.endswith("/") or len(sources) > 1 or any(
                os.path.isdir(p) for p in sources)
            for src in sources:
                real = Path(os.path.realpath(src))  # a named source that is a link: its target
                if ins.cmd == "ADD" and real.is_file() and _is_archive(real):
                    w.archive(real, dest)
                elif real.is_dir():
                    w.tree(real, dest)
                else:
                    target = os.path.join(dest, src.name) if into_dir else dest
                    w.path(real, target)
            w.close()

        return self._cached(key, state, lambda: self.store.derive(
            state.image, config=cfg, history={"created_by": ins.original}, write_layer=write,
            extra={"intermediate": True}))

    def _sources(self, pattern: str, where: str) -> list[Path]:
        """Paths in the context matching `pattern`, each checked to stay inside it."""
        if os.path.isabs(pattern) or ".." in Path(pattern).parts:
            raise BuildError(f"{where}: source {pattern!r} leaves the build context")
        if any(c in pattern for c in "*?["):
            parent = self.context / os.path.dirname(pattern)
            matches = sorted(p for p in _listdir(parent)
                             if fnmatch.fnmatchcase(p.name, os.path.basename(pattern))
                             and not self.ignore(str(p.relative_to(self.context))))
            if not matches:
                raise BuildError(f"{where}: no source file matches {pattern!r}")
        else:
            matches = [self.context / pattern]
            if self.ignore(os.path.normpath(pattern)):
                raise BuildError(f"{where}: source {pattern!r} is excluded by the context's "
                                 ".containerignore/.dockerignore")
        for p in matches:
            real = os.path.realpath(p)
            if real != str(self.context) and not real.startswith(str(self.context) + "/"):
                raise BuildError(f"{where}: source {pattern!r} leaves the build context "
                                 f"(it resolves to {real})")
            if not os.path.lexists(p):
                raise BuildError(f"{where}: source {pattern!r} is not in the build context")
        return matches


def _listdir(d: Path) -> list[Path]:
    try:
        return list(d.iterdir())
    except OSError:
        return []


def _is_archive(p: Path) -> bool:
    with open(p, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or \
            head[:4] == b"\x28\xb5\x2f\xfd":
        return True
    return len(head) == 512 and head[257:262] == b"ustar"


class Ignore:
    """.containerignore (or .dockerignore) in the context: paths COPY and ADD leave out.

    One pattern a line; `#` comments; `*` and `?` stay within a path component, `**` crosses
    them; a pattern that matches a directory leaves out everything under it; `!pattern`
    brings matches back; the last matching line decides (Docker's rules)."""

    def __init__(self, patterns: list[tuple[bool, re.Pattern]]):
        self.patterns = patterns

    @classmethod
    def load(cls, context: Path) -> Ignore:
        for name in (".containerignore", ".dockerignore"):
            try:
                text = (context / name).read_text()
            except OSError:
                continue
            patterns = []
            for line in text.splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                negate = line.startswith("!")
                line = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
                patterns.append((negate, re.compile(_glob_regex(line))))
            return cls(patterns)
        return cls([])

    def __call__(self, rel: str) -> bool:
        if not self.patterns:
            return False
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        ignored = False
        for negate, rx in self.patterns:
            if any(rx.fullmatch(p) for p in prefixes):
                ignored = not negate
        return ignored


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # any number of directories, none included
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c))
        i += 1
    return "".join(out)


def _hash_sources(sources: list[Path], context: Path, ignore=lambda rel: False) -> str:
    h = hashlib.sha256()
    for named in sources:
        h.update(json.dumps(["source", str(named.relative_to(context))]).encode())
        src = Path(os.path.realpath(named))
        for path in [src, *sorted(src.rglob("*"))] if src.is_dir() else [src]:
            if path != src and ignore(os.path.relpath(path, context)):
                continue
            st = path.lstat()
            h.update(json.dumps([str(path.relative_to(src)), st.st_mode, st.st_size]).encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
    return h.hexdigest()


def _lookup(layers_top_first: list[Path], rel: str) -> os.stat_result | None:
    """lstat of `rel` as the image shows it (whiteouts and opaque dirs honoured), or None."""
    parts = [p for p in rel.split("/") if p]
    for layer in layers_top_first:
        path = layer.joinpath(*parts)
        try:
            st = path.lstat()
        except OSError:
            st = None
        if st is not None:
            return None if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else st
        for i in range(len(parts) - 1, 0, -1):
            try:
                if os.getxattr(layer.joinpath(*parts[:i]), "trusted.overlay.opaque",
                               follow_symlinks=False) == b"y":
                    return None
            except OSError:
                continue
    return None


class _LayerWriter:
    """A layer tar for COPY/ADD/WORKDIR. Parent directories are written with the metadata the
    image already has for them (so `COPY x /tmp/` keeps /tmp's sticky bit)."""

    def __init__(self, out, layers_top_first: list[Path], owner: tuple[int, int] = (0, 0),
                 ignore=lambda path: False):
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self.ignore = ignore
        self.layers = layers_top_first
        self.owner = owner
        self.dirs: set[str] = set()

    def close(self) -> None:
        self.tar.close()

    def parents(self, target: str) -> None:
        parts = [p for p in target.split("/") if p][:-1]
        for i in range(1, len(parts) + 1):
            rel = "/".join(parts[:i])
            if rel in self.dirs:
                continue
            self.dirs.add(rel)
            st = _lookup(self.layers, rel)
            ti = tarfile.TarInfo(rel)
            ti.type = tarfile.DIRTYPE
            if st is not None and stat.S_ISDIR(st.st_mode):
                ti.mode, ti.uid, ti.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
                ti.mtime = int(st.st_mtime)
            else:
                ti.mode, ti.mtime = 0o755, int(time.time())
            self.tar.addfile(ti)

    def path(self, src: Path, target: str) -> None:
        rel = target.strip("/")
        if not rel:
            raise BuildError(f"cannot copy {src.name} over the root directory")
        self.parents(rel)
        st = src.lstat()
        ti = tarfile.TarInfo(rel)
        ti.mode, ti.mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
        ti.uid, ti.gid = self.owner
        if stat.S_ISLNK(st.st_mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(src)
            self.tar.addfile(ti)
        elif stat.S_ISDIR(st.st_mode):
            ti.type = tarfile.DIRTYPE
            self.dirs.add(rel)
            self.tar.addfile(ti)
        elif stat.S_ISREG(st.st_mode):
            with open(src, "rb") as f:
                ti.size = os.fstat(f.fileno()).st_size
                self.tar.addfile(ti, f)
        # fifos, sockets and devices in a context are skipped, as Docker does

    def tree(self, src: Path, dest: str) -> None:
        """The *contents* of directory `src` into `dest` (Docker's COPY dir/ semantics)."""
        if dest.strip("/"):
            self.path(src, dest)
        for root, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if not self.ignore(Path(root) / d))
            for name in dirs + sorted(files):
                p = Path(root) / name
                if not self.ignore(p):
                    self.path(p, os.path.join(dest, str(p.relative_to(src))))

    def archive(self, src: Path, dest: str) -> None:
        """ADD of a local tar: its entries go under `dest`, names checked like any layer's."""
        from minirun.images import tarsafe

        data = tempfile.TemporaryFile()  # noqa: SIM115
        with open(src, "rb") as raw, data:
            chunks, _, _ = tarsafe._open_stream(raw, str(src))
            total = 0
            for chunk in chunks:
                total += len(chunk)
                if total > tarsafe.DEFAULT_MAX_TOTAL_SIZE:
                    raise BuildError(f"ADD {src.name}: more than "
                                     f"{tarsafe.DEFAULT_MAX_TOTAL_SIZE} bytes uncompressed")
                data.write(chunk)
            data.seek(0)
            self._add_tar(data, src, dest)

    def _add_tar(self, data, src: Path, dest: str) -> None:
        from minirun.images import tarsafe

        with tarfile.open(fileobj=data, mode="r:") as t:
            for m in t.getmembers():
                parts = tarsafe.clean_name(m.name, str(src))
                if not parts:
                    continue
                rel = os.path.join(dest, *parts).strip("/")
                self.parents(rel)
                m.name = rel
                if m.isdir():
                    self.dirs.add(rel)
                if m.islnk():
                    m.linkname = os.path.join(dest, *tarsafe.clean_name(
                        m.linkname, str(src), "hardlink target")).strip("/")
                self.tar.addfile(m, t.extractfile(m) if m.isreg() else None)
