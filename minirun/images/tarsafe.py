"""Safe extraction of an image layer (a tar stream, maybe compressed) into a directory.

A layer is untrusted input: it decides names, link targets, modes and sizes. The classic
attacks are a name that climbs out (`../../etc/passwd`), a symlink planted early so that a later
entry is written *through* it (`evil -> /etc`, then `evil/passwd`), a hardlink to a host file,
device nodes, and sheer size (a small gzip that inflates to terabytes).

The defence here is structural rather than a list of checks on strings: every entry is created
relative to a directory file descriptor, one path component at a time, with O_NOFOLLOW, so the
kernel is never asked to resolve a symlink on our behalf (see openat(2), "The dirfd argument",
and open(2), O_PATH and O_NOFOLLOW). A symlink in the layer is created as a symlink and never
walked. tarfile only parses headers (TarInfo.fromtarfile); the bytes are copied by us.

While reading we hash the uncompressed stream: its sha256 is the layer's *diff_id* (the OCI
image spec's name for it), which is how the store shares one unpacked copy between images.

Whiteouts (`.wh.NAME`, `.wh..wh..opq`, from the OCI image-layer spec) become what overlayfs
expects (Documentation/filesystems/overlayfs.rst): a 0/0 character device named NAME, and the
`trusted.overlay.opaque=y` xattr on an opaque directory (`user.overlay.opaque` when we are not
root: trusted.* needs CAP_SYS_ADMIN, and a rootless overlay is mounted with `userxattr`).

Not root (rootless), we cannot chown to the ids a tar names: the files stay ours, and the owners
the tar asked for (other than 0:0) are returned in ExtractResult.owners, for the store to keep.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import stat
import struct
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from minirun.errors import ImageFormatError, MinirunError, os_error

CHUNK = 1 << 20  # bytes per read / per decompressed piece: big enough for speed, bounded memory
GiB = 1 << 30
DEFAULT_MAX_ENTRY_SIZE = 8 * GiB
DEFAULT_MAX_TOTAL_SIZE = 64 * GiB
MAX_HEADER_READ = 16 << 20  # pax / GNU long-name payloads larger than this are refused

_O_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FD_CACHE = 256  # directory fds kept open between entries (tars are grouped by directory)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque" if os.geteuid() == 0 else "user.overlay.opaque"
# xattrs from the archive that we apply; trusted.* (overlayfs' own metadata) and SELinux
# labels are never taken from an image.
_XATTR_PREFIXES = ("user.", "security.capability")


@dataclass
class ExtractResult:
    diff_id: str  # "sha256:<hex>" of the uncompressed tar stream
    digest: str  # "sha256:<hex>" of the bytes as given (== diff_id when not compressed)
    compression: str  # "none", "gzip", "xz", "bzip2", "zstd"
    size: int  # bytes of file data written
    entries: int
    whiteouts: list[str] = field(default_factory=list)  # paths hidden by `.wh.` entries
    owners: dict[str, list[int]] = field(default_factory=dict)  # not root: path -> [uid, gid] not applied
    opaque: list[str] = field(default_factory=list)  # directories marked opaque
    tar_size: int = 0  # bytes of the uncompressed tar stream
    reproducible: bool = True  # the tar-split (if asked for) rebuilds the exact tar


# --- the byte stream: raw -> decompressed -> hashed --------------------------------------------


def _raw_chunks(fileobj, first: bytes, hasher) -> Iterator[bytes]:
    if first:
        if hasher is not None:
            hasher.update(first)
        yield first
    while True:
        data = fileobj.read(CHUNK)
        if not data:
            return
        if hasher is not None:
            hasher.update(data)
        yield data


def _gunzip(raw: Iterator[bytes], what: str) -> Iterator[bytes]:
    # wbits=31: gzip framing. Several members may follow each other (pigz, cat a.gz b.gz).
    d, done = zlib.decompressobj(31), False
    for data in raw:
        while True:
            if done:
                if not data.strip(b"\0"):
                    break
                d, done = zlib.decompressobj(31), False
            out = d.decompress(data, CHUNK)
            if out:
                yield out
            if d.eof:
                done, data = True, d.unused_data
                continue
            data = d.unconsumed_tail
            if not data:
                break
    if not done:
        out = d.flush()
        if out:
            yield out
        if not d.eof:
            raise ImageFormatError(f"{what}: truncated archive (gzip stream ends early)")


def _unlzma(raw: Iterator[bytes], what: str, make, kind: str) -> Iterator[bytes]:
    d, done = make(), False
    for data in raw:
        while True:
            if done:
                if not data.strip(b"\0"):
                    break
                d, done = make(), False
            out = d.decompress(data, CHUNK)
            data = b""
            if out:
                yield out
            if d.eof:
                done, data = True, d.unused_data
                continue
            if d.needs_input:
                break
    if not done:
        raise ImageFormatError(f"{what}: truncated archive ({kind} stream ends early)")


def _unzstd(fileobj, first: bytes, hasher, what: str) -> Iterator[bytes]:
    try:
        import zstandard
    except ImportError:
        raise ImageFormatError("zstd compression needs the zstandard package") from None

    class _Prefixed:  # zstandard reads from a file object; give it the sniffed bytes first
        def __init__(self):
            self.raw = _raw_chunks(fileobj, first, hasher)
            self.buf = b""

        def read(self, n=-1):
            while n < 0 or len(self.buf) < n:
                try:
                    self.buf += next(self.raw)
                except StopIteration:
                    break
            out, self.buf = (self.buf, b"") if n < 0 else (self.buf[:n], self.buf[n:])
            return out

    reader = zstandard.ZstdDecompressor().stream_reader(_Prefixed(), read_across_frames=True)
    try:
        while True:
            out = reader.read(CHUNK)
            if not out:
                return
            yield out
    except zstandard.ZstdError as e:
        raise ImageFormatError(f"{what}: corrupt zstd data: {e}") from None


_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def _open_stream(fileobj, what: str):
    """Sniff the compression from magic bytes; return (chunks, kind, raw hasher or None)."""
    first = b""
    while len(first) < 6:
        data = fileobj.read(CHUNK)
        if not data:
            break
        first += data
    kind = next((k for magic, k in _MAGIC if first.startswith(magic)), "none")
    if kind == "none":
        return _raw_chunks(fileobj, first, None), kind, None
    hasher = hashlib.sha256()
    if kind == "zstd":
        return _unzstd(fileobj, first, hasher, what), kind, hasher
    raw = _raw_chunks(fileobj, first, hasher)
    if kind == "gzip":
        return _gunzip(raw, what), kind, hasher
    if kind == "xz":
        return _unlzma(raw, what, lzma.LZMADecompressor, "xz"), kind, hasher
    return _unlzma(raw, what, bz2.BZ2Decompressor, "bzip2"), kind, hasher


class _Split:
    """The layer's tar, minus its file contents ("tar-split", as Docker calls the idea).

    Every byte of the uncompressed stream is recorded here except the data of regular files,
    which is recorded as a reference (path in the layer, size). With the unpacked files this
    is enough to rebuild the exact original tar, so `image save` reproduces the layer's diff_id
    (and the image id) while the store keeps one unpacked copy and a few kB of headers.

    Records, zlib-compressed: b"R" <u32 n> <n bytes>  |  b"F" <u64 size> <u16 n> <path>.
    """

    def __init__(self, fileobj):
        self.out = fileobj
        self.z = zlib.compressobj(1)
        self.raw = bytearray()

    def bytes(self, data) -> None:
        self.raw += data
        if len(self.raw) >= CHUNK:
            self._flush_raw()

    def _flush_raw(self) -> None:
        if self.raw:
            self.out.write(self.z.compress(b"R" + struct.pack("<I", len(self.raw)) + self.raw))
            self.raw = bytearray()

    def file(self, path: str, size: int) -> None:
        self._flush_raw()
        name = path.encode("utf-8", "surrogateescape")
        self.out.write(self.z.compress(b"F" + struct.pack("<QH", size, len(name)) + name))

    def close(self) -> None:
        self._flush_raw()
        self.out.write(self.z.flush())


def _split_records(fileobj) -> Iterator[tuple[bytes, int]]:
    """(raw bytes, 0) or (path, size) records of a tar-split file, decompressed as we go."""
    d, buf, eof = zlib.decompressobj(), b"", False

    def need(n: int) -> bytes:
        nonlocal buf, eof
        while len(buf) < n and not eof:
            data = fileobj.read(CHUNK)
            if data:
                buf += d.decompress(data)
            else:
                buf += d.flush()
                eof = True
        if len(buf) < n:
            raise ImageFormatError("layer metadata (tar-split) is truncated")
        out, buf = buf[:n], buf[n:]
        return out

    while True:
        try:
            kind = need(1)
        except ImageFormatError:
            if not buf:
                return
            raise
        if kind == b"R":
            (n,) = struct.unpack("<I", need(4))
            yield need(n), 0
        elif kind == b"F":
            size, n = struct.unpack("<QH", need(10))
            yield need(n), size
        else:
            raise ImageFormatError("layer metadata (tar-split) is corrupt")


def reassemble(diff_dir: Path, split_file, write) -> None:
    """Rebuild a layer's original uncompressed tar from its unpacked files and its tar-split
    record, calling `write(bytes)` piece by piece. Files are opened without following any
    symlink. The caller checks the result's sha256 against the diff_id."""
    root = os.open(diff_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for data, size in _split_records(split_file):
            if not size:
                write(data)
                continue
            parts = data.decode("utf-8", "surrogateescape").split("/")
            fd, opened = root, []
            try:
                for name in parts[:-1]:
                    fd = os.open(name, _O_DIR, dir_fd=fd)
                    opened.append(fd)
                f = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            finally:
                for o in opened:
                    os.close(o)
            try:
                left = size
                while left:
                    chunk = os.read(f, min(CHUNK, left))
                    if not chunk:
                        raise ImageFormatError(f"layer file {data.decode(errors='replace')!r} "
                                               "is shorter than when it was unpacked")
                    write(chunk)
                    left -= len(chunk)
            finally:
                os.close(f)
    finally:
        os.close(root)


class _Stream:
    """The uncompressed tar bytes: hashed once as produced, read() for headers, copy_to() for data.

    It also plays the part of the TarFile object that TarInfo.fromtarfile() expects (fileobj,
    offset, encoding, errors, pax_headers), so tarfile parses headers and nothing else.
    """

    encoding = "utf-8"
    errors = "surrogateescape"

    def __init__(self, chunks: Iterator[bytes], what: str, max_total: int):
        self._chunks = chunks
        self._buf = b""
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        self._what = what
        self._max_total = max_total
        self.hash = hashlib.sha256()
        self.fileobj = self
        self.offset = 0
        self.pax_headers: dict[str, str] = {}
        self.split: _Split | None = None  # records every byte but file data (see _Split)

    def _fill(self) -> bool:
        try:
            data = next(self._chunks)
        except StopIteration:
            return False
        except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as e:
            raise ImageFormatError(f"{self._what}: corrupt compressed data: {e}") from None
        self.hash.update(data)
        self._base += len(self._buf)
        self._buf, self._pos = data, 0
        if self._base + len(data) > self._max_total:
            raise ImageFormatError(
                f"{self._what}: archive is larger than {self._max_total} bytes uncompressed"
            )
        return True

    def tell(self) -> int:
        return self._base + self._pos

    def read(self, n: int) -> bytes:
        if n > MAX_HEADER_READ:
            raise ImageFormatError(f"{self._what}: header of {n} bytes is too large")
        end = self._pos + n
        if end <= len(self._buf):
            out = self._buf[self._pos : end]
            self._pos = end
        else:
            parts = [self._buf[self._pos :]]
            need = n - len(parts[0])
            self._pos = len(self._buf)
            while need > 0 and self._fill():
                take = self._buf[:need]
                parts.append(take)
                self._pos = len(take)
                need -= len(take)
            out = b"".join(parts)
        if self.split is not None:
            self.split.bytes(out)
        return out

    def peek(self, n: int) -> bytes | None:
        """The next n bytes if they are already buffered (else None), without consuming."""
        end = self._pos + n
        return self._buf[self._pos : end] if end <= len(self._buf) else None

    def copy_to(self, fd: int, n: int, path: str = "") -> None:
        if self.split is not None and n:
            self.split.file(path, n)
        while n > 0:
            if self._pos >= len(self._buf) and not self._fill():
                raise ImageFormatError(f"{self._what}: truncated archive")
            k = min(n, len(self._buf) - self._pos)
            view = memoryview(self._buf)[self._pos : self._pos + k]
            while view:
                view = view[os.write(fd, view) :]
            self._pos += k
            n -= k

    def skip(self, n: int) -> None:
        while n > 0:
            if self._pos >= len(self._buf) and not self._fill():
                raise ImageFormatError(f"{self._what}: truncated archive")
            k = min(n, len(self._buf) - self._pos)
            if self.split is not None:
                self.split.bytes(memoryview(self._buf)[self._pos : self._pos + k])
            self._pos += k
            n -= k

    def drain(self) -> None:
        """Read (and hash) everything after the end-of-archive marker."""
        while True:
            if self.split is not None:
                self.split.bytes(memoryview(self._buf)[self._pos :])
            self._pos = len(self._buf)
            if not self._fill():
                return


# --- headers -----------------------------------------------------------------------------------

# A ustar header, field by field (POSIX pax(1), "ustar Interchange Format").
_HDR = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
_FAST_TYPES = frozenset((b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7"))
_DATA_TYPES = frozenset((b"0", b"\0", b"7"))  # types whose data blocks follow the header
_USTAR, _GNU = (b"ustar\0", b"00"), (b"ustar ", b" \0")


def _num(field: bytes) -> int:
    return int(field.replace(b"\0", b" ").strip() or b"0", 8)  # "0000644\0", "012345\0 "


def _fast_header(stream: _Stream) -> tarfile.TarInfo | None:
    """Parse the common case (one plain ustar or GNU header) without tarfile's generality; it
    is most of the per-entry cost. Anything unusual (pax, long names, sparse, base-256
    numbers, bad checksums, end of archive) returns None and goes to tarfile."""
    block = stream.peek(512)
    if block is None or stream.pax_headers:
        return None
    (name, mode, uid, gid, size, mtime, chksum, typ, linkname, magic, version,
     uname, gname, devmajor, devminor, prefix) = _HDR.unpack(block)  # fmt: skip
    if typ not in _FAST_TYPES or ((magic, version) != _USTAR and (magic, version) != _GNU):
        return None
    try:
        if _num(chksum) != sum(block) - sum(chksum) + 256:
            return None
        nums = [_num(mode), _num(uid), _num(gid), _num(size), _num(mtime), 0, 0]
        if typ == b"3" or typ == b"4":
            nums[5:] = _num(devmajor), _num(devminor)
    except ValueError:
        return None
    name = name.split(b"\0", 1)[0]
    if magic == _USTAR[0] and prefix[0]:
        name = prefix.split(b"\0", 1)[0] + b"/" + name
    text = name.decode("utf-8", "surrogateescape")
    if typ == b"\0" and text.endswith("/"):
        typ = tarfile.DIRTYPE  # old tars mark directories by the trailing slash alone
    ti = tarfile.TarInfo(text.rstrip("/") if typ == tarfile.DIRTYPE else text)
    ti.mode, ti.uid, ti.gid, ti.size, ti.mtime, ti.devmajor, ti.devminor = nums
    ti.type = typ
    ti.linkname = linkname.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    ti.uname = uname.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    ti.gname = gname.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    stream.skip(512)
    ti.offset_data = stream.tell()
    ti.offset = ti.offset_data - 512
    stream.offset = ti.offset_data + (-(-ti.size // 512) * 512 if typ in _DATA_TYPES else 0)
    return ti


# --- names -------------------------------------------------------------------------------------


def clean_name(raw: str, what: str = "layer", kind: str = "entry") -> tuple[str, ...]:
    """Split an archive path into components, lexically. A leading '/' is dropped (as Docker
    does); '..' that would climb above the image root is refused."""
    if "\0" in raw:
        raise ImageFormatError(f"{what}: {kind} {raw!r} has a NUL byte in its name")
    parts: list[str] = []
    for p in raw.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                raise ImageFormatError(f"{what}: {kind} {raw!r} leaves the image root")
            parts.pop()
        else:
            parts.append(p)
    return tuple(parts)


# --- the extractor -----------------------------------------------------------------------------


class _Extractor:
    def __init__(self, dest: Path, what: str, max_entry: int, max_total: int, devices: bool):
        self.what = what
        self.max_entry = max_entry
        self.max_total = max_total
        self.devices = devices
        self.root_fd = os.open(dest, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.fds: dict[tuple[str, ...], int] = {(): self.root_fd}
        self.files: set[tuple[str, ...]] = set()  # non-directories we created (hardlink targets)
        self.dirs: dict[tuple[str, ...], tarfile.TarInfo] = {}  # metadata applied at the end
        self.chown = os.geteuid() == 0
        self.uid, self.gid = os.geteuid(), os.getegid()
        self.size = 0
        self.entries = 0
        self.whiteouts: list[str] = []
        self.owners: dict[str, list[int]] = {}
        self.opaque: list[str] = []
        self.whited: set[tuple[str, ...]] = set()  # names this layer whites out
        self.data_paths: set[tuple[str, ...]] = set()  # files whose data the tar-split refers to
        self.reproducible = True  # False once a file with data is replaced by a later entry

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def fail(self, raw: str, problem: str) -> ImageFormatError:
        return ImageFormatError(f"{self.what}: entry {raw!r} {problem}")

    # Walk to a directory one component at a time, never following a symlink; create missing
    # intermediate directories (0755, like Docker) as we go.
    def dir_fd(self, parts: tuple[str, ...], raw: str) -> int:
        fd = self.fds.get(parts)
        if fd is not None:
            return fd
        if len(self.fds) > _FD_CACHE:
            for key in list(self.fds)[1 : len(self.fds) // 2]:
                os.close(self.fds.pop(key))
        i = len(parts) - 1
        while parts[:i] not in self.fds:
            i -= 1
        cur = self.fds[parts[:i]]
        for j in range(i, len(parts)):
            name = parts[j]
            try:
                cur = os.open(name, _O_DIR, dir_fd=cur)
            except FileNotFoundError:
                os.mkdir(name, 0o755, dir_fd=cur)
                cur = os.open(name, _O_DIR, dir_fd=cur)
            except (NotADirectoryError, OSError) as e:
                if not isinstance(e, NotADirectoryError) and e.errno != 40:  # ELOOP
                    raise
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
                what = "symlink" if stat.S_ISLNK(st.st_mode) else "non-directory"
                raise self.fail(raw, f"goes through {what} {'/'.join(parts[: j + 1])!r}") from None
            self.fds[parts[: j + 1]] = cur
        return cur

    def make_room(self, parent: int, parts: tuple[str, ...], raw: str, kind: str) -> None:
        """An entry of this name exists already: a later entry replaces an earlier one, as with
        tar, except that a directory is never replaced (its children would be orphaned, and a
        directory turned into a symlink is the classic way to redirect later entries)."""
        st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            raise self.fail(raw, f"replaces a directory with a {kind}")
        os.unlink(parts[-1], dir_fd=parent)
        self.files.discard(parts)
        self.owners.pop("/".join(parts), None)
        self._forget_data(parts)

    def _forget_data(self, parts: tuple[str, ...]) -> None:
        if parts in self.data_paths:  # its bytes are gone: the original tar cannot be rebuilt
            self.data_paths.discard(parts)
            self.reproducible = False

    def set_opaque(self, parent: int, name: str, parts: tuple[str, ...]) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent)
        try:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        finally:
            os.close(fd)
        if "/".join(parts) not in self.opaque:
            self.opaque.append("/".join(parts))

    def create(self, op, parent: int, parts: tuple[str, ...], raw: str, kind: str):
        try:
            return op()
        except FileExistsError:
            self.make_room(parent, parts, raw, kind)
            return op()

    def set_owner(self, name, ti: tarfile.TarInfo, dir_fd=None) -> None:
        if not self.chown:
            if ti.uid or ti.gid:
                self.owners["/".join(clean_name(ti.name, self.what)) or "."] = [ti.uid, ti.gid]
            return
        if (ti.uid != self.uid or ti.gid != self.gid):
            if dir_fd is None:
                os.chown(name, ti.uid, ti.gid)
            else:
                os.chown(name, ti.uid, ti.gid, dir_fd=dir_fd, follow_symlinks=False)

    def set_xattrs(self, fd: int, ti: tarfile.TarInfo) -> None:
        for key, value in ti.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                name = key[len("SCHILY.xattr.") :]
                if name.startswith(_XATTR_PREFIXES):
                    os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))

    def entry(self, ti: tarfile.TarInfo, stream: _Stream) -> None:
        raw = ti.name
        parts = clean_name(raw, self.what)
        self.entries += 1
        if ti.issparse():
            raise self.fail(raw, "is a sparse file (not supported)")
        if not parts:  # "./": the root directory itself
            if not ti.isdir():
                raise self.fail(raw, "replaces the image root")
            self.dirs[()] = ti
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(parts, raw)
            return
        parent = self.dir_fd(parts[:-1], raw)
        mtime_ns = int(round(ti.mtime * 1e9))

        if ti.isreg():
            if ti.size > self.max_entry:
                raise self.fail(raw, f"is {ti.size} bytes, more than the limit of {self.max_entry}")
            self.size += ti.size
            if self.size > self.max_total:
                raise ImageFormatError(
                    f"{self.what}: archive is larger than {self.max_total} bytes (at entry {raw!r})"
                )
            fd = self.create(
                lambda: os.open(base, _O_FILE, 0o600, dir_fd=parent), parent, parts, raw, "file"
            )
            try:
                stream.copy_to(fd, ti.size, "/".join(parts))
                self.set_owner(fd, ti)
                os.fchmod(fd, ti.mode & 0o7777)
                if ti.pax_headers:
                    self.set_xattrs(fd, ti)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)
            self.files.add(parts)
            if ti.size:
                self.data_paths.add(parts)
        elif ti.isdir():
            try:
                os.mkdir(base, 0o755, dir_fd=parent)
            except FileExistsError:
                st = os.stat(base, dir_fd=parent, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(base, dir_fd=parent)
                    self.files.discard(parts)
                    self._forget_data(parts)
                    os.mkdir(base, 0o755, dir_fd=parent)
            if parts in self.whited:
                # `.wh.d` and a directory `d` in one layer: the lower `d` is gone and this
                # layer's `d` is new, so nothing below may show through: opaque.
                self.set_opaque(parent, base, parts)
            self.dirs[parts] = ti
        elif ti.issym():
            if "\0" in ti.linkname:
                raise self.fail(raw, "has a NUL byte in its link target")
            self.create(
                lambda: os.symlink(ti.linkname, base, dir_fd=parent), parent, parts, raw, "symlink"
            )
            self.set_owner(base, ti, parent)
            os.utime(base, ns=(mtime_ns, mtime_ns), dir_fd=parent, follow_symlinks=False)
            self.files.add(parts)
        elif ti.islnk():
            target = clean_name(ti.linkname, self.what, "hardlink target")
            if target not in self.files:
                raise self.fail(
                    raw, f"is a hardlink to {ti.linkname!r}, which is not in the layer (yet)"
                )
            if target == parts:
                return
            src = self.dir_fd(target[:-1], raw)
            self.create(
                lambda: os.link(
                    target[-1], base, src_dir_fd=src, dst_dir_fd=parent, follow_symlinks=False
                ),
                parent,
                parts,
                raw,
                "hardlink",
            )
            self.files.add(parts)
        elif ti.ischr() or ti.isblk() or ti.isfifo():
            if ti.isfifo():
                op = lambda: os.mkfifo(base, 0o600, dir_fd=parent)  # noqa: E731
            elif not self.devices:
                raise self.fail(raw, "is a device node (not allowed)")
            else:
                kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
                dev = os.makedev(ti.devmajor, ti.devminor)
                op = lambda: os.mknod(base, kind | 0o600, dev, dir_fd=parent)  # noqa: E731
            self.create(op, parent, parts, raw, "special file")
            self.set_owner(base, ti, parent)
            os.chmod(base, ti.mode & 0o7777, dir_fd=parent, follow_symlinks=False)
            os.utime(base, ns=(mtime_ns, mtime_ns), dir_fd=parent, follow_symlinks=False)
            self.files.add(parts)
        else:
            raise self.fail(raw, f"has an unsupported type {ti.type!r}")

    def whiteout(self, parts: tuple[str, ...], raw: str) -> None:
        base = parts[-1]
        if base == WHITEOUT_OPAQUE:
            self.set_opaque(self.dir_fd(parts[:-1], raw), ".", parts[:-1])
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other aufs metadata (.wh..wh.plnk, ...): meaningless outside aufs
        hidden = base[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise self.fail(raw, "is not a valid whiteout")
        parent = self.dir_fd(parts[:-1], raw)
        target = parts[:-1] + (hidden,)
        # A whiteout hides what lower layers have; if this layer itself has the name, it stays
        # (a directory of this layer then becomes opaque, so nothing of the lower one shows).
        try:
            os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
        except FileExistsError:
            if stat.S_ISDIR(os.stat(hidden, dir_fd=parent, follow_symlinks=False).st_mode):
                self.set_opaque(parent, hidden, target)
        else:
            self.files.add(target)
        self.whited.add(target)
        self.whiteouts.append("/".join(target))

    def finish_dirs(self) -> None:
        # Deepest first: creating a child changes its parent's mtime, and a read-only mode
        # applied early would stop us writing children as non-root.
        for parts in sorted(self.dirs, key=len, reverse=True):
            ti = self.dirs[parts]
            mtime_ns = int(round(ti.mtime * 1e9))
            if parts:
                parent, name = self.dir_fd(parts[:-1], ti.name), parts[-1]
            else:
                parent, name = self.root_fd, "."
            self.set_owner(name, ti, parent)
            os.chmod(name, ti.mode & 0o7777, dir_fd=parent, follow_symlinks=False)
            if any(k.startswith("SCHILY.xattr.") for k in ti.pax_headers):
                fd = os.open(
                    name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
                )
                try:
                    self.set_xattrs(fd, ti)
                finally:
                    os.close(fd)
            os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=parent, follow_symlinks=False)


def extract_layer(
    fileobj,
    dest: Path,
    *,
    max_entry_size: int = DEFAULT_MAX_ENTRY_SIZE,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
    allow_devices: bool = False,
    what: str = "layer",
    split_to=None,
) -> ExtractResult:
    """Unpack the tar stream `fileobj` (plain, gzip, xz, bzip2, or zstd) into the existing
    directory `dest`. Raises ImageFormatError naming the entry for anything hostile or broken;
    on error `dest` holds a partial tree that the caller discards (the store stages in tmp/).
    With `split_to` (a binary file), the tar-split record is written there (see _Split)."""
    chunks, compression, raw_hash = _open_stream(fileobj, what)
    stream = _Stream(chunks, what, max_total_size)
    if split_to is not None:
        stream.split = _Split(split_to)
    ex = _Extractor(Path(dest), what, max_entry_size, max_total_size, allow_devices)
    raw = "?"
    try:
        first = True
        while True:
            try:
                ti = _fast_header(stream) or tarfile.TarInfo.fromtarfile(stream)
            except tarfile.EOFHeaderError:
                break
            except tarfile.EmptyHeaderError:
                if first:
                    raise ImageFormatError(f"{what}: not a tar archive (empty)") from None
                raise ImageFormatError(
                    f"{what}: truncated archive (no end-of-archive marker)"
                ) from None
            except tarfile.TruncatedHeaderError:
                if first:
                    raise ImageFormatError(f"{what}: not a tar archive (too short)") from None
                raise ImageFormatError(f"{what}: truncated archive") from None
            except (tarfile.HeaderError, RecursionError, UnicodeError, ValueError) as e:
                if first:
                    raise ImageFormatError(f"{what}: not a tar archive ({e})") from None
                raise ImageFormatError(f"{what}: corrupt archive after {raw!r}: {e}") from None
            first = False
            raw = ti.name
            try:
                ex.entry(ti, stream)
            except MinirunError:
                raise
            except OSError as e:
                raise MinirunError(os_error(f"{what}: entry {raw!r}", e)) from None
            gap = stream.offset - stream.tell()
            if gap < 0:
                raise ImageFormatError(f"{what}: corrupt archive at entry {raw!r}")
            stream.skip(gap)
        stream.drain()
        if stream.split is not None:
            stream.split.close()
        try:
            ex.finish_dirs()
        except OSError as e:
            raise MinirunError(os_error(f"{what}: setting directory metadata", e)) from None
    finally:
        ex.close()
    diff_id = "sha256:" + stream.hash.hexdigest()
    digest = "sha256:" + raw_hash.hexdigest() if raw_hash is not None else diff_id
    return ExtractResult(
        diff_id=diff_id,
        digest=digest,
        compression=compression,
        size=ex.size,
        entries=ex.entries,
        whiteouts=ex.whiteouts,
        owners=ex.owners,
        opaque=ex.opaque,
        tar_size=stream.tell(),
        reproducible=ex.reproducible,
    )
