"""Answers shaped like SAP S/4HANA's API_MATERIAL_DOCUMENT_SRV (OData V2, JSON), for
the erp.sap tests."""

from __future__ import annotations

import json
from typing import Any

from hub.connectors import OutboundRequest, OutboundResponse

BASE = "https://my-s4.example/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV"
TOKEN = "n3TRz0r8Ky1mZp7QvC4bWg=="
TOKEN_2 = "Xq9vL2c7Rb8dJ4kF1mN0tA=="
SESSION_COOKIE = "SAP_SESSIONID_S4H_100=pXkR7t0cN1sZ2b-8vHhQm5LwYq4AAKBQ3e8CAAoAoA%3d"
USER_CONTEXT = "sap-usercontext=sap-client=100"

CONFIG: dict[str, Any] = {
    "base_url": BASE,
    "username": "HUB_COMM_USER",
    "password": "Welcome-1-to-S4",
    "sap_client": "100",
    "plants": {
        "SH-001": {"plant": "1010", "storage_location": "0001"},
        "BJ-002": {"plant": "1020", "storage_location": "0002", "cost_center": "10102202"},
    },
    "cost_center": "10101101",
    "timezone": "Asia/Shanghai",
    "sku_map": {"SKU-GIFT-1": "TG-GIFT-0001"},
}


def _json(status: int, body: Any, **headers: str) -> OutboundResponse:
    return OutboundResponse(
        status,
        {"content-type": "application/json; charset=utf-8", "dataserviceversion": "2.0", **headers},
        json.dumps(body).encode(),
    )


def csrf_fetched(token: str = TOKEN) -> OutboundResponse:
    """The service root answered to ``x-csrf-token: Fetch`` (two cookies, joined by the
    hub's transport into one header as httpx does)."""
    return _json(
        200,
        {"d": {"EntitySets": ["A_MaterialDocumentHeader", "A_MaterialDocumentItem"]}},
        **{
            "x-csrf-token": token,
            "set-cookie": f"{SESSION_COOKIE}; path=/; secure; HttpOnly, "
            f"{USER_CONTEXT}; path=/; expires=Fri, 27 Nov 2026 06:31:00 GMT",
            "sap-server": "true",
            "sap-perf-fesrec": "41234.000000",
        },
    )


def csrf_required() -> OutboundResponse:
    return OutboundResponse(
        403,
        {"content-type": "text/plain", "x-csrf-token": "Required", "sap-server": "true"},
        b"CSRF token validation failed",
    )


def no_document() -> OutboundResponse:
    return _json(200, {"d": {"results": []}})


def document(header_text: str) -> dict[str, Any]:
    key = "MaterialDocumentYear='2026',MaterialDocument='4900001234'"
    uri = f"{BASE}/A_MaterialDocumentHeader({key})"
    return {
        "__metadata": {
            "id": uri,
            "uri": uri,
            "type": "API_MATERIAL_DOCUMENT_SRV.A_MaterialDocumentHeaderType",
        },
        "MaterialDocumentYear": "2026",
        "MaterialDocument": "4900001234",
        "InventoryTransactionType": "WA",
        "DocumentDate": "/Date(1795564800000)/",
        "PostingDate": "/Date(1795564800000)/",
        "CreationDate": "/Date(1795564800000)/",
        "CreationTime": "PT14H31M05S",
        "CreatedByUser": "HUB_COMM_USER",
        "MaterialDocumentHeaderText": header_text,
        "ReferenceDocument": "A-1001",
        "GoodsMovementCode": "03",
        "to_MaterialDocumentItem": {"__deferred": {"uri": f"{uri}/to_MaterialDocumentItem"}},
    }


def found(header_text: str) -> OutboundResponse:
    return _json(200, {"d": {"results": [document(header_text)]}})


def created(header_text: str = "JDK000000000000000000007") -> OutboundResponse:
    return _json(
        201,
        {"d": document(header_text)},
        location=f"{BASE}/A_MaterialDocumentHeader(MaterialDocumentYear='2026',"
        "MaterialDocument='4900001234')",
    )


def sap_error(
    status: int, code: str, message: str, details: list[tuple[str, str]] | None = None
) -> OutboundResponse:
    """An OData V2 error body as SAP Gateway writes it."""
    errordetails = [
        {"code": c, "message": m, "propertyref": "", "severity": "error", "target": ""}
        for c, m in (details if details is not None else [(code, message)])
    ]
    return _json(
        status,
        {
            "error": {
                "code": code,
                "message": {"lang": "en", "value": message},
                "innererror": {
                    "application": {
                        "component_id": "MM-IM-GF-API",
                        "service_namespace": "/SAP/",
                        "service_id": "API_MATERIAL_DOCUMENT_SRV",
                        "service_version": "0001",
                    },
                    "transactionid": "9F2C3B1D8E7A4C5B9D0E1F2A3B4C5D6E",
                    "timestamp": "20261125063100.1234560",
                    "Error_Resolution": {
                        "SAP_Transaction": "For backend administrators: use ADT feed reader "
                        '"SAP Gateway Error Log" or run transaction /IWFND/ERROR_LOG',
                        "SAP_Note": "See SAP Note 1797736 for error analysis",
                    },
                    "errordetails": errordetails,
                },
            }
        },
    )


DEFICIT = sap_error(400, "M7/021", "Deficit of SL Unrestricted-use 1 EA : TG-GIFT-0001 1010 0001")
NOT_IN_PLANT = sap_error(
    400,
    "/IWBEP/CX_MGW_BUSI_EXCEPTION",
    "Material TG-GIFT-0001 not maintained in plant 1010",
    [("M3/351", "Material TG-GIFT-0001 not maintained in plant 1010")],
)
LOCKED = sap_error(
    400, "M3/897", "The plant data of the material TG-GIFT-0001 is locked by the user BATCH_01"
)
LOCKED_IN_DETAILS = sap_error(
    400,
    "/IWBEP/CX_MGW_BUSI_EXCEPTION",
    "Error while posting the goods movement",
    [("M3/897", "The plant data of the material TG-GIFT-0001 is locked by the user BATCH_01")],
)
XML_DUMP = OutboundResponse(
    500,
    {"content-type": "application/xml"},
    b'<?xml version="1.0" encoding="utf-8"?><error xmlns="http://schemas.microsoft.com/ado/'
    b'2007/08/dataservices/metadata"><code>/IWFND/CM_BEC/026</code><message xml:lang="en">'
    b"Error while executing the RFC call</message></error>",
)
UNAUTHORIZED = OutboundResponse(
    401,
    {
        "content-type": "text/html",
        "www-authenticate": 'Basic realm="SAP NetWeaver Application Server [S4H/100]"',
    },
    b"<html><head><title>Logon Error Message</title></head><body>401</body></html>",
)
METADATA = OutboundResponse(
    200,
    {"content-type": "application/xml", "dataserviceversion": "2.0"},
    b'<?xml version="1.0" encoding="utf-8"?><edmx:Edmx Version="1.0" '
    b'xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx"><edmx:DataServices/></edmx:Edmx>',
)


def is_fetch(request: OutboundRequest) -> bool:
    return any(k.lower() == "x-csrf-token" and v == "Fetch" for k, v in request.headers.items())


def realistic(request: OutboundRequest) -> OutboundResponse:
    """SAP's successful answer to each request the connector sends."""
    if is_fetch(request):
        return csrf_fetched()
    if request.method == "GET" and "$metadata" in request.url:
        return METADATA
    if request.method == "GET":
        return no_document()
    return created()
