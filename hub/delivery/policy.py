"""The long retry schedule (persisted per delivery) and the circuit breaker's numbers."""

from __future__ import annotations

import random
from collections.abc import Sequence

from hub.settings import env

# Seconds before attempt 2, 3, …: about a day in all. Full jitter: each wait is drawn
# uniformly from [0, step], so receivers coming back up are not hit by a herd.
DEFAULT_SCHEDULE: tuple[int, ...] = (5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200)
CIRCUIT_THRESHOLD = 10  # consecutive failed attempts that open a subscription's circuit
CIRCUIT_COOLDOWN = 300.0  # seconds before a probe delivery is let through
ENDPOINT_CONCURRENCY = 8  # a worker's requests in flight at once to one endpoint
# A claimed delivery not finished by then is retried (set lower with the environment
# variable, e.g. in the worker crash tests; keep it above the connectors' HTTP timeout).
LEASE_SECONDS = float(env("HUB_DELIVERY_LEASE_SECONDS") or 120.0)


def next_delay(
    attempts_made: int,
    schedule: Sequence[int] | None = None,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait after ``attempts_made`` failed attempts, or ``None`` when the
    schedule is exhausted (the delivery is dead). A receiver's Retry-After is honoured
    as the lower bound."""
    steps = tuple(schedule) if schedule else DEFAULT_SCHEDULE
    if attempts_made > len(steps):
        return None
    step = steps[attempts_made - 1]
    delay = (rng or random).uniform(0, step)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
