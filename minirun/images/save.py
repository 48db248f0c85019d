"""Writing image archives (`image save`): an OCI image layout or a docker-archive, as one tar.

Layers are written uncompressed, rebuilt byte for byte from the unpacked files and their
tar-split record (tarsafe._Split), and checked against their diff_id as they stream out: the
saved image has the same config, the same diff_ids and so the same id as the stored one, and
loading it back gives exactly that image. The output is deterministic (fixed order, mtimes 0),
so saving the same image twice gives the same bytes.

Layout of the tar: see minirun/images/archive.py, which reads both.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from minirun.errors import ImageFormatError, UsageError
from minirun.images import archive

FORMATS = ("oci", "docker-archive")


class _TarWriter:
    def __init__(self, out):
        self.out = out
        self.written: set[str] = set()

    def _header(self, name: str, size: int, kind=tarfile.REGTYPE) -> None:
        ti = tarfile.TarInfo(name)
        ti.size, ti.mtime, ti.type = size, 0, kind
        ti.mode = 0o644 if kind == tarfile.REGTYPE else 0o755
        self.out.write(ti.tobuf(tarfile.PAX_FORMAT))

    def _pad(self, size: int) -> None:
        if size % 512:
            self.out.write(b"\0" * (512 - size % 512))

    def dirs(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i]) + "/"
            if d not in self.written:
                self.written.add(d)
                self._header(d, 0, tarfile.DIRTYPE)

    def file(self, name: str, data: bytes) -> None:
        if name in self.written:
            return
        self.dirs(name)
        self.written.add(name)
        self._header(name, len(data))
        self.out.write(data)
        self._pad(len(data))

    def layer(self, name: str, layer_dir: Path) -> None:
        """Rebuild the layer's tar into the archive, checking its length and sha256."""
        if name in self.written:
            return
        meta = json.loads((layer_dir / "layer.json").read_text())
        diff_id, size = meta["diff_id"], meta.get("tar_size")
        split = layer_dir / "tar-split"
        if size is None or not split.exists():
            raise ImageFormatError(f"layer {diff_id[:19]} was stored without its tar record "
                                   "(by an older minirun): import the image again to save it")
        if not meta.get("reproducible", True):
            raise ImageFormatError(f"layer {diff_id[:19]} replaced a file with a later entry of "
                                   "the same name; its original tar cannot be rebuilt")
        self.dirs(name)
        self.written.add(name)
        self._header(name, size)
        h, n = hashlib.sha256(), 0

        def write(data) -> None:
            nonlocal n
            h.update(data)
            n += len(data)
            self.out.write(data)

        from minirun.images import tarsafe

        with open(split, "rb") as f:
            tarsafe.reassemble(layer_dir / "diff", f, write)
        if n != size or "sha256:" + h.hexdigest() != diff_id:
            raise ImageFormatError(f"layer {diff_id[:19]}: its files changed since it was "
                                   "unpacked (the rebuilt tar does not match its diff_id)")
        self._pad(size)

    def close(self) -> None:
        self.out.write(b"\0" * 1024)


def _json(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def save(store, refs: list[str], out, fmt: str = "oci", progress=None) -> None:
    """Write the images `refs` (names or ids) to the binary file `out` as a tar."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use oci or docker-archive")
    images, asked = [], {}
    for ref in refs:
        img = store.get(ref)
        if img.id not in asked:
            images.append(img)
            asked[img.id] = []
        from minirun.images.reference import parse_reference

        try:
            tagged = parse_reference(ref)
        except UsageError:
            tagged = None
        # a name given: that name; an id given: every name the image has (as docker does)
        asked[img.id] += [tagged] if tagged in img.names else img.names
    w = _TarWriter(out)
    if fmt == "oci":
        w.file("oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
    manifests = []
    for img in images:
        config = (store.blobs / img.id).read_bytes()
        layers = []
        for i, (diff_id, path) in enumerate(zip(img.diff_ids, img.layers, strict=True)):
            if progress:
                progress("layer", index=i, total=len(img.layers), diff_id=diff_id,
                         state="writing")
            hexid = diff_id.removeprefix("sha256:")
            name = f"blobs/sha256/{hexid}" if fmt == "oci" else f"{hexid}/layer.tar"
            w.layer(name, path.parent)
            size = json.loads((path.parent / "layer.json").read_text())["tar_size"]
            layers.append((name, diff_id, size))
        names = list(dict.fromkeys(asked[img.id]))
        if fmt == "oci":
            w.file(f"blobs/sha256/{img.id}", config)
            manifest = _json({
                "schemaVersion": 2,
                "mediaType": archive.MT_OCI_MANIFEST,
                "config": {"mediaType": archive.MT_OCI_CONFIG, "digest": "sha256:" + img.id,
                           "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": d, "size": s} for _, d, s in layers],
            })
            mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            w.file(f"blobs/sha256/{mdigest[7:]}", manifest)
            desc = {"mediaType": archive.MT_OCI_MANIFEST, "digest": mdigest,
                    "size": len(manifest)}
            for n in names or [None]:
                d = dict(desc)
                if n:
                    d["annotations"] = {"io.containerd.image.name": n,
                                        "org.opencontainers.image.ref.name": n}
                manifests.append(d)
        else:
            w.file(f"{img.id}.json", config)
            manifests.append({"Config": f"{img.id}.json", "RepoTags": names or None,
                              "Layers": [n for n, _, _ in layers]})
        if progress:
            progress("image", image=img)
    if fmt == "oci":
        w.file("index.json", _json({"schemaVersion": 2, "mediaType": archive.MT_OCI_INDEX,
                                    "manifests": manifests}))
    else:
        w.file("manifest.json", _json(manifests))
        repos: dict[str, dict[str, str]] = {}
        for m in manifests:
            for n in m["RepoTags"] or []:
                repo, _, tag = n.rpartition(":")
                repos.setdefault(repo, {})[tag] = m["Config"].removesuffix(".json")
        w.file("repositories", _json(repos))
    w.close()


def save_to_path(store, refs: list[str], path: str, fmt: str = "oci", progress=None) -> None:
    """save() into `path`, atomically: nothing is there until the archive is complete, and a
    command killed half way leaves nothing (storage.output_file)."""
    from minirun.storage import output_file
    with output_file(path) as f:
        save(store, refs, f, fmt, progress)
