"""Parsed template rules, cached by template id.

A template's rules never change after creation (only its status does), so the id is
enough of a key; parsing and checking the rules on every redeem would be wasted work.
"""

from __future__ import annotations

from threading import Lock
from typing import Any

from hub.domain.template_codec import template_from_dict
from hub.domain.templates import Template

_MAX = 10_000
_cache: dict[str, Template] = {}
_lock = Lock()


def template_of(template_id: str, rules: dict[str, Any]) -> Template:
    """The domain :class:`Template` for a stored template's ``rules``."""
    found = _cache.get(template_id)
    if found is not None:
        return found
    parsed = template_from_dict(rules)
    with _lock:
        if len(_cache) >= _MAX:
            _cache.clear()
        _cache[template_id] = parsed
    return parsed
