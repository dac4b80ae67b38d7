"""Fixtures shared by the security tests."""

from tests.api.test_auth_scope import world  # noqa: F401  (the fixture, re-exported)
