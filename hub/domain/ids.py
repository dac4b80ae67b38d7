"""Sortable, prefixed identifiers (ULID layout: 48-bit milliseconds + 80 random bits)."""

from __future__ import annotations

import base64
import os
import threading
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# base64's RFC 4648 base32 alphabet, spelled in Crockford's
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())

# The random bits come from the OS's CSPRNG (os.urandom, as ``secrets``), read 4 KiB at a
# time: one system call per ~400 ids instead of one per id (a few % of a redeem). The
# pool is per process: a forked child starts with an empty one, never its parent's bytes.
_POOL_SIZE = 4096
_RANDOM_BYTES = 10  # 80 bits
_pool = b""
_pos = 0
_lock = threading.Lock()


def _reset_pool() -> None:
    global _pool, _pos, _lock
    _pool, _pos, _lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_reset_pool)


def _random80() -> int:
    global _pool, _pos
    with _lock:
        pos = _pos
        if pos + _RANDOM_BYTES > len(_pool):
            _pool, pos = os.urandom(_POOL_SIZE), 0
        _pos = pos + _RANDOM_BYTES
        return int.from_bytes(_pool[pos : pos + _RANDOM_BYTES], "big")


def new_id(prefix: str, now_ms: int | None = None) -> str:
    """``prefix_`` + 26 Crockford base32 characters that sort by creation time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | _random80()
    # 128 bits in 26 characters (130 bits, the first two 0): shifted into 160 bits, the
    # first 26 of base32's 32 characters are exactly those (no padding to strip)
    body = base64.b32encode((value << 30).to_bytes(20, "big"))[:26]
    return f"{prefix}_{body.translate(_TO_CROCKFORD).decode()}"
