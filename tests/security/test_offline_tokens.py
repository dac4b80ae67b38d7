"""Ed25519 coupon tokens (hub.signing): a token verifies with its key and with nothing
else; any change to it is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.domain.errors import DomainError
from hub.domain.offline import PREFIX, TokenClaims, b64url, parse
from hub.signing import generate_keypair, public_key_text, sign, verify

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def claims(kid: str = "ok_1") -> TokenClaims:
    return TokenClaims(
        kid, "m_1", "ABCD2345EFGH67", "tpl_1", "M0001", T0, T0 + timedelta(days=30), T0
    )


def code_of(fn, *args):  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as info:
        fn(*args)
    return info.value.code


def test_a_signed_token_verifies_with_its_public_key():
    private, public = generate_keypair()
    assert len(private) == len(public) == 32
    token = sign(private, claims())
    assert verify(token, {"ok_1": public}) == claims()
    assert verify(token, {"ok_1": public_key_text(public)}) == claims()
    assert len(token) < 320  # it fits a small QR code


@pytest.mark.parametrize("seed", range(8))
def test_every_altered_character_is_refused(seed):
    private, public = generate_keypair()
    token = sign(private, claims())
    keys = {"ok_1": public}
    seen = set()
    for i in range(len(PREFIX), len(token)):
        if token[i] == ".":
            continue
        for repl in ("A", "B", "C", "D", "Q", "g", "w"):
            if token[i] == repl:
                continue
            altered = token[:i] + repl + token[i + 1 :]
            try:
                verify(altered, keys)
            except DomainError as e:
                seen.add(e.code)
            else:  # pragma: no cover - the point of the test
                pytest.fail(f"altered token accepted at {i}")
    assert seen <= {"token_signature_invalid", "token_malformed", "token_unknown_key"}
    assert "token_signature_invalid" in seen


def test_changed_claims_with_the_old_signature_are_refused():
    private, public = generate_keypair()
    token = sign(private, claims())
    forged_payload = b64url(
        b'{"v":1,"k":"ok_1","m":"m_1","c":"ZZZZ2345EFGH67","t":"tpl_1","h":null,'
        b'"f":1764576000,"u":1999999999,"i":1764576000,"x":1}'
    )
    forged = PREFIX + forged_payload + "." + token.rsplit(".", 1)[1]
    assert parse(forged).claims.code == "ZZZZ2345EFGH67"
    assert code_of(verify, forged, {"ok_1": public}) == "token_signature_invalid"


def test_unknown_key_and_another_key():
    private, _ = generate_keypair()
    _, other_public = generate_keypair()
    token = sign(private, claims())
    assert code_of(verify, token, {}) == "token_unknown_key"
    assert code_of(verify, token, {"ok_2": other_public}) == "token_unknown_key"
    assert code_of(verify, token, {"ok_1": other_public}) == "token_signature_invalid"
    assert code_of(verify, token, {"ok_1": "not-a-key"}) == "token_signature_invalid"
    assert code_of(verify, "HT1.garbage", {"ok_1": other_public}) == "token_malformed"
