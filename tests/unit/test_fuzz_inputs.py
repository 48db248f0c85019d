"""More properties over arbitrary input (issue 9, item 5): ECS task definitions, OCI image
layouts and docker-archives (index, manifest, config), Containerfiles, and the network flags
(-p, --ip, --add-host, subnets). Whatever comes in, the answer is a result or one line of a
MinirunError subclass — never a traceback. Mutating one field of a good document at a time
reaches far deeper than random documents do, so most properties do both."""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minirun.errors import MinirunError, TaskDefinitionError
from tests.unit.test_fuzz import pointers

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)


def replaced(doc, pointer, value, drop: bool = False):
    doc = copy.deepcopy(doc)
    target = doc
    for key in pointer[:-1]:
        target = target[key]
    if drop:
        del target[pointer[-1]]
    else:
        target[pointer[-1]] = value
    return doc


def one_line(err: MinirunError) -> None:
    text = str(err)
    assert text and "\n" not in text and "Traceback" not in text, text


# -- ECS task definitions (minirun/sched/taskdef.py) ---------------------------------------------
TASKDEF = {
    "family": "web", "cpu": "1024", "memory": "512", "networkMode": "bridge",
    "containerDefinitions": [
        {"name": "app", "image": "busybox", "cpu": 256, "memory": 64, "essential": True,
         "command": ["httpd", "-f"], "entryPoint": ["/bin/sh", "-c"],
         "environment": [{"name": "MODE", "value": "prod"}],
         "portMappings": [{"containerPort": 80, "hostPort": 8080, "protocol": "tcp"}],
         "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 2, "retries": 2},
         "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
         "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": True}],
         "workingDirectory": "/", "user": "0", "hostname": "app", "stopTimeout": 5,
         "readonlyRootFilesystem": False},
        {"name": "sidecar", "image": "busybox", "memoryReservation": 16, "essential": False,
         "dependsOn": [{"containerName": "app", "condition": "HEALTHY"}]},
    ],
    "volumes": [{"name": "data", "host": {"sourcePath": "/tmp"}}],
    "placementConstraints": [{"type": "memberOf", "expression": "attribute:zone in [a, b]"}],
}
TASKDEF_POINTERS = list(pointers(TASKDEF))


def _check_taskdef(doc) -> None:
    from minirun.sched import taskdef

    try:
        td = taskdef.validate(doc)
    except TaskDefinitionError as e:
        one_line(e)
        assert e.problems and all(isinstance(p, str) and isinstance(t, str) for p, t in e.problems)
        return
    # what the scheduler then asks of a valid definition must not crash either
    taskdef.reservation(td)
    taskdef.host_ports(td)
    taskdef.start_order(td)
    json.dumps(td)


@FAST
@given(json_values)
def test_any_json_is_a_task_definition_or_a_named_problem(doc):
    _check_taskdef(doc)


@FAST
@given(st.sampled_from(TASKDEF_POINTERS), json_values, st.booleans())
def test_one_field_of_a_good_task_definition_replaced_by_anything(pointer, value, drop):
    _check_taskdef(replaced(TASKDEF, pointer, value, drop))


# -- OCI image layouts and docker-archives (minirun/images/archive.py) ---------------------------
LAYER = b"layer bytes"                 # read_images checks documents only; layers are not unpacked
LAYER_SHA = hashlib.sha256(LAYER).hexdigest()
CONFIG = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]}}
MANIFEST = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json"},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": "sha256:" + LAYER_SHA, "size": len(LAYER)}]}
INDEX = {"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json",
     "platform": {"os": "linux", "architecture": "amd64"},
     "annotations": {"org.opencontainers.image.ref.name": "app:1"}}]}
DOCKER = [{"Config": "config.json", "RepoTags": ["app:1"], "Layers": ["layer.tar"]}]
DOCS = {"config": CONFIG, "manifest": MANIFEST, "index": INDEX, "docker": DOCKER}
DOC_POINTERS = [(name, p) for name, doc in DOCS.items() for p in pointers(doc)]


def _blob(root: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def _layout(root: Path, docs: dict, raw: dict[str, bytes]) -> None:
    """An OCI layout and a docker-archive side by side in `root` (manifest.json decides which is
    read), each document taken from `docs` or, as bytes, from `raw`; digests made to match."""
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "blobs" / "sha256" / LAYER_SHA).write_bytes(LAYER)

    def encoded(name: str) -> bytes:
        return raw[name] if name in raw else json.dumps(docs[name]).encode()

    config = encoded("config")
    manifest = copy.deepcopy(docs["manifest"])
    if isinstance(manifest, dict) and isinstance(manifest.get("config"), dict) and "config" not in raw:
        manifest["config"].update(_blob(root, config))
    manifest_bytes = raw.get("manifest") or json.dumps(manifest).encode()
    index = copy.deepcopy(docs["index"])
    with_digest = _blob(root, manifest_bytes)
    if isinstance(index, dict) and isinstance(index.get("manifests"), list):
        for d in index["manifests"]:
            if isinstance(d, dict):
                d.update(with_digest)
    (root / "index.json").write_bytes(raw.get("index") or json.dumps(index).encode())
    (root / "config.json").write_bytes(config)
    (root / "layer.tar").write_bytes(LAYER)
    if docs.get("docker") is not None or "docker" in raw:
        (root / "manifest.json").write_bytes(encoded("docker"))


