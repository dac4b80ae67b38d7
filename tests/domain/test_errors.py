"""The error catalogue and the DomainError type."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hub.domain import state
from hub.domain.errors import ERROR_CODES, DomainError, refuse

from ._helpers import DOMAIN_CODES_RAISED, raises_code

DOMAIN_DIR = Path(state.__file__).resolve().parent


def _codes_in_domain_source() -> set[str]:
    """Codes passed as literals to ``refuse(...)`` / ``code=`` anywhere in hub/domain."""
    found: set[str] = set()
    for path in DOMAIN_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if (
                name == "refuse"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
            for kw in node.keywords:
                if (
                    kw.arg == "code"
                    and isinstance(kw.value, ast.Constant)
                    and isinstance(kw.value.value, str)
                ):
                    found.add(kw.value.value)
    return found


def test_every_code_raised_by_domain_tests_is_catalogued():
    missing = DOMAIN_CODES_RAISED - ERROR_CODES.keys()
    assert not missing, f"codes raised by the domain but not in ERROR_CODES: {missing}"


def test_every_literal_code_in_domain_source_is_catalogued():
    codes = _codes_in_domain_source()
    # the scan must actually find the codes (guards against a broken scan)
    assert {"code_malformed", "threshold_not_met", "illegal_transition"} <= codes
    assert codes - ERROR_CODES.keys() == set()


def test_domain_source_codes_are_all_exercised_by_the_tests():
    refusal_codes = {code for code, _ in state._REFUSALS.values()}
    assert (_codes_in_domain_source() | refusal_codes) <= DOMAIN_CODES_RAISED


def test_state_refusal_table_codes_are_catalogued():
    for code, message in state._REFUSALS.values():
        assert code in ERROR_CODES
        assert message


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_catalogue_entries_are_well_formed(code):
    status, meaning = ERROR_CODES[code]
    assert code == code.lower()
    assert code.replace("_", "").isalpha()
    assert 400 <= status <= 599
    assert meaning.strip() and meaning.endswith(".")


def test_domain_error_defaults():
    err = DomainError("nope")
    assert err.code == "domain_error"
    assert err.status == 422
    assert err.message == "nope"
    assert str(err) == "nope"
    assert err.extra == {}
    # class attributes are untouched by instances
    assert DomainError.code == "domain_error"


def test_domain_error_overrides_and_extra():
    err = DomainError("gone", code="coupon_voided", status=409, at="x", n=3)
    assert (err.code, err.status) == ("coupon_voided", 409)
    assert err.extra == {"at": "x", "n": 3}
    assert DomainError.code == "domain_error"
    assert DomainError.status == 422


def test_refuse_builds_a_domain_error():
    err = refuse("threshold_not_met", "too little", threshold=100)
    assert isinstance(err, DomainError)
    assert (err.code, err.status, err.message) == ("threshold_not_met", 422, "too little")
    assert err.extra == {"threshold": 100}
    assert refuse("coupon_voided", "v", status=409).status == 409


def test_raises_code_helper_checks_code_and_status():
    with raises_code("coupon_voided"):
        raise refuse("coupon_voided", "voided", status=409)
    with pytest.raises(AssertionError), raises_code("coupon_voided"):
        raise refuse("coupon_voided", "wrong status", status=422)
    with pytest.raises(AssertionError), raises_code("coupon_voided"):
        raise refuse("coupon_expired", "wrong code")
