"""The image store: content-addressed, shared layers, atomic changes.

    images/
      lock                      flock(2): exclusive around every change, shared around reads
      repositories.json         the index: name:tag -> image id, images, layers (atomic rewrite)
      blobs/sha256/<hex>        image configs, by digest (= the image id)
      layers/<diff_id hex>/     one unpacked layer, shared by every image that uses it
        diff/                   the files (an overlayfs lowerdir)
        layer.json              size, compression seen, whiteouts
        owners.json             imported by a user (rootless): the owners tar asked for, unapplied
        tar-split               the layer's tar minus file contents: `image save` rebuilds it
      l/<16 hex>                symlink to ../layers/<hex>/diff: short names for lowerdir=
      tmp/                      staging: every change is built here and rename(2)d into place

An image *is* its config (the OCI image config JSON); its id is that JSON's sha256, the way
Docker names images. The config lists its layers by diff_id (sha256 of the uncompressed tar),
so two images built from the same tar share one unpacked copy, whether it came from a tarball,
an OCI layout, a docker-archive, a commit or a build step.

Crash safety: a layer or blob is renamed into place before the index names it, and removed only
after the index stops naming it, so a crash leaves at worst an unreferenced directory, never a
half image. `gc()` sweeps such leftovers. See docs/images.md.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import re
import stat
from pathlib import Path

# no json or contextlib at import: `run` reads the index and one config blob (lean.loads, json's
# C scanner) and needs lean's contextmanager and suppress; the writers import json themselves
from minirun import faults, lean, procfs
from minirun.errors import ImageFormatError, ImageNotFound, UsageError, storage_errors
from minirun.images.reference import parse_reference
from minirun.observe import events
from minirun.records import field, record
from minirun.storage import rmtree

TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as _dt

# tarsafe (tarfile, lzma, bz2) is imported only by the verbs that unpack: `run` just reads the
# index, and every millisecond of import is paid by every `minirun run`.

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INDEX_VERSION = 1
LINK_CHARS = 16  # images/l/<this many hex digits of the diff_id>

_HEX = re.compile(r"[0-9a-f]{4,64}")
_GOARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def _now_rfc3339() -> str:
    import datetime as _dt  # here, not at module level: `run` never needs datetime

    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(s: str) -> _dt.datetime:
    import datetime as _dt

    try:
        t = _dt.datetime.fromisoformat(s)
    except (TypeError, ValueError):
        return _dt.datetime.min.replace(tzinfo=_dt.UTC)
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def _writes(what: str):
    """A store method that writes: a full or read-only data root becomes one StorageError line
    (what the method staged is removed by its own `finally`/`except` first)."""
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            with storage_errors(f"cannot {what} the image store {self.root}"):
                return method(self, *args, **kwargs)
        return wrapper
    return decorate


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes, tmpdir: Path) -> None:
    """Write temp, fsync, rename, fsync the directory: readers see old or new, never half."""
    import tempfile  # not at module level: `run` never needs it
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.{os.getpid()}.", dir=tmpdir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with lean.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@record
class Image:
    id: str  # 64 hex: sha256 of the config JSON
    names: list[str]  # "busybox:latest"
    layers: list[Path]  # unpacked layer dirs, lowest first (overlay lowerdirs are given top first)
    config: dict  # the OCI config's "config": Env, Cmd, Entrypoint, WorkingDir, User, Labels...
    created: str  # RFC 3339
    size: int  # bytes unpacked
    diff_ids: list[str]
    raw: dict = field(default_factory=dict, repr=False)  # the whole OCI image config
    parent: str | None = None  # the image it was made from (commit, build), if any
    intermediate: bool = False  # a build step's image: hidden from `image ls` unless -a

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def lowerdir(self) -> str:
        """The overlay `lowerdir=` value: the layers top first, by their short links in
        images/l/ where they exist (a mount's options must fit in one page: ~37 layers by full
        path under /var/lib/minirun, ~90 by link)."""
        paths = []
        for p in reversed(self.layers):
            link = p.parent.parent.parent / "l" / p.parent.name[:LINK_CHARS]
            paths.append(str(link) if os.path.islink(link) else str(p))
        return ":".join(paths)

    def to_dict(self) -> dict:
        """`minirun image inspect`, shaped like Docker's so tools and habits carry over."""
        return {
            "Id": "sha256:" + self.id,
            "RepoTags": list(self.names),
            "Created": self.created,
            "Size": self.size,
            "Architecture": self.raw.get("architecture", ""),
            "Os": self.raw.get("os", ""),
            "Config": self.config,
            "RootFS": {"Type": "layers", "Layers": list(self.diff_ids)},
            "GraphDriver": {
                "Name": "overlay",
                "Data": {"LowerDirs": [str(p) for p in self.layers]},
            },
        }