def _read(docs: dict, raw: dict[str, bytes] | None = None) -> None:
    from minirun.images import archive

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "layout"
        _layout(root, docs, raw or {})
        tree = archive.DirTree(root)
        try:
            refs = archive.read_images(tree, "amd64")
        except MinirunError as e:
            one_line(e)
            return
        finally:
            tree.close()
        for ref in refs:
            assert isinstance(ref.config, bytes) and all(layer.path for layer in ref.layers)


@FAST
@given(st.sampled_from(DOC_POINTERS), json_values, st.booleans(), st.booleans())
def test_one_field_of_an_image_layout_replaced_by_anything(where, value, drop, docker):
    name, pointer = where
    docs = {k: copy.deepcopy(v) for k, v in DOCS.items()}
    docs[name] = replaced(docs[name], pointer, value, drop)
    if not docker and name != "docker":
        docs["docker"] = None          # only the OCI layout is there: index.json is read
    _read(docs)


@FAST
@given(st.sampled_from(["config", "manifest", "index", "docker"]), json_values | st.binary(max_size=40),
       st.booleans())
def test_any_document_of_an_image_layout_is_read_or_refused(name, value, docker):
    docs = {k: copy.deepcopy(v) for k, v in DOCS.items()}
    if not docker and name != "docker":
        docs["docker"] = None
    if isinstance(value, bytes):
        _read(docs, {name: value})
    else:
        docs[name] = value
        _read(docs)


# -- Containerfiles (minirun/build.py) ------------------------------------------------------
INSTRUCTIONS = ["FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "CMD", "ENTRYPOINT",
                "EXPOSE", "LABEL", "ONBUILD", "HEALTHCHECK", "from", "#", ""]
words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
lines = st.tuples(st.sampled_from(INSTRUCTIONS), st.lists(words | st.sampled_from(
    ['"', "'", "\\", "=", "[", "]", '["a", "b"]', "${X:-y}", "$X", "<<EOF", "--from=a"]), max_size=4))


def _check_containerfile(text: str) -> None:
    from minirun import build

    try:
        instructions = build.parse(text)
    except MinirunError as e:
        one_line(e)
        return
    env = {"X": "1"}
    for ins in instructions:
        assert ins.line >= 1 and ins.cmd == ins.cmd.upper()
        ins.json_args()
        build.substitute(ins.args, env)
        if ins.cmd in ("ENV", "LABEL", "ARG"):
            try:
                build._pairs(ins.args, ins.cmd, f"Containerfile:{ins.line}")
            except MinirunError as e:
                one_line(e)


@FAST
@given(st.text(max_size=200))
def test_any_text_is_a_containerfile_or_one_line(text):
    _check_containerfile(text)


@FAST
@given(st.lists(lines, max_size=8), st.booleans())
def test_containerfile_like_text_is_parsed_or_refused_in_one_line(body, continuation):
    sep = " \\\n" if continuation else "\n"
    text = "FROM busybox\n" + sep.join(f"{cmd} {' '.join(args)}" for cmd, args in body)
    _check_containerfile(text)


# -- network flags (minirun/net) ------------------------------------------------------------------
port_like = st.text(alphabet="0123456789.:/-tcpudTCPU ²١", max_size=24) | st.text(max_size=24)


@FAST
@given(port_like)
def test_publish_specs_parse_or_are_refused(spec):
    from minirun.net import ports

    try:
        m = ports.parse(spec)
    except MinirunError as e:
        one_line(e)
        return
    assert m.proto in ("tcp", "udp") and 0 < m.container_port < 65536 and 0 <= m.host_port < 65536
    assert all(p.isascii() and p.isdigit() for p in m.host_ip.split("."))


# dotted quads of any Unicode decimal digits (Arabic-Indic, Devanagari, fullwidth...)
quads = st.lists(st.text(alphabet=st.characters(whitelist_categories=("Nd",)), min_size=1, max_size=3),
                 min_size=4, max_size=4).map(".".join)


@FAST
@given(st.text(alphabet="0123456789./abc:=² ١", max_size=24) | st.text(max_size=24) | quads
       | quads.map(lambda q: "host:" + q) | quads.map(lambda q: q + "/24"))
def test_addresses_hosts_and_subnets_parse_or_are_refused(text):
    from minirun.net import addresses
    from minirun.net.container import _add_host

    try:
        name, ip = _add_host(text)
        assert name and ip.isascii() and ip.count(".") == 3
    except MinirunError as e:
        one_line(e)
    try:
        value, prefix = addresses.parse_cidr(text)
        assert 8 <= prefix <= 30 and 0 <= value < 2**32
    except MinirunError as e:
        one_line(e)
    try:
        value = addresses.ip_to_int(text)
        assert 0 <= value < 2**32 and text.isascii()
    except ValueError:
        pass                           # the documented contract: callers turn it into their line


@FAST
@given(st.text(alphabet="0123456789.² ١x", max_size=18) | st.text(max_size=18) | quads)
def test_a_wanted_ip_is_leased_or_refused_in_one_line(wanted):
    """--ip goes through ipam's allocate: an address of the subnet is leased, anything else is
    one line, and a refused one writes no lease."""
    from minirun.net.addresses import ip_to_int
    from minirun.net.ipam import Leases
    from minirun.net.networks import NetworkStore

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "net").mkdir()
        (root / "net" / "config.json").write_text('{"subnet": "10.250.0.0/24"}')
        net = NetworkStore(root).get("bridge")
        leases = Leases(root, net)
        try:
            ip = leases.allocate("c" * 64, "c", wanted=wanted)
        except MinirunError as e:
            one_line(e)
            assert leases.read() == {}
            return
        assert ip == wanted and ip.isascii() and 0xA_FA_00_01 < ip_to_int(ip) < 0xA_FA_00_FF
