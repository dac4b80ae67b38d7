"""The coupon token's format and the offline limits (hub.domain.offline): pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain.offline import (
    OFFLINE_REFUSALS,
    PREFIX,
    OfflineRules,
    OfflineTally,
    TokenClaims,
    assemble,
    b64url,
    judge_claims,
    looks_like_token,
    offline_refusal,
    parse,
    signing_input,
    unb64url,
)

from ._helpers import raises_code

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SIG = bytes(range(64))


def claims(**kw: object) -> TokenClaims:
    base: dict[str, object] = dict(
        kid="ok_1",
        merchant_id="m_1",
        code="ABCD2345EFGH67",
        template_id="tpl_1",
        holder="M0001",
        valid_from=T0,
        valid_until=T0 + timedelta(days=30),
        issued_at=T0,
    )
    base.update(kw)
    return TokenClaims(**base)  # type: ignore[arg-type]


def token_of(c: TokenClaims, sig: bytes = SIG) -> str:
    return assemble(signing_input(c), sig)


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
times = st.integers(min_value=0, max_value=4_000_000_000).map(
    lambda s: datetime.fromtimestamp(s, UTC)
)


@given(
    kid=texts,
    merchant=texts,
    code=st.text(alphabet="ABCDEFGHJKMNPQRSTVWXYZ23456789", min_size=1, max_size=32),
    template=texts,
    holder=st.none() | texts,
    f=times,
    u=times,
    i=times,
    offline=st.booleans(),
)
def test_every_token_parses_back_to_its_claims(
    kid, merchant, code, template, holder, f, u, i, offline
):
    c = TokenClaims(kid, merchant, code, template, holder, f, u, i, offline)
    token = token_of(c)
    assert looks_like_token(token)
    parsed = parse(token)
    assert parsed.claims == c
    assert parsed.signature == SIG
    assert parsed.signed == signing_input(c)
    assert token.startswith(PREFIX) and token.count(".") == 2
    assert " " not in token and "=" not in token


@given(st.binary(min_size=1, max_size=100))
def test_base64url_round_trip(raw):
    assert unb64url(b64url(raw)) == raw
    for bad in ("", "AA==", "A+/B", "A B", "A", "AB!C", "AB\u00e9C"):
        with pytest.raises(ValueError):
            unb64url(bad)


@given(st.binary(min_size=1, max_size=100).filter(lambda raw: len(raw) % 3))
def test_only_the_canonical_spelling_decodes(raw):
    """The last character of base64 may carry unused bits: every other spelling of
    the same bytes is refused, or an altered token would verify as the signed one."""
    text = b64url(raw)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for ch in alphabet:
        if ch == text[-1]:
            continue
        other = text[:-1] + ch
        try:
            decoded = unb64url(other)
        except ValueError:
            continue
        assert decoded != raw, f"{other!r} decodes as {text!r}"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ABCD2345EFGH67",
        "HT1.",
        "HT1.abc",
        "HT1.a.b.c",
        "HT1.!!!.AAAA",
        "HT2." + b64url(b"{}") + "." + b64url(SIG),
        "HT1." + b64url(b"not json") + "." + b64url(SIG),
        "HT1." + b64url(b"[]") + "." + b64url(SIG),
        "HT1." + b64url(b'{"v":2}') + "." + b64url(SIG),
        "HT1." + b64url(b'{"v":1,"k":"x"}') + "." + b64url(SIG),
        "HT1." + b64url(b"\xff\xfe") + "." + b64url(SIG),
        "HT1." + b64url(b'{"v":1}') + "." + b64url(b"short"),
        "HT1.AA==." + b64url(SIG),
        "HT1." + "A" * 2000 + "." + b64url(SIG),
    ],
)
def test_what_is_not_a_token_is_token_malformed(bad):
    with raises_code("token_malformed"):
        parse(bad)


@pytest.mark.parametrize(
    "change",
    [
        {"f": "2026-01-01"},
        {"u": -1},
        {"i": 1.5},
        {"c": ""},
        {"c": "A" * 33},
        {"k": None},
        {"h": 7},
        {"zz": 1},
        {"f": True},
    ],
)
def test_a_payload_member_of_the_wrong_shape_is_token_malformed(change):
    payload = claims().payload() | change
    text = json.dumps(payload, separators=(",", ":"))
    with raises_code("token_malformed"):
        parse(PREFIX + b64url(text.encode()) + "." + b64url(SIG))


def test_claims_judged_at_the_redemption_time():
    c = claims()
    judge_claims(c, merchant_id="m_1", at=T0)
    judge_claims(c, merchant_id="m_1", at=T0 + timedelta(days=30) - timedelta(seconds=1))
    with raises_code("token_wrong_merchant"):
        judge_claims(c, merchant_id="m_2", at=T0)
    with raises_code("token_expired"):
        judge_claims(c, merchant_id="m_1", at=T0 + timedelta(days=30))
    with raises_code("coupon_not_yet_valid"):
        judge_claims(c, merchant_id="m_1", at=T0 - timedelta(seconds=1))


def test_naive_times_cannot_be_put_in_a_token():
    with pytest.raises(ValueError):
        signing_input(claims(valid_from=datetime(2026, 1, 1)))


def test_offline_rules_defaults_and_validation():
    assert OfflineRules.from_json(None) == OfflineRules()
    assert OfflineRules.from_json({}) == OfflineRules()
    r = OfflineRules.from_json({"max_count": 5, "max_discount": 1000, "max_offline_seconds": 60})
    assert r.to_json() == {"max_count": 5, "max_discount": 1000, "max_offline_seconds": 60}
    assert OfflineRules.from_json(r.to_json()) == r
    for bad in (
        [],
        {"max_count": -1},
        {"max_count": 1.0},
        {"max_count": True},
        {"max_discount": "5"},
        {"max_offline_seconds": 8 * 24 * 3600},
        {"other": 1},
    ):
        with raises_code("invalid_request"):
            OfflineRules.from_json(bad)  # type: ignore[arg-type]


def test_offline_limits_refuse_with_a_reason():
    rules = OfflineRules(max_count=2, max_discount=1000, max_offline_seconds=3600)
    t = OfflineTally()
    assert offline_refusal(rules, t, discount=600, at=T0) is None
    t = t.add(600, T0)
    assert t == OfflineTally(1, 600, T0)
    refusal = offline_refusal(rules, t, discount=500, at=T0)
    assert refusal is not None and refusal.code == "offline_discount_limit"
    assert offline_refusal(rules, t, discount=400, at=T0) is None
    t = t.add(400, T0 + timedelta(minutes=1))
    assert t.since == T0
    refusal = offline_refusal(rules, t, discount=0, at=T0)
    assert refusal is not None and refusal.code == "offline_count_limit"
    late = offline_refusal(
        OfflineRules(max_offline_seconds=60),
        OfflineTally(1, 0, T0),
        discount=0,
        at=T0 + timedelta(seconds=61),
    )
    assert late is not None and late.code == "offline_too_long"
    forbidden = offline_refusal(rules, OfflineTally(), discount=0, at=T0, offline_allowed=False)
    assert forbidden is not None and forbidden.code == "offline_not_allowed"
    for r in (refusal, late, forbidden):
        assert r.message == OFFLINE_REFUSALS[r.code]


@given(
    st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
    st.integers(min_value=0, max_value=10),
    st.integers(min_value=0, max_value=20_000),
)
def test_a_terminal_that_obeys_never_exceeds_its_limits(discounts, max_count, max_discount):
    rules = OfflineRules(max_count=max_count, max_discount=max_discount)
    tally = OfflineTally()
    for d in discounts:
        if offline_refusal(rules, tally, discount=d, at=T0) is None:
            tally = tally.add(d, T0)
    assert tally.count <= max_count and tally.discount <= max_discount
