"""`minirun build` from the outside: the subset of Containerfile instructions, what a container
of the result sees, the step cache (an unchanged rebuild is instant), refused contexts."""

from __future__ import annotations

import json
import os
import tarfile
import time

import pytest

pytestmark = pytest.mark.root

CONTAINERFILE = """\
ARG BASE=busybox
FROM $BASE
ARG GREETING=hi
ENV APP_HOME=/opt/app \\
    MODE=test
WORKDIR $APP_HOME
COPY app/ ./
COPY --chown=1000:1000 f.txt /tmp/
ADD t.tar.gz /unpacked
RUN echo "$GREETING from run" > run.txt && rm /bin/vi
USER 1000:1000
EXPOSE 8080 53/udp
LABEL org.example.team="images team"
STOPSIGNAL SIGUSR1
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat run.txt; pwd; id -u; echo $MODE"]
"""


@pytest.fixture
def context(tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "app/sub").mkdir(parents=True)
    (ctx / "app/a.txt").write_text("a\n")
    (ctx / "app/sub/b.txt").write_text("b\n")
    (ctx / "app/link").symlink_to("a.txt")
    (ctx / "f.txt").write_text("f\n")
    (tmp_path / "t").mkdir()
    (tmp_path / "t/inner.txt").write_text("from the tarball\n")
    with tarfile.open(ctx / "t.tar.gz", "w:gz") as t:
        t.add(tmp_path / "t/inner.txt", "inner.txt")
    (ctx / "Containerfile").write_text(CONTAINERFILE)
    return ctx


@pytest.fixture
def built(clean):
    names: list[str] = []
    yield names
    clean("image", "rm", *names, check=False)
    clean("image", "prune", check=False)


def test_build_every_instruction_and_run_the_result(clean, built, context):
    built.append("it-built:1")
    proc = clean("build", "-t", "it-built:1", "--build-arg", "GREETING=hello", str(context))
    assert proc.stdout.startswith("Successfully built ")
    assert "STEP 9/15: RUN" in proc.stderr  # plain progress lines when piped
    assert clean.out("run", "--rm", "it-built:1").splitlines() == \
        ["hello from run", "/opt/app", "1000", "test"]
    out = clean.out("run", "--rm", "-u", "0", "it-built:1",
                    "stat -c '%u:%g %s' /tmp/f.txt; cat /opt/app/sub/b.txt; "
                    "readlink /opt/app/link; cat /unpacked/inner.txt; test -e /bin/vi || echo "
                    "no-vi; stat -c %a /tmp")
    assert out.splitlines() == ["1000:1000 2", "b", "a.txt", "from the tarball",
                                "no-vi", "1777"]  # COPY into /tmp keeps its sticky bit
    config = json.loads(clean.out("image", "inspect", "it-built:1"))[0]["Config"]
    assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert config["Labels"] == {"org.example.team": "images team"}
    assert config["StopSignal"] == "SIGUSR1" and config["User"] == "1000:1000"
    assert "GREETING=hello" not in config["Env"]  # an ARG is not kept in the image
    history = json.loads(clean.out("image", "history", "--format", "json", "it-built:1"))
    assert history[0]["created_by"].startswith("CMD") and len(history) == 13


def test_unchanged_rebuild_is_cached_and_a_change_rebuilds_from_there(clean, built, context):
    built.append("it-cache:1")
    first = clean("build", "-q", "-t", "it-cache:1", str(context)).stdout.strip()
    t0 = time.monotonic()
    again = clean("build", "-t", "it-cache:1", str(context))
    elapsed = time.monotonic() - t0
    assert again.stdout.split()[-1] == first[7:19]
    assert again.stderr.count("Using cache") == 12 and elapsed < 1.5
    (context / "app/a.txt").write_text("changed\n")
    changed = clean("build", "-t", "it-cache:1", str(context))
    # the steps before the COPY whose source changed come from the cache, the rest run again
    assert changed.stderr.count("Using cache") == 2
    assert clean.out("run", "--rm", "it-cache:1", "cat /opt/app/a.txt") == "changed"


