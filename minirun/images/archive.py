"""Reading image archives: the OCI image layout and `docker save`'s docker-archive.

Both are a tree of files, given as a directory or as a tar of that tree:

    OCI image layout (image-spec, image-layout.md)     docker-archive (`docker save`)
      oci-layout        {"imageLayoutVersion":"1.0.0"}   manifest.json  [{"Config": "<hex>.json",
      index.json        manifests -> descriptors                         "RepoTags": ["a:b"],
      blobs/sha256/<hex>  manifests, configs, layers                     "Layers": ["<d>/layer.tar"]}]
                                                          <hex>.json, <d>/layer.tar, ...

A descriptor names a blob by digest and size; everything we read is checked against both (and a
layer's uncompressed sha256 against the config's diff_id), so a changed byte is an error, never
a different image. A path in a docker-archive manifest, and every symlink on the way to a file,
is resolved *inside* the archive (as openat2's RESOLVE_IN_ROOT would): nothing outside the tree
is ever read. Names come from the index's annotations (io.containerd.image.name, then
org.opencontainers.image.ref.name) or the docker manifest's RepoTags.

The writers (`image save`) are in minirun/images/save.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from minirun.errors import ImageFormatError, UsageError

MAX_JSON = 8 << 20  # an index, manifest or config larger than this is refused
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_SYMLINK_HOPS = 40  # as the kernel's MAXSYMLINKS

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
# layer media types -> the compression they promise (we still sniff the bytes)
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}


@dataclass
class LayerRef:
    path: str  # inside the archive
    digest: str | None  # sha256 of the blob as stored (OCI); None for docker-archive layers
    size: int | None
    diff_id: str  # from the config: sha256 of the uncompressed tar


@dataclass
class ImageRef:
    config: bytes  # verified bytes of the image config; sha256 = the image id
    layers: list[LayerRef]
    names: list[str] = field(default_factory=list)
    manifest_digest: str | None = None


# --- the tree: a directory or a tar ------------------------------------------------------------


def _clean(path: str, what: str) -> list[str]:
    if "\0" in path:
        raise ImageFormatError(f"{what}: path {path!r} has a NUL byte")
    return [p for p in path.split("/") if p not in ("", ".")]


class _Tree:
    """Files of an archive by path; symlinks resolved inside the tree, lexically."""

    what = "archive"

    def lookup(self, parts: list[str]):  # -> ("file"|"dir"|"link", payload) or None
        raise NotImplementedError

    def resolve(self, path: str) -> list[str]:
        """The path of the regular file `path` names, following symlinks without ever leaving
        the root (`..` at the root stays at the root, an absolute target starts at the root)."""
        todo = _clean(path, self.what)
        done: list[str] = []
        hops = 0
        while todo:
            name = todo.pop(0)
            if name == "..":
                if done:
                    done.pop()
                continue
            found = self.lookup([*done, name])
            if found is None:
                raise ImageFormatError(f"{self.what}: {path!r} is missing")
            kind, payload = found
            if kind == "link":
                hops += 1
                if hops > _SYMLINK_HOPS:
                    raise ImageFormatError(f"{self.what}: {path!r}: too many levels of symlinks")
                if payload.startswith("/"):
                    done = []
                todo = _clean(payload, self.what) + todo
                continue
            if todo and kind != "dir":
                raise ImageFormatError(f"{self.what}: {path!r} goes through a non-directory")
            done.append(name)
        if not done or self.lookup(done)[0] != "file":
            raise ImageFormatError(f"{self.what}: {path!r} is not a regular file")
        return done

    def open(self, path: str):  # a binary file object, positioned at 0
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        try:
            self.resolve(path)
        except ImageFormatError:
            return False
        return True

    def read_json(self, path: str, digest: str | None = None, size: int | None = None):
        with self.open(path) as f:
            data = f.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise ImageFormatError(f"{self.what}: {path} is larger than {MAX_JSON} bytes")
        if digest is not None:
            verify(data, digest, size, f"{self.what}: {path}")
        try:
            return json.loads(data), data
        except ValueError as e:
            raise ImageFormatError(f"{self.what}: {path} is not valid JSON: {e}") from None


class DirTree(_Tree):
    """A layout unpacked on disk. Every component is opened relative to its parent's fd with
    O_NOFOLLOW; a symlink is read (readlinkat) and resolved by _Tree, never by the kernel."""

    def __init__(self, root: Path):
        self.what = str(root)
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.root_fd)

    def _walk(self, parts: list[str]) -> tuple[int, list[int]]:
        fd, opened = self.root_fd, []
        for name in parts:
            fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            opened.append(fd)
        return fd, opened

    def lookup(self, parts):
        try:
            fd, opened = self._walk(parts[:-1])
        except OSError:
            return None
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                return "link", os.readlink(parts[-1], dir_fd=fd)
            if stat.S_ISDIR(st.st_mode):
                return "dir", None
            if stat.S_ISREG(st.st_mode):
                return "file", None
            return "other", None
        except OSError:
            return None
        finally:
            for o in opened:
                os.close(o)

    def open(self, path: str):
        parts = self.resolve(path)
        fd, opened = self._walk(parts[:-1])
        try:
            # O_NONBLOCK: a fifo swapped in after resolve() must not hang us; checked below
            f = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                        dir_fd=fd)
        finally:
            for o in opened:
                os.close(o)
        if not stat.S_ISREG(os.fstat(f).st_mode):
            os.close(f)
            raise ImageFormatError(f"{self.what}: {path!r} is not a regular file")
        os.set_blocking(f, True)
        return open(f, "rb", buffering=0)


class TarTree(_Tree):
    """A layout in a seekable, uncompressed tar: tarfile reads the headers (seeking over the
    data), and members are read through bounded views of the file. Nothing is extracted."""

    def __init__(self, fileobj, what: str):
        self.what = what
        self.f = fileobj
        try:
            tf = tarfile.open(fileobj=fileobj, mode="r:")
            members = tf.getmembers()
        except (tarfile.TarError, EOFError, UnicodeError, ValueError) as e:
            raise ImageFormatError(f"{what}: not a tar archive or a corrupt one ({e})") from None
        self.members: dict[tuple[str, ...], tarfile.TarInfo] = {}
        self.dirs: set[tuple[str, ...]] = {()}
        for m in members:
            parts = tuple(_clean(m.name, what))
            if ".." in parts:
                continue  # never reachable by a lexical lookup from the root: ignore
            self.members[parts] = m  # a later entry wins, as on extraction
            for i in range(len(parts)):
                self.dirs.add(parts[:i])

    def close(self) -> None:
        pass

    def lookup(self, parts):
        key = tuple(parts)
        m = self.members.get(key)
        if m is None:
            return ("dir", None) if key in self.dirs else None
        if m.issym():
            return "link", m.linkname
        if m.islnk():  # a hardlink names another member by its archive path
            target = tuple(_clean(m.linkname, self.what))
            t = self.members.get(target)
            return ("file", None) if t is not None and t.isreg() else ("other", None)
        if m.isdir():
            return "dir", None
        return ("file", None) if m.isreg() else ("other", None)

    def open(self, path: str):
        m = self.members[tuple(self.resolve(path))]
        if m.islnk():
            m = self.members[tuple(_clean(m.linkname, self.what))]
        return _Window(self.f, m.offset_data, m.size)


class _Window(io.RawIOBase):
    """Bytes [start, start+size) of a seekable file, read with pread (no shared position)."""

    def __init__(self, f, start: int, size: int):
        self.fd, self.pos, self.end = f.fileno(), start, start + size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        left = self.end - self.pos
        n = left if n is None or n < 0 else min(n, left)
        data = os.pread(self.fd, n, self.pos) if n > 0 else b""
        self.pos += len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


@contextlib.contextmanager
def open_tree(source, spool_dir: Path):
    """A _Tree for `source`: a directory, a tar file (plain; compressed or non-seekable input
    is decompressed into a spool file in `spool_dir` first), or a binary stream such as stdin."""
    spool = None
    try:
        if isinstance(source, str | os.PathLike) and os.path.isdir(source):
            tree: _Tree = DirTree(Path(source))
        else:
            if isinstance(source, str | os.PathLike):
                try:
                    f = open(source, "rb", buffering=0)  # noqa: SIM115
                except OSError as e:
                    raise UsageError(f"cannot open {os.fspath(source)}: "
                                     f"{os.strerror(e.errno or 5)}") from None
                what = os.fspath(source)
            else:
                f, what = source, "input"
            magic = _peek(f)
            if magic is not None and not _compressed(magic) and _seekable(f):
                tree = TarTree(f, what)
            else:
                spool = _spool(f, spool_dir, what)
                tree = TarTree(spool, what)
        try:
            yield tree
        finally:
            tree.close()
    finally:
        if spool is not None:
            spool.close()


def _seekable(f) -> bool:
    try:
        return f.seekable() and stat.S_ISREG(os.fstat(f.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def _peek(f) -> bytes | None:
    if not _seekable(f):
        return None
    pos = f.tell()
    data = f.read(6)
    f.seek(pos)
    return data


def _compressed(magic: bytes) -> bool:
    return magic[:2] == b"\x1f\x8b" or magic[:4] in (b"\xfd7zX", b"\x28\xb5\x2f\xfd") or \
        magic[:3] == b"BZh"


def _spool(f, spool_dir: Path, what: str):
    """Decompress (if needed) a stream into an unlinked temp file we can seek in."""
    from minirun.images import tarsafe

    chunks, _, _ = tarsafe._open_stream(f, what)
    out = open(os.open(spool_dir, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600), "w+b")  # noqa: SIM115
    try:
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out


# --- verification ------------------------------------------------------------------------------


def check_digest(digest, what: str) -> str:
    """'sha256:<64 hex>' or ImageFormatError: a digest becomes a path, so nothing else passes."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ImageFormatError(f"{what}: unsupported or malformed digest {digest!r}")
    return digest


