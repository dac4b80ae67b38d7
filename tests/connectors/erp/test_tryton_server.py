"""End to end: a real Tryton server, the REST key, and the stock decrement/reverse recipe."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from tests.connectors.erp.tryton_server import (
    TrytonServer,
    add_initial_stock,
    create_product,
    decrement_stock,
    find_decrement,
    quantity_on_hand,
    reverse_decrement,
    warehouse_locations,
)

SKU = "SKU-GIFT-1"


@pytest.mark.slow
def test_decrement_and_reverse_over_rest(tryton_server: TrytonServer) -> None:
    server = tryton_server
    assert server.url.startswith("http://127.0.0.1:")

    # The REST API takes the app key and nothing else.
    with httpx.Client(trust_env=False, timeout=10.0) as anonymous:
        bad = anonymous.get(
            f"{server.rest_url}/model/stock.location",
            headers={"Authorization": "Bearer not-a-key"},
        )
    assert bad.status_code == 401

    loc = warehouse_locations(server)
    product_id = create_product(server, SKU)
    assert product_id > 0
    add_initial_stock(server, SKU, loc.storage, 100)
    assert quantity_on_hand(server, SKU, loc.storage) == Decimal(100)

    shipment_id = decrement_stock(server, SKU, loc.storage, 2, reference="REDEEM-0001")
    assert quantity_on_hand(server, SKU, loc.storage) == Decimal(98)

    # Idempotent: the same key finds the done shipment and does not decrement again.
    assert find_decrement(server, "REDEEM-0001") == {
        "id": shipment_id,
        "__name__": "stock.shipment.internal",
        "state": "done",
        "reference": "REDEEM-0001",
    }
    assert decrement_stock(server, SKU, loc.storage, 2, reference="REDEEM-0001") == shipment_id
    assert quantity_on_hand(server, SKU, loc.storage) == Decimal(98)

    reverse_ids = reverse_decrement(server, shipment_id)
    assert len(reverse_ids) == 1
    assert quantity_on_hand(server, SKU, loc.storage) == Decimal(100)
    # Reversing twice is a no-op (the reverse move is found through its origin).
    assert reverse_decrement(server, shipment_id) == reverse_ids
    assert quantity_on_hand(server, SKU, loc.storage) == Decimal(100)

    server.stop()
    assert server.process.poll() is not None
