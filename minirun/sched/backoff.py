"""Restart backoff: how long a service waits before replacing a task that failed.

A task whose essential container keeps crashing must not be restarted in a tight loop (it would
burn the CPU and flood the events). Each consecutive failure doubles the wait, up to a cap, and
the wait is spread by a random factor (jitter) so that many services failing together do not
restart in lock-step. A task that ran for `reset_after` seconds before failing was a stable run:
the count starts again from one. ECS throttles restarts the same way (its "service is unable
to consistently start tasks" backoff); the figures here are ours.

Pure and clock-free: the caller passes `now`, so tests and the simulator use a fake clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    base: float = 1.0            # seconds before the first retry
    factor: float = 2.0
    cap: float = 60.0
    jitter: float = 0.2          # ± this fraction of the delay
    reset_after: float = 30.0    # a run this long (seconds) resets the count

    def delay(self, failures: int, rng: random.Random) -> float:
        """The wait after the `failures`-th consecutive failure (1, 2, ...)."""
        if failures <= 0:
            return 0.0
        raw = min(self.cap, self.base * self.factor ** (failures - 1))
        return min(self.cap, raw * (1 + rng.uniform(-self.jitter, self.jitter)))


@dataclass
class RestartState:
    failures: int = 0
    not_before: float = 0.0      # no replacement starts before this time

    def failed(self, now: float, ran_for: float | None, policy: BackoffPolicy,
               rng: random.Random) -> float:
        """Record a failure at `now` of a task that ran `ran_for` seconds (None: never
        started); returns the delay chosen."""
        if ran_for is not None and ran_for >= policy.reset_after:
            self.failures = 0
        self.failures += 1
        wait = policy.delay(self.failures, rng)
        self.not_before = now + wait
        return wait

    def may_start(self, now: float) -> bool:
        return now >= self.not_before
