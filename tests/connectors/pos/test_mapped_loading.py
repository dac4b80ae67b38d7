"""Loading mapping files: the examples load; broken files are refused with their name and
the JSON path of the problem while the good ones are still served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from connectors.pos.mapped import (
    DEFAULT_MAPPINGS_DIR,
    MAPPINGS_ENV,
    MappedPosConnector,
    MappedVariant,
    MappingError,
    load_mapping,
    mapping_schema,
)
from hub.connectors import get_connector
from hub.domain.errors import DomainError

EXAMPLES = DEFAULT_MAPPINGS_DIR / "pos"


@pytest.fixture
def mappings(tmp_path: Path) -> Path:
    """A mappings directory (named ``mappings``) holding a copy of acme.yaml."""
    root = tmp_path / "mappings"
    (root / "pos").mkdir(parents=True)
    shutil.copy(EXAMPLES / "acme.yaml", root / "pos" / "acme.yaml")
    return root


def acme_doc() -> dict[str, Any]:
    doc = yaml.safe_load((EXAMPLES / "acme.yaml").read_text("utf-8"))
    copied: dict[str, Any] = json.loads(json.dumps(doc))
    return copied  # undo YAML aliases: change one place only


def write(root: Path, name: str, doc: object) -> Path:
    path = root / "pos" / name
    if isinstance(doc, str):
        path.write_text(doc, "utf-8")
    elif name.endswith(".json"):
        path.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    else:
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return path


def broken_one(root: Path, name: str, doc: object) -> str:
    """Load ``root`` with the extra file ``name``; the broken message for it (and check
    the good acme mapping is still served)."""
    write(root, name, doc)
    connector = MappedPosConnector(root)
    assert connector.variants() == ["acme"], connector.broken_mappings()
    broken = connector.broken_mappings()
    assert list(broken) == [f"mappings/pos/{name}"], broken
    return broken[f"mappings/pos/{name}"]


# ------------------------------------------------------------------ the examples
def test_the_mapping_schema_is_draft_2020_12_and_the_examples_pass_it() -> None:
    schema = mapping_schema()
    Draft202012Validator.check_schema(schema)
    for path in sorted(EXAMPLES.glob("*.yaml")):
        errors = list(Draft202012Validator(schema).iter_errors(yaml.safe_load(path.read_text())))
        assert not errors, (path.name, [e.message for e in errors])


def test_both_examples_load_as_variants() -> None:
    connector = MappedPosConnector(DEFAULT_MAPPINGS_DIR)
    assert connector.variants() == ["acme", "nimbus"]
    assert connector.broken_mappings() == {} and connector.problems() == {}
    for name in ("acme", "nimbus"):
        variant = connector.variant(name)
        assert isinstance(variant, MappedVariant)
        assert variant.name == f"pos.mapped.{name}"
        assert variant.kind == "pos"
        assert variant.operations == ("redeem", "validate", "reverse")
        assert variant.media_types == ("application/json",)
        assert variant.capabilities == ("inbound.redeem", "inbound.validate", "inbound.reverse")
        assert connector.variant(name) is variant  # one object per mapping
    assert connector.variant("acme").version == "1.0"
    assert connector.variant("nimbus").version == "2.3"
    with pytest.raises(KeyError):
        connector.variant("nope")


def test_describe_lists_the_variants_and_the_broken_files(mappings: Path) -> None:
    write(mappings, "bad.yaml", "name: [unclosed\n")
    about = MappedPosConnector(mappings).describe()
    assert about["name"] == "pos.mapped" and about["kind"] == "pos"
    assert about["variants"] == ["acme"]
    assert list(about["broken_mappings"]) == ["mappings/pos/bad.yaml"]
    assert "operations" not in about  # the base serves nothing itself
    acme = MappedPosConnector(mappings).variant("acme").describe()
    assert acme["name"] == "pos.mapped.acme"
    assert acme["operations"] == ["redeem", "validate", "reverse"]
    assert acme["media_types"] == ["application/json"]
    assert acme["mapping"] == {"file": "mappings/pos/acme.yaml", "name": "acme"}
    assert acme["summary"].startswith("ACME POS")


def test_the_registry_resolves_variants_by_name() -> None:
    acme = get_connector("pos.mapped.acme")
    assert acme.name == "pos.mapped.acme" and "redeem" in acme.operations
    assert get_connector("pos.mapped").variants() == ["acme", "nimbus"]
    with pytest.raises(DomainError) as info:
        get_connector("pos.mapped.nope")
    assert info.value.code == "unknown_connector"


def test_the_directory_comes_from_the_environment(
    mappings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAPPINGS_ENV, str(mappings))
    connector = MappedPosConnector()
    assert connector.directory == mappings and connector.variants() == ["acme"]


def test_a_missing_configured_directory_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAPPINGS_ENV, str(tmp_path / "nowhere"))
    connector = MappedPosConnector()
    assert connector.variants() == []
    [(where, why)] = connector.broken_mappings().items()
    assert "nowhere" in where and "not a directory" in why


def test_json_mapping_files_load_like_yaml(mappings: Path) -> None:
    doc = yaml.safe_load((EXAMPLES / "nimbus.yaml").read_text("utf-8"))
    write(mappings, "nimbus.json", doc)
    connector = MappedPosConnector(mappings)
    assert connector.variants() == ["acme", "nimbus"] and connector.broken_mappings() == {}
    assert connector.variant("nimbus").describe()["mapping"]["file"] == "mappings/pos/nimbus.json"


def test_reload_picks_up_new_files(mappings: Path) -> None:
    connector = MappedPosConnector(mappings)
    assert connector.variants() == ["acme"]
    shutil.copy(EXAMPLES / "nimbus.yaml", mappings / "pos" / "nimbus.yaml")
    connector.reload()
    assert connector.variants() == ["acme", "nimbus"]


def test_a_mapping_may_serve_only_some_operations(mappings: Path) -> None:
    doc = acme_doc()
    doc["name"] = "redeem_only"
    doc["operations"] = {"redeem": doc["operations"]["redeem"]}
    write(mappings, "redeem_only.yaml", doc)
    variant = MappedPosConnector(mappings).variant("redeem_only")
    assert variant.operations == ("redeem",)
    assert variant.capabilities == ("inbound.redeem",)
    with pytest.raises(DomainError) as info:
        variant.parse("reverse", b"{}", {})
    assert info.value.code == "invalid_pos_payload"


def test_hidden_files_and_folders_are_ignored(mappings: Path) -> None:
    (mappings / "pos" / ".acme.yaml.swp").write_bytes(b"\x00\x01")
    (mappings / "pos" / "drafts").mkdir()
    connector = MappedPosConnector(mappings)
    assert connector.variants() == ["acme"] and connector.broken_mappings() == {}


# ------------------------------------------------------------------ broken files
def test_a_schema_violation_names_the_file_and_the_json_path(mappings: Path) -> None:
    doc = acme_doc()
    del doc["operations"]["redeem"]["request"]["code"]
    why = broken_one(mappings, "bad.yaml", doc)
    assert why == (
        "mappings/pos/bad.yaml: $.operations.redeem.request.code: 'code' is a required property"
    )


def test_the_first_problem_in_the_file_is_reported(mappings: Path) -> None:
    text = (EXAMPLES / "acme.yaml").read_text("utf-8")
    # redeem and validate share the request through a YAML alias: redeem comes first
    text = text.replace("      code: coupon_no\n", "      kode: coupon_no\n", 1)
    why = broken_one(mappings, "bad.yaml", text)
    assert why == (
        "mappings/pos/bad.yaml: $.operations.redeem.request.code: 'code' is a required property"
    )


def test_the_mapping_error_carries_file_path_and_message(mappings: Path) -> None:
    doc = acme_doc()
    doc["operations"]["redeem"]["reply"]["status"]["success"] = "sometimes"
    path = write(mappings, "bad.yaml", doc)
    with pytest.raises(MappingError) as info:
        load_mapping(path, "mappings/pos/bad.yaml")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.file == "mappings/pos/bad.yaml"
    assert err.path == "$.operations.redeem.reply.status.success"
    assert "sometimes" in err.message
    assert str(err) == f"{err.file}: {err.path}: {err.message}"


@pytest.mark.parametrize(
    "change, path, words",
    [
        (lambda d: d.update(name="Acme Two"), "$.name", "does not match"),
        (lambda d: d.pop("operations"), "$.operations", "required property"),
        (lambda d: d.update(operations={}), "$.operations", "non-empty"),
        (lambda d: d.update(colour="red"), "$", "'colour' was unexpected"),
        (lambda d: d.update(amount_unit="cents"), "$.amount_unit", "is not one of"),
        (
            lambda d: d["operations"].update(refund=d["operations"]["reverse"]),
            "$.operations",
            "'refund' was unexpected",
        ),
        (
            lambda d: d["operations"]["redeem"]["request"].pop("line"),
            "$.operations.redeem.request",
            "dependency",
        ),
        (
            lambda d: d["operations"]["redeem"]["request"]["line"].pop("qty"),
            "$.operations.redeem.request.line.qty",
            "required property",
        ),
        (
            lambda d: d["operations"]["reverse"]["request"].update(code=""),
            "$.operations.reverse.request.code",
            "non-empty",
        ),
        (
            lambda d: d["operations"]["reverse"]["request"].pop("code"),
            "$.operations.reverse.request",
            "one of 'code', 'redemption_id' is a required property",
        ),
        (
            lambda d: d["operations"]["validate"].pop("reply"),
            "$.operations.validate.reply",
            "required property",
        ),
        (lambda d: d["errors"].update(coupon_expired=[1003]), "$.errors.coupon_expired", ""),
    ],
    ids=[
        "name",
        "no-operations",
        "empty-operations",
        "unknown-key",
        "amount-unit",
        "unknown-operation",
        "lines-without-line",
        "line-without-qty",
        "empty-expression",
        "reverse-names-nothing",
        "no-reply",
        "vendor-code-type",
    ],
)
def test_schema_violations_are_refused_by_path(mappings: Path, change, path, words) -> None:
    doc = acme_doc()
    change(doc)
    why = broken_one(mappings, "bad.yaml", doc)
    assert why.startswith(f"mappings/pos/bad.yaml: {path}: "), why
    assert words in why


@pytest.mark.parametrize(
    "where, expression, words",
    [
        (("redeem", "request", "amount"), "to_fen(total_amt", "not a JMESPath expression"),
        (("redeem", "request", "code"), "coupon_no[", "not a JMESPath expression"),
        (("validate", "reply", "success"), "{ret: `0`, msg: }", "not a JMESPath expression"),
        (("redeem", "request", "amount"), "to_cents(total_amt)", "unknown function to_cents()"),
        (("redeem", "request", "amount"), "to_fen(total_amt, `2`)", "to_fen() takes 1"),
        (("reverse", "reply", "failure"), "{m: concat()}", "concat() takes at least 1"),
        (("redeem", "request", "code"), "`{not json`", "not a JMESPath expression"),
    ],
)
def test_bad_expressions_are_refused_at_load(mappings: Path, where, expression, words) -> None:
    doc = acme_doc()
    operation, part, name = where
    doc["operations"][operation][part][name] = expression
    why = broken_one(mappings, "bad.yaml", doc)
    assert why.startswith(f"mappings/pos/bad.yaml: $.operations.{operation}.{part}.{name}: ")
    assert words in why


def test_a_line_expression_is_checked_too(mappings: Path) -> None:
    doc = acme_doc()
    doc["operations"]["redeem"]["request"]["line"]["unit_price"] = "to_fen(price"
    why = broken_one(mappings, "bad.yaml", doc)
    assert why.startswith("mappings/pos/bad.yaml: $.operations.redeem.request.line.unit_price: ")


def test_duplicate_names_keep_the_first_file(mappings: Path) -> None:
    write(mappings, "zz_acme_copy.yaml", acme_doc())
    connector = MappedPosConnector(mappings)
    assert connector.variants() == ["acme"]
    assert connector.variant("acme").describe()["mapping"]["file"] == "mappings/pos/acme.yaml"
    why = connector.broken_mappings()["mappings/pos/zz_acme_copy.yaml"]
    assert why == (
        "mappings/pos/zz_acme_copy.yaml: $.name: duplicate name 'acme': "
        "mappings/pos/acme.yaml defines it"
    )


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("bad.yaml", "name: acme\noperations: [unclosed\n", "not YAML"),
        ("tabs.yaml", "name: x\n\toperations: {}\n", "not YAML"),
        ("list.yaml", "- name: acme\n", "$: [{'name': 'acme'}] is not of type 'object'"),
        ("empty.yaml", "", "$: None is not of type 'object'"),
        ("bad.json", '{"name": "acme",', "not JSON"),
        ("notes.txt", "name: acme\n", "not a mapping file"),
        ("acme.yaml.bak", "name: acme\n", "not a mapping file"),
        ("binary.yaml", b"\xff\xfe\x00garbage".decode("latin-1"), "not"),
    ],
)
def test_files_that_are_not_mappings_are_refused(mappings: Path, name, text, words) -> None:
    why = broken_one(mappings, name, text)
    assert why.startswith(f"mappings/pos/{name}: $"), why
    assert words in why


def test_yaml_syntax_errors_say_where(mappings: Path) -> None:
    why = broken_one(mappings, "bad.yaml", "name: acme\noperations:\n  redeem: [\n")
    assert "line" in why and "column" in why


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ('version: "1.0"', "version: 2026-11-25", "$.version: date is not a JSON value"),
        ("  default:", "  2001:", "$.errors: key 2001 is not text"),
    ],
)
def test_yaml_values_json_cannot_hold_are_refused(mappings: Path, old, new, expected) -> None:
    text = (EXAMPLES / "acme.yaml").read_text("utf-8")
    assert old in text
    why = broken_one(mappings, "odd.yaml", text.replace(old, new))
    assert why.startswith(f"mappings/pos/odd.yaml: {expected}")


def test_unknown_hub_error_codes_are_refused(mappings: Path) -> None:
    doc = acme_doc()
    doc["errors"]["coupon_gone"] = 1099
    why = broken_one(mappings, "bad.yaml", doc)
    assert why == (
        "mappings/pos/bad.yaml: $.errors.coupon_gone: 'coupon_gone' is not a hub error code "
        "(see the README's error table)"
    )


def test_an_unknown_time_zone_is_refused(mappings: Path) -> None:
    doc = acme_doc()
    doc["timezone"] = "Mars/Olympus_Mons"
    why = broken_one(mappings, "bad.yaml", doc)
    assert why == "mappings/pos/bad.yaml: $.timezone: unknown time zone 'Mars/Olympus_Mons'"


def test_required_fields_must_be_mapped(mappings: Path) -> None:
    doc = acme_doc()
    doc["operations"]["redeem"]["request"] = dict(doc["operations"]["redeem"]["request"])
    del doc["operations"]["redeem"]["request"]["store"]
    why = broken_one(mappings, "bad.yaml", doc)
    assert why == (
        "mappings/pos/bad.yaml: $.operations.redeem.request.required: "
        "'store' is required but the request does not map it"
    )


def test_an_oversized_file_is_refused(mappings: Path) -> None:
    why = broken_one(mappings, "huge.yaml", "# " + "x" * (1024 * 1024) + "\n")
    assert why == "mappings/pos/huge.yaml: $: larger than 1024 KiB"


def test_every_broken_file_is_reported_and_the_good_ones_served(mappings: Path) -> None:
    shutil.copy(EXAMPLES / "nimbus.yaml", mappings / "pos" / "nimbus.yaml")
    write(mappings, "a.yaml", "name: [")
    write(mappings, "b.yaml", {"name": "b"})
    doc = acme_doc()
    doc["name"] = "c"
    doc["operations"]["redeem"]["request"]["amount"] = "to_fen("
    write(mappings, "c.yaml", doc)
    connector = MappedPosConnector(mappings)
    assert connector.variants() == ["acme", "nimbus"]
    assert sorted(connector.broken_mappings()) == [
        "mappings/pos/a.yaml",
        "mappings/pos/b.yaml",
        "mappings/pos/c.yaml",
    ]
    assert connector.problems()["mappings/pos/a.yaml"].startswith("$: not YAML")
