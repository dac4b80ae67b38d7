"""``python -m bench scan``: the decode rate of the photo scan per distortion.

    python -m bench scan [--per-variant 4] [--tokens 12] [--seed 13]

Makes the test set of tests/services/scan_images.py (QR codes of real signed coupon tokens,
rotated, scaled down, blurred, noisy, low contrast, creased, perspective-warped,
printed, combined) and decodes each image with :func:`hub.services.scan.find_codes`,
what ``POST /v1/scan`` runs (tests/api/test_scan_decode_rate.py sends the same set through
the HTTP route). Prints the table the README shows and the load average (the machine
is shared). Exit status 1 when the overall rate is below 95 % or anything was misread.
"""

from __future__ import annotations

import argparse
import os
import time

from hub.services.scan import find_codes
from tests.services.scan_images import Tally, image_set, make_tokens

GOAL = 0.95


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench scan", description=__doc__.splitlines()[0])
    ap.add_argument("--per-variant", type=int, default=4, help="images per distortion variant")
    ap.add_argument("--tokens", type=int, default=12, help="distinct tokens, used in turn")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args(argv)
    tokens, _keys = make_tokens(args.tokens, seed=args.seed)
    tally = Tally()
    for sample in image_set(tokens, seed=args.seed, per_variant=args.per_variant):
        started = time.perf_counter()
        outcome = find_codes(sample.data)
        seconds = time.perf_counter() - started
        texts = [f.text for f in outcome.found]
        tally.add(sample, texts, seconds, as_is=outcome.attempts == ["as_is"])
    print(tally.table())
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if tally.rate >= GOAL and not tally.misreads else 1


if __name__ == "__main__":
    raise SystemExit(main())
