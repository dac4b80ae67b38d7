"""The app-wide settings handed to the services (one per app: ``create_app`` builds it).

The values come from the environment through :mod:`hub.settings` (the guessing
defence's ``HUB_GUESS_*``, ``HUB_REPEAT_WINDOW_SECONDS`` and ``HUB_TRUSTED_PROXIES``,
read when the settings are made); tests build their own. It bundles service objects
(the guard), so it lives with the services; the variables themselves are declared in
:mod:`hub.settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from hub.services.guard import Guard
from hub.services.idempotency import DEFAULT_TTL

MAX_OFFLINE_AGE = timedelta(days=7)


@dataclass(frozen=True)
class Settings:
    # how long an Idempotency-Key's answer is kept for replay
    idempotency_ttl: timedelta = DEFAULT_TTL
    # how old an offline redeem's occurred_at may be
    max_offline_age: timedelta = MAX_OFFLINE_AGE
    # guessing defence and repeat-attempt alerts (guard.py, alerts.py); one per app
    guard: Guard = field(default_factory=Guard.from_env)
