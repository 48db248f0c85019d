"""Write real image archives for tests: layer tars, OCI image layouts and docker-archives.

Made with tarfile, hashlib and json only, the way the specs describe them (image-spec's
image-layout.md, manifest.md, config.md, layer.md; `docker save`'s manifest.json), so tests
can feed minirun multi-layer images with whiteouts without any outside tool.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX_TAR = Path(__file__).resolve().parent.parent / "rootfs" / "build" / "busybox.tar"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(*entries, fmt=tarfile.PAX_FORMAT) -> bytes:
    """A layer tar. Entries: "dir/" (a directory), ("path", b"data"[, mode]),
    ("path", "->", "target") (a symlink), ".wh.x" names as they are."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for e in entries:
            if isinstance(e, str):
                e = (e,)
            name = e[0]
            ti = tarfile.TarInfo(name.rstrip("/"))
            ti.mtime = 1_600_000_000
            data = b""
            if name.endswith("/"):
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif len(e) == 3 and e[1] == "->":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, e[2], 0o777
            else:
                data = e[1] if len(e) > 1 else b""
                ti.mode = e[2] if len(e) > 2 else 0o644
                ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


def compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


LAYER_MT = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


@dataclass
class FakeImage:
    layers: list[bytes]  # uncompressed layer tars, lowest first
    config: dict = field(default_factory=dict)  # the "config" object (Env, Cmd, ...)
    name: str | None = None  # "repo:tag"

    def config_blob(self) -> bytes:
        doc = {
            "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(
                os.uname().machine, os.uname().machine),
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in self.layers]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
                        for i in range(len(self.layers))],
        }
        return json.dumps(doc, sort_keys=True).encode()

    @property
    def id(self) -> str:
        return hashlib.sha256(self.config_blob()).hexdigest()


def busybox_layer() -> bytes:
    return BUSYBOX_TAR.read_bytes()


def _files_to(dest: Path | None, files: dict[str, bytes], as_tar: bool) -> None:
    """Write {path: bytes} as a directory, or as one tar at `dest`."""
    if not as_tar:
        for path, data in files.items():
            p = dest / path
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return
    with tarfile.open(dest, "w") as tar:
        for path, data in files.items():
            ti = tarfile.TarInfo(path)
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))


def oci_files(images: list[FakeImage], how: str = "gzip",
              ref_key: str = "org.opencontainers.image.ref.name") -> dict[str, bytes]:
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    manifests = []
    for img in images:
        cfg = img.config_blob()
        files[f"blobs/sha256/{sha(cfg)[7:]}"] = cfg
        descs = []
        for t in img.layers:
            blob = compress(t, how)
            files[f"blobs/sha256/{sha(blob)[7:]}"] = blob
            descs.append({"mediaType": LAYER_MT[how], "digest": sha(blob), "size": len(blob)})
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(cfg), "size": len(cfg)},
            "layers": descs,
        }).encode()
        files[f"blobs/sha256/{sha(manifest)[7:]}"] = manifest
        desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha(manifest), "size": len(manifest)}
        if img.name:
            desc["annotations"] = {ref_key: img.name}
        manifests.append(desc)
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
    return files


def write_oci(dest: Path, images: list[FakeImage], how: str = "gzip", as_tar: bool = False,
              **kw) -> Path:
    _files_to(dest, oci_files(images, how, **kw), as_tar)
    return dest


def docker_files(images: list[FakeImage]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    manifest = []
    for img in images:
        cfg = img.config_blob()
        files[f"{sha(cfg)[7:]}.json"] = cfg
        paths = []
        for t in img.layers:
            path = f"{sha(t)[7:]}/layer.tar"
            files[path] = t
            paths.append(path)
        manifest.append({"Config": f"{sha(cfg)[7:]}.json",
                         "RepoTags": [img.name] if img.name else None, "Layers": paths})
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


def write_docker(dest: Path, images: list[FakeImage], as_tar: bool = True) -> Path:
    _files_to(dest, docker_files(images), as_tar)
    return dest


def three_layer_image(name: str = "layered:1", **config) -> FakeImage:
    """busybox, then a layer that adds files, then one that whites some out and makes a
    directory opaque: what a container must see is documented in the assertions that use it."""
    base = busybox_layer()
    mid = layer(
        "data/", ("data/keep", b"keep\n"), ("data/gone", b"gone\n"),
        "data/dir/", ("data/dir/old", b"old\n"), "etc/", ("etc/motd", b"hello from layer 2\n"),
        ("bin/greet", b"#!/bin/sh\necho greetings \"$@\"\n", 0o755),
    )
    top = layer(
        "data/", "data/.wh.gone", "data/dir/", "data/dir/.wh..wh..opq",
        ("data/dir/new", b"new\n"), "etc/", ("etc/motd", b"hello from layer 3\n"),
    )
    return FakeImage([base, mid, top], dict({"Env": ["PATH=/bin:/usr/bin"], "Cmd": ["sh"]},
                                            **config), name)