def verify(data: bytes, digest: str, size: int | None, what: str) -> None:
    if size is not None and len(data) != size:
        raise ImageFormatError(f"{what}: size {len(data)} does not match the descriptor's {size}")
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if got != digest:
        raise ImageFormatError(f"{what}: digest mismatch (expected {digest}, got {got})")


class CountingReader(io.RawIOBase):
    """Reads a blob, refusing to go past its declared size; `count` is what was read."""

    def __init__(self, f, limit: int | None, what: str):
        self.f, self.limit, self.what, self.count = f, limit, what, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.count += len(data)
        if self.limit is not None and self.count > self.limit:
            raise ImageFormatError(f"{self.what}: blob is larger than its descriptor's "
                                   f"{self.limit} bytes")
        return data


# --- formats -----------------------------------------------------------------------------------


def detect(tree: _Tree) -> str:
    """'oci' or 'docker-archive'. A `docker save` of Docker 25+ is both; its manifest.json
    carries the tags, so docker-archive wins there."""
    if tree.exists("manifest.json"):
        return "docker-archive"
    if tree.exists("index.json"):
        return "oci"
    raise ImageFormatError(f"{tree.what}: neither an OCI image layout (index.json) nor a "
                           "docker-archive (manifest.json)")


def read_images(tree: _Tree, arch: str) -> list[ImageRef]:
    return read_docker(tree) if detect(tree) == "docker-archive" else read_oci(tree, arch)


