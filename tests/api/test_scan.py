"""``POST /v1/scan``: what it answers, its limits, and hostile images (never a 500)."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import httpx
import pytest
from PIL import Image

from hub.domain.codes import display, generate_code
from hub.domain.errors import ERROR_CODES
from hub.services import scan as svc
from hub.services.problems import PROBLEM_MEDIA_TYPE
from tests.conftest import THRESHOLD_SPEC, issue, make_template
from tests.services.scan_images import encode, make_tokens, on_desk, qr

SCAN = "/v1/scan"


def png_of(text: str, scale: int = 6) -> bytes:
    return encode(qr(text, scale=scale), "image/png")


def post(
    client: Any,
    data: bytes,
    media: str = "image/png",
    auth: dict[str, str] | None = None,
    **params: Any,
) -> httpx.Response:
    headers = {**(auth or {}), "Content-Type": media}
    return client.post(SCAN, content=data, headers=headers, params=params)


def assert_4xx(r: httpx.Response, code: str | None = None) -> dict[str, Any]:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), r.headers
    body = r.json()
    assert body["code"] in ERROR_CODES
    if code is not None:
        assert body["code"] == code, body
    return body


def test_a_token_in_each_format_is_read_with_its_claims(client, merchant) -> None:
    [token], _keys = make_tokens(1)
    from hub.domain.offline import parse

    claims = parse(token).claims
    im = on_desk(qr(token), __import__("random").Random(1))
    for media in svc.MEDIA_TYPES:
        r = post(client, encode(im, media), media, merchant.auth())
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == 1
        [item] = body["found"]
        assert item["text"] == token and item["kind"] == "token"
        assert item["format"] == "QRCode" and item["code"] == claims.code
        assert item["validation"] is None
        corners = item["position"]
        assert set(corners) == {"top_left", "top_right", "bottom_right", "bottom_left"}
        assert 0 < corners["top_left"]["x"] < corners["top_right"]["x"] <= im.width


def test_a_printed_code_and_other_text(client, merchant) -> None:
    code = generate_code()
    r = post(client, png_of(display(code)), auth=merchant.auth())
    [item] = r.json()["found"]
    assert item["kind"] == "code" and item["code"] == code and item["text"] == display(code)
    r = post(client, png_of("https://example.com/menu"), auth=merchant.auth())
    [item] = r.json()["found"]
    assert item["kind"] == "other" and item["code"] is None


def linear(text: str, symbology: Any) -> bytes:
    """A PNG of a 1D barcode (zxing-cpp's writer) on a white margin."""
    import zxingcpp

    drawn = zxingcpp.write_barcode_to_image(zxingcpp.create_barcode(text, symbology), scale=3)
    height, width = drawn.shape[0], drawn.shape[1]
    bars = Image.frombuffer("L", (width, height), bytes(drawn))
    page = Image.new("L", (width + 80, height + 80), 255)
    page.paste(bars, (40, 40))
    return encode(page, "image/png")


def test_only_symbologies_that_can_carry_a_code_are_read(client, merchant) -> None:
    """A coupon code has letters: Code 128 carries it and is read. Digits-only symbologies
    (ITF, EAN-13) can carry neither a code nor a token: a product barcode in the photo is
    not reported, and ITF (no check digit) cannot read phantoms out of noise."""
    import zxingcpp

    code = generate_code()
    [item] = post(client, linear(code, zxingcpp.BarcodeFormat.Code128),
                  auth=merchant.auth()).json()["found"]  # fmt: skip
    assert (item["format"], item["kind"], item["code"]) == ("Code128", "code", code)
    for text, symbology in (("09071234", zxingcpp.BarcodeFormat.ITF),
                            ("5901234123457", zxingcpp.BarcodeFormat.EAN13)):  # fmt: skip
        r = post(client, linear(text, symbology), auth=merchant.auth())
        assert r.status_code == 200 and r.json() == {"found": [], "count": 0}, symbology


def test_no_code_in_the_image_is_an_empty_list(client, merchant) -> None:
    blank = encode(Image.new("L", (400, 300), 230), "image/png")
    r = post(client, blank, auth=merchant.auth())
    assert r.status_code == 200 and r.json() == {"found": [], "count": 0}


def test_a_large_photo_is_scaled_and_positions_are_in_its_pixels(client, merchant) -> None:
    """A 12-megapixel JPEG (decoded at a reduced DCT scale) with the code in a corner."""
    code = generate_code()
    photo = Image.new("L", (4000, 3000), 210)
    photo.paste(qr(code, scale=12), (3000, 2000))
    r = post(client, encode(photo, "image/jpeg"), "image/jpeg", merchant.auth())
    [item] = r.json()["found"]
    assert item["code"] == code
    assert abs(item["position"]["top_left"]["x"] - (3000 + 4 * 12)) < 40


def test_validation_for_a_store(client, db, merchant, clock) -> None:
    tpl = make_template(db, merchant, clock.now, THRESHOLD_SPEC)
    [code] = issue(db, merchant, tpl, clock.now)
    till = merchant.auth(merchant.store_keys["SH-001"])
    r = post(client, png_of(code), auth=till, validate="true", amount=12800)
    assert r.status_code == 200, r.text
    [item] = r.json()["found"]
    expected = client.post(
        "/v1/redemptions/validate",
        json={"code": code, "store": "SH-001", "order": {"id": "scan", "amount": 12800}},
        headers=till,
    ).json()
    assert item["validation"] == expected
    assert item["validation"]["status"] == "valid" and item["validation"]["discount"] == 2000
    # below the threshold: that item's refusal, as validate gives it
    r = post(client, png_of(code), auth=till, validate="true", amount=5000, order_id="B-7")
    [item] = r.json()["found"]
    assert (
        item["validation"]["status"] == 422
        and item["validation"]["code"]
        == (
            client.post(
                "/v1/redemptions/validate",
                json={"code": code, "store": "SH-001", "order": {"id": "B-7", "amount": 5000}},
                headers=till,
            ).json()["code"]
        )
    )
    # another store's key cannot validate at SH-001
    other = merchant.auth(merchant.store_keys["SH-002"])
    r = post(client, png_of(code), auth=other, validate="true", amount=12800, store="SH-001")
    [item] = r.json()["found"]
    assert item["validation"]["status"] == 403


def test_validation_needs_an_amount(client, merchant) -> None:
    r = post(client, png_of(generate_code()), auth=merchant.auth(), validate="true")
    body = assert_4xx(r, "invalid_request")
    assert body["errors"][0]["field"] == "amount"


def test_unknown_codes_found_are_counted_by_the_guessing_guard(client, merchant) -> None:
    """Each validation of a code that does not exist is a failed attempt, as on
    /v1/redemptions/validate: enough of them and the key is refused (429)."""
    till = merchant.auth(merchant.store_keys["SH-001"])
    outcomes = []
    for _ in range(40):
        r = post(client, png_of(generate_code()), auth=till, validate="true", amount=100)
        [item] = r.json()["found"]
        outcomes.append(item["validation"]["code"])
        if item["validation"]["status"] == 429:
            break
    assert outcomes[0] == "coupon_not_found"
    assert outcomes[-1] == "too_many_failed_attempts", outcomes


def test_roles(client, merchant, db, clock) -> None:
    from hub.services.keys import create_key

    data = png_of(generate_code())
    assert post(client, data, auth=merchant.auth()).status_code == 200
    assert post(client, data, auth=merchant.auth(merchant.store_keys["BJ-001"])).status_code == 200
    for role in ("analyst", "integrator", "app"):
        extra = {"channels": ["web"]} if role == "app" else {}
        key = create_key(db, merchant.id, role, clock.now, **extra).token
        assert_4xx(post(client, data, auth=merchant.auth(key)), "forbidden")
    assert post(client, data).status_code == 401


# --- limits and hostile input -------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` pixels (and one tiny IDAT)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small JPEG whose SOF0 header is rewritten to claim ``width``×``height``."""
    data = bytearray(encode(Image.new("L", (16, 16), 128), "image/jpeg"))
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_animated() -> bytes:
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()


def gif() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (32, 32), 0).save(buf, "GIF")
    return buf.getvalue()


