"""Tests of the CRM loyalty connectors (connectors.crm)."""
