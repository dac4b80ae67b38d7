"""Outbound delivery: outbox → per-subscription delivery records → dramatiq workers."""