def png_bomb() -> bytes:
    """A 200-kilobyte PNG that decodes to 30,000×30,000 pixels (900 MB)."""
    row = b"\x00" + b"\x00" * 30_000
    raw = zlib.compress(row * 30_000, 9)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def png_text_bomb() -> bytes:
    """A tiny image with a compressed text chunk that inflates to 64 MB."""
    data = bytearray(png_of("x")[:-12])  # without IEND
    body = b"comment\x00\x00" + zlib.compress(b"a" * 64 * 1024 * 1024, 9)
    data += struct.pack(">I", len(body)) + b"zTXt" + body
    data += struct.pack(">I", zlib.crc32(b"zTXt" + body) & 0xFFFFFFFF)
    data += struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return bytes(data)


HOSTILE: list[tuple[str, bytes, str, str]] = [
    ("empty body", b"", "image/png", "image_unreadable"),
    ("text sent as PNG", b"hello, this is text\n" * 20, "image/png", "image_unreadable"),
    ("truncated PNG", png_of(generate_code())[:300], "image/png", "image_unreadable"),
    (
        "truncated JPEG",
        encode(qr(generate_code()), "image/jpeg")[:500],
        "image/jpeg",
        "image_unreadable",
    ),
    (
        "truncated WebP",
        encode(qr(generate_code()), "image/webp")[:200],
        "image/webp",
        "image_unreadable",
    ),
    ("a GIF sent as PNG", gif(), "image/png", "image_unreadable"),
    ("a GIF as itself", gif(), "image/gif", "unsupported_media_type"),
    ("animated WebP", webp_animated(), "image/webp", "image_unreadable"),
    ("PNG header of 100000×100000", png_header(100_000, 100_000), "image/png", "image_too_large"),
    ("PNG header of 1×50000000", png_header(1, 50_000_000), "image/png", "image_too_large"),
    ("JPEG header of 65000×65000", jpeg_with_size(65_000, 65_000), "image/jpeg", "image_too_large"),
    ("JPEG header of 0×16", jpeg_with_size(0, 16), "image/jpeg", "image_unreadable"),
    ("PNG decompression bomb", png_bomb(), "image/png", "image_too_large"),
    ("PNG text-chunk bomb", png_text_bomb(), "image/png", "image_unreadable"),
    ("JSON", b'{"code": "x"}', "application/json", "unsupported_media_type"),
    ("no type", b"\x89PNG", "", "unsupported_media_type"),
]


