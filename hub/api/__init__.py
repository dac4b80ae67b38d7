"""HTTP transport (litestar): DTOs, auth, error mapping, controllers."""
