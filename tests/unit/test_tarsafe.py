"""Safe layer extraction: what a hostile archive cannot do, and what a good one keeps.

Every hostile case checks three things: the error names the entry, nothing outside the
destination changed (a sentinel directory sits beside it), and — through the store — nothing
partial is left behind.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from pathlib import Path

import pytest

from minirun.errors import ImageFormatError, MinirunError
from minirun.images.tarsafe import extract_layer

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod, trusted.*)")


# --- building archives -------------------------------------------------------------------------


def member(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, **kw) -> tuple:
    return (name, kind, data, mode, kw)


def make_tar(*members, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, data, mode, kw in members:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = kind, mode
            ti.mtime = kw.pop("mtime", 1_600_000_000)
            for k, v in kw.items():
                setattr(ti, k, v)
            if kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)
    return buf.getvalue()


def extract(data: bytes, dest: Path, **kw):
    return extract_layer(io.BytesIO(data), dest, **kw)


def snapshot(path: Path) -> dict:
    """Everything about a tree that an escape could change."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            body = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            out[str(p.relative_to(path))] = (st.st_mode, st.st_mtime_ns, body)
    return out


@pytest.fixture
def arena(tmp_path):
    """dest/ to extract into, and sentinel/ beside it that must never change."""
    dest = tmp_path / "dest"
    dest.mkdir()
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret").write_text("do not touch\n")
    before = snapshot(sentinel)
    yield dest, sentinel
    assert snapshot(sentinel) == before, "something outside the destination changed"
    assert sorted(os.listdir(tmp_path)) == ["dest", "sentinel"]


# --- a good archive round-trips ----------------------------------------------------------------


@needs_root
def test_good_archive_round_trips_everything(arena):
    dest, _ = arena
    data = make_tar(
        member("./", tarfile.DIRTYPE, mode=0o755, mtime=1_500_000_000),
        member("bin/", tarfile.DIRTYPE, mode=0o750, uid=10, gid=20, mtime=1_400_000_000),
        member("bin/su", data=b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0, mtime=1_300_000_000),
        member("bin/own", data=b"x" * 5000, mode=0o2640, uid=1234, gid=5678),
        member("bin/sh", tarfile.SYMTYPE, mode=0o777, linkname="busybox", uid=7, gid=8),
        member("etc/shadow-link", tarfile.SYMTYPE, linkname="/etc/shadow"),
        member("bin/su-again", tarfile.LNKTYPE, linkname="bin/su"),
        member("run/fifo", tarfile.FIFOTYPE, mode=0o620),
        member("tmp/", tarfile.DIRTYPE, mode=0o1777),
        member("/abs/file", data=b"leading slash is stripped"),
        member("a/b/../c", data=b"lexical dot-dot inside the root is fine"),
    )
    res = extract(data, dest)
    assert res.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert res.digest == res.diff_id and res.compression == "none"
    assert res.size == len(b"#!/bin/sh\n") + 5000 + len(b"leading slash is stripped") + len(
        b"lexical dot-dot inside the root is fine"
    )

    su = (dest / "bin/su").lstat()
    assert stat.S_IMODE(su.st_mode) == 0o4755
    assert su.st_mtime_ns == 1_300_000_000 * 10**9
    own = (dest / "bin/own").lstat()
    assert (own.st_uid, own.st_gid, stat.S_IMODE(own.st_mode)) == (1234, 5678, 0o2640)
    assert (dest / "bin/own").read_bytes() == b"x" * 5000
    bindir = (dest / "bin").lstat()
    assert (stat.S_IMODE(bindir.st_mode), bindir.st_uid, bindir.st_gid) == (0o750, 10, 20)
    assert bindir.st_mtime_ns == 1_400_000_000 * 10**9  # set after its children were written
    assert dest.lstat().st_mtime_ns == 1_500_000_000 * 10**9
    assert os.readlink(dest / "bin/sh") == "busybox"
    assert ((dest / "bin/sh").lstat().st_uid, (dest / "bin/sh").lstat().st_gid) == (7, 8)
    assert os.readlink(dest / "etc/shadow-link") == "/etc/shadow"  # kept, never followed
    assert (dest / "bin/su-again").lstat().st_ino == su.st_ino
    assert stat.S_ISFIFO((dest / "run/fifo").lstat().st_mode)
    assert stat.S_IMODE((dest / "run/fifo").lstat().st_mode) == 0o620
    assert stat.S_IMODE((dest / "tmp").lstat().st_mode) == 0o1777
    assert (dest / "abs/file").read_bytes() == b"leading slash is stripped"
    assert (dest / "a/c").exists()