@pytest.mark.parametrize("line, message", [
    ("COPY ../outside /x", "leaves the build context"),
    ("COPY /etc/passwd /x", "leaves the build context"),
    ("COPY escape /x", "leaves the build context (it resolves to"),
    ("COPY missing.txt /x", "is not in the build context"),
    ("RUN exit 3", "exited with status 3"),
    ("FROM nosuchimage", "no local image nosuchimage"),
    ("COPY --from=x a b", "multi-stage"),
    ("ADD evil.tar /x", "'../../escaped' leaves the image root"),
    ("ADD https://example.com/x /x", "ADD from a URL is not supported"),
])
def test_bad_builds_fail_in_one_line_and_leave_no_container(clean, built, tmp_path, line,
                                                               message):
    ctx = tmp_path / "bad"
    ctx.mkdir()
    (tmp_path / "outside").write_text("secret")
    (ctx / "escape").symlink_to(tmp_path / "outside")
    with tarfile.open(ctx / "evil.tar", "w") as t:
        t.add(tmp_path / "outside", "../../escaped")
    text = ("FROM busybox\n" if not line.startswith("FROM") else "") + line + "\n"
    (ctx / "Containerfile").write_text(text)
    images_before = clean.out("image", "ls", "-a", "-q")
    proc = clean("build", "-t", "it-bad:1", str(ctx), check=False)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("minirun: ") and message in last and "Traceback" not in proc.stderr
    assert clean.out("ps", "-a", "-q") == ""
    assert clean.out("image", "ls", "-a", "-q") == images_before
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path.parent / "escaped")


def test_from_scratch(clean, built, tmp_path):
    ctx = tmp_path / "s"
    ctx.mkdir()
    (ctx / "hello").write_text("hi\n")
    (ctx / "alias").symlink_to("hello")  # a named source that is a link: copied as its target
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY hello alias /\nCMD [\"/hello\"]\n")
    built.append("it-scratch:1")
    clean("build", "-q", "-t", "it-scratch:1", str(ctx))
    clean("image", "save", "-q", "-o", str(tmp_path / "s.tar"), "it-scratch:1")
    with tarfile.open(tmp_path / "s.tar") as t:
        blobs = [m for m in t.getmembers() if m.name.startswith("blobs/") and m.isfile()]
        assert len(blobs) == 3  # one layer, the config, the manifest
        index = json.load(t.extractfile("index.json"))
        manifest = json.load(t.extractfile("blobs/sha256/" + index["manifests"][0]["digest"][7:]))
        top = t.extractfile("blobs/sha256/" + manifest["layers"][0]["digest"][7:])
        with tarfile.open(fileobj=top) as layer:
            alias = layer.getmember("alias")
            assert alias.isfile() and layer.extractfile(alias).read() == b"hi\n"


def test_ignore_file_keeps_paths_out_of_the_image_and_the_cache(clean, built, context):
    (context / "app/debug.log").write_text("noise\n")
    (context / ".containerignore").write_text("app/sub\n*/*.log\n")
    (context / "Containerfile").write_text("FROM busybox\nCOPY app/ /app/\nCMD [\"ls\", \"/app\"]\n")
    built.append("it-ignore:1")
    clean("build", "-q", "-t", "it-ignore:1", str(context))
    assert clean.out("run", "--rm", "it-ignore:1").split() == ["a.txt", "link"]
    (context / "app/debug.log").write_text("more noise\n")  # ignored: the cache still holds
    assert "Using cache" in clean("build", "-t", "it-ignore:1", str(context)).stderr
    (context / "Containerfile").write_text("FROM busybox\nCOPY app/sub/b.txt /\n")
    proc = clean("build", "-t", "it-ignore:2", str(context), check=False)
    assert proc.returncode == 1 and "excluded by the context's .containerignore" in proc.stderr
