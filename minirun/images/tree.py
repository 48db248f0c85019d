"""Directory trees to tar streams: a container's changes as a layer (`commit`, `build`), and its
whole merged filesystem (`export`).

overlayfs keeps a container's changes in its upper directory, in overlayfs' own notation
(Documentation/filesystems/overlayfs.rst): a deleted name is a 0/0 character device, a directory
that replaced a lower one carries the `trusted.overlay.opaque=y` xattr. An image layer says the
same in the OCI image spec's notation (layer.md, "Whiteouts"): an empty `.wh.NAME` file, and a
`.wh..wh..opq` entry in the directory. `write_layer` translates the first into the second;
`write_merged` applies both, reading the upper directory over the image's layers the way the
overlay mount would, without mounting anything.

The trees may be written by a running container, so nothing here follows a symlink: every
directory is opened relative to its parent's fd with O_NOFOLLOW, and a file's size is taken
from the fd we copy from.
"""

from __future__ import annotations

import os
import stat
import tarfile

from minirun.errors import ImageFormatError
from minirun.images.tarsafe import OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KEPT_XATTRS = ("user.", "security.capability")
_CHUNK = 1 << 20


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(fd: int) -> bool:
    """Either name: an overlay mounted in a user namespace (`userxattr`) writes user.*."""
    for name in dict.fromkeys((OPAQUE_XATTR, "trusted.overlay.opaque", "user.overlay.opaque")):
        try:
            if os.getxattr(fd, name) == b"y":
                return True
        except OSError:
            continue
    return False


class _Writer:
    def __init__(self, out, ids=None):
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self.ids = ids          # (host uid, gid) -> the container's, with a user namespace
        self.links: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        self.tar.close()

    def _info(self, name: str, st: os.stat_result, xattrs: dict[str, str]) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = self.ids(st.st_uid, st.st_gid) if self.ids else (st.st_uid, st.st_gid)
        ti.uname = ti.gname = ""
        ti.mtime = int(st.st_mtime)
        if xattrs:
            ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        return ti

    @staticmethod
    def _xattrs(fd: int) -> dict[str, str]:
        """The xattrs an image may carry (user.*, security.capability) of an open file."""
        try:
            keys = os.listxattr(fd)
        except OSError:
            return {}
        out = {}
        for k in keys:
            if k.startswith(_KEPT_XATTRS) and not k.startswith("user.overlay."):
                try:
                    out[k] = os.getxattr(fd, k).decode("utf-8", "surrogateescape")
                except OSError:
                    continue
        return out

    def whiteout(self, name: str) -> None:
        ti = tarfile.TarInfo(name)
        ti.mtime, ti.mode = 0, 0o644
        self.tar.addfile(ti)

    def directory(self, name: str, fd: int, st: os.stat_result) -> None:
        ti = self._info(name, st, self._xattrs(fd))
        ti.type = tarfile.DIRTYPE
        self.tar.addfile(ti)

    def entry(self, name: str, dir_fd: int, base: str, st: os.stat_result) -> None:
        """A non-directory `base` in `dir_fd`, archived as `name`."""
        if stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                ti = self._info(name, st, {})
                ti.type, ti.linkname = tarfile.LNKTYPE, self.links[key]
                self.tar.addfile(ti)
                return
            fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                fst = os.fstat(fd)
                ti = self._info(name, fst, self._xattrs(fd))
                ti.size = fst.st_size
                with os.fdopen(os.dup(fd), "rb", buffering=_CHUNK) as f:
                    try:
                        self.tar.addfile(ti, f)
                    except OSError as e:
                        raise ImageFormatError(f"{name}: changed while being archived ({e})") from None
            finally:
                os.close(fd)
            if st.st_nlink > 1:
                self.links[key] = name
            return
        ti = self._info(name, st, {})
        if stat.S_ISLNK(st.st_mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(base, dir_fd=dir_fd)
        elif stat.S_ISFIFO(st.st_mode):
            ti.type = tarfile.FIFOTYPE
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            return  # sockets are not archived (tar cannot carry them)
        self.tar.addfile(ti)


def _listing(fd: int) -> dict[str, os.stat_result]:
    out = {}
    with os.scandir(fd) as it:
        for e in it:
            out[e.name] = os.stat(e.name, dir_fd=fd, follow_symlinks=False)
    return out


def write_layer(out, upper, ids=None) -> None:
    """The changes in an overlay upper directory as an OCI layer tar, whiteouts translated.
    `ids` maps host owners back to the container's (runtime/userns.py: id_mapper)."""
    w = _Writer(out, ids)
    fd = os.open(upper, _O_DIR)
    try:
        _layer_dir(w, fd, "")
    finally:
        os.close(fd)
        w.close()


def _layer_dir(w: _Writer, fd: int, prefix: str) -> None:
    if _opaque(fd) and prefix:
        w.whiteout(prefix + WHITEOUT_OPAQUE)
    for name, st in sorted(_listing(fd).items()):
        path = prefix + name
        if _is_whiteout(st):
            w.whiteout(prefix + WHITEOUT_PREFIX + name)
        elif stat.S_ISDIR(st.st_mode):
            sub = os.open(name, _O_DIR, dir_fd=fd)
            try:
                try:
                    if os.getxattr(sub, "trusted.overlay.redirect"):
                        raise ImageFormatError(f"{path}: a renamed directory (overlayfs "
                                               "redirect_dir) cannot be committed")
                except OSError:
                    pass
                w.directory(path + "/", sub, st)
                _layer_dir(w, sub, path + "/")
            finally:
                os.close(sub)
        else:
            w.entry(path, fd, name, st)


def write_merged(out, dirs_top_first, ids=None) -> None:
    """The filesystem an overlay of `dirs_top_first` shows, as a plain tar (`export`)."""
    w = _Writer(out, ids)
    fds = [os.open(d, _O_DIR) for d in dirs_top_first]
    try:
        _merged_dir(w, fds, "")
    finally:
        for fd in fds:
            os.close(fd)
        w.close()


def _merged_dir(w: _Writer, fds: list[int], prefix: str) -> None:
    """fds: this directory in each layer that contributes to it, top first (the list already
    stops at the first opaque one)."""
    found: dict[str, list[tuple[int, os.stat_result]]] = {}
    for fd in fds:
        for name, st in _listing(fd).items():
            found.setdefault(name, []).append((fd, st))
    for name in sorted(found):
        stack = found[name]
        top_fd, top = stack[0]
        path = prefix + name
        if _is_whiteout(top):
            continue
        if not stat.S_ISDIR(top.st_mode):
            w.entry(path, top_fd, name, top)
            continue
        subs: list[int] = []
        try:
            for fd, st in stack:  # lower copies merge while they are directories
                if not stat.S_ISDIR(st.st_mode):
                    break
                sub = os.open(name, _O_DIR, dir_fd=fd)
                subs.append(sub)
                if _opaque(sub):
                    break
            w.directory(path + "/", subs[0], top)
            _merged_dir(w, subs, path + "/")
        finally:
            for s in subs:
                os.close(s)
