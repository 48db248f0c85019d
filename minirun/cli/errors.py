"""The only place domain errors become exit statuses (Docker's conventions).

    125  minirun itself failed (bad flag, unknown image, name in use, a step of the setup)
    126  the command exists but cannot be invoked
    127  the command was not found
    N    the container's own exit status; 128+N when signal N ended it (137 after an OOM kill)
"""

from __future__ import annotations

import sys

from minirun.errors import STORAGE_ERRNOS, MinirunError, storage_message

RUNTIME_ERROR = 125


def report(exc: BaseException) -> int:
    """Print one line for a foreseeable fault and return the exit status."""
    if isinstance(exc, MinirunError):
        sys.stderr.write(f"minirun: {exc}\n")
        return exc.exit_status
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:     # e.g. save -o on a full disk
        sys.stderr.write(f"minirun: {storage_message('cannot write', exc)}\n")
        return RUNTIME_ERROR
    if isinstance(exc, PermissionError):
        sys.stderr.write(f"minirun: {exc.strerror}: {exc.filename or ''} (are you root?)\n")
        return RUNTIME_ERROR
    raise exc
