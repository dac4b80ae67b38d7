"""The JMESPath functions mapping files may call (connectors/pos/mapping_functions.py)."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jmespath.exceptions import JMESPathError

from connectors.pos.mapping_functions import OPTIONS, arity, fen_to_yuan, yuan_to_fen


def run(expression: str, data: Any = None) -> Any:
    return jmespath.search(expression, data or {}, options=OPTIONS)


@pytest.mark.parametrize(
    "value, fen",
    [
        ("128.50", 12850),
        ("128.5", 12850),
        ("128", 12800),
        ("0.01", 1),
        ("-3.20", -320),
        (128.5, 12850),
        (19.99, 1999),  # 19.99 * 100 == 1998.9999999999998 in binary floating point
        (0.07, 7),
        (1e3, 100000),
        (12, 1200),
        (None, None),
    ],
)
def test_to_fen(value: Any, fen: int | None) -> None:
    assert run("to_fen(v)", {"v": value}) == fen


@pytest.mark.parametrize("value", ["1.005", "abc", "", "1e3", "1,5", " . ", 0.001, "NaN"])
def test_to_fen_refuses_what_is_not_a_whole_number_of_fen(value: Any) -> None:
    with pytest.raises(JMESPathError, match="to_fen"):
        run("to_fen(v)", {"v": value})


@pytest.mark.parametrize("value", [True, [1], {"a": 1}])
def test_to_fen_refuses_other_types(value: Any) -> None:
    with pytest.raises(JMESPathError):
        run("to_fen(v)", {"v": value})


@pytest.mark.parametrize(
    "fen, yuan", [(4000, "40.00"), (1, "0.01"), (0, "0.00"), (-250, "-2.50"), (12850, "128.50")]
)
def test_to_yuan(fen: int, yuan: str) -> None:
    assert run("to_yuan(v)", {"v": fen}) == yuan


def test_to_yuan_refuses_fractional_fen() -> None:
    with pytest.raises(JMESPathError, match="to_yuan"):
        run("to_yuan(`1.5`)")
    assert run("to_yuan(`null`)") is None


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_yuan_and_fen_round_trip(fen: int) -> None:
    yuan = fen_to_yuan(fen)
    assert yuan_to_fen(yuan) == fen
    assert yuan_to_fen(float(yuan)) == fen  # a JSON number, read back exactly


def test_concat() -> None:
    data = {"a": "SH", "b": 1, "c": None, "d": 2.0, "e": True}
    assert run("concat(a, '-', b, c, '-', d, e)", data) == "SH-1-2true"
    assert run("concat(a)", data) == "SH"
    with pytest.raises(JMESPathError, match="concat"):
        run("concat(a, @)", data)


def test_lookup() -> None:
    table = '`{"1": "pos", "2": "app"}`'
    assert run(f"lookup({table}, k)", {"k": 1}) == "pos"
    assert run(f"lookup({table}, k)", {"k": "2"}) == "app"
    assert run(f"lookup({table}, k)", {"k": 2.0}) == "app"
    assert run(f"lookup({table}, k)", {"k": 3}) is None
    assert run(f"lookup({table}, k)", {}) is None
    assert run(f"lookup({table}, k) || 'web'", {"k": 9}) == "web"


def test_epoch_functions() -> None:
    assert run("from_epoch(`1795588200000`, 'ms')") == "2026-11-25T06:30:00Z"
    assert run("from_epoch(`1795588200`, 's')") == "2026-11-25T06:30:00Z"
    assert run("from_epoch('1795588200', 's')") == "2026-11-25T06:30:00Z"
    assert run("from_epoch(`null`, 's')") is None
    assert run("to_epoch('2026-11-25T06:30:00Z', 'ms')") == 1795588200000
    assert run("to_epoch('2026-11-25T14:30:00+08:00', 's')") == 1795588200
    for bad in (
        "from_epoch(`-1`, 's')",
        "from_epoch(`1.5`, 's')",
        "from_epoch(`1`, 'h')",
        "to_epoch('soon', 's')",
        "from_epoch(`1e20`, 'ms')",
    ):
        with pytest.raises(JMESPathError):
            run(bad)


def test_local_time() -> None:
    assert run("local_time('2026-11-25T06:30:00Z', 'Asia/Shanghai')") == "2026-11-25 14:30:00"
    assert run("local_time(`null`, 'Asia/Shanghai')") is None
    with pytest.raises(JMESPathError, match="unknown time zone"):
        run("local_time('2026-11-25T06:30:00Z', 'Mars/Base')")


def test_arity_knows_builtin_and_custom_functions() -> None:
    assert arity("to_fen") == (1, False)
    assert arity("concat") == (1, True)
    assert arity("length") == (1, False)
    assert arity("nope") is None
