"""Whether a TCP port is free, and if not, which process listens on it (Linux ``/proc``).

``make run`` asks this before it starts anything, so that a second ``make run`` on the
same port names the first one instead of starting a second worker and beat. The holder
is found the way ``ss -p`` finds it, without needing ``ss`` or ``psutil``: the listening
socket's inode in ``/proc/net/tcp{,6}``, then the process with ``socket:[inode]`` among
its file descriptors (only processes this user may inspect; root sees all of them).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TCP_LISTEN = "0A"
COMMAND_CHARS = 160


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


def port_problem(host: str, port: int) -> str | None:
    """``None`` when ``host:port`` can be bound as gunicorn binds it; else what stops it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        return f"cannot resolve {host!r}: {error}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                return f"cannot listen on {host}:{port}: {error.strerror}"
            holders = listeners(port)
            if not holders:
                return f"port {port} is in use (by a process this user cannot inspect)"
            return f"port {port} is in use by " + ", ".join(str(h) for h in holders)
    return None


def refusal(host: str, port: int) -> str | None:
    """What ``make run`` says when it cannot serve on ``host:port``; ``None`` when it can."""
    problem = port_problem(host, port)
    if problem is None:
        return None
    return (
        f"{problem}. Nothing was started: stop it, or choose another port"
        f" (make run PORT={port + 1})."
    )


def listeners(port: int, proc: Path = PROC) -> list[Holder]:
    """The processes with a socket listening on TCP ``port`` (any address, IPv4 or IPv6)."""
    inodes = listening_inodes(port, proc)
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for fd_dir in proc.glob("[0-9]*/fd"):
        if any(target in wanted for target in _fd_targets(fd_dir)):
            pid = int(fd_dir.parent.name)
            holders.append(Holder(pid, command_line(pid, proc)))
    return sorted(holders, key=lambda holder: holder.pid)


def listening_inodes(port: int, proc: Path = PROC) -> set[str]:
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == TCP_LISTEN and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def command_line(pid: int, proc: Path = PROC) -> str:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    words = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part).split()
    text = " ".join(words) or "?"
    return text if len(text) <= COMMAND_CHARS else text[: COMMAND_CHARS - 1] + "…"


def _fd_targets(fd_dir: Path) -> list[str]:
    """What a process's descriptors point at; nothing for a process gone or not ours."""
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return []
    targets = []
    for name in names:
        try:
            targets.append(os.readlink(fd_dir / name))
        except OSError:  # closed meanwhile
            continue
    return targets


def main(argv: list[str] | None = None) -> int:
    """``python -m vexxy.ports HOST PORT``: exit 1, saying why, when ``make run`` cannot serve."""
    host, port = argv if argv is not None else sys.argv[1:]
    message = refusal(host, int(port))
    if message:
        print(message, file=sys.stderr)
    return 1 if message else 0


if __name__ == "__main__":
    sys.exit(main())
