"""What the kernel says about the hub's processes (Linux ``/proc``), for the tests that
run real ``hub`` subprocesses (test_cli_scaleout.py, concurrency/test_chaos.py): which
processes a supervisor started, which of them hold a listening socket, whether one
still runs. No header or endpoint of the hub names a process."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def tcp_inodes(port: int) -> dict[tuple[str, int], str]:
    """{(state, remote port): inode} of the IPv4 sockets whose local port is ``port``."""
    found: dict[tuple[str, int], str] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        local, state, inode = f[1], f[3], f[9]
        if int(local.split(":")[1], 16) == port:
            found[(state, int(f[2].split(":")[1], 16))] = inode
    return found


def holders(inode: str, pids: set[int]) -> set[int]:
    """Which of ``pids`` hold the socket ``inode`` open."""
    target = f"socket:[{inode}]"
    holding = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        holding.add(pid)
                        break
    return holding


def listening_children(parent: int, port: int) -> set[int]:
    """The children of ``parent`` that hold the socket listening on ``port``."""
    listen = [i for (state, _), i in tcp_inodes(port).items() if state == "0A"]
    return holders(listen[0], children(parent)) if listen else set()


def alive(pid: int) -> bool:
    """The process runs (an exited orphan that nobody has reaped yet is a zombie: gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
