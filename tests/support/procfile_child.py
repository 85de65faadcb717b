"""A stand-in for a Procfile process: ``python procfile_child.py NAME BEHAVIOUR [MARKER]``.

BEHAVIOUR is how it meets SIGTERM or what it does meanwhile: ``polite`` says so and exits 0,
``stubborn`` ignores it, ``exits`` exits 3 once its siblings are ready, ``chatty`` exits 0 on it
and prints a line every 50 ms until then. MARKER, a path, is created first: proof that it
started; ``MARKER.ready`` once its SIGTERM disposition is set, so that the stop that ``exits``
causes meets the intended one rather than the interpreter's start-up.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def main(name: str, behaviour: str, marker: str | None = None) -> int:
    if marker:
        Path(marker).touch()
    if behaviour == "exits":
        if marker:
            wait_for_siblings(Path(marker))
        print(f"{name} exits on its own", flush=True)
        return 3
    if behaviour == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop(name))
    if marker:
        Path(f"{marker}.ready").touch()
    print(f"{name} ready", flush=True)
    while True:
        if behaviour == "chatty":
            print(f"{name} says something", flush=True)
        time.sleep(0.05 if behaviour == "chatty" else 3600)


def wait_for_siblings(marker: Path, timeout: float = 60) -> None:
    """Until every other stand-in that started in ``marker``'s folder is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        others = [m for m in marker.parent.glob("*.started") if m != marker]
        if others and all(Path(f"{m}.ready").exists() for m in others):
            return
        time.sleep(0.01)


def stop(name: str) -> None:
    os.write(1, f"{name} stopping\n".encode())  # unbuffered: safe inside a signal handler
    sys.exit(0)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
