"""ERP connectors: outbound stock movements for exchange-coupon gifts (and, optionally,
order lines).

- :mod:`connectors.erp.stock` — the shared rule: which event moves which stock where
  (``movements``), and the config options every ERP connector accepts.
- :mod:`connectors.erp.sap` — ``erp.sap``: SAP S/4HANA goods movements via OData V2.
- :mod:`connectors.erp.webhook` — ``erp.webhook``: a signed generic JSON message.

Modules are imported on their own (entry points name them), so one ERP's dependencies
never load another's.
"""