class ImageStore:
    """Images under `data_root / "images"`. Safe for concurrent use by threads and processes."""

    def __init__(self, data_root: Path | str):
        self.root = Path(data_root) / "images"
        self.blobs = self.root / "blobs" / "sha256"
        self.layers_dir = self.root / "layers"
        self.links = self.root / "l"  # short names of layers' diff dirs (Image.lowerdir())
        self.tmp = self.root / "tmp"
        self.index_path = self.root / "repositories.json"
        self.lock_path = self.root / "lock"

    # --- plumbing ---------------------------------------------------------------------------

    def _event(self, action: str, image_id: str, name: str) -> None:
        """One `minirun events` line (observe/events.py), Docker's way: the image id, its name."""
        events.emit(self.root.parent, "image", action, "sha256:" + image_id.removeprefix("sha256:"),
                    {"name": name} if name else None)

    def _ensure(self) -> None:
        for d in (self.blobs, self.layers_dir, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    @lean.contextmanager
    def _locked(self, exclusive: bool = True):
        if exclusive:
            self._ensure()
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        else:
            try:
                fd = os.open(self.lock_path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:  # no store yet: nothing to read, nothing to lock
                yield
                return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def _read_index(self) -> dict:
        try:
            data = lean.loads(self.index_path.read_bytes())
        except FileNotFoundError:
            data = {}
        except ValueError as e:
            raise ImageFormatError(f"{self.index_path}: corrupt index: {e}") from None
        data.setdefault("version", INDEX_VERSION)
        for key in ("repositories", "images", "layers"):
            data.setdefault(key, {})
        return data

    def _write_index(self, index: dict) -> None:
        import json  # writers and readers off the run path (see the imports)
        data = json.dumps(index, indent=1, sort_keys=True).encode() + b"\n"
        _write_atomic(self.index_path, data, self.tmp)

    def _stage(self, kind: str) -> Path:
        """A staging directory in tmp/, named after its owner (pid and start time): the journal
        gc() reads to release the staging of a process that died."""
        import tempfile  # not at module level: `run` never needs it

        pid = os.getpid()
        stage = Path(tempfile.mkdtemp(prefix=f"{kind}-{pid}-{procfs.start_time(pid)}-", dir=self.tmp))
        if kind != "trash":
            faults.point("image:staged")
        return stage

    def _discard(self, path: Path) -> None:
        """Make `path` vanish at once (rename into tmp/), then delete it at leisure."""
        try:
            trash = self._stage("trash")
        except OSError:                  # no room even for a directory: delete it in place
            with lean.suppress(OSError):
                rmtree(path)
            with lean.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(path)
            return
        try:
            os.rename(path, trash / "x")
        except FileNotFoundError:
            pass
        rmtree(trash)           # storage.rmtree: read-only directories of ours too (rootless)

    def _link(self, hexid: str) -> Path:
        """l/<first 16 hex> -> ../layers/<hex>/diff: a short name for the overlay lowerdir
        option, which must fit in one page with every layer of the image (Docker's overlay2
        does the same). Returns the link, for the caller's undo list."""
        self.links.mkdir(exist_ok=True)
        link = self.links / hexid[:LINK_CHARS]
        with lean.suppress(FileNotFoundError):
            os.unlink(link)
        os.symlink(f"../layers/{hexid}/diff", link)
        return link

    @staticmethod
    def layer_owners(layer: Path) -> dict[str, list[int]]:
        """path in the layer -> [uid, gid] its tar asked for, where an import as a user who is
        not root could not chown (tarsafe.py); {} for a layer unpacked by root."""
        try:
            return lean.loads((layer.parent / "owners.json").read_text())
        except FileNotFoundError:
            return {}

    def layer_path(self, diff_id: str) -> Path:
        return self.layers_dir / diff_id.removeprefix("sha256:") / "diff"

    def _image(self, image_id: str, index: dict) -> Image:
        try:
            raw_bytes = (self.blobs / image_id).read_bytes()
        except FileNotFoundError:
            raise ImageNotFound(f"no such image: {image_id[:12]} (config blob missing)") from None
        raw = lean.loads(raw_bytes)
        diff_ids = list(raw.get("rootfs", {}).get("diff_ids", []))
        names = sorted(n for n, i in index["repositories"].items() if i == image_id)
        return Image(
            id=image_id,
            names=names,
            layers=[self.layer_path(d) for d in diff_ids],
            config=raw.get("config") or {},  # a scratch image's config may be null
            created=raw.get("created", ""),
            size=index["images"].get(image_id, {}).get("size", 0),
            diff_ids=diff_ids,
            raw=raw,
            parent=index["images"].get(image_id, {}).get("parent"),
            intermediate=bool(index["images"].get(image_id, {}).get("intermediate")),
        )

    def _resolve(self, ref: str, index: dict) -> tuple[str, str | None]:
        """(image id, the name:tag if `ref` named a tag). Names win over id prefixes, as in
        Docker."""
        want = ref.removeprefix("sha256:")
        if not ref.startswith("sha256:"):
            try:
                tagged = parse_reference(ref)
            except UsageError:
                tagged = None
            if tagged and tagged in index["repositories"]:
                return index["repositories"][tagged], tagged
        if _HEX.fullmatch(want):
            hits = [i for i in index["images"] if i.startswith(want)]
            if len(hits) == 1:
                return hits[0], None
            if len(hits) > 1:
                raise ImageNotFound(
                    f"no such image: {ref} (ambiguous: the id prefix matches {len(hits)} images)"
                )
        raise ImageNotFound(f"no such image: {ref}")

    # --- the API ----------------------------------------------------------------------------

    def get(self, ref: str) -> Image:
        with self._locked(exclusive=False):
            index = self._read_index()
            image_id, _ = self._resolve(ref, index)
            return self._image(image_id, index)

    def list(self) -> list[Image]:
        with self._locked(exclusive=False):
            index = self._read_index()
            images = [self._image(i, index) for i in index["images"]]
        images.sort(key=lambda im: im.id)
        images.sort(key=lambda im: _parse_time(im.created), reverse=True)
        return images

    @_writes("import into")
    def import_tarball(
        self,
        source,
        name: str,
        *,
        config: dict | None = None,
        max_entry_size: int | None = None,
        max_total_size: int | None = None,
        progress=None,
    ) -> Image:
        """Import a root filesystem tar (plain, gzip, xz, bzip2, zstd) as a one-layer image.

        `source` is a path or a binary file object (a pipe works: the stream is read once).
        `config` entries override the defaults (Env PATH, Cmd ["sh"]), like `docker import -c`.
        `progress("bytes", done=, total=)` is called as the input is read (total: None for a
        stream of unknown length).
        """
        tagged = parse_reference(name)
        self._ensure()
        stage = self._stage("import")
        try:
            with self._open_source(source) as f:
                seen = self._import_seen(f)
                diff_id = seen and self._stat_cache_get(seen)
                if not diff_id:
                    if progress is not None:
                        f = ReadProgress(f, progress)
                    res = self.stage_layer(f, stage, max_entry_size=max_entry_size,
                                           max_total_size=max_total_size)
                    diff_id = res.diff_id
                    if seen:
                        self._stat_cache_put(seen, diff_id)
            now = _now_rfc3339()
            image_config = {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["sh"]}
            image_config.update(config or {})
            doc = {
                "created": now,
                "architecture": _GOARCH.get(os.uname().machine, os.uname().machine),
                "os": "linux",
                "config": image_config,
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [
                    {
                        "created": now,
                        "created_by": "minirun image import",
                        "comment": f"imported from {self._describe(source)}",
                    }
                ],
            }
            try:
                image = self.commit_image(config_json(doc), [tagged], stage)
            except MissingLayer:  # the cached layer was removed meanwhile: unpack it after all
                with self._open_source(source) as f:
                    self.stage_layer(f, stage, max_entry_size=max_entry_size,
                                     max_total_size=max_total_size)
                image = self.commit_image(config_json(doc), [tagged], stage)
        finally:
            rmtree(stage)
        self._event("import", image.id, tagged)
        return image

    # Importing the same tarball again: a file whose (device, inode, size, mtime, ctime) are
    # unchanged since an import has the same contents (the stat cache of git's index, or
    # make's): its diff_id is known, and if that layer is stored nothing is read. ctime cannot
    # be set by a user (any write or utime(2) moves it), and times are in nanoseconds.
    @staticmethod
    def _import_seen(f) -> str | None:
        try:
            st = os.fstat(f.fileno())
        except (OSError, AttributeError, ValueError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"

    def _stat_cache_get(self, key: str) -> str | None:
        with self._locked(exclusive=False):
            index = self._read_index()
            diff_id = index.get("import_cache", {}).get(key)
            if diff_id and diff_id.removeprefix("sha256:") in index["layers"]:
                return diff_id
        return None

    def _stat_cache_put(self, key: str, diff_id: str) -> None:
        with self._locked():
            index = self._read_index()
            cache = index.setdefault("import_cache", {})
            cache.pop(key, None)
            cache[key] = diff_id
            while len(cache) > 64:  # the oldest entries go first
                del cache[next(iter(cache))]
            self._write_index(index)

    @_writes("load into")
    def load(self, source, *, names: list[str] | None = None, progress=None,
             max_entry_size: int | None = None, max_total_size: int | None = None) -> list[Image]:
        """`docker load`: an OCI image layout or a docker-archive, as a directory, a tar file
        (any compression) or a stream. Every blob is checked against its digest and size, and
        every layer against the config's diff_id; any mismatch is an ImageFormatError and
        nothing of the load stays. Layers already in the store are not read again.

        `names` adds names (to every image loaded). `progress(event, **info)` is called with
        ("layer", index=, total=, diff_id=, cached=) and ("image", image=) as the load goes.
        """
        from minirun.images import archive

        extra = [parse_reference(n) for n in names or []]
        self._ensure()
        loaded = []
        stage = self._stage("load")
        try:
            arch = _GOARCH.get(os.uname().machine, os.uname().machine)
            with archive.open_tree(source, self.tmp) as tree:
                for ref in archive.read_images(tree, arch):
                    def unpack(i, layer, ref=ref, tree=tree):
                        what = f"layer {i + 1}/{len(ref.layers)} ({layer.path})"
                        with tree.open(layer.path) as f:
                            reader = archive.CountingReader(
                                f if progress is None else ReadProgress(f, progress, layer.size),
                                layer.size, what)
                            res = self.stage_layer(reader, stage, what=what,
                                                   max_entry_size=max_entry_size,
                                                   max_total_size=max_total_size)
                        if layer.digest is not None and (res.digest != layer.digest
                                                         or reader.count != layer.size):
                            raise ImageFormatError(
                                f"{what}: digest mismatch (expected {layer.digest} of "
                                f"{layer.size} bytes, got {res.digest} of {reader.count})")
                        if res.diff_id != layer.diff_id:
                            raise ImageFormatError(
                                f"{what}: diff_id mismatch (the config says {layer.diff_id}, "
                                f"the layer is {res.diff_id})")

                    wanted = list(dict.fromkeys(ref.names + extra))
                    img = self._add(ref.config, ref.layers, wanted, stage, unpack, progress)
                    img.names = wanted  # what this load named (the image may have more names)
                    loaded.append(img)
                    self._event("load", img.id, ",".join(wanted))
                    if progress:
                        progress("image", image=img)
        finally:
            rmtree(stage)
        return loaded

    def _add(self, config_blob, layers, names, stage, unpack, progress, extra=None) -> Image:
        """Unpack what the store lacks (unpack(i, layer) stages layer i), then commit; if a
        layer vanished meanwhile (a concurrent rm), unpack it too and commit again."""
        seen = set()
        for i, layer in enumerate(layers):
            cached = layer.diff_id in seen or self.has_layer(layer.diff_id)
            if progress:
                progress("layer", index=i, total=len(layers), diff_id=layer.diff_id,
                         cached=cached)
            if not cached:
                unpack(i, layer)
            seen.add(layer.diff_id)
        for _ in range(3):
            try:
                return self.commit_image(config_blob, names, stage, extra=extra)
            except MissingLayer as e:
                for i, layer in enumerate(layers):
                    if layer.diff_id == e.diff_id:
                        unpack(i, layer)
                        break
                else:
                    raise ImageFormatError(f"layer {e.diff_id} is not in the image") from None
        raise ImageFormatError("layers keep disappearing while loading: retry")

    @_writes("write to")
    def derive(self, base: Image | None, *, names: list[str] | tuple = (),
               config: dict | None = None, history: dict | None = None, write_layer=None,
               extra: dict | None = None) -> Image:
        """A new image on top of `base` (None: from scratch): `config` replaces the config
        object if given, `write_layer(fileobj)` (if given) writes a layer tar that goes on top,
        `history` is appended (marked empty_layer when there is no layer). This is `commit`
        and each step of `build`; the new image records `base` as its parent."""
        import json  # writers and readers off the run path (see the imports)
        self._ensure()
        stage = self._stage("derive")
        try:
            raw = json.loads(json.dumps(base.raw)) if base is not None else {
                "architecture": _GOARCH.get(os.uname().machine, os.uname().machine),
                "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
            if config is not None:
                raw["config"] = config
            now = _now_rfc3339()
            raw["created"] = now
            step = dict(history or {}, created=now)
            if write_layer is not None:
                tar_path = stage / "layer.tar"
                with open(tar_path, "wb") as f:
                    write_layer(f)
                with open(tar_path, "rb") as f:
                    res = self.stage_layer(f, stage, what="new layer", allow_devices=True)
                tar_path.unlink()
                raw.setdefault("rootfs", {"type": "layers"}).setdefault("diff_ids", [])
                raw["rootfs"]["diff_ids"].append(res.diff_id)
            else:
                step["empty_layer"] = True
            raw.setdefault("history", []).append(step)
            extra = dict(extra or {})
            if base is not None:
                extra["parent"] = base.id
            return self.commit_image(config_json(raw), list(names), stage, extra=extra)
        finally:
            rmtree(stage)

    def cache_get(self, key: str) -> Image | None:
        """The image a build step with this cache key made, if it is still in the store."""
        with self._locked(exclusive=False):
            index = self._read_index()
            image_id = index.get("build_cache", {}).get(key)
            if image_id is None or image_id not in index["images"]:
                return None
            return self._image(image_id, index)

    def cache_put(self, key: str, image_id: str) -> None:
        with self._locked():
            index = self._read_index()
            cache = index.setdefault("build_cache", {})
            # entries of removed images go as new ones come
            for k in [k for k, v in cache.items() if v not in index["images"]]:
                del cache[k]
            cache[key] = image_id
            self._write_index(index)

    def disk_usage(self) -> dict:
        """What the images take on disk, each shared layer counted once (`image df`):
        {"layers": n, "layers_size": bytes, "images": [{"id", "names", "size", "unique",
        "shared"}], "images_size": the sum of image sizes (shared layers counted per image)}."""
        with self._locked(exclusive=False):
            index = self._read_index()
            users: dict[str, int] = {}
            per_image = {}
            for image_id in index["images"]:
                ids = list(dict.fromkeys(d.removeprefix("sha256:") for d in self._diff_ids(image_id)))
                per_image[image_id] = ids
                for d in ids:
                    users[d] = users.get(d, 0) + 1
            size = {h: m.get("size", 0) for h, m in index["layers"].items()}
            images = []
            for image_id, ids in per_image.items():
                unique = sum(size.get(d, 0) for d in ids if users[d] == 1)
                shared = sum(size.get(d, 0) for d in ids if users[d] > 1)
                names = sorted(n for n, i in index["repositories"].items() if i == image_id)
                images.append({"id": image_id, "names": names, "size": unique + shared,
                               "unique": unique, "shared": shared})
        return {"layers": len(size), "layers_size": sum(size.values()), "images": images,
                "images_size": sum(i["size"] for i in images)}

    # --- building blocks for every importer (load, commit, build) -----------------------------

    def has_layer(self, diff_id: str) -> bool:
        """Whether the store holds this layer (unpacked); a cheap check before unpacking."""
        hexid = diff_id.removeprefix("sha256:")
        with self._locked(exclusive=False):
            return hexid in self._read_index()["layers"] and (self.layers_dir / hexid).is_dir()

    def stage_layer(self, fileobj, stage: Path, *, what: str = "layer",
                    max_entry_size: int | None = None, max_total_size: int | None = None,
                    allow_devices: bool = False):
        """Unpack one layer tar (any compression) into `stage/<diff_id hex>/` (diff/,
        tar-split.gz, layer.json), ready for commit_image(). Returns tarsafe's ExtractResult;
        the caller checks diff_id and digest against what the image says."""
        import json  # writers and readers off the run path (see the imports)
        import tempfile  # not at module level: `run` never needs it

        from minirun.images import tarsafe
        work = Path(tempfile.mkdtemp(prefix="layer-", dir=stage))
        (work / "diff").mkdir()
        if faults.armed() == "image:unpacking":
            fileobj = _DieAfter(fileobj, 256 << 10)
        with open(work / "tar-split", "wb") as split:
            res = tarsafe.extract_layer(
                fileobj, work / "diff", what=what, split_to=split, allow_devices=allow_devices,
                max_entry_size=max_entry_size or tarsafe.DEFAULT_MAX_ENTRY_SIZE,
                max_total_size=max_total_size or tarsafe.DEFAULT_MAX_TOTAL_SIZE,
            )
        meta = {
            "diff_id": res.diff_id,
            "size": res.size,
            "tar_size": res.tar_size,
            "compression": res.compression,
            "digest": res.digest,
            "entries": res.entries,
            "whiteouts": res.whiteouts,
            "opaque": res.opaque,
            "reproducible": res.reproducible,
        }
        (work / "layer.json").write_text(json.dumps(meta, indent=1) + "\n")
        if res.owners:        # not root: the owners the tar asked for and we could not give
            (work / "owners.json").write_text(json.dumps(res.owners, sort_keys=True) + "\n")
        dst = stage / res.diff_id.removeprefix("sha256:")
        if dst.exists():  # the same layer twice in one image: one copy is enough
            rmtree(work)
        else:
            os.rename(work, dst)
        faults.point("image:unpacked")
        return res

    def commit_image(self, config_blob: bytes, names: list[str], stage: Path | None = None,
                     *, extra: dict | None = None) -> Image:
        """Make an image visible: its layers (already stored, or staged by stage_layer() in
        `stage`), its config blob, its names, in one index rewrite under the lock.

        Raises MissingLayer if a layer is neither stored nor staged (e.g. `rm` removed it
        since has_layer() said yes): the caller unpacks it and calls again."""
        import hashlib  # noqa: PLC0415 — OpenSSL costs 2 ms to load; only writers need it
        import json  # writers and readers off the run path (see the imports)

        image_id = hashlib.sha256(config_blob).hexdigest()
        try:
            doc = json.loads(config_blob)
            diff_ids = [d.removeprefix("sha256:") for d in doc["rootfs"]["diff_ids"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ImageFormatError("image config: no rootfs.diff_ids list") from None
        if not all(re.fullmatch(r"[0-9a-f]{64}", d) for d in diff_ids):
            raise ImageFormatError("image config: a diff_id is not a sha256 digest")
        tagged = [parse_reference(n) for n in names]
        self._ensure()
        with self._locked():
            index = self._read_index()
            added: list[Path] = []
            try:
                sizes = {}
                for hexid in dict.fromkeys(diff_ids):
                    dst = self.layers_dir / hexid
                    if hexid in index["layers"] and dst.is_dir():
                        sizes[hexid] = index["layers"][hexid]["size"]
                        if not os.path.islink(self.links / hexid[:LINK_CHARS]):
                            self._link(hexid)  # a layer stored before links existed
                        continue
                    staged = stage / hexid if stage is not None else None
                    if staged is None or not staged.is_dir():
                        raise MissingLayer("sha256:" + hexid)
                    if dst.exists():  # left by a crash before the index named it
                        self._discard(dst)
                    os.rename(staged, dst)
                    added.append(dst)
                    added.append(self._link(hexid))
                    faults.point("image:layer-stored")
                    meta = json.loads((dst / "layer.json").read_text())
                    sizes[hexid] = meta["size"]
                    index["layers"][hexid] = {"size": meta["size"]}
                blob = self.blobs / image_id
                if not blob.exists():
                    _write_atomic(blob, config_blob, self.tmp)
                    added.append(blob)
                    faults.point("image:blob-stored")
                _fsync_dir(self.blobs)
                _fsync_dir(self.layers_dir)
                entry = index["images"].setdefault(image_id, {})
                entry["size"] = sum(sizes.values())
                entry.update(extra or {})
                for t in tagged:
                    index["repositories"][t] = image_id
                self._write_index(index)
                faults.point("image:indexed")
            except BaseException:
                for p in added:  # undo: nothing of a failed import stays visible
                    self._discard(p)
                raise
            return self._image(image_id, index)

    @_writes("update")
    def remove(self, ref: str) -> list[str]:
        """`docker rmi`: a name untags (and deletes the image when no name is left); an id
        deletes the image and all its names. Layers no remaining image uses are deleted.
        Returns what went: the names untagged, then "sha256:<id>" if the image was deleted."""
        with self._locked():
            index = self._read_index()
            image_id, tagged = self._resolve(ref, index)
            removed: list[str] = []
            names = (
                [tagged]
                if tagged
                else sorted(n for n, i in index["repositories"].items() if i == image_id)
            )
            for n in names:
                del index["repositories"][n]
                removed.append(n)
            if image_id in index["repositories"].values():
                self._write_index(index)
                for n in removed:
                    self._event("untag", image_id, n)
                return removed
            diff_ids = self._image(image_id, index).diff_ids
            del index["images"][image_id]
            removed.append("sha256:" + image_id)
            still_used = {d for i in index["images"] for d in self._diff_ids(i)}
            gone = [d for d in diff_ids if d not in still_used]
            for d in gone:
                index["layers"].pop(d.removeprefix("sha256:"), None)
            self._write_index(index)
            # The index no longer names them: a crash from here on leaves only garbage.
            self._discard(self.blobs / image_id)
            for d in gone:
                self._discard(self.layers_dir / d.removeprefix("sha256:"))
                with lean.suppress(FileNotFoundError):
                    os.unlink(self.links / d.removeprefix("sha256:")[:LINK_CHARS])
        for n in removed[:-1]:
            self._event("untag", image_id, n)
        self._event("delete", image_id, removed[-2] if len(removed) > 1 else "")
        return removed

    @_writes("update")
    def tag(self, ref: str, name: str) -> str:
        """`docker tag`: give the image `ref` the name `name` (moved from any other image).
        Returns the full name:tag."""
        tagged = parse_reference(name)
        with self._locked():
            index = self._read_index()
            image_id, _ = self._resolve(ref, index)
            index["repositories"][tagged] = image_id
            self._write_index(index)
        self._event("tag", image_id, tagged)
        return tagged

    def history(self, ref: str) -> list[dict]:
        """The config's history, newest first, each step with the size of the layer it made
        (0 for steps that only changed the config), as `docker history` shows it."""
        import json  # writers and readers off the run path (see the imports)
        img = self.get(ref)
        sizes = []
        for path in img.layers:
            try:
                sizes.append(json.loads((path.parent / "layer.json").read_text())["size"])
            except (OSError, ValueError, KeyError):
                sizes.append(0)
        steps = img.raw.get("history") or []
        rows, layer = [], 0
        for step in steps if isinstance(steps, list) else []:
            if not isinstance(step, dict):
                continue
            empty = bool(step.get("empty_layer"))
            size = 0 if empty or layer >= len(sizes) else sizes[layer]
            diff = None if empty or layer >= len(img.diff_ids) else img.diff_ids[layer]
            layer += 0 if empty else 1
            rows.append({"created": step.get("created", ""), "created_by":
                         step.get("created_by", ""), "size": size, "comment":
                         step.get("comment", ""), "layer": diff})
        rows.reverse()
        if rows:
            rows[0]["id"] = img.id
        return rows

    @_writes("update")
    def prune(self, keep: set[str] | frozenset = frozenset(), all: bool = False) -> list[str]:
        """`docker image prune`: remove images without a name (with all=True: every image)
        that no container uses (`keep`, image ids) and that are not the base of a named image
        kept (a build's intermediate images, recorded as "parent"). Returns the ids removed."""
        with self._locked(exclusive=False):
            index = self._read_index()
            named = set(index["repositories"].values())
        keep = set(keep)
        if not all:
            keep |= named
        # the ancestors of what stays stay too: they are its build cache
        for image_id in list(keep):
            parent = index["images"].get(image_id, {}).get("parent")
            seen = 0
            while parent and seen < 1000:
                keep.add(parent)
                parent = index["images"].get(parent, {}).get("parent")
                seen += 1
        removed = []
        for image_id in index["images"]:
            if image_id not in keep:
                with lean.suppress(ImageNotFound):
                    self.remove(image_id)
                    removed.append(image_id)
        return removed

    def _diff_ids(self, image_id: str) -> list[str]:
        import json  # writers and readers off the run path (see the imports)
        raw = json.loads((self.blobs / image_id).read_bytes())
        return list(raw.get("rootfs", {}).get("diff_ids", []))

    def gc(self) -> list[str]:
        """Delete what a crash can leave behind: staging dirs and temp files of dead processes
        (their names carry the owner's pid, and start time: _stage), layers and config blobs
        the index does not name, links to layers that are gone. One line per thing removed;
        a second run finds nothing. Safe beside running commands: it holds the store's lock,
        under which every layer and blob is renamed in and named by the index."""
        removed: list[str] = []
        if not self.index_path.exists() and not self.tmp.exists():
            return removed
        if os.statvfs(self.root).f_flag & os.ST_RDONLY:
            return removed      # a read-only store: nothing can be released (nor was half-written since)
        with self._locked():
            index = self._read_index()
            for entry in sorted(self.tmp.iterdir()):
                m = re.match(r"[a-z]+-(\d+)-(?:(\d+)-)?", entry.name) or re.search(r"\.(\d+)\.", entry.name)
                if m is None:
                    continue
                pid = int(m.group(1))
                start = m.group(2) if m.re.groups > 1 else None
                if procfs.is_alive(pid, int(start)) if start else _pid_alive(pid):
                    continue
                (rmtree if entry.is_dir() and not entry.is_symlink() else os.unlink)(entry)
                removed.append(f"image staging {entry.name} (pid {pid} is gone)")
            for entry in sorted(self.layers_dir.iterdir()):
                if entry.name not in index["layers"]:
                    self._discard(entry)
                    removed.append(f"layer {entry.name[:12]} (no image uses it)")
            for entry in sorted(self.links.iterdir()) if self.links.exists() else []:
                if not entry.exists():  # its layer is gone
                    entry.unlink()
                    removed.append(f"layer link l/{entry.name} (its layer is gone)")
            for entry in sorted(self.blobs.iterdir()):
                if entry.name not in index["images"]:
                    entry.unlink()
                    removed.append(f"image config {entry.name[:12]} (no such image)")
        return removed

    # --- sources ----------------------------------------------------------------------------

    @staticmethod
    def _describe(source) -> str:
        if isinstance(source, str | os.PathLike):
            return os.fspath(source)
        return (
            getattr(source, "name", None)
            if isinstance(getattr(source, "name", None), str)
            else "a stream"
        )

    @staticmethod
    @lean.contextmanager
    def _open_source(source):
        if isinstance(source, str | os.PathLike):
            try:
                f = open(source, "rb", buffering=0)  # noqa: SIM115
            except OSError as e:
                raise UsageError(
                    f"cannot open {os.fspath(source)}: {os.strerror(e.errno)}"
                ) from None
            with f:
                yield f
        else:
            yield source


def config_json(doc: dict) -> bytes:
    """The canonical bytes of an image config we write (its sha256 is the image id)."""
    import json  # writers and readers off the run path (see the imports)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class ReadProgress:
    """A binary reader that reports how far it got: progress("bytes", done=, total=), at most
    every 4 MiB and once at the end."""

    STEP = 4 << 20

    def __init__(self, f, progress, total: int | None = None):
        self.f, self.progress, self.done, self.next = f, progress, 0, 0
        if total is None:
            try:
                st = os.fstat(f.fileno())
                total = st.st_size if st.st_size and stat.S_ISREG(st.st_mode) else None
            except (OSError, AttributeError, ValueError):
                total = None
        self.total = total

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.done += len(data)
        if self.done >= self.next or not data:
            self.next = self.done + self.STEP
            self.progress("bytes", done=self.done, total=self.total)
        return data


class _DieAfter:
    """A reader that reaches the fault point "image:unpacking" once `limit` bytes are read: a
    layer half unpacked (wrapped only when that point is armed)."""

    def __init__(self, f, limit: int):
        self.f, self.left = f, limit

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.left -= len(data)
        if self.left <= 0:
            faults.point("image:unpacking")
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def fileno(self) -> int:
        return self.f.fileno()


class MissingLayer(Exception):
    """Internal: commit_image() found a layer neither stored nor staged."""

    def __init__(self, diff_id: str):
        super().__init__(diff_id)
        self.diff_id = diff_id


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True
