"""Who may call what: the one table the API enforces (and the README shows).

Every route of the API is a key of :data:`PERMISSIONS` (method, litestar path template)
mapped to the roles allowed to call it. The authentication middleware refuses anything
else with ``403 forbidden``, so a route added without an entry here is closed to every
key (and ``tests/security/test_role_matrix.py`` fails until the table says who may
use it). Services keep the finer rules (a store key acts only at its own store; an
analyst key may be limited to a list of stores).

Roles:
- ``admin``: the whole merchant.
- ``store``: one store's till: redeem, validate, quote, reverse its own redemptions,
  read its own data. A staff member's shift session (``Bearer hs_…``) acts with this
  role for the staff member's store, and is recorded as that staff member.
- ``integrator``: subscriptions, connectors, deliveries and dead letters, alerts; no
  coupon changes.
- ``analyst``: read-only: coupons, redemptions, templates, catalogue, alerts — every
  store or a list of stores.
- ``app``: the merchant's customer-facing backend (mini program, H5, app, web shop). It
  acts for any one customer of its merchant (the backend has authenticated them), on the
  channels its key names: read campaigns (by id, or by the claim token of a shared
  link: only those with one of its channels) and claim from them, read one customer's
  wallet and the coupons to push to them next (recommendations), quote an order, hold
  coupons for an online order and confirm or release the hold (reservations), offer a
  customer's coupon to a friend and accept or cancel such offers. It never
  issues, voids or manages templates and campaigns, and never lists customers, coupons
  or redemptions in bulk. It redeems and reverses whole orders (several coupons, all or
  nothing) on its channels at a store it names.
"""

from __future__ import annotations

import re
from typing import Final

ROLES: Final = ("admin", "store", "integrator", "analyst", "app")

ALL: Final = frozenset(ROLES)
ADMIN: Final = frozenset({"admin"})
TILL: Final = frozenset({"admin", "store"})
CHECKOUT: Final = frozenset({"admin", "store", "app"})
READERS: Final = frozenset({"admin", "store", "analyst"})
INTEGRATION: Final = frozenset({"admin", "integrator"})
OVERSIGHT: Final = frozenset({"admin", "integrator", "analyst"})

# Paths served without a key (health, metrics, the OpenAPI document, the dashboard and
# staff pages and their assets: they hold no data; a page calls the API with the key or
# staff session signed in with).
PUBLIC_PREFIXES: Final = ("/health", "/ready", "/metrics", "/schema", "/dashboard", "/staff")
# Operations that take no key (their handlers say ``opt={"exclude_from_auth": True}``):
# a staff sign-in, where the single-use code is the credential (the guessing guard counts
# wrong codes per client address). In the table below with every role: a key sent along
# is not looked at.
PUBLIC_ROUTES: Final = frozenset({("POST", "/v1/staff/sessions")})

