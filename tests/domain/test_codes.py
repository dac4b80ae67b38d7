"""Coupon codes: alphabet, check character, normalisation, masking."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hub.domain import codes
from hub.domain.codes import (
    ALPHABET,
    CODE_LENGTH,
    ENTROPY_BITS,
    PAYLOAD_LENGTH,
    check_character,
    display,
    generate_code,
    is_well_formed,
    mask,
    normalize,
    parse_code,
)
from hub.domain.errors import DomainError

from ._helpers import NO_DB, raises_code

payloads = st.text(alphabet=ALPHABET, min_size=PAYLOAD_LENGTH, max_size=PAYLOAD_LENGTH)
valid_codes = payloads.map(lambda p: p + check_character(p))


def gf32_mul(a: int, b: int) -> int:
    """Independent GF(32) product: carry-less multiply, reduce by x^5 + x^2 + 1."""
    product = 0
    for bit in range(5):
        if b >> bit & 1:
            product ^= a << bit
    for bit in range(9, 4, -1):
        if product >> bit & 1:
            product ^= 0b100101 << (bit - 5)
    return product


def check_sum(code: str) -> int:
    """Σ dᵢ·α^(n−1−i) over GF(32) with α = x (= 2): zero for a valid code."""
    total = 0
    power = 1
    for ch in reversed(code):
        total ^= gf32_mul(ALPHABET.index(ch), power)
        power = gf32_mul(power, 2)
    return total


def swap(code: str, i: int) -> str:
    return code[:i] + code[i + 1] + code[i] + code[i + 2 :]


# --- constants -----------------------------------------------------------------------------


def test_alphabet_is_32_unambiguous_characters():
    assert len(ALPHABET) == 32
    assert len(set(ALPHABET)) == 32
    for confusable in "0O1I":
        assert confusable not in ALPHABET
    assert ALPHABET.upper() == ALPHABET
    assert all(c.isascii() and c.isalnum() for c in ALPHABET)


def test_lengths_and_entropy():
    assert CODE_LENGTH == 14
    assert PAYLOAD_LENGTH == 13
    assert ENTROPY_BITS >= 60
    # the claimed entropy is really there: 13 characters of a 32-letter alphabet
    assert PAYLOAD_LENGTH * math.log2(len(ALPHABET)) >= ENTROPY_BITS


# --- check character -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "check"),
    [
        ("2", "2"),  # 0 → check α·0 = 0 → '2'
        ("3", "4"),  # 1 → check α·1 = 2 → '4'
        ("Z", "V"),  # 31 → α·31 = 62 ⊕ 0b100101 = 27 → 'V'
        ("32", "6"),  # (α·1) ⊕ 0 = 2 → check α·2 = 4 → '6'
        ("23", "4"),  # (α·0) ⊕ 1 = 1 → check α·1 = 2 → '4'
        ("22222222222222"[:13], "2"),
    ],
)
def test_check_character_hand_computed(payload, check):
    assert check_character(payload) == check


@NO_DB
@given(valid_codes)
def test_valid_code_has_check_sum_zero(code):
    assert check_sum(code) == 0
    assert is_well_formed(code)


# --- generate_code -------------------------------------------------------------------------


def test_generate_code_shape():
    for _ in range(300):
        code = generate_code()
        assert len(code) == CODE_LENGTH == 14
        assert set(code) <= set(ALPHABET)
        assert not set(code) & set("0O1I")
        assert is_well_formed(code)
        assert parse_code(code) == code
        assert code[-1] == check_character(code[:-1])


def test_generate_code_is_random():
    generated = {generate_code() for _ in range(2000)}
    assert len(generated) == 2000
    # every alphabet character shows up somewhere in the payloads
    assert set("".join(c[:-1] for c in generated)) == set(ALPHABET)


# --- error detection -----------------------------------------------------------------------


@settings(NO_DB, max_examples=150)
@given(valid_codes)
def test_every_single_substitution_is_rejected(code):
    for i in range(CODE_LENGTH):
        for ch in ALPHABET:
            if ch == code[i]:
                continue
            mutated = code[:i] + ch + code[i + 1 :]
            assert not is_well_formed(mutated), (code, i, ch)
            with raises_code("code_malformed"):
                parse_code(mutated)


@NO_DB
@given(valid_codes, st.integers(0, CODE_LENGTH - 1), st.sampled_from("0O1I!#_.é"))
def test_substitution_with_foreign_character_is_rejected(code, i, ch):
    mutated = code[:i] + ch + code[i + 1 :]
    assert not is_well_formed(mutated)
    with raises_code("code_malformed"):
        parse_code(mutated)


@settings(NO_DB, max_examples=300)
@given(valid_codes)
@example("2Z3456789ABCD" + check_character("2Z3456789ABCD"))
def test_every_adjacent_transposition_is_rejected(code):
    for i in range(CODE_LENGTH - 1):
        if code[i] != code[i + 1]:
            assert not is_well_formed(swap(code, i)), (code, i)


# Luhn mod 32 (an earlier scheme) missed swapping '2' and 'Z' (values 0 and 31).
TWO_Z_CASES = [
    ("2Z3456789ABCD", 0),  # at the start
    ("3456789ABCD2Z", 11),  # in the middle
]


@pytest.mark.parametrize(("payload", "i"), TWO_Z_CASES)
def test_transposing_2_and_z_is_rejected(payload, i):
    code = payload + check_character(payload)
    assert {code[i], code[i + 1]} == {"2", "Z"}
    mutated = swap(code, i)
    assert not is_well_formed(mutated), f"{mutated} is accepted"


def test_no_adjacent_pair_is_ever_missed():
    """Exhaustively over every ordered pair, in the middle and next to the check character."""
    missed = set()
    base = "ABCDEFGHJKL"
    for a in ALPHABET:
        for b in ALPHABET:
            if a == b:
                continue
            for payload in (base + a + b, base[:-1] + a + b + "K"):
                code = payload + check_character(payload)
                i = code.index(a + b)
                if is_well_formed(swap(code, i)):
                    missed.add(frozenset((a, b)))
            payload = base + "M" + a
            code = payload + check_character(payload)
            if code[-1] != code[-2] and is_well_formed(swap(code, CODE_LENGTH - 2)):
                missed.add(frozenset((code[-2], code[-1])))
    assert missed == set()


@NO_DB
@given(valid_codes, st.integers(0, CODE_LENGTH - 1))
def test_deleting_a_character_is_rejected(code, i):
    assert not is_well_formed(code[:i] + code[i + 1 :])


@NO_DB
@given(valid_codes, st.integers(0, CODE_LENGTH), st.sampled_from(ALPHABET))
def test_inserting_a_character_is_rejected(code, i, ch):
    assert not is_well_formed(code[:i] + ch + code[i:])


# --- is_well_formed ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "2",
        "2" * 13,
        "2" * 15,
        "2222222222222" + "3",  # wrong check character (should be '2')
        "ABCD-EFGH-JKLM-NP",  # separators are not part of the normalised form
        "abcdefghjklmnp",  # lower case is not normalised form
    ],
)
def test_is_well_formed_rejects(candidate):
    assert not is_well_formed(candidate)


def test_is_well_formed_accepts_all_twos():
    assert is_well_formed("2" * 14)


def test_lower_case_code_is_not_well_formed_until_normalised():
    code = generate_code()
    if code.lower() != code:
        assert not is_well_formed(code.lower())
    assert is_well_formed(normalize(code.lower()))


# --- normalize / parse_code ----------------------------------------------------------------


def test_normalize_upper_cases_and_drops_spaces_and_dashes():
    assert normalize(" ab-cd ef--gh ") == "ABCDEFGH"
    assert normalize("") == ""
    # it does not validate
    assert normalize("0o1i") == "0O1I"


@NO_DB
@given(valid_codes, st.data())
def test_parse_code_normalises_case_and_separators(code, data):
    pieces = []
    for ch in code:
        sep = data.draw(st.sampled_from(["", "", "-", " ", "--", " - "]))
        lower = data.draw(st.booleans())
        pieces.append(sep + (ch.lower() if lower else ch))
    raw = "".join(pieces) + data.draw(st.sampled_from(["", " ", "-"]))
    assert parse_code(raw) == code


# What scanners and input methods put around and inside a code (issue 9 item 10).
SCANNER_SUFFIXES = ["", "\r\n", "\n", "\r", "\t", " \r\n", "\u3000", "\xa0"]
GROUPING = [
    "", " ", "-", "\t", "\xa0", "\u3000", "\u2007", "\u202f", "\u200b", "\ufeff",
    "\uff0d", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212",
    "\ufe63", "\u30fc", " - ", "\u3000\uff0d\u3000",
]


def full_width(ch: str) -> str:
    """The full-width form a Chinese IME types for an ASCII letter or digit."""
    return chr(ord(ch) + 0xFEE0)


@NO_DB
@given(valid_codes, st.data())
@example("2" * 14, None)
def test_any_decoration_of_a_valid_code_normalises_back_to_it(code, data):
    if data is None:  # the concrete example: every decoration at once
        raw = "\u3000" + "\uff0d".join(full_width(c).lower() for c in code) + "\r\n"
        assert parse_code(raw) == code
        return
    pieces = [data.draw(st.sampled_from(["", " ", "\t", "\u3000", "\ufeff"]))]
    for ch in code:
        pieces.append(data.draw(st.sampled_from(GROUPING)))
        form = data.draw(st.sampled_from(["ascii", "lower", "full", "full-lower"]))
        if form == "lower":
            ch = ch.lower()
        elif form == "full":
            ch = full_width(ch)
        elif form == "full-lower":
            ch = full_width(ch.lower())
        pieces.append(ch)
    raw = "".join(pieces) + data.draw(st.sampled_from(SCANNER_SUFFIXES))
    assert normalize(raw) == code
    assert parse_code(raw) == code


@pytest.mark.parametrize(
    "raw",
    [
        "ＡＢＣＤ－ＥＦＧＨ－ＪＫＬＭ－Ｎ{c}",  # full width, full-width dashes
        "abcd\u2014efgh\u2013jklm\u2212n{c}\r\n",  # em/en dash, minus, scanner CR LF
        "\u3000ABCD\xa0EFGH\u3000JKLM\u00a0N{c}\t",
    ],
)
def test_parse_code_concrete_scanner_and_ime_input(raw):
    payload = "ABCDEFGHJKLMN"
    check = check_character(payload)
    fw_check = full_width(check) if "Ａ" in raw else check
    assert parse_code(raw.format(c=fw_check)) == payload + check


@NO_DB
@given(valid_codes)
def test_parse_code_accepts_display_form(code):
    assert parse_code(display(code)) == code
    assert parse_code(display(code).lower()) == code
    assert parse_code(" ".join(display(code).split("-"))) == code


def test_parse_code_concrete():
    payload = "ABCDEFGHJKLMN"
    code = payload + check_character(payload)
    assert parse_code(f"abcd-efgh-jklm-n{code[-1].lower()}") == code
    assert parse_code(f"  ABCD EFGH JKLM N{code[-1]}  ") == code


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "----",
        "2222-2222-2222-23",  # wrong check character
        "2222-2222-2222-2",  # too short
        "2222-2222-2222-222",  # too long
        "2222_2222_2222_22",  # underscores are not separators
        "2222.2222.2222.22",
        "2222\x002222\x002222\x0022",  # NUL is not grouping
        "２２２２·２２２２·２２２２·２２",  # nor is a middle dot
        "2222/2222/2222/22",
        "\u0410222-2222-2222-22",  # Cyrillic A looks like A but is not one
        "0222-2222-2222-22",  # '0' is not in the alphabet
        "O222-2222-2222-22",
        "1222-2222-2222-22",
        "I222-2222-2222-22",
        "i222-2222-2222-22",  # lower-case i upper-cases to I, still not in the alphabet
        "o222-2222-2222-22",
    ],
)
def test_parse_code_rejects_malformed(raw):
    with raises_code("code_malformed"):
        parse_code(raw)


@NO_DB
@given(st.text(max_size=30))
def test_parse_code_either_returns_well_formed_or_refuses(raw):
    try:
        parsed = parse_code(raw)
    except DomainError as exc:
        assert exc.code == "code_malformed"
    else:
        assert is_well_formed(parsed)
        assert parsed == normalize(raw)


# --- display / mask ------------------------------------------------------------------------


def test_display_groups_in_fours():
    assert display("ABCDEFGHJKLMNP") == "ABCD-EFGH-JKLM-NP"
    assert display("") == ""
    assert display("ABCD") == "ABCD"
    assert display("ABCDE") == "ABCD-E"


@NO_DB
@given(valid_codes)
def test_display_round_trips(code):
    shown = display(code)
    assert len(shown) == 17
    assert [len(g) for g in shown.split("-")] == [4, 4, 4, 2]
    assert normalize(shown) == code


def test_mask_concrete():
    assert mask("ABCDEFGHJKLMNP") == "ABCD…NP"
    assert mask("ABCDEF") == "******"
    assert mask("ABC") == "***"
    assert mask("") == ""
    assert mask("ABCDEFG") == "ABCD…FG"


@NO_DB
@given(valid_codes)
def test_mask_never_reveals_the_code(code):
    for form in (code, display(code)):
        masked = mask(form)
        assert masked != form
        assert code not in masked
        assert code not in normalize(masked.replace("…", ""))
        # at most six characters of the code are shown
        assert sum(ch in ALPHABET for ch in masked) <= 6


@NO_DB
@given(st.text(alphabet=ALPHABET + "-", max_size=40))
def test_mask_never_returns_its_input(raw):
    masked = mask(raw)
    if raw:
        assert raw not in masked
    assert sum(ch in ALPHABET for ch in masked) <= min(6, len(raw) - 1 if raw else 0)


def test_module_exports_used_by_callers():
    # index lookup is consistent with the alphabet
    assert all(codes._INDEX[c] == i for i, c in enumerate(ALPHABET))
