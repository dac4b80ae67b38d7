"""Parsed template rules, cached by template id (rules never change after creation)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec

from hub.domain.template_codec import template_from_dict
from hub.domain.templates import Template


@lru_cache(maxsize=4096)
def _parse(template_id: str, rules_json: bytes) -> Template:
    return template_from_dict(msgspec.json.decode(rules_json))


def template_of(template_id: str, rules: dict[str, Any]) -> Template:
    """The domain :class:`Template` for stored ``rules`` (cached per id and content)."""
    return _parse(template_id, msgspec.json.encode(rules))