PERMISSIONS: Final[dict[tuple[str, str], frozenset[str]]] = {
    # the caller's own merchant and catalogue
    ("GET", "/v1/merchant"): ALL,
    ("GET", "/v1/stores"): ALL,
    ("POST", "/v1/stores"): ADMIN,
    ("GET", "/v1/products"): READERS,
    ("POST", "/v1/products"): ADMIN,
    ("GET", "/v1/customers"): frozenset({"admin", "analyst"}),
    ("POST", "/v1/customers"): ADMIN,
    ("GET", "/v1/customers/{customer:str}/coupons"): frozenset({"admin", "analyst", "app"}),
    ("GET", "/v1/customers/{customer:str}/recommendations"): frozenset(
        {"admin", "analyst", "app"}
    ),
    # templates and coupons
    ("GET", "/v1/templates"): READERS,
    ("POST", "/v1/templates"): ADMIN,
    ("GET", "/v1/templates/{template_id:str}"): READERS,
    ("POST", "/v1/templates/{template_id:str}/coupons"): ADMIN,
    ("POST", "/v1/templates/{template_id:str}/pause"): ADMIN,
    ("POST", "/v1/templates/{template_id:str}/resume"): ADMIN,
    ("GET", "/v1/coupons/{code:str}"): READERS,
    ("POST", "/v1/coupons/{code:str}/claim"): ADMIN,
    ("POST", "/v1/coupons/{code:str}/void"): ADMIN,
    # campaigns customers claim from (the app acts for one customer at a time)
    ("POST", "/v1/campaigns"): ADMIN,
    ("GET", "/v1/campaigns/{campaign_id:str}"): frozenset({"admin", "analyst", "app"}),
    ("POST", "/v1/campaigns/{campaign_id:str}/claims"): frozenset({"admin", "app"}),
    # ... and by the claim token a shared link carries (an app key: its channels' only)
    ("GET", "/v1/campaigns/by-token/{claim_token:str}"): frozenset({"admin", "analyst", "app"}),
    ("POST", "/v1/campaigns/by-token/{claim_token:str}/claims"): frozenset({"admin", "app"}),
    # transfers to a friend (the app acts for the holder, then for the friend)
    ("POST", "/v1/coupons/{code:str}/transfers"): frozenset({"admin", "app"}),
    ("GET", "/v1/transfers/{token:str}"): frozenset({"admin", "app"}),
    ("POST", "/v1/transfers/{token:str}/accept"): frozenset({"admin", "app"}),
    ("POST", "/v1/transfers/{token:str}/cancel"): frozenset({"admin", "app"}),
    # redemption (the till)
    ("POST", "/v1/redemptions"): TILL,
    ("POST", "/v1/redemptions/validate"): TILL,
    ("POST", "/v1/redemptions/{redemption_id:str}/reversal"): TILL,
    ("GET", "/v1/redemptions"): READERS,
    # checkout (the till, or the app for a customer on its channels)
    ("POST", "/v1/orders/quote"): frozenset({"admin", "store", "app"}),
    ("POST", "/v1/pos/{connector:str}/{operation:str}"): TILL,
    # reading codes from a photo (the till's camera), optionally validating them
    ("POST", "/v1/scan"): TILL,
    # reservations: holds while an online customer pays (the app: its key's channels)
    ("POST", "/v1/reservations"): CHECKOUT,
    ("GET", "/v1/reservations/{reservation_id:str}"): CHECKOUT,
    ("POST", "/v1/reservations/{reservation_id:str}/confirm"): CHECKOUT,
    ("POST", "/v1/reservations/{reservation_id:str}/release"): CHECKOUT,
    # checkout: several coupons on one order (store: its own store; app: its channels)
    ("POST", "/v1/orders/redeem"): CHECKOUT,
    ("GET", "/v1/orders/{order_redemption_id:str}"): CHECKOUT,
    ("POST", "/v1/orders/{order_redemption_id:str}/reversal"): CHECKOUT,
    # integration
    ("GET", "/v1/subscriptions"): INTEGRATION,
    ("POST", "/v1/subscriptions"): INTEGRATION,
    ("GET", "/v1/subscriptions/{subscription_id:str}"): INTEGRATION,
    ("PATCH", "/v1/subscriptions/{subscription_id:str}"): INTEGRATION,
    ("DELETE", "/v1/subscriptions/{subscription_id:str}"): INTEGRATION,
    ("POST", "/v1/subscriptions/{subscription_id:str}/pause"): INTEGRATION,
    ("POST", "/v1/subscriptions/{subscription_id:str}/resume"): INTEGRATION,
    ("POST", "/v1/subscriptions/{subscription_id:str}/replay-dead"): INTEGRATION,
    ("GET", "/v1/deliveries"): INTEGRATION,
    ("GET", "/v1/deliveries/{delivery_id:str}"): INTEGRATION,
    ("POST", "/v1/deliveries/{delivery_id:str}/replay"): INTEGRATION,
    ("GET", "/v1/events/schemas"): ALL,
    ("GET", "/v1/events/schemas/{event_type:str}"): ALL,
    # keys
    ("GET", "/v1/keys"): ADMIN,
    ("POST", "/v1/keys"): ADMIN,
    ("POST", "/v1/keys/{key_id:str}/revoke"): ADMIN,
    # offline redemption: terminals fetch the keys (any key; a till uses its store key),
    # a coupon's token and QR code (the look-up's roles, and the app for its customer)
    ("GET", "/v1/offline/keys"): ALL,
    ("PUT", "/v1/offline/rules"): ADMIN,
    ("GET", "/v1/coupons/{code:str}/token"): frozenset({"admin", "store", "analyst", "app"}),
    ("GET", "/v1/coupons/{code:str}/qr.svg"): frozenset({"admin", "store", "analyst", "app"}),
    ("GET", "/v1/coupons/{code:str}/qr.png"): frozenset({"admin", "store", "analyst", "app"}),
    # audit
    ("GET", "/v1/audit"): ADMIN,
    # alerts (guessing, repeat redemption attempts, delivery circuits)
    ("GET", "/v1/alerts"): OVERSIGHT,
    # offline sync of a till's queued sales, and the conflicts it records
    ("POST", "/v1/redemptions/sync"): TILL,
    ("GET", "/v1/conflicts"): READERS,
    ("GET", "/v1/conflicts/{conflict_id:str}"): READERS,
    ("POST", "/v1/conflicts/{conflict_id:str}/settle"): ADMIN,
    # staff on a phone: staff members (a store key: its own store's), their sign-in codes
    # (the manager's till hands them out), and the shift sessions codes are exchanged for
    ("POST", "/v1/stores/{store:str}/staff"): ADMIN,
    ("GET", "/v1/stores/{store:str}/staff"): TILL,
    ("GET", "/v1/staff/{staff_id:str}"): TILL,
    ("POST", "/v1/staff/{staff_id:str}/disable"): ADMIN,
    ("POST", "/v1/staff/{staff_id:str}/enable"): ADMIN,
    ("POST", "/v1/staff/{staff_id:str}/sign-in-codes"): TILL,
    ("POST", "/v1/staff/sessions"): ALL,  # no key needed: PUBLIC_ROUTES
    # the caller's own staff session (an API key has none: 404 not_found)
    ("GET", "/v1/staff/me"): TILL,
    ("DELETE", "/v1/staff/sessions/current"): TILL,
    # insight: orders reported with or without a coupon; analytics (a store key: its
    # store; an analyst limited to stores: those)
    ("POST", "/v1/sales"): TILL,
    ("GET", "/v1/analytics/summary"): READERS,
    ("GET", "/v1/analytics/series"): READERS,
    ("GET", "/v1/analytics/breakdown"): READERS,
    ("GET", "/v1/analytics/stores/league"): READERS,
    ("GET", "/v1/analytics/funnel"): READERS,
    ("GET", "/v1/analytics/expiring"): READERS,
    # the dashboard (/dashboard): which of its panels the caller's key may read
    ("GET", "/v1/dashboard/access"): ALL,
    # reconciliation exports (对账): store keys their own store, analysts their stores
    ("GET", "/v1/exports/redemptions.csv"): READERS,
    ("GET", "/v1/exports/redemptions.xlsx"): READERS,
    ("GET", "/v1/exports/summary.csv"): READERS,
}


def bare(path_template: str) -> str:
    """``/v1/coupons/{code:str}`` → ``/v1/coupons/{code}`` (the OpenAPI spelling, and
    what litestar puts in the request scope)."""
    return _TYPED.sub(r"{\1}", path_template)


_TYPED = re.compile(r"\{(\w+):\w+\}")
_BY_BARE = {(m, bare(p)): roles for (m, p), roles in PERMISSIONS.items()}


def allowed(method: str, path_template: str, role: str) -> bool:
    return role in _BY_BARE.get((method.upper(), bare(path_template)), frozenset())


def markdown_table() -> str:
    """The table as the README shows it (between ``<!-- roles:start/end -->``)."""
    lines = ["| operation | " + " | ".join(ROLES) + " |", "|---|" + "---|" * len(ROLES)]
    for (method, path), roles in PERMISSIONS.items():
        marks = " | ".join("✓" if r in roles else "" for r in ROLES)
        lines.append(f"| `{method} {bare(path)}` | {marks} |")
    return "\n".join(lines) + "\n"
