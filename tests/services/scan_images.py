"""Photos of coupon QR codes as a till's camera sees them: the scan's test set.

:func:`image_set` draws QR codes (segno) of real signed coupon tokens
(:func:`hub.signing.sign` over :class:`hub.domain.offline.TokenClaims`) and applies one
distortion each with Pillow only: rotated, scaled down, blurred, noisy, low contrast, a
crease across, perspective-warped (a phone held at an angle), printed (paper, ink
spread, JPEG) and combinations of them. Deterministic: the same seed gives the same
bytes (noise comes from :class:`random.Random`, never Pillow's unseeded generator).

``tests/api/test_scan_decode_rate.py`` sends the set through ``POST /v1/scan``; ``python -m
bench scan`` prints the decode rate per distortion.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import segno
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from hub.domain.codes import ALPHABET, PAYLOAD_LENGTH, check_character
from hub.domain.offline import TokenClaims
from hub.signing import generate_keypair, sign

Distort = Callable[[Image.Image, random.Random], Image.Image]
WHITE = 255


@dataclass(frozen=True)
class Sample:
    distortion: str  # the family (the README's table rows)
    variant: str  # its parameters
    token: str  # what the QR code carries
    media_type: str
    data: bytes


def _code(rng: random.Random) -> str:
    payload = "".join(rng.choice(ALPHABET) for _ in range(PAYLOAD_LENGTH))
    return payload + check_character(payload)


def make_tokens(n: int, seed: int = 13) -> tuple[list[str], dict[str, bytes]]:
    """``n`` tokens signed with one fresh key (deterministic claims; the key is random,
    so a signature cannot be guessed) and the public key by kid."""
    rng = random.Random(seed)
    private, public = generate_keypair()
    kid = "ok_scan_test"
    issued = datetime(2026, 12, 1, tzinfo=UTC)
    tokens = []
    for i in range(n):
        claims = TokenClaims(
            kid=kid,
            merchant_id="m_scan_test",
            code=_code(rng),
            template_id=f"tpl_scan_{i:02d}",
            holder=None if i % 2 else f"M{rng.randrange(10**6):06d}",
            valid_from=issued,
            valid_until=issued + timedelta(days=30),
            issued_at=issued,
        )
        tokens.append(sign(private, claims))
    return tokens, {kid: public}


def qr(text: str, scale: int = 6, border: int = 4) -> Image.Image:
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=scale, border=border)
    buf.seek(0)
    return Image.open(buf).convert("L")


def on_desk(im: Image.Image, rng: random.Random, margin: float = 0.35) -> Image.Image:
    """The code on a larger, unevenly lit surface (a photo is never just the code)."""
    w, h = im.size
    W, H = int(w * (1 + 2 * margin)), int(h * (1 + 2 * margin))
    top, bottom = rng.randrange(150, 200), rng.randrange(200, 240)
    column = (
        Image.linear_gradient("L").resize((1, 256)).point(lambda v: top + (bottom - top) * v // 255)
    )
    scene = column.resize((W, H))
    scene.paste(im, ((W - w) // 2 + rng.randrange(-8, 9), (H - h) // 2 + rng.randrange(-8, 9)))
    return scene


# --- the distortions ------------------------------------------------------------------------


def rotated(angle: float) -> Distort:
    return lambda im, rng: im.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=200)


def scaled(module_px: float, base: int = 6) -> Distort:
    def go(im: Image.Image, rng: random.Random) -> Image.Image:
        f = module_px / base
        return im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.LANCZOS)

    return go


def blurred(radius: float) -> Distort:
    return lambda im, rng: im.filter(ImageFilter.GaussianBlur(radius))


def noise_image(size: tuple[int, int], amplitude: float, rng: random.Random) -> Image.Image:
    """Triangular noise around 128 (the mean of two uniform draws) scaled to ±amplitude."""
    w, h = size
    a = Image.frombytes("L", size, rng.randbytes(w * h))
    b = Image.frombytes("L", size, rng.randbytes(w * h))
    mixed = ImageChops.add(a, b, scale=2.0)
    return mixed.point(lambda v: max(0, min(255, round(128 + (v - 128) * amplitude / 128))))


def noisy(amplitude: float) -> Distort:
    def go(im: Image.Image, rng: random.Random) -> Image.Image:
        return ImageChops.add(im, noise_image(im.size, amplitude, rng), scale=1.0, offset=-128)

    return go


def low_contrast(dark: int, light: int) -> Distort:
    return lambda im, rng: im.point(lambda v: dark + (light - dark) * v // 255)


def creased(width: int, shade: int) -> Distort:
    """A fold: a bright line across the code and the half past it a little darker."""

    def go(im: Image.Image, rng: random.Random) -> Image.Image:
        w, h = im.size
        y0, y1 = rng.randrange(h // 3, 2 * h // 3), rng.randrange(h // 3, 2 * h // 3)
        shadow = Image.new("L", im.size, 0)
        ImageDraw.Draw(shadow).polygon([(0, y0), (w, y1), (w, h), (0, h)], fill=shade)
        out = ImageChops.subtract(im, shadow)
        ImageDraw.Draw(out).line([(0, y0), (w, y1)], fill=235, width=width)
        return out.filter(ImageFilter.GaussianBlur(0.6))

    return go


def perspective_coeffs(
    src: list[tuple[float, float]], dst: list[tuple[float, float]]
) -> list[float]:
    """The 8 coefficients of :data:`Image.Transform.PERSPECTIVE` mapping each output
    point ``dst[i]`` to input point ``src[i]`` (Gaussian elimination, no numpy)."""
    rows: list[list[float]] = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, v])
    n = 8
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(n):
            if r != col:
                f = rows[r][col] / rows[col][col]
                rows[r] = [a - f * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [rows[i][n] / rows[i][i] for i in range(n)]


def perspective(tilt: float, turn: float = 0.0) -> Distort:
    """A phone held at an angle: the far edge ``tilt`` (a fraction) narrower, the code
    turned by ``turn`` degrees in the picture."""

    def go(im: Image.Image, rng: random.Random) -> Image.Image:
        w, h = im.size
        src = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
        inset = w * tilt / 2
        jitter = [rng.uniform(-0.02, 0.02) * w for _ in range(4)]
        dst = [
            (inset + jitter[0], h * tilt / 3 + jitter[1]),
            (w - inset + jitter[2], h * tilt / 3 + jitter[3]),
            (w, h),
            (0.0, h),
        ]
        coeffs = perspective_coeffs(src, dst)
        warped = im.transform(
            im.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC, fillcolor=200
        )
        return rotated(turn)(warped, rng) if turn else warped

    return go


def jpeg(quality: int) -> Distort:
    def go(im: Image.Image, rng: random.Random) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality)
        buf.seek(0)
        return Image.open(buf).convert("L")

    return go


def printed(quality: int, ink: float) -> Distort:
    """Printed on paper and photographed: ink spreading, grey paper fibre, JPEG."""

    def go(im: Image.Image, rng: random.Random) -> Image.Image:
        out = im.filter(ImageFilter.MinFilter(3)) if ink >= 1 else im
        out = out.filter(ImageFilter.GaussianBlur(0.8))
        fibre = noise_image((max(1, im.width // 3), max(1, im.height // 3)), 14, rng)
        fibre = fibre.resize(im.size, Image.Resampling.BILINEAR)
        out = ImageChops.add(low_contrast(25, 235)(out, rng), fibre, scale=1.0, offset=-128)
        return jpeg(quality)(out, rng)

    return go


def chain(*steps: Distort) -> Distort:
    def go(im: Image.Image, rng: random.Random) -> Image.Image:
        for step in steps:
            im = step(im, rng)
        return im

    return go


# family → [(variant, distortion)], each applied to the code on a desk
DISTORTIONS: dict[str, list[tuple[str, Distort]]] = {
    "none": [("as generated", lambda im, rng: im)],
    "rotated": [(f"{a}°", rotated(a)) for a in (10, 30, 45, 90, 135, 200, 315)],
    "scaled down": [(f"{m} px/module", scaled(m)) for m in (3, 2, 1.7, 1.5, 1.3)],
    "blurred": [(f"gaussian r={r}", blurred(r)) for r in (1, 2, 3, 3.5, 4)],
    "noisy": [(f"±{a}", noisy(a)) for a in (40, 80, 120, 160)],
    "low contrast": [
        (f"{d}–{li}", low_contrast(d, li))
        for d, li in ((90, 160), (120, 160), (60, 100), (130, 155), (20, 40))
    ],
    "crease": [
        (f"line {w}px, shade {s}", creased(w, s)) for w, s in ((3, 30), (6, 50), (10, 70), (16, 90))
    ],
    "perspective": [
        (f"tilt {t}, turn {r}°", perspective(t, r))
        for t, r in ((0.15, 0), (0.25, 0), (0.35, 10), (0.3, 60), (0.45, 25), (0.55, 0))
    ],
    "printed": [
        (f"JPEG q{q}, ink {k}", printed(q, k)) for q, k in ((60, 0), (40, 1), (25, 1), (12, 1))
    ],
    "combined": [
        (
            "rotated 30° + blur 1.5 + noise ±50 + JPEG q50",
            chain(rotated(30), blurred(1.5), noisy(50), jpeg(50)),
        ),
        (
            "perspective 0.25 + low contrast 100–170 + JPEG q40",
            chain(perspective(0.25, 20), low_contrast(100, 170), jpeg(40)),
        ),
        ("scaled to 2.5 px + blur 1 + noise ±40", chain(scaled(2.5), blurred(1), noisy(40))),
        (
            "crease + perspective 0.2 + printed q50",
            chain(creased(5, 40), perspective(0.2, -15), printed(50, 0)),
        ),
    ],
}


def image_set(
    tokens: list[str], seed: int = 13, per_variant: int | None = None
) -> Iterator[Sample]:
    """Every distortion's variants applied to ``per_variant`` of ``tokens`` (all of them
    by default; the tokens taken in turn so each variant sees different ones)."""
    rng = random.Random(seed)
    n = len(tokens) if per_variant is None else per_variant
    turn = 0
    for family, variants in DISTORTIONS.items():
        for variant, distort in variants:
            for _ in range(n):
                token = tokens[turn % len(tokens)]
                turn += 1
                im = distort(on_desk(qr(token), rng), rng)
                media = ("image/png", "image/jpeg", "image/webp")[turn % 3]
                yield Sample(family, variant, token, media, encode(im, media))


def encode(im: Image.Image, media_type: str) -> bytes:
    buf = io.BytesIO()
    if media_type == "image/jpeg":
        im.save(buf, "JPEG", quality=90)
    elif media_type == "image/webp":
        im.save(buf, "WEBP", quality=90)
    else:
        im.save(buf, "PNG")
    return buf.getvalue()


# --- the measurement ----------------------------------------------------------------------------


@dataclass
class Tally:
    """Decode outcomes per distortion family; a read that is not the token is a misread
    (the set must have none: a misread could name another coupon)."""

    read: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    first_pass: dict[str, int] = field(default_factory=dict)  # read by zxing-cpp as is
    misreads: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(self, sample: Sample, texts: list[str], seconds: float, as_is: bool) -> None:
        family = sample.distortion
        self.total[family] = self.total.get(family, 0) + 1
        ok = sample.token in texts
        self.read[family] = self.read.get(family, 0) + ok
        self.first_pass[family] = self.first_pass.get(family, 0) + (ok and as_is)
        self.misreads += [t for t in texts if t != sample.token]
        self.seconds.append(seconds)
        if not ok:
            self.failed.append(f"{family}: {sample.variant} ({sample.media_type})")

    @property
    def rate(self) -> float:
        return sum(self.read.values()) / max(1, sum(self.total.values()))

    def table(self) -> str:
        rows = [
            "| distortion | images | read | rate | read as is (no fallback) |",
            "|---|---:|---:|---:|---:|",
        ]
        for family, n in self.total.items():
            ok, first = self.read[family], self.first_pass[family]
            rows.append(f"| {family} | {n} | {ok} | {100 * ok / n:.1f} % | {first} |")
        n, ok = sum(self.total.values()), sum(self.read.values())
        first = sum(self.first_pass.values())
        rows.append(f"| **all** | {n} | {ok} | **{100 * ok / n:.1f} %** | {first} |")
        ordered = sorted(self.seconds)
        median = ordered[len(ordered) // 2] if ordered else 0.0
        worst = ordered[-1] if ordered else 0.0
        rows.append("")
        rows.append(
            f"misreads: {len(self.misreads)}; decode time per image: median "
            f"{1000 * median:.0f} ms, worst {1000 * worst:.0f} ms"
        )
        if self.failed:
            rows.append("not read: " + "; ".join(sorted(set(self.failed))))
        return "\n".join(rows)
