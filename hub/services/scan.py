"""Reading coupon codes and tokens from a photo (``POST /v1/scan``).

:func:`read_image` opens the bytes with Pillow — JPEG, PNG or WebP only (no other
decoder of Pillow ever runs on them) — checks the pixel count from the header before
anything is decoded (``image_too_large``), refuses animated images and anything Pillow
cannot read (``image_unreadable``), and returns a grayscale image of at most
:data:`WORK_PIXELS` pixels (a JPEG is decoded straight at a reduced scale, DCT
``draft`` mode, so a 12-megapixel photo costs a fraction of a full decode).

:func:`find_codes` runs zxing-cpp on it: the image as is, then — while nothing is found
and the time budget lasts — cheap fallbacks that each rescue a kind of bad photo:
a contrast stretch (low contrast, grey paper), a smaller copy (blur, noise, a phone's
large photo of a small code), a median filter (speckle noise), and the global
histogram binariser (uneven light, a crease). zxing-cpp itself finds codes at any
rotation and perspective. The measured decode rates per distortion are in the README
(``python -m bench scan``).

:func:`classify` says what a decoded text is: a coupon ``token`` (``HT1.…``; its claims
are read, not verified — validation verifies it), a 14-character ``code`` (check
character correct), or ``other``. Pure CPU, no database: the API runs it in a worker
thread, a bounded number at a time.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import zxingcpp
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from hub.domain.codes import is_well_formed, normalize
from hub.domain.errors import DomainError, refuse
from hub.domain.offline import looks_like_token
from hub.domain.offline import parse as parse_token

MIB: Final = 1024 * 1024
MAX_BYTES: Final = 8 * MIB  # the request body (litestar refuses more: payload_too_large)
MAX_PIXELS: Final = 40_000_000  # width × height from the header (a 48 MP photo is refused)
MAX_SIDE: Final = 20_000  # either side
WORK_PIXELS: Final = 4_000_000  # what zxing-cpp gets at most (larger photos are scaled)
TIME_BUDGET: Final = 2.0  # seconds of fallbacks; the first attempt always runs
MAX_FOUND: Final = 20  # codes reported from one image
MEDIA_TYPES: Final = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
# The symbologies that can carry a coupon code (letters and digits) or a token. Digits-only
# ones (EAN-13/8, UPC-A, ITF) can carry neither, so reading them could only report product
# barcodes or phantoms: ITF has no check digit, and a noisy photo of a QR code read as a
# 4-digit ITF once.
FORMATS: Final = zxingcpp.BarcodeFormats(
    [
        zxingcpp.BarcodeFormat.QRCode,
        zxingcpp.BarcodeFormat.MicroQRCode,
        zxingcpp.BarcodeFormat.RMQRCode,
        zxingcpp.BarcodeFormat.DataMatrix,
        zxingcpp.BarcodeFormat.Aztec,
        zxingcpp.BarcodeFormat.PDF417,
        zxingcpp.BarcodeFormat.Code128,
        zxingcpp.BarcodeFormat.Code39,
        zxingcpp.BarcodeFormat.Code93,
    ]
)


@dataclass(frozen=True)
class Found:
    """One code read from the image: its text, symbology and corners (in the pixels of
    the image as sent)."""

    text: str
    format: str
    position: dict[str, dict[str, int]]


@dataclass
class Outcome:
    found: list[Found]
    attempts: list[str] = field(default_factory=list)  # the passes that ran, in order
    pixels: tuple[int, int] = (0, 0)  # the image as sent
    seconds: float = 0.0


def unreadable(why: str) -> DomainError:
    return refuse("image_unreadable", f"The image cannot be read: {why}.", reason=why)


def read_image(data: bytes) -> tuple[Image.Image, float]:
    """The image in ``data`` as grayscale (``L``) and the factor from its pixels to the
    original's; ``image_too_large`` or ``image_unreadable`` otherwise."""
    if not data:
        raise unreadable("the body is empty")
    try:
        im = Image.open(io.BytesIO(data), formats=list(MEDIA_TYPES.values()))
    except Image.DecompressionBombError:
        raise too_large(None) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, TypeError):
        raise unreadable("not a JPEG, PNG or WebP image") from None
    width, height = im.size
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise too_large((width, height))
    if width < 1 or height < 1:
        raise unreadable("it has no pixels")
    if getattr(im, "n_frames", 1) != 1:
        raise unreadable("an animated image; send one frame")
    scale = 1.0
    if im.format == "JPEG" and width * height > WORK_PIXELS:
        # decode the DCT at 1/2, 1/4 or 1/8 scale: no larger than needed
        factor = (width * height / WORK_PIXELS) ** 0.5
        im.draft("L", (int(width / factor), int(height / factor)))
    try:
        im.load()
        gray = im.convert("L") if im.mode != "L" else im
    except Image.DecompressionBombError:
        raise too_large((width, height)) from None
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, MemoryError):
        raise unreadable("the image data is truncated or corrupt") from None
    if gray.width * gray.height > WORK_PIXELS:
        factor = (gray.width * gray.height / WORK_PIXELS) ** 0.5
        size = (max(1, int(gray.width / factor)), max(1, int(gray.height / factor)))
        gray = gray.resize(size, Image.Resampling.BOX)
    scale = width / gray.width
    return gray, scale