@pytest.mark.parametrize(("what", "data", "media", "code"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_images_are_clean_4xx(client, merchant, what, data, media, code) -> None:
    headers = {**merchant.auth(), "Content-Type": media} if media else merchant.auth()
    r = client.post(SCAN, content=data, headers=headers)
    assert_4xx(r, code)


def test_a_body_over_the_cap_is_refused_before_it_is_read(client, merchant) -> None:
    r = post(client, b"\x00" * (svc.MAX_BYTES + 1), auth=merchant.auth())
    assert_4xx(r, "payload_too_large")


def test_a_forged_token_naming_a_real_coupon_is_not_validated_as_it(
    client, db, merchant, clock
) -> None:
    """The scan validates a token as a token (verified by the merchant's keys), never
    the code its claims name: a token signed with a key not the merchant's, naming a
    real coupon, is refused, not 'valid'."""
    from datetime import timedelta

    from hub.domain.offline import TokenClaims
    from hub.signing import generate_keypair, sign

    tpl = make_template(db, merchant, clock.now, THRESHOLD_SPEC)
    [code] = issue(db, merchant, tpl, clock.now)
    private, _public = generate_keypair()
    now = clock.now.replace(microsecond=0)
    forged = sign(private, TokenClaims(
        kid="ok_forged", merchant_id=merchant.id, code=code, template_id=tpl, holder=None,
        valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=1), issued_at=now,
    ))
    till = merchant.auth(merchant.store_keys["SH-001"])
    r = post(client, png_of(forged), auth=till, validate="true", amount=12800)
    [item] = r.json()["found"]
    assert item["kind"] == "token" and item["code"] == code  # the claim, shown unverified
    assert item["validation"]["status"] in (403, 404, 422), item["validation"]
    assert item["validation"]["code"] in ERROR_CODES


def test_the_hubs_own_qr_code_scanned_and_validated_as_its_token(
    client, db, merchant, clock
) -> None:
    """End to end across the parts: the QR PNG the hub draws for a coupon
    (``GET /v1/coupons/{code}/qr.png``) is read back as its signed token, validated for the
    till's store as the token (valid, with the coupon's discount), and the same token with
    its signature altered is refused as ``token_signature_invalid``."""
    tpl = make_template(db, merchant, clock.now, THRESHOLD_SPEC)
    [code] = issue(db, merchant, tpl, clock.now)
    till = merchant.auth(merchant.store_keys["SH-001"])
    token = client.get(f"/v1/coupons/{code}/token", headers=till).json()["token"]
    png = client.get(f"/v1/coupons/{code}/qr.png", headers=till)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    photo = on_desk(Image.open(io.BytesIO(png.content)), __import__("random").Random(7))
    r = post(client, encode(photo, "image/jpeg"), "image/jpeg", till, validate="true",
             amount=12800)
    assert r.status_code == 200, r.text
    [item] = r.json()["found"]
    assert item["text"] == token and item["kind"] == "token" and item["code"] == code
    assert item["validation"]["status"] == "valid", item["validation"]
    assert item["validation"]["discount"] == 2000
    head, _, sig = token.rpartition(".")
    altered = f"{head}.{sig[:10]}{'A' if sig[10] != 'A' else 'B'}{sig[11:]}"
    r = post(client, png_of(altered), auth=till, validate="true", amount=12800)
    [item] = r.json()["found"]
    assert item["validation"]["code"] == "token_signature_invalid", item["validation"]
