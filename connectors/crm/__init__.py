"""CRM loyalty connectors: redemptions credit points, reversals debit them.

- ``crm.salesforce`` (:mod:`connectors.crm.salesforce`): Salesforce Loyalty Management
  program processes, OAuth 2.0 client credentials, idempotent on the journal's
  ExternalTransactionNumber;
- ``crm.hubspot`` (:mod:`connectors.crm.hubspot`): a contact property guarded by a ledger
  of applied event ids, or a custom behavioral event;
- ``crm.webhook`` (:mod:`connectors.crm.webhook`): a generic signed accrual message.

All three compute the points with the shared rule of :mod:`connectors.crm.points`.
"""