def blob_path(digest: str, what: str) -> str:
    return "blobs/sha256/" + check_digest(digest, what).removeprefix("sha256:")


def _descriptor(d, what: str) -> tuple[str, int, str]:
    if not isinstance(d, dict):
        raise ImageFormatError(f"{what}: a descriptor is not an object")
    digest = check_digest(d.get("digest"), what)
    size = d.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageFormatError(f"{what}: descriptor {digest} has no valid size")
    media_type = d.get("mediaType", "")
    if not isinstance(media_type, str):
        raise ImageFormatError(f"{what}: descriptor {digest} has a mediaType that is not a string")
    return digest, size, media_type


def _names_from_annotations(ann: dict) -> list[str]:
    from minirun.images.reference import parse_reference

    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        ref = ann.get(key) if isinstance(ann, dict) else None
        if isinstance(ref, str) and ref:
            try:
                return [parse_reference(ref)]
            except UsageError:
                continue  # e.g. a bare tag "1.0" that is not a name: the image stays untagged
    return []


def read_oci(tree: _Tree, arch: str) -> list[ImageRef]:
    layout, _ = tree.read_json("oci-layout") if tree.exists("oci-layout") else ({}, b"")
    version = layout.get("imageLayoutVersion", "1.0.0") if isinstance(layout, dict) else None
    if not isinstance(version, str) or not version.startswith("1."):
        raise ImageFormatError(f"{tree.what}: unsupported imageLayoutVersion {version!r}")
    index, _ = tree.read_json("index.json")
    images: list[ImageRef] = []
    _walk_index(tree, index, "index.json", arch, images, depth=0, names=[])
    if not images:
        raise ImageFormatError(f"{tree.what}: index.json lists no image for linux/{arch}")
    return images


