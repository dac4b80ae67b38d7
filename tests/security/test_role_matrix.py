"""The role table (hub/api/permissions.py, shown in the README) is what the API does.

Every operation of the served OpenAPI document is called by a key of every role, and
each call is allowed or refused exactly as the table says. An operation missing from
the table fails here (and the API closes it to every key). Revoked, expired and missing
keys, another merchant's keys and another store's keys are refused everywhere (the
401 and cross-merchant sweeps live in tests/api/test_auth_scope.py and run every
operation too).
"""

from __future__ import annotations

import re
from pathlib import Path

from hub.api.permissions import PERMISSIONS, PUBLIC_PREFIXES, ROLES, markdown_table
from hub.services import keys
from tests.api.world import World, assert_problem, operations

README = Path(__file__).resolve().parents[2] / "README.md"


def _identities(w: World) -> dict[str, dict[str, str]]:
    def key(role: str, **kw) -> dict[str, str]:
        made = keys.create_key(w.db, w.m.id, role, w.clock.now, name=f"matrix {role}", **kw)
        return {"Authorization": f"Bearer {made.token}"}

    return {
        "admin": w.m.auth(),
        "store": w.m.auth(w.m.store_keys["SH-001"]),
        "integrator": key("integrator"),
        "analyst": key("analyst"),
        "app": key("app", channels=["mini_program", "h5"]),
    }


def test_every_documented_operation_is_in_the_role_table(client):
    doc = client.get("/schema/openapi.json").json()
    documented = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method.upper() not in ("HEAD", "OPTIONS") and not path.startswith(PUBLIC_PREFIXES)
    }
    tabled = {(m, re.sub(r"\{(\w+):\w+\}", r"{\1}", p)) for m, p in PERMISSIONS}
    assert documented - tabled == set(), "add these operations to hub/api/permissions.py"
    assert tabled - documented == set(), "the table names operations the API does not serve"


def test_each_role_may_do_exactly_what_the_table_says(world: World):
    who = _identities(world)
    wrong: list[str] = []
    checked = 0
    for method, route in operations(world.client.app):
        for role in ROLES:
            r = world.call(method, route, who[role])
            checked += 1
            if role in PERMISSIONS[(method, route)]:
                if r.status_code in (401, 403) or r.status_code >= 500:
                    wrong.append(f"{role} {method} {route}: refused {r.status_code} {r.text[:150]}")
            elif r.status_code != 403 or r.json().get("code") != "forbidden":
                wrong.append(f"{role} {method} {route}: not refused: {r.status_code}")
    assert not wrong, "\n".join(wrong)
    assert checked == len(operations(world.client.app)) * len(ROLES) >= 140


def test_an_analyst_limited_to_stores_reads_only_those(world: World):
    limited = keys.create_key(world.db, world.m.id, "analyst", world.clock.now,
                              store_codes=["SH-002"])
    auth = {"Authorization": f"Bearer {limited.token}"}
    assert world.client.get("/v1/redemptions", headers=auth).json()["items"] == []
    everyone = world.client.get("/v1/redemptions", headers=world.m.auth()).json()["items"]
    assert {r["store"] for r in everyone} == {"SH-001"}  # the redemption and the order
    stores = world.client.get("/v1/stores", headers=auth).json()["items"]
    assert [s["code"] for s in stores] == ["SH-002"]
    r = world.call("POST", "/v1/redemptions", auth)
    assert_problem(r, 403, "forbidden", "an analyst never redeems")


def test_the_readme_role_table_is_the_enforced_table():
    block = README.read_text().split("<!-- roles:start -->\n")[1].split("<!-- roles:end -->")[0]
    assert block == markdown_table(), "regenerate the README table from PERMISSIONS"
    rows = re.findall(r"^\| `(GET|POST|PUT|PATCH|DELETE) ([^`]+)` \|(.+)\|$", block, re.M)
    assert len(rows) == len(PERMISSIONS)


# Store-role operations a staff session may not do although a store key may: handing out
# sign-in codes (a lost phone must not mint sign-ins for others).
STAFF_SESSION_REFUSED = {("POST", "/v1/staff/{staff_id:str}/sign-in-codes")}


def test_a_staff_session_has_exactly_the_store_roles_rights(world: World):
    """A staff member's shift session acts as the store role does (at its own store),
    every operation of the app called with it."""
    from hub.services import staff

    def session() -> dict[str, str]:
        code = staff.create_sign_in_code(world.db, world.m.principal, world.staff_id,
                                         world.clock.now)["code"]
        r = world.client.post("/v1/staff/sessions", json={"code": code})
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    auth = session()
    wrong: list[str] = []
    # signing out ends the session: last
    last = ("DELETE", "/v1/staff/sessions/current")
    ops = sorted(operations(world.client.app), key=lambda op: op == last)
    for method, route in ops:
        r = world.call(method, route, auth)
        if (method, route) in STAFF_SESSION_REFUSED:
            ok = r.status_code == 403 and r.json().get("code") == "forbidden"
        elif "store" in PERMISSIONS[(method, route)]:
            ok = r.status_code not in (401, 403) and r.status_code < 500
        else:
            ok = r.status_code == 403 and r.json().get("code") == "forbidden"
        if not ok:
            wrong.append(f"{method} {route}: {r.status_code} {r.text[:150]}")
        if route.endswith("/disable"):  # an admin's: refused, the session lives on
            assert r.status_code == 403
    assert not wrong, "\n".join(wrong)
    r = world.client.get("/v1/staff/me", headers=auth)
    assert_problem(r, 401, "unauthorized", "signed out by the sweep's DELETE")
