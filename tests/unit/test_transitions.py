"""The one transitions table (runtime/state.py), walked for both flavours of the lifecycle:
what runtime-spec (runtime.md, "Lifecycle" and "Operations") allows a `minirun-oci` container,
and what `minirun` allows its own, Docker's way."""

import pytest

from minirun.errors import InvalidTransition
from minirun.runtime.state import TRANSITIONS, check_transition

# runtime-spec: operation -> the statuses it may run in (runc's answers for pause, resume, ps,
# update and exec, which the spec leaves to the runtime)
OCI = {
    "start": {"created"},
    "kill": {"created", "running", "paused"},
    "delete": {"creating", "created", "stopped"},
    "exec": {"created", "running"},
    "pause": {"running"},
    "resume": {"paused"},
    "ps": {"created", "running", "paused"},
    "update": {"created", "running", "paused"},
}
OCI_STATUSES = ("creating", "created", "running", "paused", "stopped")

# minirun: a created container has no process yet; an exited one may be started again
MINIRUN = {
    "start": {"created", "exited"},
    "rm": {"created", "exited"},
    "stop": {"running"},
    "kill": {"running"},
    "exec": {"running"},
    "top": {"running"},
    "update": {"created", "running", "exited"},
    "wait": {"running", "exited"},
}
MINIRUN_STATUSES = ("created", "running", "exited")


def allowed(status: str, operation: str, has_process: bool = True) -> bool:
    try:
        assert check_transition("c", status, operation, has_process) == status
    except InvalidTransition as e:
        assert str(e) == f"cannot {operation} container c: it is {status}"
        return False
    return True


@pytest.mark.parametrize("operation", sorted(OCI))
def test_oci_flavour(operation):
    assert {s for s in OCI_STATUSES if allowed(s, operation)} == OCI[operation]


@pytest.mark.parametrize("operation", sorted(MINIRUN))
def test_minirun_flavour(operation):
    # minirun's "created" has no process (pid None); its other statuses have one, live or gone
    got = {s for s in MINIRUN_STATUSES if allowed(s, operation, has_process=s != "created")}
    assert got == MINIRUN[operation]


def test_every_row_is_a_status_of_a_flavour():
    assert set(TRANSITIONS) == set(OCI_STATUSES) | set(MINIRUN_STATUSES)