@pytest.mark.parametrize("compress", ["gzip", "xz", "bzip2", "gzip-multimember"])
def test_compressed_archives_give_the_uncompressed_diff_id(arena, compress):
    dest, _ = arena
    data = make_tar(member("big", data=os.urandom(300_000) + b"\0" * 3_000_000))
    packed = {
        "gzip": lambda d: gzip.compress(d),
        "xz": lambda d: lzma.compress(d),
        "bzip2": lambda d: bz2.compress(d),
        "gzip-multimember": lambda d: gzip.compress(d[:7000]) + gzip.compress(d[7000:]),
    }[compress](data)
    res = extract(packed, dest)
    assert res.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert res.digest == "sha256:" + hashlib.sha256(packed).hexdigest()
    assert res.compression == compress.split("-")[0]
    assert (dest / "big").stat().st_size == 3_300_000


def test_later_entries_replace_earlier_files(arena):
    dest, _ = arena
    data = make_tar(
        member("f", data=b"one"),
        member("f", data=b"two"),
        member("l", tarfile.SYMTYPE, linkname="f"),
        member("l", data=b"now a file"),
        member("x", data=b"file first"),
        member("x/", tarfile.DIRTYPE, mode=0o755),
        member("x/inside", data=b"ok"),
    )
    extract(data, dest)
    assert (dest / "f").read_bytes() == b"two"
    assert (dest / "l").read_bytes() == b"now a file" and not (dest / "l").is_symlink()
    assert (dest / "x/inside").read_bytes() == b"ok"


@needs_root
def test_whiteouts_become_overlay_whiteouts(arena):
    dest, _ = arena
    data = make_tar(
        member("etc/", tarfile.DIRTYPE, mode=0o755),
        member("etc/.wh.motd"),
        member("etc/kept"),
        member("etc/.wh.kept"),  # this layer's own file stays: whiteouts hide lower layers
        member("var/cache/.wh..wh..opq"),
    )
    res = extract(data, dest)
    st = (dest / "etc/motd").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert stat.S_ISREG((dest / "etc/kept").lstat().st_mode)
    assert not (dest / "etc/.wh.motd").exists()
    assert os.getxattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert res.whiteouts == ["etc/motd", "etc/kept"] and res.opaque == ["var/cache"]


# --- hostile archives --------------------------------------------------------------------------

