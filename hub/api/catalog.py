"""Merchant, stores, products and customers."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromQuery, JSONBody, QueryParameter

from hub.api.dto import (
    CustomerIn,
    CustomerList,
    CustomerOut,
    MerchantOut,
    ProductIn,
    ProductList,
    ProductOut,
    StoreIn,
    StoreList,
    StoreOut,
)
from hub.api.openapi import ok
from hub.api.state import hub, principal
from hub.api.strict import Strict
from hub.services import catalog


class CatalogController(Controller):
    path = "/v1"
    tags = ["catalogue"]

    @get(
        "/merchant",
        sync_to_thread=True,
        summary="The caller's merchant",
        responses={200: ok(MerchantOut)},
    )
    def merchant(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return catalog.get_merchant(hub(request).engine, principal(request))

    @post(
        "/stores",
        sync_to_thread=True,
        summary="Create a store",
        responses={201: ok(StoreOut)},
    )
    def create_store(
        self, request: Request[Any, Any, Any], data: JSONBody[StoreIn]
    ) -> dict[str, Any]:
        h = hub(request)
        return catalog.create_store(h.engine, principal(request), data.code, data.name, h.clock())

    @get(
        "/stores",
        sync_to_thread=True,
        summary="List stores (a store key sees its own)",
        responses={200: ok(StoreList)},
    )
    def list_stores(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {"items": catalog.list_stores(hub(request).engine, principal(request))}

    @post(
        "/products",
        sync_to_thread=True,
        summary="Create a product",
        responses={201: ok(ProductOut)},
        dto=Strict[ProductIn],
        return_dto=None,
    )
    def create_product(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ProductIn],
    ) -> dict[str, Any]:
        h = hub(request)
        return catalog.create_product(
            h.engine, principal(request), data.sku, data.name, data.category, data.price, h.clock()
        )

    @get(
        "/products",
        sync_to_thread=True,
        summary="List products",
        responses={200: ok(ProductList)},
    )
    def list_products(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {"items": catalog.list_products(hub(request).engine, principal(request))}

    @post(
        "/customers",
        sync_to_thread=True,
        summary="Create a customer",
        responses={201: ok(CustomerOut)},
    )
    def create_customer(
        self, request: Request[Any, Any, Any], data: JSONBody[CustomerIn]
    ) -> dict[str, Any]:
        h = hub(request)
        return catalog.create_customer(
            h.engine, principal(request), data.external_id, data.name, data.phone, h.clock()
        )

    @get(
        "/customers",
        sync_to_thread=True,
        summary="List customers (by external id)",
        responses={200: ok(CustomerList)},
    )
    def list_customers(
        self,
        request: Request[Any, Any, Any],
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200,
        after: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        return {
            "items": catalog.list_customers(hub(request).engine, principal(request), limit, after)
        }
