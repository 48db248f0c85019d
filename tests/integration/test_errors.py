"""Bad input gets one clear line, Docker's exit status, and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import cgroup_dirs, leftovers

pytestmark = pytest.mark.root


def one_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.parametrize("args, status, message", [
    (["run", "--rm", "nosuchimage", "true"], 125, "no such image"),
    (["run", "--rm", "busybox", "nosuchcmd"], 127, "exec nosuchcmd: executable file not found in $PATH"),
    (["run", "--rm", "busybox", "/etc/passwd"], 126, "exec /etc/passwd: Permission denied"),
    (["run", "--rm", "busybox", "/no/such/file"], 127, "exec /no/such/file: no such file or directory"),
    (["run", "--rm", "-m", "12x", "busybox", "true"], 125, "invalid size '12x'"),
    (["run", "--rm", "--cpus", "64", "busybox", "true"], 125, "--cpus"),
    (["run", "--rm", "--network", "nowhere", "busybox", "true"], 125, "network nowhere not found"),
    (["run", "--rm", "-v", "relative:/x", "busybox", "true"], 125, "invalid volume"),
    (["run", "--rm", "-u", "ghost", "busybox", "true"], 125, "unable to find user ghost"),
    (["run", "--rm", "--tmpfs", "/x:size=bogus", "busybox", "true"], 125, "mount tmpfs on /x: Invalid argument"),
    # --network none: no GO, the child runs in our memory (c_ext/sync.h, 3'); the same error
    (["run", "--rm", "--network", "none", "--tmpfs", "/x:size=bogus", "busybox", "true"], 125,
     "mount tmpfs on /x: Invalid argument"),
    (["run", "--rm", "--no-such-flag", "busybox"], 125, "No such option"),
    (["rm", "nosuch"], 125, "no such container: nosuch"),
    (["logs", "nosuch"], 125, "no such container: nosuch"),
    (["exec", "nosuch", "true"], 125, "no such container: nosuch"),
    (["stop", "nosuch"], 125, "no such container: nosuch"),
])
def test_bad_input_is_one_line_and_a_documented_status(clean, data_root, args, status, message):
    r = clean(*args, check=False)
    assert r.returncode == status
    assert message in one_line(r)
    assert clean.out("ps", "-a", "-q") == ""
    assert not leftovers(data_root)


def test_a_failed_start_without_rm_leaves_a_created_container_and_no_cgroup(clean, data_root):
    r = clean("run", "--name", "broken", "busybox", "nosuchcmd", check=False)
    assert r.returncode == 127
    assert "Created" in clean.out("ps", "-a")
    [info] = __import__("json").loads(clean.out("inspect", "broken"))
    assert "executable file not found" in info["State"]["Error"]
    cid = info["Id"]
    assert not any(os.path.exists(f"/sys/fs/cgroup/{c}/minirun/{cid}") for c in ("memory", "pids", "cpu"))
    clean("rm", "broken")


def test_a_mount_failing_without_go_leaves_a_created_container_and_no_cgroup(clean, data_root):
    """--network none: the child does not wait for GO and runs in the caller's memory (sync
    point 3'); its failure is one line all the same, recorded, and nothing of the start is left."""
    r = clean("run", "--name", "badmount", "--network", "none", "--tmpfs", "/x:size=bogus",
              "busybox", "true", check=False)
    assert r.returncode == 125 and "mount tmpfs on /x: Invalid argument" in one_line(r)
    [info] = __import__("json").loads(clean.out("inspect", "badmount"))
    assert info["State"]["Status"] == "created" and info["State"]["Pid"] == 0
    assert "mount tmpfs on /x: Invalid argument" in info["State"]["Error"]
    cid = info["Id"]
    left = cgroup_dirs(f"minirun/{cid}")
    assert left == []
    r = clean("start", "badmount", check=False)            # the same again, on a second start
    assert r.returncode == 125 and "mount tmpfs on /x: Invalid argument" in one_line(r)
    clean("rm", "badmount")


def test_name_in_use(clean):
    clean("create", "--name", "taken", "busybox", "true")
    r = clean("create", "--name", "taken", "busybox", "true", check=False)
    assert r.returncode == 125 and "already in use" in one_line(r)
    clean("rm", "taken")


def test_transitions_are_refused_clearly(clean):
    cid = clean.out("run", "-d", "--name", "busy", "busybox", "sleep", "30")
    try:
        r = clean("start", "busy", check=False)
        assert r.returncode == 125 and "cannot start container busy: it is running" in one_line(r)
        r = clean("rm", "busy", check=False)
        assert r.returncode == 125 and "--force" in one_line(r)
    finally:
        clean("rm", "-f", cid)
    r = clean("exec", cid, "true", check=False)
    assert r.returncode == 125 and "no such container" in one_line(r)


def test_unforeseen_errors_still_show_a_traceback_for_bugs_only(clean):
    # a foreseeable fault (unknown image) is one line; this guards against over-catching:
    # `minirun --help` works and prints usage, exit 0
    r = clean("--help")
    assert r.returncode == 0 and "Usage" in r.stdout


def test_bad_archives_are_refused_in_one_line_and_leave_no_image(clean, data_root, tmp_path):
    import io
    import tarfile

    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar at all\n")
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as t:
        info = tarfile.TarInfo("../../etc/evil")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    before = clean.out("image", "ls", "-q")
    for path, message in ((garbage, "not a tar archive"), (evil, "entry '../../etc/evil' leaves the image root"),
                          (tmp_path / "missing.tar", "No such file or directory")):
        r = clean("image", "import", str(path), "bad", check=False)
        assert r.returncode == 125 and message in one_line(r)
    assert clean.out("image", "ls", "-q") == before
    assert not os.path.exists("/etc/evil")
    assert os.listdir(data_root / "images" / "tmp") == []


def test_an_image_in_use_cannot_be_removed(clean, tmp_path):
    from tests.conftest import IMAGE_TAR

    clean("image", "import", str(IMAGE_TAR), "inuse:v1")
    cid = clean.out("create", "--name", "user-of-inuse", "inuse:v1", "true")
    r = clean("image", "rm", "inuse:v1", check=False)
    assert r.returncode == 125 and "used by container user-of-inuse" in one_line(r)
    clean("rm", cid)
    assert clean("image", "rm", "inuse:v1").returncode == 0


def test_no_verb_prints_help_and_succeeds(clean):
    r = clean(check=False)
    assert r.returncode == 0 and "Usage" in r.stdout and r.stderr == ""


def test_an_unknown_verb_is_an_error(clean):
    r = clean("nosuchverb", check=False)
    assert r.returncode == 125 and "No such command 'nosuchverb'" in one_line(r)


def test_a_data_root_overlayfs_cannot_name_is_refused(tmp_path):
    from tests.conftest import IMAGE_TAR, Minirun

    m = Minirun(tmp_path / "odd,root")
    m("image", "import", str(IMAGE_TAR), "busybox")
    r = m("run", "--rm", "busybox", "true", check=False)
    assert r.returncode == 125 and "overlayfs mount options cannot carry" in one_line(r)
    assert m.out("ps", "-a", "-q") == ""