HOSTILE = {
    "dotdot": ([member("../escape", data=b"x")], "'../escape' leaves the image root"),
    "dotdot-deep": (
        [member("a/../../sentinel/secret", data=b"x")],
        "'a/../../sentinel/secret' leaves the image root",
    ),
    "symlink-then-file": (
        [
            member("evil", tarfile.SYMTYPE, linkname="../sentinel"),
            member("evil/secret", data=b"pwned"),
        ],
        "'evil/secret' goes through symlink 'evil'",
    ),
    "abs-symlink-then-dir": (
        [
            member("up", tarfile.SYMTYPE, linkname="/"),
            member("up/tmp/x/", tarfile.DIRTYPE),
        ],
        "'up/tmp/x' goes through symlink 'up'",
    ),
    "hardlink-host-file": (
        [member("pw", tarfile.LNKTYPE, linkname="/etc/passwd")],
        "'pw' is a hardlink to '/etc/passwd', which is not in the layer",
    ),
    "hardlink-outside": (
        [member("s", tarfile.LNKTYPE, linkname="../sentinel/secret")],
        "hardlink target '../sentinel/secret' leaves the image root",
    ),
    "hardlink-not-yet": (
        [member("a", tarfile.LNKTYPE, linkname="b"), member("b", data=b"x")],
        "'a' is a hardlink to 'b', which is not in the layer",
    ),
    "hardlink-through-symlink": (
        [
            member("evil", tarfile.SYMTYPE, linkname="../sentinel"),
            member("h", tarfile.LNKTYPE, linkname="evil/secret"),
        ],
        "'h' is a hardlink to 'evil/secret', which is not in the layer",
    ),
    "char-device": (
        [member("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1)],
        "'dev/mem' is a device node",
    ),
    "block-device": (
        [member("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0)],
        "'dev/sda' is a device node",
    ),
    "dir-replaced-by-symlink": (
        [
            member("d/", tarfile.DIRTYPE),
            member("d", tarfile.SYMTYPE, linkname="../sentinel"),
            member("d/secret", data=b"pwned"),
        ],
        "'d' replaces a directory with a symlink",
    ),
    "dir-replaced-by-file": (
        [member("d/", tarfile.DIRTYPE), member("d", data=b"x")],
        "'d' replaces a directory with a file",
    ),
    "file-then-child": (
        [member("f", data=b"x"), member("f/child", data=b"y")],
        "'f/child' goes through non-directory 'f'",
    ),
    "bad-whiteout": ([member("a/.wh..")], "'a/.wh..' is not a valid whiteout"),
    "root-replaced": ([member(".", tarfile.SYMTYPE, linkname="/")], "'.' replaces the image root"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_naming_the_entry(arena, case):
    dest, _ = arena
    members, message = HOSTILE[case]
    with pytest.raises(ImageFormatError) as exc:
        extract(make_tar(*members), dest)
    assert message in str(exc.value)
    assert str(exc.value).startswith("layer: ")


@needs_root
def test_devices_are_allowed_when_asked(arena):
    dest, _ = arena
    extract(
        make_tar(member("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)),
        dest,
        allow_devices=True,
    )
    st = (dest / "dev/null").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def test_entry_over_the_size_cap_is_refused_before_writing(arena):
    dest, _ = arena
    with pytest.raises(ImageFormatError, match=r"entry 'big' is 100 bytes, more than the limit"):
        extract(make_tar(member("big", data=b"x" * 100)), dest, max_entry_size=10)
    assert not (dest / "big").exists()


def test_archive_over_the_total_cap_is_refused(arena):
    dest, _ = arena
    data = make_tar(member("a", data=b"x" * 60), member("b", data=b"y" * 60))
    with pytest.raises(ImageFormatError, match=r"larger than 100 bytes"):
        extract(data, dest, max_total_size=100)


def test_decompression_bomb_stops_at_the_total_cap(arena):
    dest, _ = arena
    bomb = gzip.compress(make_tar(member("z", data=b"\0" * (8 << 20))))
    assert len(bomb) < 100_000
    with pytest.raises(ImageFormatError, match="larger than"):
        extract(bomb, dest, max_total_size=1 << 20)


GOOD = make_tar(member("bin/", tarfile.DIRTYPE), member("bin/file", data=os.urandom(20_000)))


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


BROKEN = {
    "truncated-gzip": (gzip.compress(GOOD)[:-4000], "truncated archive"),
    "truncated-xz": (lzma.compress(GOOD)[:-100], "truncated archive"),
    "corrupt-gzip": (_flip(gzip.compress(GOOD, mtime=0), 2000), "corrupt compressed data"),
    "corrupt-xz": (_flip(lzma.compress(GOOD), 3000), "corrupt compressed data"),
    "truncated-tar-in-data": (GOOD[:5000], "truncated archive"),
    "truncated-tar-at-header": (GOOD[:512], "truncated archive"),
    "corrupt-second-header": (_flip(GOOD, 512 + 100), "corrupt archive after 'bin'"),
    "not-a-tar": (b"hello, I am a text file\n" * 100, "not a tar archive"),
    "short-not-a-tar": (b"hello\n", "not a tar archive"),
    "empty": (b"", "not a tar archive"),
    "zstd-without-module": (b"\x28\xb5\x2f\xfd" + b"junk" * 10, "zstd"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_archive_is_a_format_error(arena, case):
    dest, _ = arena
    data, message = BROKEN[case]
    if case == "zstd-without-module":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            message = "zstd compression needs the zstandard package"
    with pytest.raises(ImageFormatError) as exc:
        extract(data, dest)
    assert message in str(exc.value)


def test_empty_tar_is_an_empty_layer(arena):
    dest, _ = arena
    res = extract(make_tar(), dest)
    assert res.entries == 0 and os.listdir(dest) == []


def test_gnu_long_names_and_pax_names(arena):
    dest, _ = arena
    long = "d/" + "n" * 150 + "/" + "f" * 120
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        extract(make_tar(member(long, data=b"long"), fmt=fmt), dest)
        assert (dest / long).read_bytes() == b"long"


def test_non_root_style_errors_are_minirun_errors(tmp_path):
    # Extracting into something that is not a directory is a plain OS failure, reported as one.
    (tmp_path / "file").write_text("")
    with pytest.raises((MinirunError, NotADirectoryError)):
        extract(GOOD, tmp_path / "file")


# --- through the store: a failed import leaves nothing -----------------------------------------


@pytest.mark.parametrize("case", ["symlink-then-file", "hardlink-host-file", "dotdot"])
def test_failed_import_leaves_the_store_as_it_was(tmp_path, case):
    from minirun.images.store import ImageStore

    store = ImageStore(tmp_path / "root")
    good = store.import_tarball(io.BytesIO(make_tar(member("ok", data=b"ok"))), "good")
    images = store.root
    before = {
        "list": [(i.id, i.names) for i in store.list()],
        "layers": sorted(os.listdir(images / "layers")),
        "blobs": sorted(os.listdir(images / "blobs/sha256")),
        "index": (images / "repositories.json").read_bytes(),
    }
    (tmp_path / "sentinel").mkdir()
    members, message = HOSTILE[case]
    with pytest.raises(ImageFormatError, match="leaves|goes through|not in the layer"):
        store.import_tarball(io.BytesIO(make_tar(*members)), "evil")
    for compressed in (gzip.compress(GOOD)[:-100], b"not a tar at all" * 64):
        with pytest.raises(ImageFormatError):
            store.import_tarball(io.BytesIO(compressed), "evil")
    after = {
        "list": [(i.id, i.names) for i in store.list()],
        "layers": sorted(os.listdir(images / "layers")),
        "blobs": sorted(os.listdir(images / "blobs/sha256")),
        "index": (images / "repositories.json").read_bytes(),
    }
    assert after == before
    assert os.listdir(images / "tmp") == []
    assert os.listdir(tmp_path / "sentinel") == []
    assert store.get("good").id == good.id


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_plain_headers_take_the_fast_path_and_agree_with_tarfile(fmt):
    from minirun.images import tarsafe

    data = make_tar(
        member("dir/", tarfile.DIRTYPE, mode=0o755, uid=1000, gid=100),
        member("dir/file", data=b"abc", mode=0o4711, uid=65534, gid=65534),
        member("dir/link", tarfile.SYMTYPE, linkname="file"),
        member("p" * 90 + "/" + "n" * 90, data=b""),  # ustar prefix field
        fmt=fmt,
    )
    stream = tarsafe._Stream(iter([data]), "layer", 1 << 30)
    stream._fill()  # the fast path only looks at bytes already buffered
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for expected in tar.getmembers():
            got = tarsafe._fast_header(stream)
            if fmt != tarfile.USTAR_FORMAT and len(expected.name) > 100:
                assert got is None  # GNU and pax long names go through tarfile
                break
            assert got is not None, expected.name
            for attr in ("name", "type", "mode", "uid", "gid", "size", "mtime", "linkname"):
                assert getattr(got, attr) == getattr(expected, attr), attr
            stream.skip(stream.offset - stream.tell())
