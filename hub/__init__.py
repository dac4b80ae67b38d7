"""Redemption Hub: coupon redemption (核销) middleware."""

__version__ = "0.1.0"