def _walk_index(tree, index, what, arch, out, depth, names) -> None:
    if depth > 4:
        raise ImageFormatError(f"{tree.what}: image indexes nested too deep")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise ImageFormatError(f"{tree.what}: {what} has no manifests list")
    for d in manifests:
        digest, size, mt = _descriptor(d, f"{tree.what}: {what}")
        platform = d.get("platform") or {}
        if not isinstance(platform, dict):
            raise ImageFormatError(f"{tree.what}: {what}: the platform of {digest[:19]} is not an object")
        if platform and (platform.get("os") not in (None, "linux")
                         or platform.get("architecture") not in (None, arch)):
            continue
        here = _names_from_annotations(d.get("annotations") or {}) or names
        doc, raw = tree.read_json(blob_path(digest, what), digest, size)
        if not isinstance(doc, dict):
            raise ImageFormatError(f"{tree.what}: {digest[:19]} (named by {what}) is not a "
                                   "JSON object: neither an image manifest nor an index")
        mt = mt or doc.get("mediaType", "")
        if mt in (MT_OCI_INDEX, MT_DOCKER_LIST) or "manifests" in doc:
            _walk_index(tree, doc, digest, arch, out, depth + 1, here)
        else:
            out.append(_read_manifest(tree, doc, digest, here))


def _read_manifest(tree, doc, digest, names) -> ImageRef:
    what = f"{tree.what}: manifest {digest[:19]}"
    if not isinstance(doc, dict) or "config" not in doc or not isinstance(doc.get("layers"), list):
        raise ImageFormatError(f"{what}: not an image manifest")
    cdigest, csize, cmt = _descriptor(doc["config"], what)
    if cmt not in ("", MT_OCI_CONFIG, MT_DOCKER_CONFIG):
        raise ImageFormatError(f"{what}: config media type {cmt!r} is not an image config")
    config, config_bytes = tree.read_json(blob_path(cdigest, what), cdigest, csize)
    diff_ids = _diff_ids(config, what)
    if len(diff_ids) != len(doc["layers"]):
        raise ImageFormatError(f"{what}: {len(doc['layers'])} layers but the config lists "
                               f"{len(diff_ids)} diff_ids")
    layers = []
    for d, diff_id in zip(doc["layers"], diff_ids, strict=True):
        ldigest, lsize, lmt = _descriptor(d, what)
        if lmt and lmt not in LAYER_TYPES:
            raise ImageFormatError(f"{what}: layer {ldigest[:19]} has unsupported media type "
                                   f"{lmt!r}")
        layers.append(LayerRef(blob_path(ldigest, what), ldigest, lsize, diff_id))
    return ImageRef(config_bytes, layers, list(names), digest)


def _diff_ids(config, what: str) -> list[str]:
    try:
        diff_ids = config["rootfs"]["diff_ids"]
        assert isinstance(diff_ids, list)
    except (KeyError, TypeError, AssertionError):
        raise ImageFormatError(f"{what}: the image config has no rootfs.diff_ids") from None
    for d in diff_ids:
        check_digest(d, f"{what}: config diff_id")
    return diff_ids


def read_docker(tree: _Tree) -> list[ImageRef]:
    from minirun.images.reference import parse_reference

    manifest, _ = tree.read_json("manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise ImageFormatError(f"{tree.what}: manifest.json is not a list of images")
    images = []
    for i, entry in enumerate(manifest):
        what = f"{tree.what}: manifest.json[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            raise ImageFormatError(f"{what}: needs Config and Layers")
        config, config_bytes = tree.read_json(entry["Config"])
        m = re.search(r"([0-9a-f]{64})(?:\.json)?$", entry["Config"])
        if m:  # the file is named by its digest: check it
            verify(config_bytes, "sha256:" + m.group(1), None, f"{what}: {entry['Config']}")
        diff_ids = _diff_ids(config, what)
        if len(diff_ids) != len(entry["Layers"]):
            raise ImageFormatError(f"{what}: {len(entry['Layers'])} layers but the config lists "
                                   f"{len(diff_ids)} diff_ids")
        layers = []
        for path, diff_id in zip(entry["Layers"], diff_ids, strict=True):
            if not isinstance(path, str) or not path:
                raise ImageFormatError(f"{what}: a layer path is not a non-empty string")
            layers.append(LayerRef(path, None, None, diff_id))
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ImageFormatError(f"{what}: RepoTags is not a list of strings")
        names = []
        for tag in tags:
            try:
                names.append(parse_reference(tag))
            except UsageError:
                raise ImageFormatError(f"{what}: invalid RepoTag {tag!r}") from None
        images.append(ImageRef(config_bytes, layers, names))
    return images
