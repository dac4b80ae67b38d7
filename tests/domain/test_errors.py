"""The error catalogue and the DomainError type."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hub.domain import state
from hub.domain.errors import ERROR_CODES, DomainError, refuse
from hub.services.problems import HTTP_STATUS, status_for

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
    meaning = ERROR_CODES[code]
    assert code == code.lower()
    assert code.replace("_", "").isalpha()
    assert isinstance(meaning, str)
    assert meaning.strip() and meaning.endswith(".")


def test_every_code_has_one_http_status_in_the_edge_table():
    # the domain names codes; the HTTP side of the table is the edge's, with the same keys
    assert HTTP_STATUS.keys() == ERROR_CODES.keys()
    for code, status in HTTP_STATUS.items():
        assert 400 <= status <= 599, code
        assert status_for(code) == status


def test_domain_error_defaults():
    err = DomainError("nope")
    assert err.code == "domain_error"
    assert status_for(err.code) == 422  # a code outside the catalogue: refused
    assert err.message == "nope"
    assert str(err) == "nope"
    assert err.extra == {}
    # class attributes are untouched by instances
    assert DomainError.code == "domain_error"


def test_domain_error_overrides_and_extra():
    err = DomainError("gone", code="coupon_voided", at="x", n=3)
    assert (err.code, status_for(err.code)) == ("coupon_voided", 409)
    assert err.extra == {"at": "x", "n": 3}
    assert DomainError.code == "domain_error"


def test_refuse_builds_a_domain_error():
    err = refuse("threshold_not_met", "too little", threshold=100)
    assert isinstance(err, DomainError)
    assert (err.code, err.message) == ("threshold_not_met", "too little")
    assert err.extra == {"threshold": 100}


def test_domain_errors_carry_no_http_status():
    """Rules know no HTTP: a refusal names a code, the edge answers with the table's status."""
    assert not hasattr(DomainError, "status")
    assert not hasattr(refuse("coupon_voided", "v"), "status")
    with pytest.raises(TypeError):
        refuse("coupon_voided", "v", status=409)
    with pytest.raises(TypeError):
        DomainError("gone", code="coupon_voided", status=409)


def _status_arguments(root: Path) -> list[str]:
    """``refuse(…, status=…)`` / ``DomainError(…, status=…)`` calls (or a positional
    status) anywhere under ``root``: the status belongs to the edge's table."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name not in ("refuse", "DomainError"):
                continue
            positional = len(node.args) > (2 if name == "refuse" else 1)
            if positional or any(kw.arg == "status" for kw in node.keywords):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_no_refusal_names_an_http_status():
    root = DOMAIN_DIR.parent.parent
    found = _status_arguments(root / "hub") + _status_arguments(root / "connectors")
    assert not found, f"refusals that pick their own HTTP status: {found}"
    # the domain's source has no HTTP status numbers in it at all
    for path in DOMAIN_DIR.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "status=" not in text, path.name


def test_raises_code_helper_checks_the_code():
    with raises_code("coupon_voided"):
        raise refuse("coupon_voided", "voided")
    with pytest.raises(AssertionError), raises_code("coupon_voided"):
        raise refuse("coupon_expired", "wrong code")
