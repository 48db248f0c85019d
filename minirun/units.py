"""Human units for limits, as Docker spells them: sizes ("64m", "1.5g") and CPUs ("0.5").

Sizes use binary multiples (k = 1024), like `docker run --memory`. CPUs become a CFS bandwidth
quota: `--cpus 0.5` is 50 ms of CPU time per 100 ms period (kernel scheduler/sched-bwc.rst).
"""

from __future__ import annotations

import math
import os
import re

from minirun.errors import UsageError

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([bkmgtp]?)(i?b)?\s*$", re.IGNORECASE)

CPU_PERIOD_US = 100_000


def parse_bytes(text: str | int) -> int:
    """"64m" -> 67108864. Units b, k, m, g, t, p (case-insensitive, "kb"/"KiB" too)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise UsageError(f"invalid size '{text}': must not be negative")
        return text
    match = _SIZE.match(str(text))
    if not match or (match.group(3) and not match.group(2)):
        raise UsageError(f"invalid size '{text}': use a number with an optional unit b, k, m, g")
    number, unit = match.group(1), match.group(2).lower()
    return int(float(number) * _UNITS[unit]) if "." in number else int(number) * _UNITS[unit]


def format_bytes(n: int | None) -> str:
    """67108864 -> "64MiB"; for people (tables), not for parsing back exactly."""
    if n is None:
        return "unlimited"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(value)}B"
            return f"{value:.1f}".rstrip("0").rstrip(".") + unit
        value /= 1024
    raise AssertionError("unreachable")


def cpus_to_quota(cpus: float, period: int = CPU_PERIOD_US) -> tuple[int, int]:
    """0.5 -> (50000, 100000): µs of CPU time per period."""
    return round(cpus * period), period


def parse_cpus(text: str | float, ncpus: int | None = None) -> tuple[int, int]:
    """Docker's --cpus: "0.5" -> (quota_us, period_us) = (50000, 100000)."""
    try:
        cpus = float(text)
    except (TypeError, ValueError):
        raise UsageError(f"invalid --cpus '{text}': use a number of CPUs like 0.5 or 2") from None
    if not math.isfinite(cpus) or cpus <= 0:
        raise UsageError(f"invalid --cpus '{text}': must be more than 0")
    available = ncpus if ncpus is not None else (os.cpu_count() or 1)
    if cpus > available:
        noun = "CPU" if available == 1 else "CPUs"
        raise UsageError(f"--cpus {text}: the machine has {available} {noun}")
    quota, period = cpus_to_quota(cpus)
    if quota < 1000:
        raise UsageError(f"invalid --cpus '{text}': the smallest is 0.01 (1 ms per 100 ms)")
    return quota, period