def too_large(size: tuple[int, int] | None) -> DomainError:
    what = f"{size[0]}×{size[1]} pixels" if size else "more pixels than Pillow allows"
    return refuse(
        "image_too_large",
        f"The image has {what}; at most {MAX_PIXELS:,} pixels and {MAX_SIDE} a side.",
        max_pixels=MAX_PIXELS,
    )


def _passes(gray: Image.Image) -> list[tuple[str, Callable[[], Image.Image], dict[str, Any]]]:
    """The fallbacks, most often useful first: (name, the image to read, zxing options)."""
    enlarge = gray.width * gray.height * 4 <= WORK_PIXELS
    return [
        ("sharpened", lambda: gray.filter(ImageFilter.UnsharpMask(3, 400, 0)), {}),
        ("stretched", lambda: ImageOps.autocontrast(gray, cutoff=2), {}),
        (
            "global_threshold",
            lambda: ImageOps.autocontrast(gray, cutoff=1),
            {"binarizer": zxingcpp.Binarizer.GlobalHistogram},
        ),
        ("sharpened_wide", lambda: gray.filter(ImageFilter.UnsharpMask(4, 200, 0)), {}),
        ("denoised", lambda: ImageOps.autocontrast(gray.filter(ImageFilter.MedianFilter(3))), {}),
        (
            "enlarged",
            lambda: (
                gray.resize((gray.width * 2, gray.height * 2), Image.Resampling.BICUBIC)
                if enlarge
                else gray
            ),
            {"scale": 0.5 if enlarge else 1.0},
        ),
    ]


def _read(image: Image.Image, scale: float, **kw: Any) -> list[Found]:
    out = []
    for r in zxingcpp.read_barcodes(image, formats=FORMATS, **kw)[:MAX_FOUND]:
        if not r.valid or not r.text:
            continue
        p = r.position
        corners = {
            "top_left": p.top_left,
            "top_right": p.top_right,
            "bottom_right": p.bottom_right,
            "bottom_left": p.bottom_left,
        }
        position = {
            name: {"x": round(pt.x * scale), "y": round(pt.y * scale)}
            for name, pt in corners.items()
        }
        out.append(Found(text=r.text, format=r.format.name, position=position))
    return out


def find_codes(data: bytes, *, budget: float = TIME_BUDGET) -> Outcome:
    """Every code in the image ``data`` (see the module's docstring)."""
    started = time.perf_counter()
    gray, scale = read_image(data)
    outcome = Outcome(found=[], pixels=(round(gray.width * scale), round(gray.height * scale)))
    outcome.attempts.append("as_is")
    found = _read(gray, scale)
    if not found:
        for name, make, options in _passes(gray):
            if time.perf_counter() - started > budget:
                outcome.attempts.append("out_of_time")
                break
            kw = dict(options)
            factor = kw.pop("scale", 1.0)
            outcome.attempts.append(name)
            found = _read(make(), scale * factor, **kw)
            if found:
                break
    seen: set[tuple[str, str]] = set()
    for f in found:
        if (f.text, f.format) not in seen:
            seen.add((f.text, f.format))
            outcome.found.append(f)
    outcome.seconds = time.perf_counter() - started
    return outcome


@dataclass(frozen=True)
class Kind:
    kind: str  # token | code | other
    code: str | None  # the coupon code (a token's claim, unverified; or the code itself)


def classify(text: str) -> Kind:
    stripped = text.strip()
    if looks_like_token(stripped):
        try:
            return Kind("token", parse_token(stripped).claims.code)
        except DomainError:  # validation refuses it (token_malformed)
            return Kind("token", None)
    code = normalize(stripped)  # only a classification: validating looks it up (guarded)
    return Kind("code", code) if is_well_formed(code) else Kind("other", None)


__all__ = [
    "FORMATS",
    "MAX_BYTES",
    "MAX_PIXELS",
    "MEDIA_TYPES",
    "Found",
    "Kind",
    "Outcome",
    "classify",
    "find_codes",
    "read_image",
]
